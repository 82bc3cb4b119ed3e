//! Retention, export and erasure in PostgreSQL. Every retention DELETE takes one batch of rows
//! with `FOR UPDATE SKIP LOCKED` and runs until a batch comes back short: each statement is short
//! and atomic, rows a request holds are left for the next sweep, and several instances sweeping
//! at once take disjoint batches — a row is deleted (and counted) exactly once.

use async_trait::async_trait;
use otpgate_core::privacy::{
    HotDeleted, HotRecords, LimitRecord, PurgeCounts, RefreshTokenRecord, UserRecords, VerificationRecord,
};
use otpgate_core::session::UserId;
use otpgate_core::{PhoneNumber, Retention, StoreError, Timestamp};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, classify};

/// Rows per DELETE: short locks, so sweeping never stalls requests for long.
const BATCH: i64 = 500;

fn count(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn at(row: &PgRow, name: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(name).map_err(classify)?.map(Timestamp))
}

impl PgStore {
    /// Runs a batched DELETE (parameters: the cut-off and the batch size) until it deletes less
    /// than a batch, each batch within the store's timeout.
    async fn delete_in_batches(&self, sql: &'static str, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = self
                .timed(async { sqlx::query(sql).bind(cutoff).bind(BATCH).execute(&self.pool).await.map_err(classify) })
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    pub(super) async fn purge_impl(&self, before: Timestamp, now: Timestamp) -> Result<PurgeCounts, StoreError> {
        let verifications = self
            .delete_in_batches(
                "DELETE FROM verifications WHERE seq IN (SELECT seq FROM verifications \
                 WHERE ended_at < $1 OR (status = 'pending' AND expires_at < $1) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                before.0,
            )
            .await?;
        // A spent GCRA row (arrival time past) means the same as no row.
        let limits = self
            .delete_in_batches(
                "DELETE FROM rate_limits WHERE key IN \
                 (SELECT key FROM rate_limits WHERE tat <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                now.0,
            )
            .await?;
        // Shared values past their expiry (a phone's resend cooldown: counted with the limits).
        let limits = limits
            + self
                .delete_in_batches(
                    "DELETE FROM shared_values WHERE key IN \
                     (SELECT key FROM shared_values WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    now.0,
                )
                .await?;
        // Tripwire buckets past their window (not counted: they hold no personal data).
        self.delete_in_batches(
            "DELETE FROM counters WHERE (key, bucket) IN \
             (SELECT key, bucket FROM counters WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            now.0,
        )
        .await?;
        let idempotency = self
            .delete_in_batches(
                "DELETE FROM idempotency_keys WHERE key_hash IN \
                 (SELECT key_hash FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                now.0,
            )
            .await?;
        Ok(PurgeCounts { verifications, limits, idempotency, refresh_tokens: 0 })
    }

    pub(super) async fn purge_refresh_tokens_impl(&self, now: Timestamp) -> Result<u64, StoreError> {
        // Sealed successors past their reuse grace (a batched UPDATE works like the DELETEs).
        self.delete_in_batches(
            "UPDATE refresh_tokens SET sealed_successor = NULL, grace_until = NULL WHERE digest IN \
             (SELECT digest FROM refresh_tokens WHERE grace_until <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            now.0,
        )
        .await?;
        self.delete_in_batches(
            "DELETE FROM refresh_tokens WHERE digest IN \
             (SELECT digest FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            now.0,
        )
        .await
    }

    pub(super) async fn export_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotRecords, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, status, attempts, sends, created_at, expires_at, ended_at, provider_ref \
             FROM verifications WHERE phone = $1 ORDER BY seq",
        )
        .bind(phone.e164())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut verifications = Vec::with_capacity(rows.len());
        for row in &rows {
            verifications.push(VerificationRecord {
                id: row.try_get("id").map_err(classify)?,
                channel: row.try_get("channel").map_err(classify)?,
                status: row.try_get("status").map_err(classify)?,
                attempts: count(row.try_get("attempts").map_err(classify)?),
                sends: count(row.try_get("sends").map_err(classify)?),
                created_at: Timestamp(row.try_get("created_at").map_err(classify)?),
                expires_at: Timestamp(row.try_get("expires_at").map_err(classify)?),
                ended_at: at(row, "ended_at")?,
                provider_ref: row.try_get("provider_ref").map_err(classify)?,
            });
        }
        // GCRA rows, and shared values under the same keys (a phone's resend cooldown).
        let rows = sqlx::query(
            "SELECT key, tat FROM rate_limits WHERE key = ANY($1) UNION ALL \
             SELECT key, expires_at AS tat FROM shared_values WHERE key = ANY($1) AND expires_at IS NOT NULL",
        )
        .bind(limit_keys)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut held = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("key").map_err(classify)?;
            held.insert(key, Timestamp(row.try_get("tat").map_err(classify)?));
        }
        // In the caller's order.
        let limits = limit_keys
            .iter()
            .filter_map(|key| Some(LimitRecord { key: key.clone(), refilled_at: *held.get(key)? }))
            .collect();
        Ok(HotRecords { verifications, limits })
    }

    pub(super) async fn delete_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotDeleted, StoreError> {
        let mut tx = self.begin().await?;
        let verifications = sqlx::query("DELETE FROM verifications WHERE phone = $1")
            .bind(phone.e164())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        let mut limits = 0;
        for sql in ["DELETE FROM rate_limits WHERE key = ANY($1)", "DELETE FROM shared_values WHERE key = ANY($1)"] {
            limits += sqlx::query(sql).bind(limit_keys).execute(&mut *tx).await.map_err(classify)?.rows_affected();
        }
        tx.commit().await.map_err(classify)?;
        Ok(HotDeleted { verifications, limits })
    }

    pub(super) async fn export_user_impl(&self, phone: &PhoneNumber) -> Result<Option<UserRecords>, StoreError> {
        let Some(user) = sqlx::query("SELECT id, created_at FROM users WHERE phone = $1")
            .bind(phone.e164())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let id: String = user.try_get("id").map_err(classify)?;
        let rows = sqlx::query(
            "SELECT family, channel, issued_at, expires_at, used_at, revoked_at FROM refresh_tokens \
             WHERE user_id = $1 ORDER BY issued_at, digest",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut refresh_tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            refresh_tokens.push(RefreshTokenRecord {
                family: row.try_get("family").map_err(classify)?,
                channel: row.try_get("channel").map_err(classify)?,
                issued_at: Timestamp(row.try_get("issued_at").map_err(classify)?),
                expires_at: Timestamp(row.try_get("expires_at").map_err(classify)?),
                used_at: at(row, "used_at")?,
                revoked_at: at(row, "revoked_at")?,
            });
        }
        Ok(Some(UserRecords {
            id,
            phone: phone.e164().to_owned(),
            created_at: Timestamp(user.try_get("created_at").map_err(classify)?),
            refresh_tokens,
        }))
    }

    pub(super) async fn user_id_by_phone(&self, phone: &PhoneNumber) -> Result<Option<UserId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
            .bind(phone.e164())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(id.as_deref().and_then(UserId::parse))
    }
}

#[async_trait]
impl Retention for PgStore {
    /// Batched and safe with several instances sweeping at once (see `privacy`).
    async fn purge(&self, before: Timestamp, now: Timestamp) -> Result<PurgeCounts, StoreError> {
        self.purge_impl(before, now).await
    }

    async fn export_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        self.timed(self.export_phone_impl(phone, limit_keys)).await
    }

    async fn delete_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        self.timed(self.delete_phone_impl(phone, limit_keys)).await
    }
}
