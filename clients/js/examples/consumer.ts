// A TypeScript app using the otpgate client: `npm run typecheck` compiles this file against the
// package's declarations (it is not run). It signs a user in, keeps the session fresh, and turns
// errors into what a screen would show.
import { OtpgateClient, OtpgateError } from "otpgate";
import type { MeView, SessionView, VerificationResponse } from "otpgate";

const client = new OtpgateClient({
  baseUrl: "https://verify.example.com",
  retries: 2,
  onRetry: ({ operation, retry, delayMs, error }) => {
    console.debug(`${operation}: retry ${retry} in ${delayMs} ms after ${error.code}`);
  },
});

/** Step 1: text a code. A retried send (lost answer, 503) never texts twice. */
export async function sendCode(phone: string, botToken?: string): Promise<VerificationResponse> {
  const v = await client.send(phone, { channel: "sms", locale: "en", botToken });
  console.log(`code sent to ${v.phone}; expires in ${v.expires_in} s; resend in ${v.resend_in} s`);
  return v;
}

/** Step 2: check it; with sessions on, the answer carries the user and the session. */
export async function checkCode(phone: string, code: string): Promise<SessionView> {
  const { user, session } = await client.check(phone, code);
  if (!user || !session) throw new Error("this otpgate has sessions turned off");
  console.log(`signed in as ${user.id}${user.created ? " (new user)" : ""}`);
  return session;
}

/** The signed-in user; one refresh when the access token has expired. */
export async function whoAmI(session: SessionView, save: (s: SessionView) => void): Promise<MeView> {
  try {
    return await client.me(session.access_token);
  } catch (e) {
    if (!(e instanceof OtpgateError) || e.code !== "unauthorized") throw e;
    const next = await client.refresh(session.refresh_token);
    save(next);
    return client.me(next.access_token);
  }
}

export async function signOut(session: SessionView, verificationId?: string): Promise<void> {
  if (verificationId) await client.cancel(verificationId);
  await client.revoke(session.refresh_token, { retries: 0, deadlineMs: 3000 });
}

/** What to show for a failed call. */
export function describe(e: unknown): string {
  if (!(e instanceof OtpgateError)) return "Something went wrong.";
  switch (e.code) {
    case "invalid_code":
      return `${e.message} (${e.attemptsLeft ?? 0} left)`;
    case "rate_limited":
      return e.retryAfter !== undefined ? `Try again in ${e.retryAfter} s.` : e.message;
    case "network_error":
    case "timeout":
      return "You seem to be offline.";
    default:
      // The API's messages are written for end users.
      return e.field ? `${e.field}: ${e.message}` : e.message;
  }
}

/** A call that the user can cancel. */
export function cancellableSend(phone: string): { done: Promise<VerificationResponse>; cancel: () => void } {
  const controller = new AbortController();
  return { done: client.send(phone, { signal: controller.signal, deadlineMs: 30_000 }), cancel: () => controller.abort() };
}
