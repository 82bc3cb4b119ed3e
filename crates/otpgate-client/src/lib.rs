//! A typed async client for the otpgate HTTP API (the README's API table, `/openapi.json`),
//! over the wire types of `otpgate-api`.
//!
//! - Every call answers either the typed response or an [`Error`]; API errors carry the error
//!   table's fields ([`ApiError`]: `code`, `message`, `retry_after`, `attempts_left`, `field`,
//!   `request_id`).
//! - Transient failures are retried with exponential backoff and jitter, honouring `Retry-After`,
//!   within [`RetryPolicy`]'s bounds on attempts and total time: `provider_unavailable`,
//!   `service_unavailable` and connection failures for every call; other transport failures (a
//!   timeout, a connection lost mid-answer) only for calls that are safe to repeat.
//! - [`Client::send`] makes one random `Idempotency-Key` per logical send and reuses it for every
//!   retry, so a retry after a lost answer gets the first answer back and never texts twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), otpgate_client::Error> {
//! let client = otpgate_client::Client::new("http://127.0.0.1:8080")?;
//! let sent = client.send_to("+14155550100").await?;
//! println!("code sent, expires in {} s", sent.verification.expires_in);
//! let approved = client.check("+14155550100", "123456").await?;
//! # let _ = approved; Ok(()) }
//! ```

use std::time::Duration;

use otpgate_api::{
    CheckVerificationRequest, CheckVerificationResponse, ErrorBody, MeView, RefreshResponse, RefreshTokenRequest,
    SendVerificationRequest, SessionView, VerificationResponse,
};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

pub use otpgate_api as api;
pub use otpgate_api::ErrorCode;

/// The header that makes a send idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An error answer of the API, as in its error table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({}, HTTP {status}, request id {request_id})", code_name(*code))]
pub struct ApiError {
    pub status: u16,
    pub code: ErrorCode,
    /// Safe to show to an end user.
    pub message: String,
    /// From the body's `retry_after` or the `Retry-After` header.
    pub retry_after: Option<Duration>,
    pub attempts_left: Option<u32>,
    /// The request field that is wrong (`phone`, `code`, …).
    pub field: Option<String>,
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// otpgate answered with an error of its table.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No usable answer: the connection failed, timed out or broke.
    #[error("cannot reach otpgate: {0}")]
    Transport(#[source] reqwest::Error),
    /// An answer that is not otpgate's (a proxy's error page, a body of the wrong shape).
    #[error("unexpected answer from otpgate (HTTP {status}): {reason}")]
    UnexpectedResponse { status: u16, reason: String },
    #[error("invalid base URL `{0}`")]
    InvalidBaseUrl(String),
}

impl Error {
    /// The API error code, when otpgate answered one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api(e) => Some(e.code),
            _ => None,
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }
}

/// The snake_case name of a code, as on the wire (`rate_limited`).
pub fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| format!("{code:?}"))
}

/// How hard to try before giving up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1: no retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles per retry, up to `max_backoff`, with jitter (the wait is
    /// uniformly between half and all of it).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt; a `Retry-After` that would
    /// cross it ends the call with the error instead.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The wait before retry number `retry` (1-based), before jitter.
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A successful send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub verification: VerificationResponse,
    /// `201`: a new verification; `false` (`200`): a resend of the live one.
    pub created: bool,
    /// The answer is the replay of an earlier request with the same key.
    pub replayed: bool,
    /// The key this send used (reuse it with [`Client::send_with_key`] to retry it later).
    pub idempotency_key: String,
    /// HTTP attempts it took.
    pub attempts: u32,
}

/// Whether a request may run twice without harm, which decides what may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Safety {
    /// Reads, deletes, revocations and keyed sends: any transport failure is retried.
    Repeatable,
    /// Checks and refreshes could act twice (a refresh-token reuse revokes the session):
    /// retried only when the request surely did not run (no connection, or a 503 answer).
    Once,
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Option<Vec<u8>>,
    bearer: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    safety: Safety,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    attempts: u32,
}

#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Per-attempt deadline (default 15 s, above the server's own 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Use this `reqwest::Client` (its own timeouts apply) instead of building one.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = self.base.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|_| Error::InvalidBaseUrl(self.base.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::InvalidBaseUrl(self.base));
        }
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.connect_timeout)
                .user_agent(concat!("otpgate-client/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client { http, base, retry: self.retry })
    }
}

