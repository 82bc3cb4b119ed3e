// otpgate: a client for the otpgate HTTP API (phone verification and sign-in over one-time codes).
//
// One ES module, no dependencies, no build step. It uses only what browsers, Node >= 18 and React
// Native all have: `fetch`, `AbortController`, `setTimeout`, and `crypto.randomUUID` /
// `crypto.getRandomValues` where present. otpgate serves this same file at `/otpgate.js` for its
// sign-in page. Types: `otpgate.d.ts` beside it. Retry rules: README.md.

/** Defaults of the options a client and each call can set. */
export const DEFAULTS = Object.freeze({
  retries: 3,
  deadlineMs: 15000,
  // The server's default `sessions.refresh_reuse_grace_secs` is 10 s: a refresh is only retried
  // while a retry still lands inside it, with 2 s to spare for the trip.
  refreshRetryWindowMs: 8000,
});

const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 8000;
const MAX_TIMER_MS = 2147483647;

/**
 * Every failure of a call: an error answer of otpgate's table (`code` is the API's), or one of
 * the client's own codes when there was no usable answer: `network_error` (no answer at all),
 * `timeout` (the call's deadline passed) and `unexpected_response` (an answer that is not
 * otpgate's, e.g. a proxy's error page). An aborted call rejects with the signal's reason instead.
 */
