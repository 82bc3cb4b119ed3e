//! The embedded store: one SQLite file in WAL mode. Every write runs in a `BEGIN IMMEDIATE`
//! transaction, which takes SQLite's single write lock up front, so read-decide-write sequences
//! (check a code, take from a limit) cannot interleave between connections.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::rows::{VERIFICATION_COLUMNS, VerificationRow, digest_bytes};
use async_trait::async_trait;
use otpgate_core::limits::{LimitDecision, LimitRule, gcra};
use otpgate_core::store::{Denied, NewCode};
use otpgate_core::{
    AttemptOutcome, CheckOutcome, CodeDigest, IssueOutcome, PhoneNumber, Policy, RateLimiter, StoreError, Timestamp,
    Verification, VerificationId, VerificationStatus, VerificationStore,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, Sqlite, SqlitePool, Transaction};

mod idempotency;
mod privacy;
mod sessions;

/// The schema, embedded in the binary so a fresh file is ready without any tool.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "verifications", include_str!("../../migrations/sqlite/0001_verifications.sql")),
    (2, "sessions", include_str!("../../migrations/sqlite/0002_sessions.sql")),
    (3, "idempotency", include_str!("../../migrations/sqlite/0003_idempotency.sql")),
    (10, "counters", include_str!("../../migrations/sqlite/0010_counters.sql")),
];

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One writer at a time inside this process. SQLite allows one writer anyway; queueing here
    /// (fair, no sleeping) instead of in SQLite's busy handler (which sleeps 1, 2, 5… ms between
    /// retries) keeps write latency flat under load. Other processes on the same file still meet
    /// the busy timeout.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// A `BEGIN IMMEDIATE` transaction holding this process's writer turn until commit or drop
/// (drop rolls back).
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: durable against a crash of the process, fsync at checkpoints.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Deleted rows are overwritten with zeros, not left in free space (erasure, retention).
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = SqliteStore { pool, writer: Arc::new(tokio::sync::Mutex::new(())) };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    AssertSqlSafe(*sql).into_sql_str(),
                    false,
                )
            })
            .collect::<Vec<_>>();
        let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
        migrator.run(&self.pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(classify)?;
        Ok(WriteTx { tx, _turn: turn })
    }
}

