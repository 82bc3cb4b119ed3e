//! The verification row as the SQL backends store it (SQLite and Postgres share the schema's
//! columns): each backend reads the raw columns out of its own row type, and the checks that turn
//! them into a domain `Verification` live here once.

use std::str::FromStr;

use otpgate_core::{Channel, CodeDigest, StoreError, Timestamp, Verification, VerificationId, VerificationStatus};

/// The columns as a literal, for SQL built with `concat!` at compile time (no formatting per call).
macro_rules! verification_columns {
    () => {
        "id, phone, channel, status, code_digest, provider_ref, attempts, max_attempts, sends, created_at, \
         expires_at, next_resend_at"
    };
}
#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use verification_columns;

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const VERIFICATION_COLUMNS: &str = verification_columns!();

/// The columns of `VERIFICATION_COLUMNS`, as read; counts widened to `i64` whatever the backend's
/// integer type.
pub(crate) struct VerificationRow {
    pub id: String,
    pub phone: String,
    pub channel: String,
    pub status: String,
    pub code_digest: Option<Vec<u8>>,
    pub provider_ref: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub sends: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub next_resend_at: i64,
}

impl VerificationRow {
    /// Validates every column; a value we never write is a corrupt row, not a guess.
    pub fn into_verification(self) -> Result<Verification, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("corrupt verification row: {what}"));
        let count = |v: i64, name: &str| u32::try_from(v).map_err(|_| corrupt(name));
        let code_digest = match self.code_digest {
            Some(bytes) => Some(CodeDigest::from_slice(&bytes).ok_or_else(|| corrupt("code_digest"))?),
            None => None,
        };
        Ok(Verification {
            id: VerificationId::parse(&self.id).ok_or_else(|| corrupt("id"))?,
            phone: self.phone,
            channel: Channel::from_str(&self.channel).map_err(|_| corrupt("channel"))?,
            status: VerificationStatus::from_str(&self.status).map_err(|_| corrupt("status"))?,
            code_digest,
            provider_ref: self.provider_ref,
            attempts: count(self.attempts, "attempts")?,
            max_attempts: count(self.max_attempts, "max_attempts")?,
            sends: count(self.sends, "sends")?,
            created_at: Timestamp(self.created_at),
            expires_at: Timestamp(self.expires_at),
            next_resend_at: Timestamp(self.next_resend_at),
        })
    }
}

/// A digest as the column stores it.
pub(crate) fn digest_bytes(d: &Option<CodeDigest>) -> Option<Vec<u8>> {
    d.as_ref().map(|d| d.as_bytes().to_vec())
}