/// The client. Cheap to clone (connections are pooled and shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
}

impl Client {
    /// A client for the otpgate at `base_url` (`https://verify.example.com`) with default retries.
    pub fn new(base_url: &str) -> Result<Client, Error> {
        Client::builder(base_url).build()
    }

    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_owned(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            http: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /v1/verifications` with a fresh `Idempotency-Key`, reused by its retries. A
    /// bot-check token, when the server requires one, goes in `req.bot_token`.
    pub async fn send(&self, req: &SendVerificationRequest) -> Result<Sent, Error> {
        self.send_with_key(req, &new_idempotency_key()).await
    }

    /// [`Client::send`] for a phone, with the default channel and no locale.
    pub async fn send_to(&self, phone: &str) -> Result<Sent, Error> {
        self.send(&SendVerificationRequest { phone: phone.to_owned(), channel: None, locale: None, bot_token: None })
            .await
    }

    /// `POST /v1/verifications` with the caller's `Idempotency-Key` (1–255 printable ASCII),
    /// e.g. one kept across a restart of the caller. Within 24 h the same key and request never
    /// send twice.
    pub async fn send_with_key(&self, req: &SendVerificationRequest, key: &str) -> Result<Sent, Error> {
        let answer = self
            .execute(Call {
                method: Method::POST,
                path: "/v1/verifications",
                body: Some(json_body(req)?),
                bearer: None,
                idempotency_key: Some(key),
                safety: Safety::Repeatable,
            })
            .await?;
        Ok(Sent {
            verification: decode(&answer)?,
            created: answer.status == StatusCode::CREATED,
            replayed: answer.headers.get("idempotent-replayed").is_some_and(|v| v == "true"),
            idempotency_key: key.to_owned(),
            attempts: answer.attempts,
        })
    }

    /// `POST /v1/verifications/check`: the approval, with the user and session when sessions are on.
    pub async fn check(&self, phone: &str, code: &str) -> Result<CheckVerificationResponse, Error> {
        let body = CheckVerificationRequest { phone: phone.to_owned(), code: code.to_owned() };
        self.call_json(Method::POST, "/v1/verifications/check", Some(json_body(&body)?), None, Safety::Once).await
    }

    /// `DELETE /v1/verifications/{id}`; unknown ids are not an error.
    pub async fn cancel(&self, verification_id: &str) -> Result<(), Error> {
        let path = format!("/v1/verifications/{}", encode_path_segment(verification_id));
        self.call_empty(Method::DELETE, &path, None, None, Safety::Repeatable).await
    }

    /// `POST /v1/sessions/refresh`: the new session (the old refresh token is spent).
    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionView, Error> {
        let body = json_body(&RefreshTokenRequest { refresh_token: refresh_token.to_owned() })?;
        let r: RefreshResponse =
            self.call_json(Method::POST, "/v1/sessions/refresh", Some(body), None, Safety::Once).await?;
        Ok(r.session)
    }

    /// `POST /v1/sessions/revoke`.
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), Error> {
        let body = json_body(&RefreshTokenRequest { refresh_token: refresh_token.to_owned() })?;
        self.call_empty(Method::POST, "/v1/sessions/revoke", Some(body), None, Safety::Repeatable).await
    }

    /// `GET /v1/me`.
    pub async fn me(&self, access_token: &str) -> Result<MeView, Error> {
        self.call_json(Method::GET, "/v1/me", None, Some(access_token), Safety::Repeatable).await
    }

    /// `DELETE /v1/me`: erases the signed-in user.
    pub async fn delete_me(&self, access_token: &str) -> Result<(), Error> {
        self.call_empty(Method::DELETE, "/v1/me", None, Some(access_token), Safety::Repeatable).await
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        bearer: Option<&str>,
        safety: Safety,
    ) -> Result<T, Error> {
        let answer = self.execute(Call { method, path, body, bearer, idempotency_key: None, safety }).await?;
        decode(&answer)
    }

    async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        bearer: Option<&str>,
        safety: Safety,
    ) -> Result<(), Error> {
        self.execute(Call { method, path, body, bearer, idempotency_key: None, safety }).await.map(|_| ())
    }

    /// Runs a call with retries.
    async fn execute(&self, call: Call<'_>) -> Result<Answer, Error> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&call).await {
                Ok(mut answer) => {
                    answer.attempts = attempt;
                    return Ok(answer);
                }
                Err(e) => e,
            };
            if attempt >= self.retry.max_attempts || !retryable(&error, call.safety) {
                return Err(error);
            }
            let backoff = jitter(self.retry.backoff(attempt));
            let wait = backoff.max(error.retry_after().unwrap_or_default());
            if started.elapsed() + wait > self.retry.max_elapsed {
                return Err(error);
            }
            tracing::debug!(path = call.path, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, Error> {
        let mut req = self.http.request(call.method.clone(), format!("{}{}", self.base, call.path));
        if let Some(body) = &call.body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        if let Some(token) = call.bearer {
            req = req.bearer_auth(token);
        }
        if let Some(key) = call.idempotency_key {
            req = req.header(IDEMPOTENCY_KEY, key);
        }
        let response = req.send().await.map_err(Error::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(Error::Transport)?.to_vec();
        if status.is_success() {
            return Ok(Answer { status, headers, body, attempts: 0 });
        }
        Err(error_from(status, &headers, &body))
    }
}

fn retryable(error: &Error, safety: Safety) -> bool {
    match error {
        Error::Api(e) => matches!(e.code, ErrorCode::ProviderUnavailable | ErrorCode::ServiceUnavailable),
        Error::Transport(e) => e.is_connect() || safety == Safety::Repeatable,
        // A gateway in front of otpgate that could not reach it.
        Error::UnexpectedResponse { status, .. } => safety == Safety::Repeatable && matches!(status, 502..=504),
        Error::InvalidBaseUrl(_) => false,
    }
}

fn error_from(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let header_retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => Error::Api(ApiError {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            retry_after: error.retry_after.map(Duration::from_secs).or(header_retry_after),
            attempts_left: error.attempts_left,
            field: error.field,
            request_id: error.request_id,
        }),
        Err(_) => Error::UnexpectedResponse {
            status: status.as_u16(),
            reason: "the body is not otpgate's error envelope".into(),
        },
    }
}

fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| Error::UnexpectedResponse {
        status: answer.status.as_u16(),
        reason: format!("cannot decode the body: {e}"),
    })
}

fn json_body<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map_err(|e| Error::UnexpectedResponse { status: 0, reason: format!("cannot encode: {e}") })
}

/// Ids are `vf_` + base62, but a caller may pass anything: keep it one path segment.
fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    bytes
}

/// 128 random bits, hex: unguessable, so nobody else can hit this send's stored answer.
pub fn new_idempotency_key() -> String {
    let hex: String = random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect();
    format!("ik_{hex}")
}

/// Uniformly between half of `d` and `d`.
fn jitter(d: Duration) -> Duration {
    let unit = u64::from_le_bytes(random_bytes::<8>()) as f64 / u64::MAX as f64;
    d.mul_f64(0.5 + 0.5 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_millis(500));
        assert_eq!(p.backoff(3), Duration::from_secs(1));
        assert_eq!(p.backoff(40), Duration::from_secs(8));
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2), "{j:?}");
        }
    }

    #[test]
    fn keys_are_fresh_and_valid() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        assert!(a.bytes().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn error_bodies_are_typed() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let body = br#"{"error":{"code":"rate_limited","message":"Wait.","request_id":"r1"}}"#;
        let Error::Api(e) = error_from(StatusCode::TOO_MANY_REQUESTS, &headers, body) else { panic!() };
        assert_eq!(
            (e.code, e.retry_after, e.request_id.as_str()),
            (ErrorCode::RateLimited, Some(Duration::from_secs(7)), "r1")
        );
        assert_eq!(code_name(e.code), "rate_limited");
        assert!(matches!(
            error_from(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>"),
            Error::UnexpectedResponse { status: 502, .. }
        ));
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("not a url").is_err());
        assert_eq!(Client::new("http://127.0.0.1:8080/").unwrap().base_url(), "http://127.0.0.1:8080");
        assert_eq!(encode_path_segment("vf_1/../x"), "vf_1%2F..%2Fx");
    }
}
