//! Retention, export and erasure in SQLite.
//!
//! Deleting a row is not enough to make its bytes go away: SQLite leaves deleted cells in free
//! space, and in WAL mode the old page images stay in the `-wal` file until it is checkpointed
//! and restarted. So the store runs with `secure_delete` on (deleted content is overwritten with
//! zeros) and every purge or erasure that deleted something ends with a truncating checkpoint,
//! which empties the `-wal` file. A checkpoint that a long reader blocks is retried by the next
//! sweep.

use otpgate_core::privacy::{
    HotDeleted, HotRecords, LimitRecord, PurgeCounts, RefreshTokenRecord, UserRecords, VerificationRecord,
};
use otpgate_core::{PhoneNumber, StoreError, Timestamp};
use sqlx::Row;

use super::{SqliteStore, classify};

/// Rows per DELETE: short write locks, so sweeping never stalls requests for long.
const BATCH: i64 = 500;

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl SqliteStore {
    /// Runs a batched DELETE (its two parameters: the cut-off and the batch size) until it
    /// deletes less than a batch. Each statement is atomic on its own, and a row another
    /// instance deleted first is simply not there: several sweepers never conflict.
    async fn delete_in_batches(&self, sql: &'static str, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(sql).bind(cutoff).bind(BATCH).execute(&self.pool).await.map_err(classify)?;
            total += done.rows_affected();
            if done.rows_affected() < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Empties the `-wal` file, so deleted rows do not live on in old page images.
    pub(super) async fn scrub(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await {
            tracing::warn!(error = %e, "WAL checkpoint after a deletion failed; the next sweep retries");
        }
    }

    pub(super) async fn purge_impl(&self, before: Timestamp, now: Timestamp) -> Result<PurgeCounts, StoreError> {
        let verifications = self
            .delete_in_batches(
                "DELETE FROM verifications WHERE rowid IN (SELECT rowid FROM verifications \
                 WHERE ended_at < ?1 OR (status = 'pending' AND expires_at < ?1) LIMIT ?2)",
                before.0,
            )
            .await?;
        // A spent GCRA row (arrival time past) means the same as no row.
        let limits = self
            .delete_in_batches(
                "DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits WHERE tat <= ?1 LIMIT ?2)",
                now.0,
            )
            .await?;
        let idempotency = self
            .delete_in_batches(
                "DELETE FROM idempotency_keys WHERE key_hash IN \
                 (SELECT key_hash FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
                now.0,
            )
            .await?;
        let counts = PurgeCounts { verifications, limits, idempotency, refresh_tokens: 0 };
        if counts.total() > 0 {
            self.scrub().await;
        }
        Ok(counts)
    }

    pub(super) async fn export_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotRecords, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, status, attempts, sends, created_at, expires_at, ended_at, provider_ref \
             FROM verifications WHERE phone = ? ORDER BY created_at, rowid",
        )
        .bind(phone.e164())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let mut verifications = Vec::with_capacity(rows.len());
        for row in rows {
            verifications.push(VerificationRecord {
                id: row.try_get("id").map_err(classify)?,
                channel: row.try_get("channel").map_err(classify)?,
                status: row.try_get("status").map_err(classify)?,
                attempts: count(row.try_get("attempts").map_err(classify)?),
                sends: count(row.try_get("sends").map_err(classify)?),
                created_at: Timestamp(row.try_get("created_at").map_err(classify)?),
                expires_at: Timestamp(row.try_get("expires_at").map_err(classify)?),
                ended_at: row.try_get::<Option<i64>, _>("ended_at").map_err(classify)?.map(Timestamp),
                provider_ref: row.try_get("provider_ref").map_err(classify)?,
            });
        }
        let mut limits = Vec::new();
        for key in limit_keys {
            let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
            if let Some(tat) = tat {
                limits.push(LimitRecord { key: key.clone(), refilled_at: Timestamp(tat) });
            }
        }
        Ok(HotRecords { verifications, limits })
    }

    pub(super) async fn delete_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotDeleted, StoreError> {
        let mut tx = self.begin_write().await?;
        let verifications = sqlx::query("DELETE FROM verifications WHERE phone = ?")
            .bind(phone.e164())
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        let mut limits = 0;
        for key in limit_keys {
            limits += sqlx::query("DELETE FROM rate_limits WHERE key = ?")
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
        }
        tx.commit().await.map_err(classify)?;
        self.scrub().await;
        Ok(HotDeleted { verifications, limits })
    }

    pub(super) async fn export_user_impl(&self, phone: &PhoneNumber) -> Result<Option<UserRecords>, StoreError> {
        let Some(user) = sqlx::query("SELECT id, created_at FROM users WHERE phone = ?")
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
             WHERE user_id = ? ORDER BY issued_at",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let at = |row: &sqlx::sqlite::SqliteRow, name: &str| -> Result<Option<Timestamp>, StoreError> {
            Ok(row.try_get::<Option<i64>, _>(name).map_err(classify)?.map(Timestamp))
        };
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

    pub(super) async fn user_id_by_phone(&self, phone: &PhoneNumber) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM users WHERE phone = ?")
            .bind(phone.e164())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }
}
