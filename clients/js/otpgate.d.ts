// Types of the `otpgate` package. The wire types mirror the server's OpenAPI document
// (`GET /openapi.json`, schemas of the same names); test/contract.test.mjs checks that they are
// exactly the same, so a contract change this file misses fails the tests.

// ---------------------------------------------------------------------------------------------
// Wire types (snake_case, as on the wire)

/** Delivery channel of a code. */
export type ChannelName = "sms" | "whatsapp" | "call";

/** Where a verification stands. */
export type VerificationStatusName = "pending" | "approved" | "canceled" | "dead" | "expired";

/** What a successful check says: always `approved` (every other outcome is an error). */
export type CheckStatus = "approved";

/** `POST /v1/verifications` body. */
export interface SendVerificationRequest {
  /** E.164 preferred (`+14155550100`); national formats only with a server `default_region`. */
  phone: string;
  /** Default `sms`. */
  channel?: ChannelName | null;
  /** BCP 47 tag picking the message template (`en`, `pt-BR`). */
  locale?: string | null;
  /** A bot-check challenge token (Turnstile, hCaptcha, reCAPTCHA), when the server requires one. */
  bot_token?: string | null;
}

/** A verification as the client sees it. Never contains the code. */
export interface VerificationResponse {
  id: string;
  /** `pending` for a verification waiting for its code. */
  status: VerificationStatusName;
  /** Masked: `+1******0100`. */
  phone: string;
  channel: ChannelName;
  /** RFC 3339, UTC. */
  expires_at: string;
  /** Seconds until the code expires. */
  expires_in: number;
  /** Seconds until a resend is allowed. */
  resend_in: number;
  attempts_left: number;
}

/** `POST /v1/verifications/check` body. */
export interface CheckVerificationRequest {
  phone: string;
  /** Exactly the configured number of ASCII digits, as a string. */
  code: string;
}

/** The signed-in user. */
export interface UserView {
  id: string;
  /** E.164. */
  phone: string;
  /** True when this approval created the user. */
  created: boolean;
}

/** Tokens issued after an approval or a refresh. */
export interface SessionView {
  access_token: string;
  /** `Bearer`. */
  token_type: string;
  /** Seconds. */
  expires_in: number;
  refresh_token: string;
  /** Seconds. */
  refresh_expires_in: number;
}

/** `POST /v1/verifications/check` answer. `user` and `session` are absent when the server has sessions off. */
export interface CheckVerificationResponse {
  /** `approved`. */
  status: CheckStatus;
  user?: UserView | null;
  session?: SessionView | null;
}

/** `POST /v1/sessions/refresh` and `POST /v1/sessions/revoke` body. */
export interface RefreshTokenRequest {
  refresh_token: string;
}

/** `POST /v1/sessions/refresh` answer (`OtpgateClient.refresh` resolves with its `session`). */
export interface RefreshResponse {
  session: SessionView;
}

/** `GET /v1/me` answer. */
export interface MeView {
  id: string;
  /** E.164. */
  phone: string;
  /** RFC 3339, UTC. */
  created_at: string;
}

/** Every error code the API answers with (the error table of otpgate's API). */
export type ErrorCode =
  | "invalid_request"
  | "unsupported_media_type"
  | "payload_too_large"
  | "invalid_phone"
  | "unsupported_region"
  | "undeliverable"
  | "invalid_code"
  | "verification_not_found"
  | "too_many_attempts"
  | "rate_limited"
  | "unauthorized"
  | "provider_unavailable"
  | "service_unavailable"
  | "internal"
  | "not_found"
  | "method_not_allowed";

export interface ErrorDetail {
  code: ErrorCode;
  /** Safe to show to an end user. */
  message: string;
  /** Seconds; also sent as `Retry-After`. */
  retry_after?: number | null;
  attempts_left?: number | null;
  /** The request field that is wrong, for the client to focus. */
  field?: string | null;
  request_id: string;
}

/** `{ "error": { … } }`: every error answer. */
export interface ErrorBody {
  error: ErrorDetail;
}

// ---------------------------------------------------------------------------------------------
// The client

/** The client's own codes, for failures without a usable answer from otpgate. */
export type ClientErrorCode =
  /** No answer: offline, DNS, connection refused or reset. */
  | "network_error"
  /** The call's deadline (`deadlineMs`) passed. */
  | "timeout"
  /** An answer that is not otpgate's (a proxy's error page, a body that is not JSON). */
  | "unexpected_response";

export type OtpgateErrorCode = ErrorCode | ClientErrorCode;

