//! Instances that share a hot store must share the HMAC key: codes, refresh tokens and limit keys
//! are keyed HMACs, so two keys on one store silently disagree (a code sent through one instance
//! is "wrong" at the other, and every per-phone and per-IP limit is counted twice). At start an
//! instance records a fingerprint of its key in the hot store if none is there, and otherwise
//! compares: a different one means another key is in use, and the instance must not start.
//!
//! The fingerprint is an HMAC of a fixed label under the key, never the key: without the key it
//! says nothing about it. It is kept without an expiry, so a fleet that stops and a new one with
//! another key cannot start unnoticed; [`adopt`] replaces it on purpose (after changing the key,
//! with every instance stopped).

use crate::store::StoredValue;
use crate::{CodeHasher, RateLimiter, StoreError, Timestamp};

/// Where the fingerprint lives among the hot store's shared values.
pub const FINGERPRINT_KEY: &str = "hmac-key-fingerprint";

const LABEL: &[u8] = b"otpgate-hmac-key-fingerprint-v1";

/// The fingerprint of `hasher`'s key: 128 bits of an HMAC of a fixed label, in hex.
pub fn fingerprint(hasher: &CodeHasher) -> String {
    let digest = hasher.digest_parts(&[LABEL]);
    digest.as_bytes()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// No fingerprint was there: ours is recorded now.
    Recorded,
    /// The store was used with this key before.
    Matches,
    /// The store was used with another key (its fingerprint is given, for the message).
    Differs { recorded: String },
}

/// Records this key's fingerprint if the store has none, or compares it with the one there.
pub async fn check(limiter: &dyn RateLimiter, hasher: &CodeHasher, now: Timestamp) -> Result<KeyCheck, StoreError> {
    let ours = fingerprint(hasher);
    // Two rounds: the value could vanish between a failed set-if-absent and the read (`adopt`).
    for _ in 0..2 {
        let value = StoredValue { value: ours.clone(), expires_at: None };
        if limiter.swap_value(FINGERPRINT_KEY, None, Some(&value), now).await? {
            return Ok(KeyCheck::Recorded);
        }
        match limiter.load_value(FINGERPRINT_KEY, now).await? {
            Some(recorded) if recorded == ours => return Ok(KeyCheck::Matches),
            Some(recorded) => return Ok(KeyCheck::Differs { recorded }),
            None => continue,
        }
    }
    Err(StoreError::Unavailable("the HMAC key fingerprint keeps changing; retry".into()))
}

/// Records this key's fingerprint whatever was recorded before (an operator's deliberate change
/// of key). Answers the fingerprint it replaced, if any.
pub async fn adopt(
    limiter: &dyn RateLimiter,
    hasher: &CodeHasher,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    let ours = StoredValue { value: fingerprint(hasher), expires_at: None };
    for _ in 0..8 {
        let before = limiter.load_value(FINGERPRINT_KEY, now).await?;
        if limiter.swap_value(FINGERPRINT_KEY, before.as_deref(), Some(&ours), now).await? {
            return Ok(before.filter(|b| *b != ours.value));
        }
    }
    Err(StoreError::Unavailable("the HMAC key fingerprint keeps changing; retry".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ_per_key_and_do_not_hold_it() {
        let key = [7u8; 32];
        let a = fingerprint(&CodeHasher::new(&key).unwrap());
        assert_eq!(a, fingerprint(&CodeHasher::new(&key).unwrap()), "stable");
        assert_ne!(a, fingerprint(&CodeHasher::new(&[8u8; 32]).unwrap()));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("0707"), "{a}");
    }
}
