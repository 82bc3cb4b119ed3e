//! Verifications whose code the provider holds (Twilio Verify), in PostgreSQL: attempts counted
//! here, the verdict recorded.

use async_trait::async_trait;
use otpgate_core::{AttemptOutcome, ProviderHeldCodes, StoreError, Timestamp, VerificationId, VerificationStatus};
use sqlx::AssertSqlSafe;

use super::{PgStore, classify, verification_from_row};
use crate::rows::VERIFICATION_COLUMNS;

#[async_trait]
impl ProviderHeldCodes for PgStore {
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET provider_ref = $1, code_digest = NULL WHERE id = $2")
                .bind(provider_ref)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        self.timed(async {
            // One statement: the WHERE clause is the whole decision (a concurrent update makes
            // Postgres re-check it on the new row), so callers never count past the maximum.
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE verifications SET attempts = attempts + 1 \
                 WHERE id = $1 AND status = 'pending' AND expires_at > $2 AND attempts < max_attempts \
                 RETURNING {VERIFICATION_COLUMNS}"
            )))
            .bind(id.as_str())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
            if let Some(row) = row {
                return Ok(AttemptOutcome::Counted(verification_from_row(&row)?));
            }
            let live: Option<bool> = sqlx::query_scalar(
                "SELECT status IN ('pending', 'dead') AND expires_at > $2 FROM verifications WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
            Ok(if live == Some(true) { AttemptOutcome::Exhausted } else { AttemptOutcome::NotFound })
        })
        .await
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        self.timed(async {
            let done = sqlx::query(
                "UPDATE verifications SET status = 'approved', ended_at = $1 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now.0)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET status = $1, ended_at = $2 WHERE id = $3 AND status = 'pending'")
                .bind(status.as_str())
                .bind(now.0)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }
}
