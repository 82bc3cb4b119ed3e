//! Verifications whose code the provider holds (Twilio Verify), in Redis: attempts counted by
//! `update_by_id.lua`, the verdict recorded.

use async_trait::async_trait;
use otpgate_core::{AttemptOutcome, ProviderHeldCodes, StoreError, Timestamp, VerificationId, VerificationStatus};

use super::{RedisStore, verification_from};

#[async_trait]
impl ProviderHeldCodes for RedisStore {
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.by_id(id, "remote", &[provider_ref]).await.map(drop)
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        let (result, record, e164) = self.by_id(id, "count", &[&now.0.to_string()]).await?;
        match result.as_str() {
            "counted" => Ok(AttemptOutcome::Counted(verification_from(&record, &e164)?)),
            "exhausted" => Ok(AttemptOutcome::Exhausted),
            _ => Ok(AttemptOutcome::NotFound),
        }
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.by_id(id, "approve", &[&now.0.to_string()]).await?.0 == "1")
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        self.by_id(id, "finish", &[&now.0.to_string(), status.as_str()]).await.map(drop)
    }
}
