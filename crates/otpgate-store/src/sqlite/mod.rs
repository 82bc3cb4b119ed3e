//! The embedded store: one SQLite file in WAL mode. All of its work runs on one connection, on a
//! thread of its own, in transactions shared by whatever is waiting (group commit, see `conn`).
//! Every operation is a closure that reads, decides and writes without anything interleaving, so
//! read-decide-write sequences (check a code, take from a limit) are atomic.

use std::path::Path;

use crate::rows::VerificationRow;
use otpgate_core::{StoreError, Verification};
use rusqlite::{Connection, params};

mod conn;
mod idempotency;
mod limits;
mod migrate;
mod privacy;
mod provider_codes;
mod sessions;
mod verifications;

use conn::Conn;
pub(crate) use conn::classify;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    conn: Conn,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        migrate::migrate(path).await?;
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
