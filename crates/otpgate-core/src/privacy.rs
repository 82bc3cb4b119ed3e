//! Data minimisation, retention and the subject's rights (export, erasure), as the domain sees
//! them. The stores implement the `purge` / `export_*` / `delete_*` methods of their traits; this
//! module holds the shapes those methods answer and the one rule that keeps phone numbers out of
//! the limit store: per-phone limit keys carry a keyed HMAC of the number, never the number.
//!
//! Where a full number persists: the user row (as long as the account exists) and, for at most
//! the retention window after it ends, the verification row. Nothing else holds it.

use crate::{CodeHasher, PhoneNumber, Timestamp};

/// Domain separation for limit-key digests (a digest of a code or refresh token never collides
/// with one of a phone number).
const LIMIT_KEY_TAG: &[u8] = b"otpgate-limit-key-v1";

/// The key of a limit on a personal value (a phone number, a number prefix, an IP address):
/// `{prefix}:` and a keyed HMAC of the value (hex, 128 bits). Stable for one HMAC key, so the
/// limit works; meaningless without it, so a dump of the limit store holds no number or address.
pub fn limit_key(hasher: &CodeHasher, prefix: &str, value: &[u8]) -> String {
    let digest = hasher.digest_parts(&[LIMIT_KEY_TAG, prefix.as_bytes(), value]);
    let mut key = String::with_capacity(prefix.len() + 33);
    key.push_str(prefix);
    key.push(':');
    for b in &digest.as_bytes()[..16] {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The key of a per-phone limit (see `limit_key`).
pub fn phone_limit_key(hasher: &CodeHasher, prefix: &str, phone: &PhoneNumber) -> String {
    limit_key(hasher, prefix, phone.e164().as_bytes())
}

/// The per-phone send limit's key.
pub fn phone_send_key(hasher: &CodeHasher, phone: &PhoneNumber) -> String {
    phone_limit_key(hasher, "send:phone", phone)
}

/// The key of a phone's resend cooldown (a shared value, see `resend`).
pub fn phone_resend_key(hasher: &CodeHasher, phone: &PhoneNumber) -> String {
    phone_limit_key(hasher, RESEND_PREFIX, phone)
}

const RESEND_PREFIX: &str = "send:phone:resend";

/// Key prefixes of every per-phone limit (the resend cooldown included).
pub const PHONE_LIMIT_PREFIXES: [&str; 5] =
    ["send:phone", "send:phone:hourly", "send:phone:daily", "check:phone", RESEND_PREFIX];

/// Every limit key that belongs to one phone number (for export and erasure).
pub fn phone_limit_keys(hasher: &CodeHasher, phone: &PhoneNumber) -> Vec<String> {
    PHONE_LIMIT_PREFIXES.iter().map(|prefix| phone_limit_key(hasher, prefix, phone)).collect()
}

/// What one retention sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Verifications that ended (or expired while pending) before the retention cut-off.
    pub verifications: u64,
    /// Limit rows that were spent (their bucket is full again, so the row says nothing).
    pub limits: u64,
    /// Idempotency entries past their expiry.
    pub idempotency: u64,
    /// Refresh tokens past their expiry.
    pub refresh_tokens: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.verifications + self.limits + self.idempotency + self.refresh_tokens
    }

    pub fn add(&mut self, other: PurgeCounts) {
        self.verifications += other.verifications;
        self.limits += other.limits;
        self.idempotency += other.idempotency;
        self.refresh_tokens += other.refresh_tokens;
    }
}

/// A verification as exported to its subject: status and times, never the code digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRecord {
    pub id: String,
    pub channel: String,
    pub status: String,
    pub attempts: u32,
    pub sends: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The SMS provider's reference of the last message, when there is one.
    pub provider_ref: Option<String>,
}

/// A limit counter that exists for a number (its key is an HMAC, see `phone_limit_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRecord {
    pub key: String,
    /// GCRA theoretical arrival time: the limit is fully refilled at this moment (for the resend
    /// cooldown: the moment its send count is forgotten).
    pub refilled_at: Timestamp,
}

/// What the hot store holds about a number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotRecords {
    pub verifications: Vec<VerificationRecord>,
    pub limits: Vec<LimitRecord>,
}

/// What one hot-store erasure deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotDeleted {
    pub verifications: u64,
    pub limits: u64,
}

/// A refresh token's metadata: never its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub family: String,
    pub channel: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// What the durable store holds about a number: the user and their refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecords {
    pub id: String,
    pub phone: String,
    pub created_at: Timestamp,
    pub refresh_tokens: Vec<RefreshTokenRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_keys_hold_no_number_and_are_stable() {
        let hasher = CodeHasher::new(&[7u8; 32]).unwrap();
        let phone = PhoneNumber::parse("+14155550100", None).unwrap();
        let key = phone_send_key(&hasher, &phone);
        assert!(key.starts_with("send:phone:"), "{key}");
        assert!(!key.contains("4155550100"), "{key}");
        assert_eq!(key.len(), "send:phone:".len() + 32);
        assert_eq!(key, phone_send_key(&hasher, &phone));
        let other = PhoneNumber::parse("+14155550101", None).unwrap();
        assert_ne!(key, phone_send_key(&hasher, &other));
        let other_key = CodeHasher::new(&[8u8; 32]).unwrap();
        assert_ne!(key, phone_send_key(&other_key, &phone));
    }
}