export class OtpgateError extends Error {
  constructor(fields) {
    super(fields.message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'OtpgateError';
    /** The API's error code (`rate_limited`, …) or the client's (`network_error`, …). */
    this.code = fields.code;
    /** HTTP status; 0 when there was no answer. */
    this.status = fields.status;
    /** Seconds to wait before trying again, from the body or the `Retry-After` header. */
    this.retryAfter = fields.retryAfter;
    /** Wrong codes the verification still takes (`invalid_code`). */
    this.attemptsLeft = fields.attemptsLeft;
    /** The request field that is wrong (`phone`, `code`, `locale`, `bot_token`). */
    this.field = fields.field;
    /** otpgate's request id, to quote in a support request. */
    this.requestId = fields.requestId;
  }
}

// What a call may repeat after a failure, which decides its retries (README.md, "Retries"):
// - REPEATABLE: running it twice does no harm (a keyed send, a read, a cancel, a revoke; a
//   refresh inside the server's reuse grace): retried after no answer, a 502/503/504 and a 429.
// - ONCE: a second run could act again (a check counts a wrong code, or hides the approval it
//   already gave behind `verification_not_found`; deleting the user answers 401 the second time):
//   retried only after a 429 `rate_limited`, which the server answers before doing anything.
const REPEATABLE = 'repeatable';
const ONCE = 'once';

export class OtpgateClient {
  /**
   * @param {object} options
   * @param {string} options.baseUrl where otpgate answers (`https://verify.example.com`); in a
   *   browser, `''` means the page's own origin.
   */
  constructor(options) {
    if (!options || typeof options.baseUrl !== 'string') {
      throw new TypeError('OtpgateClient needs { baseUrl }, e.g. "https://verify.example.com"');
    }
    if (/[?#]/.test(options.baseUrl)) throw new TypeError('baseUrl must not have a query or a fragment');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.retries = count(options.retries, 'retries', DEFAULTS.retries);
    this.deadlineMs = count(options.deadlineMs, 'deadlineMs', DEFAULTS.deadlineMs);
    this.refreshRetryWindowMs = count(options.refreshRetryWindowMs, 'refreshRetryWindowMs', DEFAULTS.refreshRetryWindowMs);
    this.onRetry = options.onRetry;
    // Looked up per request when not given, so a polyfill installed later is used.
    this.fetch = options.fetch;
  }

  /**
   * `POST /v1/verifications`: sends a code (201) or resends the phone's live one (200, same id).
   * One `Idempotency-Key` per call, reused by each of its retries: a retry never texts twice.
   */
  send(phone, options = {}) {
    const body = { phone };
    if (options.channel != null) body.channel = options.channel;
    if (options.locale != null) body.locale = options.locale;
    if (options.botToken != null) body.bot_token = options.botToken;
    const key = options.idempotencyKey != null ? String(options.idempotencyKey) : newIdempotencyKey();
    return call(
      this,
      { operation: 'send', method: 'POST', path: '/v1/verifications', body, idempotencyKey: key, safety: REPEATABLE },
      options,
    );
  }

  /** `POST /v1/verifications/check`: `{ status, user, session }` once the code is right. */
  check(phone, code, options = {}) {
    return call(
      this,
      { operation: 'check', method: 'POST', path: '/v1/verifications/check', body: { phone, code }, safety: ONCE },
      options,
    );
  }

  /** `DELETE /v1/verifications/{id}`; unknown or finished ids are not an error. */
  async cancel(verificationId, options = {}) {
    const path = '/v1/verifications/' + encodeURIComponent(verificationId);
    await call(this, { operation: 'cancel', method: 'DELETE', path, safety: REPEATABLE, empty: true }, options);
  }

  /**
   * `POST /v1/sessions/refresh`: the next session; the token given is spent. Retried only while
   * a retry still falls inside the server's reuse grace, so a lost answer never revokes the chain.
   */
  async refresh(refreshToken, options = {}) {
    const windowMs = count(options.refreshRetryWindowMs, 'refreshRetryWindowMs', this.refreshRetryWindowMs);
    const body = await call(
      this,
      {
        operation: 'refresh', method: 'POST', path: '/v1/sessions/refresh',
        body: { refresh_token: refreshToken }, safety: REPEATABLE, retryWindowMs: windowMs,
      },
      options,
    );
    if (typeof body.session !== 'object' || body.session === null) {
      throw unexpected(200, 'the refresh answer has no session');
    }
    return body.session;
  }

  /** `POST /v1/sessions/revoke` (sign out); an unknown or spent token is not an error. */
  async revoke(refreshToken, options = {}) {
    await call(
      this,
      {
        operation: 'revoke', method: 'POST', path: '/v1/sessions/revoke',
        body: { refresh_token: refreshToken }, safety: REPEATABLE, empty: true,
      },
      options,
    );
  }

  /** `GET /v1/me`: the signed-in user. */
  me(accessToken, options = {}) {
    return call(
      this,
      { operation: 'me', method: 'GET', path: '/v1/me', bearer: accessToken, safety: REPEATABLE },
      options,
    );
  }

  /** `DELETE /v1/me`: erases the signed-in user, their sessions and verifications. */
  async deleteMe(accessToken, options = {}) {
    await call(
      this,
      { operation: 'deleteMe', method: 'DELETE', path: '/v1/me', bearer: accessToken, safety: ONCE, empty: true },
      options,
    );
  }
}

// One logical call: attempts and retries, within `retries`, the deadline and the signal.
// (Module functions rather than private methods: not every React Native engine has those.)
async function call(client, req, options) {
  const retries = count(options.retries, 'retries', client.retries);
  const deadlineMs = count(options.deadlineMs, 'deadlineMs', client.deadlineMs);
  const onRetry = options.onRetry !== undefined ? options.onRetry : client.onRetry;
  const signal = options.signal;
  const started = Date.now();
  const deadline = started + deadlineMs;
  for (let retry = 0; ; retry++) {
    if (signal && signal.aborted) throw abortReason(signal);
    let error;
    try {
      return await request(client, req, deadline, signal);
    } catch (e) {
      if (signal && signal.aborted) throw abortReason(signal);
      if (!(e instanceof OtpgateError)) throw e;
      error = e;
    }
    if (retry >= retries || !retryable(error, req.safety)) throw error;
    const backoff = jitter(Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** retry));
    const delayMs = Math.max(backoff, error.retryAfter != null ? error.retryAfter * 1000 : 0);
    const retryAt = Date.now() + delayMs;
    // A wait that would end past the deadline (a long Retry-After) ends the call now.
    if (retryAt >= deadline) throw error;
    if (req.retryWindowMs != null && retryAt - started > req.retryWindowMs) throw error;
    if (typeof onRetry === 'function') onRetry({ operation: req.operation, retry: retry + 1, delayMs, error });
    await sleep(delayMs, signal);
  }
}

// One HTTP request, aborted by the caller's signal or at the deadline.
async function request(client, req, deadline, signal) {
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw timeoutError();
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal) signal.addEventListener('abort', onAbort);
  let timedOut = false;
  // setTimeout takes at most 2^31-1 ms (a longer delay fires at once): a longer deadline needs no timer.
  const timer = remaining <= MAX_TIMER_MS
    ? setTimeout(() => { timedOut = true; controller.abort(); }, remaining)
    : undefined;
  const headers = { Accept: 'application/json' };
  if (req.body !== undefined) headers['Content-Type'] = 'application/json';
  if (req.idempotencyKey !== undefined) headers['Idempotency-Key'] = req.idempotencyKey;
  if (req.bearer !== undefined) headers.Authorization = 'Bearer ' + req.bearer;
  const fetchFn = client.fetch || globalThis.fetch;
  try {
    let response;
    let text;
    try {
      response = await fetchFn(client.baseUrl + req.path, {
        method: req.method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal: controller.signal,
        // No `credentials` or `cache`: otpgate uses no cookies and its answers are not cached, and
        // some fetch implementations (edge runtimes, polyfills) refuse or rewrite those options.
      });
      text = await response.text();
    } catch (e) {
      if (signal && signal.aborted) throw abortReason(signal);
      if (timedOut) throw timeoutError(e);
      throw new OtpgateError({
        code: 'network_error', status: 0, cause: e,
        message: 'Cannot reach the server. Check your connection and try again.',
      });
    }
    return answer(response, text, req);
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

/** A fresh `Idempotency-Key`: 122 random bits (a v4 UUID). */
export function newIdempotencyKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(b);
  } else {
    // No Web Crypto (React Native without a polyfill such as react-native-get-random-values):
    // still unique, but guessable by someone who can observe the generator; see README.md.
    for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
}

function retryable(error, safety) {
  if (error.code === 'rate_limited' || (error.status === 429 && error.code === 'unexpected_response')) return true;
  if (safety !== REPEATABLE) return false;
  if (error.code === 'network_error') return true;
  if (error.code === 'provider_unavailable' || error.code === 'service_unavailable') return true;
  // A gateway in front of otpgate that could not reach it.
  return error.code === 'unexpected_response' && error.status >= 502 && error.status <= 504;
}

function answer(response, text, req) {
  let body = null;
  let parsed = false;
  if (text) {
    try { body = JSON.parse(text); parsed = true; } catch (_) { /* not JSON: decided below */ }
  }
  if (response.ok) {
    if (req.empty) return undefined;
    if (!parsed || body === null || typeof body !== 'object') {
      throw unexpected(response.status, 'the answer is not JSON');
    }
    return body;
  }
  const e = parsed && body && typeof body === 'object' ? body.error : null;
  const retryAfter = e && typeof e.retry_after === 'number' ? e.retry_after : retryAfterHeader(response.headers);
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string') {
    const error = unexpected(response.status, 'an answer that is not otpgate\'s error envelope');
    error.retryAfter = retryAfter;
    throw error;
  }
  throw new OtpgateError({
    code: e.code,
    status: response.status,
    message: e.message,
    retryAfter,
    attemptsLeft: typeof e.attempts_left === 'number' ? e.attempts_left : undefined,
    field: typeof e.field === 'string' ? e.field : undefined,
    requestId: typeof e.request_id === 'string' ? e.request_id : headerOf(response.headers, 'x-request-id'),
  });
}

function unexpected(status, what) {
  return new OtpgateError({
    code: 'unexpected_response', status, message: 'Something went wrong. Please try again.',
    cause: new Error(what + ' (HTTP ' + status + ')'),
  });
}

function timeoutError(cause) {
  return new OtpgateError({
    code: 'timeout', status: 0, message: 'The server took too long to answer. Please try again.', cause,
  });
}

function headerOf(headers, name) {
  const v = headers && typeof headers.get === 'function' ? headers.get(name) : null;
  return v == null ? undefined : v;
}

// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as whole seconds.
function retryAfterHeader(headers) {
  const raw = headerOf(headers, 'retry-after');
  if (raw === undefined) return undefined;
  const value = raw.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function count(value, name, fallback) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new TypeError(name + ' must be a number >= 0');
  }
  return value;
}

// Uniformly between half of `ms` and all of it, so clients that failed together retry apart.
function jitter(ms) {
  return Math.round(ms * (0.5 + Math.random() * 0.5));
}

function abortReason(signal) {
  if (signal.reason !== undefined) return signal.reason;
  if (typeof DOMException === 'function') return new DOMException('The operation was aborted.', 'AbortError');
  const e = new Error('The operation was aborted.');
  e.name = 'AbortError';
  return e;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) { reject(abortReason(signal)); return; }
    const onAbort = () => { clearTimeout(timer); reject(abortReason(signal)); };
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
  });
}
