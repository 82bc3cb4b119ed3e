//! The embedded store: one SQLite file in WAL mode. All of its work runs on one connection, on a
//! thread of its own, in transactions shared by whatever is waiting (group commit, see `conn`).
//! Every operation is a closure that reads, decides and writes without anything interleaving, so
//! read-decide-write sequences (check a code, take from a limit) are atomic.

use std::path::Path;
use std::time::Duration;

use crate::rows::VerificationRow;
use otpgate_core::{StoreError, Verification};
use rusqlite::{Connection, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod conn;
mod idempotency;
mod limits;
mod privacy;
mod provider_codes;
mod sessions;
mod verifications;

use conn::Conn;
pub(crate) use conn::classify;

/// The schema, embedded in the binary so a fresh file is ready without any tool.
const MIGRATIONS: &[crate::migrations::Embedded] = &[
    (1, "verifications", include_str!("../../migrations/sqlite/0001_verifications.sql")),
    (2, "sessions", include_str!("../../migrations/sqlite/0002_sessions.sql")),
    (3, "idempotency", include_str!("../../migrations/sqlite/0003_idempotency.sql")),
    (10, "counters", include_str!("../../migrations/sqlite/0010_counters.sql")),
    (11, "shared values", include_str!("../../migrations/sqlite/0011_shared_values.sql")),
    (12, "refresh reuse grace", include_str!("../../migrations/sqlite/0012_refresh_reuse_grace.sql")),
    (13, "signing keys", include_str!("../../migrations/sqlite/0013_signing_keys.sql")),
];

#[derive(Clone, Debug)]
pub struct SqliteStore {
    conn: Conn,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        migrate(path).await?;
        Ok(SqliteStore { conn: Conn::open(path)? })
    }

    /// Deletes every verification of `e164` (a store holding hot state for another durable store).
    pub(crate) async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        let e164 = e164.to_owned();
        self.conn
            .run(move |conn| execute(conn, "DELETE FROM verifications WHERE phone = ?", params![e164]).map(drop))
            .await
    }

    /// Finishes the queued work and closes the file; later calls answer `Unavailable`.
    pub async fn close(&self) {
        self.conn.close().await;
    }
}

/// Creates the file if needed and applies the embedded migrations with sqlx's migrator (kept for
/// its bookkeeping table, which existing databases already carry), on a connection of its own
/// that is closed before the store starts.
async fn migrate(path: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let migrator = crate::migrations::migrator(MIGRATIONS);
    let result = migrator.run(&pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")));
    pool.close().await;
    result
}

fn verification_from_row(row: &rusqlite::Row<'_>) -> Result<Verification, StoreError> {
    let raw = || -> rusqlite::Result<VerificationRow> {
        Ok(VerificationRow {
            id: row.get(0)?,
            phone: row.get(1)?,
            channel: row.get(2)?,
            status: row.get(3)?,
            code_digest: row.get(4)?,
            provider_ref: row.get(5)?,
            attempts: row.get(6)?,
            max_attempts: row.get(7)?,
            sends: row.get(8)?,
            created_at: row.get(9)?,
            expires_at: row.get(10)?,
            next_resend_at: row.get(11)?,
        })
    };
    raw().map_err(classify)?.into_verification()
}

/// The first row `sql` returns, as a verification.
fn query_verification(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Verification>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(classify)?;
    let mut rows = statement.query(params).map_err(classify)?;
    match rows.next().map_err(classify)? {
        Some(row) => verification_from_row(row).map(Some),
        None => Ok(None),
    }
}

/// Runs one cached statement; the number of rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(classify)
}