/// Connection-level trouble is "unavailable" (503, retry later); anything else is a bug (500).
fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            unavailable(e)
        }
        sqlx::Error::Database(db) if db.message().contains("locked") || db.message().contains("busy") => unavailable(e),
        _ => StoreError::Internal(e.to_string()),
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn verification_from_row(row: &SqliteRow) -> Result<Verification, StoreError> {
    VerificationRow {
        id: row.try_get("id").map_err(classify)?,
        phone: row.try_get("phone").map_err(classify)?,
        channel: row.try_get("channel").map_err(classify)?,
        status: row.try_get("status").map_err(classify)?,
        code_digest: row.try_get("code_digest").map_err(classify)?,
        provider_ref: row.try_get("provider_ref").map_err(classify)?,
        attempts: row.try_get::<i64, _>("attempts").map_err(classify)?,
        max_attempts: row.try_get::<i64, _>("max_attempts").map_err(classify)?,
        sends: row.try_get::<i64, _>("sends").map_err(classify)?,
        created_at: row.try_get("created_at").map_err(classify)?,
        expires_at: row.try_get("expires_at").map_err(classify)?,
        next_resend_at: row.try_get("next_resend_at").map_err(classify)?,
    }
    .into_verification()
}

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let row = sqlx::query(
            "SELECT next_resend_at FROM verifications WHERE phone = ? AND status = 'pending' AND expires_at > ?",
        )
        .bind(phone.e164())
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let next = Timestamp(row.try_get("next_resend_at").map_err(classify)?);
        Ok((next > now).then(|| now.until(next)))
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let phone = new.phone.e164();
        // A pending row past its expiry is over: close it so the phone can have a new one.
        sqlx::query(
            "UPDATE verifications SET status = 'expired', ended_at = expires_at \
             WHERE phone = ? AND status = 'pending' AND expires_at <= ?",
        )
        .bind(phone)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let live = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications WHERE phone = ? AND status = 'pending'"
        )))
        .bind(phone)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let expires_at = now.plus(policy.code_ttl);

        let outcome = if let Some(row) = live {
            let previous = verification_from_row(&row)?;
            if now < previous.next_resend_at {
                return Ok(IssueOutcome::Cooldown { retry_after: now.until(previous.next_resend_at) });
            }
            let sends = previous.sends + 1;
            let next_resend_at = now.plus(policy.cooldown_after(sends));
            sqlx::query(
                "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = NULL, sends = ?, \
                 expires_at = ?, next_resend_at = ? WHERE id = ?",
            )
            .bind(digest_bytes(&new.code_digest))
            .bind(new.channel.as_str())
            .bind(i64::from(sends))
            .bind(expires_at.0)
            .bind(next_resend_at.0)
            .bind(previous.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            let verification = Verification {
                code_digest: new.code_digest,
                channel: new.channel,
                provider_ref: None,
                sends,
                expires_at,
                next_resend_at,
                ..previous.clone()
            };
            IssueOutcome::Resent { verification, previous }
        } else {
            let v = Verification {
                id: new.id,
                phone: phone.to_owned(),
                channel: new.channel,
                status: VerificationStatus::Pending,
                code_digest: new.code_digest,
                provider_ref: None,
                attempts: 0,
                max_attempts: policy.max_attempts,
                sends: 1,
                created_at: now,
                expires_at,
                next_resend_at: now.plus(policy.cooldown_after(1)),
            };
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO verifications ({VERIFICATION_COLUMNS}) VALUES (?, ?, ?, 'pending', ?, NULL, 0, ?, 1, ?, ?, ?)"
            )))
            .bind(v.id.as_str())
            .bind(&v.phone)
            .bind(v.channel.as_str())
            .bind(digest_bytes(&v.code_digest))
            .bind(i64::from(v.max_attempts))
            .bind(v.created_at.0)
            .bind(v.expires_at.0)
            .bind(v.next_resend_at.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            IssueOutcome::Created(v)
        };
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE verifications SET provider_ref = ? WHERE id = ?")
            .bind(provider_ref)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        // Both statements only touch the row if it still holds the code this send stored, so a
        // revert never undoes a later send or check.
        match outcome {
            IssueOutcome::Created(v) => {
                sqlx::query("DELETE FROM verifications WHERE id = ? AND status = 'pending' AND code_digest IS ?")
                    .bind(v.id.as_str())
                    .bind(digest_bytes(&v.code_digest))
                    .execute(&self.pool)
                    .await
                    .map_err(classify)?;
            }
            IssueOutcome::Resent { verification, previous } => {
                sqlx::query(
                    "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = ?, sends = ?, \
                     expires_at = ?, next_resend_at = ? \
                     WHERE id = ? AND status = 'pending' AND code_digest IS ?",
                )
                .bind(digest_bytes(&previous.code_digest))
                .bind(previous.channel.as_str())
                .bind(&previous.provider_ref)
                .bind(i64::from(previous.sends))
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
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications \
             WHERE phone = ? AND status IN ('pending', 'dead') ORDER BY rowid DESC LIMIT 1"
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
            sqlx::query("UPDATE verifications SET status = 'approved', ended_at = ? WHERE id = ?")
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
                "UPDATE verifications SET attempts = ?, status = ?, ended_at = CASE WHEN ? THEN ? END WHERE id = ?",
            )
            .bind(i64::from(attempts))
            .bind(if dead { "dead" } else { "pending" })
            .bind(dead)
            .bind(now.0)
            .bind(v.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if dead {
                CheckOutcome::Exhausted
            } else {
                CheckOutcome::Wrong { attempts_left: v.max_attempts - attempts }
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE verifications SET status = 'canceled', ended_at = ? WHERE id = ? AND status = 'pending' \
             RETURNING {VERIFICATION_COLUMNS}"
        )))
        .bind(now.0)
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(verification_from_row).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(classify)?;
        Ok(())
    }

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

    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE verifications SET provider_ref = ?, code_digest = NULL WHERE id = ?")
            .bind(provider_ref)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        // One statement: the WHERE clause is the whole decision, so concurrent callers can
        // never count past the maximum.
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE verifications SET attempts = attempts + 1 \
             WHERE id = ? AND status = 'pending' AND expires_at > ? AND attempts < max_attempts \
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
        let state = sqlx::query("SELECT status, expires_at FROM verifications WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(match state {
            Some(row) => {
                let status: String = row.try_get("status").map_err(classify)?;
                let expires_at: i64 = row.try_get("expires_at").map_err(classify)?;
                if (status == "pending" || status == "dead") && now.0 < expires_at {
                    AttemptOutcome::Exhausted
                } else {
                    AttemptOutcome::NotFound
                }
            }
            None => AttemptOutcome::NotFound,
        })
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE verifications SET status = 'approved', ended_at = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(now.0)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE verifications SET status = ?, ended_at = ? WHERE id = ? AND status = 'pending'")
            .bind(status.as_str())
            .bind(now.0)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl RateLimiter for SqliteStore {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let mut tx = self.begin_write().await?;
        let mut updates = Vec::with_capacity(rules.len());
        let mut denied: Option<Denied> = None;
        for rule in rules {
            let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = ?")
                .bind(&rule.key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
            match gcra(tat.map(Timestamp), now, rule.rate) {
                LimitDecision::Allow { new_tat } => updates.push((&rule.key, new_tat)),
                LimitDecision::Deny { retry_after } => {
                    if denied.is_none_or(|d| retry_after > d.retry_after) {
                        denied = Some(Denied { scope: rule.scope, retry_after });
                    }
                }
            }
        }
        if let Some(denied) = denied {
            // All or nothing: dropping the transaction rolls it back, nothing was written.
            return Ok(Err(denied));
        }
        for (key, tat) in updates {
            sqlx::query(
                "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
            )
            .bind(key)
            .bind(tat.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Ok(()))
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            sqlx::query("DELETE FROM rate_limits WHERE key = ?")
                .bind(key)
                .execute(&self.pool)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO counters (key, bucket, count, expires_at) VALUES (?, ?, 1, ?) \
             ON CONFLICT (key, bucket) DO UPDATE SET count = count + 1",
        )
        .bind(key)
        .bind(bucket)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        let sum: Option<i64> = sqlx::query_scalar("SELECT SUM(count) FROM counters WHERE key = ? AND bucket >= ?")
            .bind(key)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(sum.unwrap_or(0).max(0) as u64)
    }
}
