//! `Idempotency-Key` on `POST /v1/verifications`, at the HTTP edge. The rules (scope, what is
//! kept, for how long) are in `otpgate_core::idempotency`; this module reads the header, reserves
//! the key before anything is sent, replays a finished answer, and stores or releases the
//! reservation afterwards.
//!
//! Semantics (documented in `docs/idempotency.md`):
//! - no header: the request is not idempotent (as before);
//! - a header that is not 1–255 printable ASCII characters: `400 invalid_request`;
//! - same key, same request (normalised phone, channel, locale), within 24 h of the first answer:
//!   the first answer (status, body, `Content-Type`) with `Idempotent-Replayed: true`, and no send;
//! - same key, another request: `400 invalid_request` (the key is not reused for it);
//! - same key while the first request is still running: waits up to a few seconds for it, then
//!   answers its result, or `429 rate_limited` with a short `retry_after` if it is still running;
//! - only successful answers (a message went out) are kept; an error releases the key, so the
//!   retry of a `503 provider_unavailable` or a `429` is evaluated (and may send) afresh.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use otpgate_api::ErrorCode;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, REPLAY_TTL, Reservation, StoredResponse,
};
use otpgate_core::{Clock, StoreError};

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a replay of an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The endpoint the keys belong to (part of the stored key's hash).
pub const SEND_SCOPE: &str = "POST /v1/verifications";

/// Response headers worth replaying; the rest (request id, cache policy) belong to each request.
const REPLAYED_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];
/// How long a duplicate waits for the first request before answering `rate_limited`.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);
/// Largest answer kept (a verification is a few hundred bytes).
const MAX_STORED_BODY: usize = 64 * 1024;

/// The idempotency machinery the handlers use. Cheap to clone.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
    /// How long a reservation holds its key: longer than any request can run (the deadline),
    /// so a live first request is never taken over.
    lease: Duration,
}

/// A held key; hand it back with [`Idempotency::finish`].
pub struct Held {
    key: IdempotencyKey,
    token: LeaseToken,
}

pub enum Begin {
    /// Go ahead (with the key held, if the request had one).
    Proceed(Option<Held>),
    /// The answer of the first request with this key.
    Replay(Response),
}

impl Idempotency {
    pub fn new(store: Arc<dyn IdempotencyStore>, clock: Arc<dyn Clock>, request_timeout: Duration) -> Self {
        Idempotency { store, clock, lease: request_timeout + Duration::from_secs(5) }
    }

    /// Reads the key from `headers` and reserves it for the request `fingerprint` describes.
    /// `fingerprint` is computed only for a request that carries a key (it hashes the body's
    /// fields: work a request without one does not need).
    pub async fn begin(
        &self,
        headers: &HeaderMap,
        scope: &str,
        fingerprint: impl FnOnce() -> Fingerprint,
    ) -> Result<Begin, ApiError> {
        let Some(raw) = headers.get(HEADER) else { return Ok(Begin::Proceed(None)) };
        if headers.get_all(HEADER).iter().count() > 1 {
            return Err(ApiError::invalid_request("Send the Idempotency-Key header only once."));
        }
        let key = IdempotencyKey::new(scope, raw.as_bytes()).ok_or_else(|| {
            ApiError::invalid_request("The Idempotency-Key header must be 1 to 255 printable ASCII characters.")
        })?;
        let fingerprint = fingerprint();
        let token = LeaseToken::random();
        let started = tokio::time::Instant::now();
        loop {
            let now = self.clock.now();
            match self.store.reserve(&key, &fingerprint, &token, now, self.lease, REPLAY_TTL).await.map_err(store)? {
                Reservation::Reserved => return Ok(Begin::Proceed(Some(Held { key, token }))),
                Reservation::Completed(stored) => return Ok(Begin::Replay(replay(stored))),
                Reservation::Mismatch => {
                    return Err(ApiError::invalid_request(
                        "This Idempotency-Key was already used for a different request. Use a new key for a new request.",
                    ));
                }
                Reservation::InFlight { retry_after } => {
                    if started.elapsed() >= WAIT_FOR_FIRST {
                        let mut e = ApiError::new(
                            ErrorCode::RateLimited,
                            "The same request is still being processed. Try again in a moment.",
                        );
                        e.retry_after = Some(retry_after.clamp(Duration::from_secs(1), Duration::from_secs(2)));
                        return Err(e);
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Keeps a successful answer for replay, or releases the key after an error (nothing was
    /// sent). A store failure here is logged, not answered: the request itself is done.
    pub async fn finish(&self, held: Option<Held>, result: Result<Response, ApiError>) -> Result<Response, ApiError> {
        let Some(Held { key, token }) = held else { return result };
        let response = match result {
            Ok(response) if response.status().is_success() => response,
            other => {
                if let Err(e) = self.store.release(&key, &token).await {
                    tracing::error!(cause = %e, "cannot release an idempotency key");
                }
                return other;
            }
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_STORED_BODY).await.map_err(|e| {
            tracing::error!(cause = %e, "cannot buffer an idempotent response");
            ApiError::internal()
        })?;
        let headers = REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let stored = StoredResponse { status: parts.status.as_u16(), headers, body: bytes.to_vec() };
        if let Err(e) = self.store.complete(&key, &token, &stored, self.clock.now(), REPLAY_TTL).await {
            tracing::error!(cause = %e, "cannot store an idempotent response");
        }
        Ok(Response::from_parts(parts, Body::from(bytes)))
    }
}

fn store(e: StoreError) -> ApiError {
    ApiError::from(otpgate_core::OtpError::from(e))
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}
