//! The embedded store: one SQLite file in WAL mode. All of its work runs on one connection, on a
//! thread of its own, in transactions shared by whatever is waiting (group commit, see `conn`).
//! Every operation is a closure that reads, decides and writes without anything interleaving, so
//! read-decide-write sequences (check a code, take from a limit) are atomic.

use std::path::Path;
use std::time::Duration;

use crate::rows::{VerificationRow, digest_bytes, verification_columns};
use async_trait::async_trait;
use otpgate_core::limits::{LimitDecision, gcra};
use otpgate_core::policy::resend_cooldown_after;
use otpgate_core::store::{Denied, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, CheckOutcome, CodeDigest, IssueOutcome, PhoneNumber, Policy, RateLimiter, StoreError, Timestamp,
    Verification, VerificationId, VerificationStatus, VerificationStore,
};
use rusqlite::{Connection, OptionalExtension, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod conn;
mod idempotency;
mod oidc;
mod privacy;
mod sessions;

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
    (14, "oidc", include_str!("../../migrations/sqlite/0014_oidc.sql")),
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

#[async_trait]
impl VerificationStore for SqliteStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let phone = phone.e164().to_owned();
        self.conn
            .run(move |conn| {
                let next: Option<i64> = conn
                    .prepare_cached(
                        "SELECT next_resend_at FROM verifications \
                         WHERE phone = ? AND status = 'pending' AND expires_at > ?",
                    )
                    .and_then(|mut s| s.query_row(params![phone, now.0], |row| row.get(0)).optional())
                    .map_err(classify)?;
                Ok(next.map(Timestamp).filter(|next| *next > now).map(|next| now.until(next)))
            })
            .await
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let (code_ttl, max_attempts, first_cooldown) = (policy.code_ttl, policy.max_attempts, policy.resend_cooldown);
        self.conn
            .run(move |conn| {
                let phone = new.phone.e164();
                // A pending row past its expiry is over: close it so the phone can have a new one.
                execute(
                    conn,
                    "UPDATE verifications SET status = 'expired', ended_at = expires_at \
                     WHERE phone = ? AND status = 'pending' AND expires_at <= ?",
                    params![phone, now.0],
                )?;
                let live = query_verification(
                    conn,
                    concat!(
                        "SELECT ",
                        verification_columns!(),
                        " FROM verifications WHERE phone = ? AND status = 'pending'"
                    ),
                    params![phone],
                )?;
                let expires_at = now.plus(code_ttl);
                if let Some(previous) = live {
                    if now < previous.next_resend_at {
                        return Ok(IssueOutcome::Cooldown { retry_after: now.until(previous.next_resend_at) });
                    }
                    let sends = previous.sends + 1;
                    let next_resend_at = now.plus(resend_cooldown_after(first_cooldown, sends));
                    execute(
                        conn,
                        "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = NULL, sends = ?, \
                         expires_at = ?, next_resend_at = ? WHERE id = ?",
                        params![
                            digest_bytes(&new.code_digest),
                            new.channel.as_str(),
                            i64::from(sends),
                            expires_at.0,
                            next_resend_at.0,
                            previous.id.as_str()
                        ],
                    )?;
                    let verification = Verification {
                        code_digest: new.code_digest,
                        channel: new.channel,
                        provider_ref: None,
                        sends,
                        expires_at,
                        next_resend_at,
                        ..previous.clone()
                    };
                    return Ok(IssueOutcome::Resent { verification, previous });
                }
                let v = Verification {
                    id: new.id,
                    phone: phone.to_owned(),
                    channel: new.channel,
                    status: VerificationStatus::Pending,
                    code_digest: new.code_digest,
                    provider_ref: None,
                    attempts: 0,
                    max_attempts,
                    sends: 1,
                    created_at: now,
                    expires_at,
                    next_resend_at: now.plus(resend_cooldown_after(first_cooldown, 1)),
                };
                execute(
                    conn,
                    concat!(
                        "INSERT INTO verifications (",
                        verification_columns!(),
                        ") \
                         VALUES (?, ?, ?, 'pending', ?, NULL, 0, ?, 1, ?, ?, ?)"
                    ),
                    params![
                        v.id.as_str(),
                        v.phone,
                        v.channel.as_str(),
                        digest_bytes(&v.code_digest),
                        i64::from(v.max_attempts),
                        v.created_at.0,
                        v.expires_at.0,
                        v.next_resend_at.0
                    ],
                )?;
                Ok(IssueOutcome::Created(v))
            })
            .await
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        let (id, provider_ref) = (id.clone(), provider_ref.to_owned());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE verifications SET provider_ref = ? WHERE id = ?",
                    params![provider_ref, id.as_str()],
                )
                .map(drop)
            })
            .await
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        // Both statements only touch the row if it still holds the code this send stored, so a
        // revert never undoes a later send or check.
        let outcome = outcome.clone();
        self.conn
            .run(move |conn| {
                match outcome {
                    IssueOutcome::Created(v) => {
                        execute(
                            conn,
                            "DELETE FROM verifications WHERE id = ? AND status = 'pending' AND code_digest IS ?",
                            params![v.id.as_str(), digest_bytes(&v.code_digest)],
                        )?;
                    }
                    IssueOutcome::Resent { verification, previous } => {
                        execute(
                            conn,
                            "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = ?, sends = ?, \
                             expires_at = ?, next_resend_at = ? \
                             WHERE id = ? AND status = 'pending' AND code_digest IS ?",
                            params![
                                digest_bytes(&previous.code_digest),
                                previous.channel.as_str(),
                                previous.provider_ref,
                                i64::from(previous.sends),
                                previous.expires_at.0,
                                previous.next_resend_at.0,
                                verification.id.as_str(),
                                digest_bytes(&verification.code_digest)
                            ],
                        )?;
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
        let (phone, candidate) = (phone.e164().to_owned(), *candidate);
        self.conn
            .run(move |conn| {
                let v = query_verification(
                    conn,
                    concat!(
                        "SELECT ",
                        verification_columns!(),
                        " FROM verifications \
                         WHERE phone = ? AND status IN ('pending', 'dead') ORDER BY rowid DESC LIMIT 1"
                    ),
                    params![phone],
                )?;
                let Some(v) = v else { return Ok(CheckOutcome::NotFound) };
                if now >= v.expires_at {
                    return Ok(CheckOutcome::NotFound);
                }
                if v.status == VerificationStatus::Dead || v.attempts >= v.max_attempts {
                    return Ok(CheckOutcome::Exhausted);
                }
                let Some(stored) = &v.code_digest else {
                    // The provider holds this code: nothing to compare or count here.
                    return Ok(CheckOutcome::Remote(v));
                };
                if stored.ct_eq(&candidate) {
                    execute(
                        conn,
                        "UPDATE verifications SET status = 'approved', ended_at = ? WHERE id = ?",
                        params![now.0, v.id.as_str()],
                    )?;
                    return Ok(CheckOutcome::Approved(Verification { status: VerificationStatus::Approved, ..v }));
                }
                let attempts = v.attempts + 1;
                let dead = attempts >= v.max_attempts;
                execute(
                    conn,
                    "UPDATE verifications SET attempts = ?, status = ?, ended_at = CASE WHEN ? THEN ? END WHERE id = ?",
                    params![i64::from(attempts), if dead { "dead" } else { "pending" }, dead, now.0, v.id.as_str()],
                )?;
                Ok(if dead {
                    CheckOutcome::Killed
                } else {
                    CheckOutcome::Wrong { attempts_left: v.max_attempts - attempts }
                })
            })
            .await
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                query_verification(
                    conn,
                    concat!("UPDATE verifications SET status = 'canceled', ended_at = ? WHERE id = ? AND status = 'pending' \
                         RETURNING ", verification_columns!()),
                    params![now.0, id.as_str()],
                )
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(classify)).await
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

#[async_trait]
impl RateLimiter for SqliteStore {
    async fn acquire(
        &self,
        rules: &[otpgate_core::limits::LimitRule],
        now: Timestamp,
    ) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let rules = rules.to_vec();
        self.conn
            .run(move |conn| {
                let mut updates = Vec::with_capacity(rules.len());
                let mut denied: Option<Denied> = None;
                for rule in &rules {
                    let tat: Option<i64> = conn
                        .prepare_cached("SELECT tat FROM rate_limits WHERE key = ?")
                        .and_then(|mut s| s.query_row(params![rule.key], |row| row.get(0)).optional())
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
                // All or nothing: nothing is written unless every rule allows.
                if let Some(denied) = denied {
                    return Ok(Err(denied));
                }
                for (key, tat) in updates {
                    execute(
                        conn,
                        "INSERT INTO rate_limits (key, tat) VALUES (?, ?) \
                         ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
                        params![key, tat.0],
                    )?;
                }
                Ok(Ok(()))
            })
            .await
    }

    async fn peek(
        &self,
        rules: &[otpgate_core::limits::LimitRule],
        now: Timestamp,
    ) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let rules = rules.to_vec();
        self.conn
            .run(move |conn| {
                let mut denied: Option<Denied> = None;
                for rule in &rules {
                    let tat: Option<i64> = conn
                        .prepare_cached("SELECT tat FROM rate_limits WHERE key = ?")
                        .and_then(|mut s| s.query_row(params![rule.key], |row| row.get(0)).optional())
                        .map_err(classify)?;
                    if let LimitDecision::Deny { retry_after } = gcra(tat.map(Timestamp), now, rule.rate)
                        && denied.is_none_or(|d| retry_after > d.retry_after)
                    {
                        denied = Some(Denied { scope: rule.scope, retry_after });
                    }
                }
                Ok(denied.map_or(Ok(()), Err))
            })
            .await
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.conn
            .run(move |conn| {
                for key in &keys {
                    execute(conn, "DELETE FROM rate_limits WHERE key = ?", params![key])?;
                }
                Ok(())
            })
            .await
    }

    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "INSERT INTO counters (key, bucket, count, expires_at) VALUES (?, ?, 1, ?) \
                     ON CONFLICT (key, bucket) DO UPDATE SET count = count + 1",
                    params![key, bucket, expires_at.0],
                )
                .map(drop)
            })
            .await
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.conn
            .run(move |conn| {
                let sum: Option<i64> = conn
                    .prepare_cached("SELECT SUM(count) FROM counters WHERE key = ? AND bucket >= ?")
                    .and_then(|mut s| s.query_row(params![key, since], |row| row.get(0)))
                    .map_err(classify)?;
                Ok(sum.unwrap_or(0).max(0) as u64)
            })
            .await
    }

    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.conn.run(move |conn| live_value(conn, &key, now)).await
    }

    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (key, expected, new) = (key.to_owned(), expected.map(str::to_owned), new.cloned());
        self.conn
            .run(move |conn| {
                if live_value(conn, &key, now)? != expected {
                    return Ok(false);
                }
                match new {
                    Some(new) => execute(
                        conn,
                        "INSERT INTO shared_values (key, value, expires_at) VALUES (?, ?, ?) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                        params![key, new.value, new.expires_at.map(|t| t.0)],
                    )?,
                    None => execute(conn, "DELETE FROM shared_values WHERE key = ?", params![key])?,
                };
                Ok(true)
            })
            .await
    }
}

/// The value under `key` unless it expired by `now`.
fn live_value(conn: &Connection, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM shared_values WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)")
        .and_then(|mut s| s.query_row(params![key, now.0], |row| row.get(0)).optional())
        .map_err(classify)
}
