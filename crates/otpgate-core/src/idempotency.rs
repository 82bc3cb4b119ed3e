//! Idempotent sends: the `Idempotency-Key` a client puts on `POST /v1/verifications` so that a
//! retry of a request whose answer was lost returns the first answer instead of texting again.
//!
//! This module owns the rules every backend follows; the stores only keep rows:
//! - An entry is addressed by [`IdempotencyKey`], a SHA-256 of the endpoint and the client's key,
//!   so the raw key is never stored. Keys are global (not per client IP: a phone that retries
//!   over another network must still hit its first answer).
//! - Each entry carries the [`Fingerprint`] of the normalised request (E.164 phone, channel,
//!   locale). Replaying an answer needs the key *and* the same request, so guessing a key reveals
//!   nothing that sending the same request would not; the same key with another request is refused.
//! - Only finished, successful answers are kept (a message went out). Errors release the key so
//!   the client's retry with the same key is evaluated afresh; nothing was sent for them.
//! - A key is reserved atomically before anything is sent; a reservation is a lease, so a request
//!   that died mid-flight does not block its key beyond the lease.
//! - Stored answers never contain the code (they are the public response body).

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{StoreError, Timestamp};

/// How long a finished answer is replayed.
pub const REPLAY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest `Idempotency-Key` accepted, in bytes (printable ASCII only).
pub const MAX_KEY_LEN: usize = 255;

/// The storage address of a client's key: SHA-256 over the scope and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey([u8; 32]);

impl IdempotencyKey {
    /// Validates a raw header value (1–255 printable ASCII characters) and derives its address
    /// within `scope` (the endpoint, e.g. `POST /v1/verifications`).
    pub fn new(scope: &str, raw: &[u8]) -> Option<IdempotencyKey> {
        let valid = (1..=MAX_KEY_LEN).contains(&raw.len()) && raw.iter().all(|b| (0x20..=0x7e).contains(b));
        valid.then(|| IdempotencyKey(tagged_hash("otpgate.idempotency-key.v1", &[scope.as_bytes(), raw])))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> IdempotencyKey {
        IdempotencyKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What makes two requests "the same": a hash of their normalised parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Hashes `parts` unambiguously (each is length-prefixed).
    pub fn of(parts: &[&[u8]]) -> Fingerprint {
        Fingerprint(tagged_hash("otpgate.idempotency-request.v1", parts))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((tag.len() as u64).to_be_bytes());
    h.update(tag.as_bytes());
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Identifies one reservation, so a request whose lease was taken over cannot finish or release
/// the new holder's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken([u8; 16]);

impl LeaseToken {
    pub fn random() -> LeaseToken {
        let mut bytes = [0u8; 16];
        crate::code::os_random(&mut bytes);
        LeaseToken(bytes)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> LeaseToken {
        LeaseToken(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// A finished answer, as it is replayed: status, the headers that describe the body, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Lower-case names; values are visible ASCII (no line breaks).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answer to [`IdempotencyStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is now held by this caller (new, expired, or its previous lease ran out). The
    /// caller must `complete` or `release` it.
    Reserved,
    /// The key finished with this answer, for the same request.
    Completed(StoredResponse),
    /// Another request holds the key and has not finished; its lease ends in `retry_after`.
    InFlight { retry_after: Duration },
    /// The key belongs to a different request.
    Mismatch,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically: drop expired entries (cheaply), then look the key up and either reserve it for
    /// `lease` (entry lives until `now + ttl`) or report what holds it.
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Reservation, StoreError>;

    /// Stores the answer of a reservation this token still holds; it is replayed until
    /// `now + ttl`. A lost reservation is not an error (nothing is stored).
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Gives a reservation up (the request failed and sent nothing): the next request with the
    /// key is evaluated afresh. Only the holder's token releases it.
    async fn release(&self, key: &IdempotencyKey, token: &LeaseToken) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated_and_scoped() {
        assert!(IdempotencyKey::new("a", b"").is_none());
        assert!(IdempotencyKey::new("a", &[b'k'; 256]).is_none());
        assert!(IdempotencyKey::new("a", "ключ".as_bytes()).is_none());
        assert!(IdempotencyKey::new("a", b"a\nb").is_none());
        let k = IdempotencyKey::new("a", &[b'k'; 255]).unwrap();
        assert_ne!(k, IdempotencyKey::new("b", &[b'k'; 255]).unwrap());
        assert_eq!(IdempotencyKey::new("a", b"x y"), IdempotencyKey::new("a", b"x y"));
    }

    #[test]
    fn fingerprints_are_unambiguous() {
        assert_ne!(Fingerprint::of(&[b"ab", b"c"]), Fingerprint::of(&[b"a", b"bc"]));
        assert_eq!(Fingerprint::of(&[b"a"]), Fingerprint::of(&[b"a"]));
    }
}
