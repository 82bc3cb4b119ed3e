//! The shared durable store on PostgreSQL: users and refresh tokens for any number of otpgate
//! instances, and (for deployments without Redis) verifications and rate limits too. Writes that
//! read before they decide run in a transaction that locks the rows first (`SELECT … FOR UPDATE`,
//! or an upsert that locks what it touches), so concurrent instances cannot both spend one code,
//! one token or one unit of a limit. The schema is embedded and brought up to date at connect
//! (sqlx takes an advisory lock, so instances starting together migrate once).

use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::rows::VerificationRow;
use otpgate_core::{StoreError, Timestamp, Verification};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};

mod idempotency;
mod limits;
mod privacy;
mod provider_codes;
mod sessions;
mod verifications;

const MIGRATIONS: &[crate::migrations::Embedded] = &[
    (1, "verifications", include_str!("../../migrations/postgres/0001_verifications.sql")),
    (2, "sessions", include_str!("../../migrations/postgres/0002_sessions.sql")),
    (3, "counters", include_str!("../../migrations/postgres/0003_counters.sql")),
    (4, "idempotency", include_str!("../../migrations/postgres/0004_idempotency.sql")),
    (5, "shared values", include_str!("../../migrations/postgres/0005_shared_values.sql")),
    (6, "refresh reuse grace", include_str!("../../migrations/postgres/0006_refresh_reuse_grace.sql")),
    (7, "signing keys", include_str!("../../migrations/postgres/0007_signing_keys.sql")),
];

/// How often (in limit acquisitions) spent limit rows are swept; Postgres has no TTLs.
const SWEEP_EVERY: u64 = 256;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Upper bound of connections this instance holds (the pool never grows past it).
    pub max_connections: u32,
    /// Longest wait for a connection or an operation; past it the operation is `Unavailable`.
    pub timeout: Duration,
    /// Schema for the tables (created if missing); `None` uses the server's `search_path`.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { max_connections: 10, timeout: Duration::from_secs(2), schema: None }
    }
}

#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    timeout: Duration,
    acquisitions: AtomicU64,
}

impl PgStore {
    /// Connects (`postgres://user[:password]@host[:port]/database[?sslmode=…]`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("PostgreSQL URL: {e}")))?
            .application_name("otpgate");
        if let Some(schema) = &options.schema {
            if !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || schema.is_empty() {
                return Err(StoreError::Internal("a schema name is letters, digits and `_`".into()));
            }
            let mut admin = sqlx::pool::PoolOptions::<Postgres>::new()
                .max_connections(1)
                .acquire_timeout(options.timeout)
                .connect_with(connect.clone())
                .await
                .map_err(classify)?
                .acquire()
                .await
                .map_err(classify)?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")))
                .execute(&mut *admin)
                .await
                .map_err(classify)?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(options.timeout)
            // A connection that died with the server is found and replaced before use.
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(classify)?;
        let store = PgStore { pool, timeout: options.timeout, acquisitions: AtomicU64::new(0) };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = crate::migrations::migrator(MIGRATIONS);
        migrator.run(&self.pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Bounds a whole operation, so a server that accepts but never answers cannot hang a request.
    async fn timed<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("PostgreSQL did not answer in time".into())))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(classify)
    }

    /// Deletes spent limit rows (arrival time in the past: the same as no row) and expired
    /// counter buckets. Skips rows that an acquisition holds. Answers how many were deleted.
    pub async fn sweep_limits(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rate_limits WHERE key IN \
             (SELECT key FROM rate_limits WHERE tat < $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        let counters = sqlx::query(
            "DELETE FROM counters WHERE (key, bucket) IN \
             (SELECT key, bucket FROM counters WHERE expires_at < $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() + counters.rows_affected())
    }

    /// Erases every verification of `phone` (for erasing a user when verifications live here but
    /// users elsewhere).
    pub async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM verifications WHERE phone = $1")
            .bind(e164)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// Connection-level trouble is "unavailable" (503, retry later); anything else is a bug (500).
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        // Class 08 (connection exception), 57P (operator intervention: shutdown, restart),
        // 53 (insufficient resources), 40001/40P01 (serialization failure, deadlock: retry).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") || c == "40001" || c == "40P01"
            }) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn verification_from_row(row: &PgRow) -> Result<Verification, StoreError> {
    VerificationRow {
        id: row.try_get("id").map_err(classify)?,
        phone: row.try_get("phone").map_err(classify)?,
        channel: row.try_get("channel").map_err(classify)?,
        status: row.try_get("status").map_err(classify)?,
        code_digest: row.try_get("code_digest").map_err(classify)?,
        provider_ref: row.try_get("provider_ref").map_err(classify)?,
        attempts: i64::from(row.try_get::<i32, _>("attempts").map_err(classify)?),
        max_attempts: i64::from(row.try_get::<i32, _>("max_attempts").map_err(classify)?),
        sends: i64::from(row.try_get::<i32, _>("sends").map_err(classify)?),
        created_at: row.try_get("created_at").map_err(classify)?,
        expires_at: row.try_get("expires_at").map_err(classify)?,
        next_resend_at: row.try_get("next_resend_at").map_err(classify)?,
    }
    .into_verification()
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