/** Every failure of a call. An aborted call rejects with the signal's reason instead. */
export declare class OtpgateError extends Error {
  readonly name: "OtpgateError";
  /** The API's code (`rate_limited`, …) or the client's (`network_error`, …). */
  readonly code: OtpgateErrorCode;
  /** HTTP status; 0 when there was no answer. */
  readonly status: number;
  /** Safe to show to an end user. */
  readonly message: string;
  /** Seconds to wait before trying again (body `retry_after` or the `Retry-After` header). */
  readonly retryAfter: number | undefined;
  /** Wrong codes the verification still takes (`invalid_code`). */
  readonly attemptsLeft: number | undefined;
  /** The request field that is wrong (`phone`, `code`, `locale`, `bot_token`). */
  readonly field: string | undefined;
  /** otpgate's request id, to quote in a support request. */
  readonly requestId: string | undefined;
}

/** What `onRetry` is told before each retry's wait. */
export interface RetryInfo {
  operation: "send" | "check" | "cancel" | "refresh" | "revoke" | "me" | "deleteMe";
  /** 1 for the first retry. */
  retry: number;
  /** How long the client waits before it. */
  delayMs: number;
  /** Why the previous attempt failed. */
  error: OtpgateError;
}

/** Bounds of one call; each can be set on the client and overridden per call. */
export interface CallOptions {
  /** Retries after the first attempt (default 3; 0: none). */
  retries?: number | undefined;
  /** Time for the whole call, retries and waits included (default 15000 ms). */
  deadlineMs?: number | undefined;
  /** Aborts the call: it rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Told before each retry (e.g. to show "trying again"). */
  onRetry?: ((info: RetryInfo) => void) | null | undefined;
}

export interface SendOptions extends CallOptions {
  /** Default `sms`. */
  channel?: ChannelName | undefined;
  /** BCP 47 tag of the message language (`en`, `pt-BR`). */
  locale?: string | undefined;
  /** The bot-check challenge token, when the server requires one. */
  botToken?: string | undefined;
  /**
   * The `Idempotency-Key` (1–255 printable ASCII characters). Default: a fresh random one per
   * call. Pass your own to make one logical send of several calls (e.g. across an app restart).
   */
  idempotencyKey?: string | undefined;
}

export interface RefreshOptions extends CallOptions {
  /**
   * No retry of a refresh starts later than this after its first attempt (default 8000 ms), so
   * that it falls inside the server's reuse grace (`sessions.refresh_reuse_grace_secs`, 10 s).
   * Set it below that grace if the server's is shorter.
   */
  refreshRetryWindowMs?: number | undefined;
}

export interface OtpgateClientOptions {
  /** Where otpgate answers (`https://verify.example.com`); in a browser `""` is the page's origin. */
  baseUrl: string;
  /** Default retries per call (3). */
  retries?: number | undefined;
  /** Default deadline per call (15000 ms). */
  deadlineMs?: number | undefined;
  /** Default refresh retry window (8000 ms); see `RefreshOptions`. */
  refreshRetryWindowMs?: number | undefined;
  /** Default `onRetry` hook. */
  onRetry?: ((info: RetryInfo) => void) | null | undefined;
  /** The `fetch` to use (default: the global one, looked up per request). */
  fetch?: ((input: string, init: RequestInit) => Promise<Response>) | undefined;
}

export declare const DEFAULTS: {
  readonly retries: number;
  readonly deadlineMs: number;
  readonly refreshRetryWindowMs: number;
};

export declare class OtpgateClient {
  constructor(options: OtpgateClientOptions);
  readonly baseUrl: string;
  /** `POST /v1/verifications`: a new verification, or a resend of the phone's live one (same `id`). */
  send(phone: string, options?: SendOptions): Promise<VerificationResponse>;
  /** `POST /v1/verifications/check`: the approval, with `user` and `session` when sessions are on. */
  check(phone: string, code: string, options?: CallOptions): Promise<CheckVerificationResponse>;
  /** `DELETE /v1/verifications/{id}`; unknown or finished ids are not an error. */
  cancel(verificationId: string, options?: CallOptions): Promise<void>;
  /** `POST /v1/sessions/refresh`: the next session (the token given is spent). */
  refresh(refreshToken: string, options?: RefreshOptions): Promise<SessionView>;
  /** `POST /v1/sessions/revoke`: signs out; an unknown or spent token is not an error. */
  revoke(refreshToken: string, options?: CallOptions): Promise<void>;
  /** `GET /v1/me`: the signed-in user. */
  me(accessToken: string, options?: CallOptions): Promise<MeView>;
  /** `DELETE /v1/me`: erases the signed-in user, their sessions and verifications. */
  deleteMe(accessToken: string, options?: CallOptions): Promise<void>;
}

/** A fresh random `Idempotency-Key` (a v4 UUID). */
export declare function newIdempotencyKey(): string;
