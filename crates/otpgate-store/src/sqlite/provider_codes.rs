//! Verifications whose code the provider holds (Twilio Verify), in SQLite: attempts counted
//! here, the verdict recorded.

use async_trait::async_trait;
use otpgate_core::{AttemptOutcome, ProviderHeldCodes, StoreError, Timestamp, VerificationId, VerificationStatus};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, classify, execute, query_verification};
use crate::rows::verification_columns;

#[async_trait]
impl ProviderHeldCodes for SqliteStore {
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        let (id, provider_ref) = (id.clone(), provider_ref.to_owned());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE verifications SET provider_ref = ?, code_digest = NULL WHERE id = ?",
                    params![provider_ref, id.as_str()],
                )
                .map(drop)
            })
            .await
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                // The WHERE clause is the whole decision, so no caller can count past the maximum.
                let counted = query_verification(
                    conn,
                    concat!(
                        "UPDATE verifications SET attempts = attempts + 1 \
                         WHERE id = ? AND status = 'pending' AND expires_at > ? AND attempts < max_attempts \
                         RETURNING ",
                        verification_columns!()
                    ),
                    params![id.as_str(), now.0],
                )?;
                if let Some(v) = counted {
                    return Ok(AttemptOutcome::Counted(v));
                }
                let state: Option<(String, i64)> = conn
                    .prepare_cached("SELECT status, expires_at FROM verifications WHERE id = ?")
                    .and_then(|mut s| {
                        s.query_row(params![id.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
                    })
                    .map_err(classify)?;
                Ok(match state {
                    Some((status, expires_at)) if (status == "pending" || status == "dead") && now.0 < expires_at => {
                        AttemptOutcome::Exhausted
                    }
                    _ => AttemptOutcome::NotFound,
                })
            })
            .await
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                let changed = execute(
                    conn,
                    "UPDATE verifications SET status = 'approved', ended_at = ? WHERE id = ? AND status = 'pending'",
                    params![now.0, id.as_str()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE verifications SET status = ?, ended_at = ? WHERE id = ? AND status = 'pending'",
                    params![status.as_str(), now.0, id.as_str()],
                )
                .map(drop)
            })
            .await
    }
}
