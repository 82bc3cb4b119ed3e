//! Verifications whose code otpgate holds, in PostgreSQL: a send or a check locks the phone's
//! row for its transaction.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::NewCode;
use otpgate_core::{
    Channel, CheckOutcome, CodeDigest, IssueOutcome, Issued, PhoneNumber, Policy, StoreError, Timestamp, Verification,
    VerificationId, VerificationStatus, Verifications,
};
use sqlx::AssertSqlSafe;

use super::{PgStore, classify, int, verification_from_row};
use crate::rows::{VERIFICATION_COLUMNS, digest_bytes};

impl PgStore {
    async fn issue_tx(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let phone = new.phone.e164();
        // A pending row past its expiry is over: close it so the phone can have a new one.
        sqlx::query(
            "UPDATE verifications SET status = 'expired', ended_at = expires_at \
             WHERE phone = $1 AND status = 'pending' AND expires_at <= $2",
        )
        .bind(phone)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let select_live = format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE phone = $1 AND status = 'pending' FOR UPDATE"
        );
        let mut live = sqlx::query(AssertSqlSafe(select_live.clone()))
            .bind(phone)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;

        if live.is_none() {
            let v = new.clone().created(now, policy);
            // The partial unique index admits one pending row per phone: of concurrent creators
            // one inserts, the others wait for it to commit and then see its row below.
            let inserted = sqlx::query(
                "INSERT INTO verifications (id, phone, channel, status, code_digest, provider_ref, attempts, \
                 max_attempts, sends, created_at, expires_at, next_resend_at) \
                 VALUES ($1, $2, $3, 'pending', $4, NULL, 0, $5, 1, $6, $7, $8) \
                 ON CONFLICT (phone) WHERE status = 'pending' DO NOTHING",
            )
            .bind(v.id.as_str())
            .bind(&v.phone)
            .bind(v.channel.as_str())
            .bind(digest_bytes(&v.code_digest))
            .bind(int(v.max_attempts))
            .bind(v.created_at.0)
            .bind(v.expires_at.0)
            .bind(v.next_resend_at.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if inserted.rows_affected() == 1 {
                tx.commit().await.map_err(classify)?;
                return Ok(IssueOutcome::Created(v));
            }
            live =
                sqlx::query(AssertSqlSafe(select_live)).bind(phone).fetch_optional(&mut *tx).await.map_err(classify)?;
        }
        let Some(row) = live else {
            return Err(StoreError::Unavailable("a concurrent send for this phone changed it; retry".into()));
        };
        let previous = verification_from_row(&row)?;
        if now < previous.next_resend_at {
            return Ok(IssueOutcome::Cooldown { retry_after: now.until(previous.next_resend_at) });
        }
        let verification = new.resent(&previous, now, policy);
        sqlx::query(
            "UPDATE verifications SET code_digest = $1, channel = $2, provider_ref = NULL, sends = $3, \
             expires_at = $4, next_resend_at = $5 WHERE id = $6",
        )
        .bind(digest_bytes(&verification.code_digest))
        .bind(verification.channel.as_str())
        .bind(int(verification.sends))
        .bind(verification.expires_at.0)
        .bind(verification.next_resend_at.0)
        .bind(previous.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(IssueOutcome::Resent { verification, previous })
    }

    async fn check_tx(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        let mut tx = self.begin().await?;
        // FOR UPDATE makes concurrent checks of one phone take turns; each sees the row as the one
        // before it left it (Read Committed re-reads a locked row), so attempts add up exactly.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications \
             WHERE phone = $1 AND status IN ('pending', 'dead') ORDER BY seq DESC LIMIT 1 FOR UPDATE"
        )))
        .bind(phone.e164())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(CheckOutcome::NotFound) };
        let v = verification_from_row(&row)?;
        if now >= v.expires_at {
            return Ok(CheckOutcome::NotFound);
        }
        if v.status == VerificationStatus::Dead || v.attempts >= v.max_attempts {
            return Ok(CheckOutcome::Exhausted);
        }
        let Some(stored) = v.code_digest else {
            // The provider holds this code: nothing to compare or count here.
            return Ok(CheckOutcome::Remote(v));
        };
        let outcome = if stored.ct_eq(candidate) {
            sqlx::query("UPDATE verifications SET status = 'approved', ended_at = $1 WHERE id = $2")
                .bind(now.0)
                .bind(v.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            CheckOutcome::Approved(Verification { status: VerificationStatus::Approved, ..v })
        } else {
            let attempts = v.attempts + 1;
            let dead = attempts >= v.max_attempts;
            sqlx::query(
                "UPDATE verifications SET attempts = $1, status = $2, \
                 ended_at = CASE WHEN $3 THEN $4::BIGINT END WHERE id = $5",
            )
            .bind(int(attempts))
            .bind(if dead { "dead" } else { "pending" })
            .bind(dead)
            .bind(now.0)
            .bind(v.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if dead { CheckOutcome::Killed } else { CheckOutcome::Wrong { attempts_left: v.max_attempts - attempts } }
        };
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }
}

#[async_trait]
impl Verifications for PgStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        self.timed(async {
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT next_resend_at FROM verifications WHERE phone = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(phone.e164())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
            Ok(next.map(Timestamp).filter(|next| *next > now).map(|next| now.until(next)))
        })
        .await
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        self.timed(self.issue_tx(new, now, policy)).await
    }

    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError> {
        // In steps (the swap decides races): the Postgres hot store serves "Postgres only"
        // deployments, where one transaction for both would need the value row locked first.
        otpgate_core::resend::issue_in_steps(self, claim, new, now, policy).await
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET provider_ref = $1 WHERE id = $2")
                .bind(provider_ref)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn set_channel(&self, id: &VerificationId, channel: Channel) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET channel = $1 WHERE id = $2")
                .bind(channel.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        // Both statements only touch the row if it still holds the code this send stored, so a
        // revert never undoes a later send or check.
        self.timed(async {
            match outcome {
                IssueOutcome::Created(v) => {
                    sqlx::query(
                        "DELETE FROM verifications WHERE id = $1 AND status = 'pending' \
                         AND code_digest IS NOT DISTINCT FROM $2",
                    )
                    .bind(v.id.as_str())
                    .bind(digest_bytes(&v.code_digest))
                    .execute(&self.pool)
                    .await
                    .map_err(classify)?;
                }
                IssueOutcome::Resent { verification, previous } => {
                    sqlx::query(
                        "UPDATE verifications SET code_digest = $1, channel = $2, provider_ref = $3, sends = $4, \
                         expires_at = $5, next_resend_at = $6 \
                         WHERE id = $7 AND status = 'pending' AND code_digest IS NOT DISTINCT FROM $8",
                    )
                    .bind(digest_bytes(&previous.code_digest))
                    .bind(previous.channel.as_str())
                    .bind(&previous.provider_ref)
                    .bind(int(previous.sends))
                    .bind(previous.expires_at.0)
                    .bind(previous.next_resend_at.0)
                    .bind(verification.id.as_str())
                    .bind(digest_bytes(&verification.code_digest))
                    .execute(&self.pool)
                    .await
                    .map_err(classify)?;
                }
                IssueOutcome::Cooldown { .. } => {}
            }
            Ok(())
        })
        .await
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        self.timed(self.check_tx(phone, candidate, now)).await
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        self.timed(async {
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE verifications SET status = 'canceled', ended_at = $1 WHERE id = $2 AND status = 'pending' \
                 RETURNING {VERIFICATION_COLUMNS}"
            )))
            .bind(now.0)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
            row.as_ref().map(verification_from_row).transpose()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(classify)?;
            Ok(())
        })
        .await
    }
}
