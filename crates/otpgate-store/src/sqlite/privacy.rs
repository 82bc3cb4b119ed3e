//! Retention, export and erasure in SQLite.
//!
//! Deleting a row is not enough to make its bytes go away: SQLite leaves deleted cells in free
//! space, and in WAL mode the old page images stay in the `-wal` file until it is checkpointed
//! and restarted. So the store runs with `secure_delete` on (deleted content is overwritten with
//! zeros) and every purge or erasure that deleted something ends with a truncating checkpoint,
//! which empties the `-wal` file. A checkpoint that a long reader blocks is retried by the next
//! sweep.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::privacy::{
    HotDeleted, HotRecords, LimitRecord, PurgeCounts, RefreshTokenRecord, UserRecords, VerificationRecord,
};
use otpgate_core::{PhoneNumber, Retention, StoreError, Timestamp};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, classify, execute};

/// Rows per DELETE: short write locks, so sweeping never stalls requests for long.
const BATCH: i64 = 500;
/// How long an erasure keeps retrying its checkpoint while another connection checkpoints.
const SCRUB_DEADLINE: Duration = Duration::from_secs(5);
/// The pause between those tries: a passive checkpoint of a small WAL takes about a millisecond.
const SCRUB_RETRY: Duration = Duration::from_millis(5);

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl SqliteStore {
    /// Runs a batched DELETE (its two parameters: the cut-off and the batch size) until it
    /// deletes less than a batch. Each batch is an operation of its own, so requests queued
    /// meanwhile run between batches, and a row another instance deleted first is simply not
    /// there: several sweepers never conflict.
    async fn delete_in_batches(&self, sql: &'static str, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = self.conn.run(move |conn| execute(conn, sql, params![cutoff, BATCH])).await? as u64;
            total += deleted;
            if deleted < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Empties the `-wal` file, so deleted rows do not live on in old page images.
    ///
    /// SQLite lets one connection checkpoint at a time and answers any other at once with
    /// "busy", without waiting: this instance's checkpointer thread (every 100 ms, see
    /// `conn.rs`) or another process on the same file (`otpgate users delete` beside a running
    /// server) is often mid-checkpoint. Giving up then left the erased rows' bytes in the WAL and
    /// the database file until the next sweep, so the truncating checkpoint is retried for a
    /// while; readers, which it does wait for, are bounded by the busy timeout.
    pub(super) async fn scrub(&self) {
        let deadline = tokio::time::Instant::now() + SCRUB_DEADLINE;
        let checkpoint = loop {
            let checkpoint = self
                .conn
                .alone(|conn| {
                    // (busy, WAL frames, frames checkpointed); busy = 1 when it could not finish.
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)).map_err(classify)
                })
                .await;
            match checkpoint {
                Ok(busy) if busy != 0 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(SCRUB_RETRY).await;
                }
                done => break done,
            }
        };
        match checkpoint {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                "WAL checkpoint after a deletion was held back by a reader or another checkpoint; the next sweep retries"
            ),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint after a deletion failed; the next sweep retries"),
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
        // Shared values past their expiry (a phone's resend cooldown: counted with the limits).
        let limits = limits
            + self
                .delete_in_batches(
                    "DELETE FROM shared_values WHERE key IN \
                     (SELECT key FROM shared_values WHERE expires_at <= ?1 LIMIT ?2)",
                    now.0,
                )
                .await?;
        // Tripwire buckets past their window (not counted: they hold no personal data).
        let counters = self
            .delete_in_batches(
                "DELETE FROM counters WHERE (key, bucket) IN \
                 (SELECT key, bucket FROM counters WHERE expires_at < ?1 LIMIT ?2)",
                now.0,
            )
            .await?;
        let counts = PurgeCounts { verifications, limits, idempotency, refresh_tokens: 0 };
        if counts.total() + counters > 0 {
            self.scrub().await;
        }
        Ok(counts)
    }

    pub(super) async fn export_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotRecords, StoreError> {
        let (phone, limit_keys) = (phone.e164().to_owned(), limit_keys.to_vec());
        self.conn
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT id, channel, status, attempts, sends, created_at, expires_at, ended_at, provider_ref \
                         FROM verifications WHERE phone = ? ORDER BY created_at, rowid",
                    )
                    .map_err(classify)?;
                let verifications = statement
                    .query_map(params![phone], |row| {
                        Ok(VerificationRecord {
                            id: row.get(0)?,
                            channel: row.get(1)?,
                            status: row.get(2)?,
                            attempts: count(row.get(3)?),
                            sends: count(row.get(4)?),
                            created_at: Timestamp(row.get(5)?),
                            expires_at: Timestamp(row.get(6)?),
                            ended_at: row.get::<_, Option<i64>>(7)?.map(Timestamp),
                            provider_ref: row.get(8)?,
                        })
                    })
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(classify)?;
                let mut limits = Vec::new();
                // GCRA rows, and shared values under the same keys (a phone's resend cooldown).
                for key in limit_keys {
                    let tat: Option<i64> = conn
                        .prepare_cached(
                            "SELECT tat FROM rate_limits WHERE key = ?1 UNION ALL \
                             SELECT expires_at FROM shared_values WHERE key = ?1 AND expires_at IS NOT NULL",
                        )
                        .and_then(|mut s| s.query_row(params![key], |row| row.get(0)).optional())
                        .map_err(classify)?;
                    if let Some(tat) = tat {
                        limits.push(LimitRecord { key, refilled_at: Timestamp(tat) });
                    }
                }
                Ok(HotRecords { verifications, limits })
            })
            .await
    }

    pub(super) async fn delete_phone_impl(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<HotDeleted, StoreError> {
        let (phone, limit_keys) = (phone.e164().to_owned(), limit_keys.to_vec());
        let deleted = self
            .conn
            .run(move |conn| {
                let verifications = execute(conn, "DELETE FROM verifications WHERE phone = ?", params![phone])? as u64;
                let mut limits = 0;
                for key in &limit_keys {
                    limits += execute(conn, "DELETE FROM rate_limits WHERE key = ?", params![key])? as u64;
                    limits += execute(conn, "DELETE FROM shared_values WHERE key = ?", params![key])? as u64;
                }
                Ok(HotDeleted { verifications, limits })
            })
            .await?;
        self.scrub().await;
        Ok(deleted)
    }

    pub(super) async fn export_user_impl(&self, phone: &PhoneNumber) -> Result<Option<UserRecords>, StoreError> {
        let phone = phone.e164().to_owned();
        self.conn
            .run(move |conn| {
                let user: Option<(String, i64)> = conn
                    .prepare_cached("SELECT id, created_at FROM users WHERE phone = ?")
                    .and_then(|mut s| s.query_row(params![phone], |row| Ok((row.get(0)?, row.get(1)?))).optional())
                    .map_err(classify)?;
                let Some((id, created_at)) = user else { return Ok(None) };
                let mut statement = conn
                    .prepare_cached(
                        "SELECT family, channel, issued_at, expires_at, used_at, revoked_at FROM refresh_tokens \
                         WHERE user_id = ? ORDER BY issued_at",
                    )
                    .map_err(classify)?;
                let refresh_tokens = statement
                    .query_map(params![id], |row| {
                        Ok(RefreshTokenRecord {
                            family: row.get(0)?,
                            channel: row.get(1)?,
                            issued_at: Timestamp(row.get(2)?),
                            expires_at: Timestamp(row.get(3)?),
                            used_at: row.get::<_, Option<i64>>(4)?.map(Timestamp),
                            revoked_at: row.get::<_, Option<i64>>(5)?.map(Timestamp),
                        })
                    })
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(classify)?;
                Ok(Some(UserRecords { id, phone, created_at: Timestamp(created_at), refresh_tokens }))
            })
            .await
    }

    pub(super) async fn user_id_by_phone(&self, phone: &PhoneNumber) -> Result<Option<String>, StoreError> {
        let phone = phone.e164().to_owned();
        self.conn
            .run(move |conn| {
                conn.prepare_cached("SELECT id FROM users WHERE phone = ?")
                    .and_then(|mut s| s.query_row(params![phone], |row| row.get(0)).optional())
                    .map_err(classify)
            })
            .await
    }
}

#[async_trait]
impl Retention for SqliteStore {
    async fn purge(&self, before: Timestamp, now: Timestamp) -> Result<otpgate_core::privacy::PurgeCounts, StoreError> {
        self.purge_impl(before, now).await
    }

    async fn export_phone(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<otpgate_core::privacy::HotRecords, StoreError> {
        self.export_phone_impl(phone, limit_keys).await
    }

    async fn delete_phone(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<otpgate_core::privacy::HotDeleted, StoreError> {
        self.delete_phone_impl(phone, limit_keys).await
    }
}
