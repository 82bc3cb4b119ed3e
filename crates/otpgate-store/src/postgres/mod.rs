//! The shared durable store on PostgreSQL: users and refresh tokens for any number of otpgate
//! instances, and (for deployments without Redis) verifications and rate limits too. Writes that
//! read before they decide run in a transaction that locks the rows first (`SELECT … FOR UPDATE`,
//! or an upsert that locks what it touches), so concurrent instances cannot both spend one code,
//! one token or one unit of a limit. The schema is embedded and brought up to date at connect
//! (sqlx takes an advisory lock, so instances starting together migrate once).

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rows::{VERIFICATION_COLUMNS, VerificationRow, digest_bytes};
use async_trait::async_trait;
use otpgate_core::limits::{LimitDecision, LimitRule, gcra};
use otpgate_core::privacy::{HotDeleted, HotRecords, PurgeCounts};
use otpgate_core::store::{Denied, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, CheckOutcome, CodeDigest, IssueOutcome, PhoneNumber, Policy, RateLimiter, StoreError, Timestamp,
    Verification, VerificationId, VerificationStatus, VerificationStore,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};

mod idempotency;
mod oidc;
mod privacy;
mod sessions;

const MIGRATIONS: &[crate::migrations::Embedded] = &[
    (1, "verifications", include_str!("../../migrations/postgres/0001_verifications.sql")),
    (2, "sessions", include_str!("../../migrations/postgres/0002_sessions.sql")),
    (3, "counters", include_str!("../../migrations/postgres/0003_counters.sql")),
    (4, "idempotency", include_str!("../../migrations/postgres/0004_idempotency.sql")),
    (5, "shared values", include_str!("../../migrations/postgres/0005_shared_values.sql")),
    (6, "refresh reuse grace", include_str!("../../migrations/postgres/0006_refresh_reuse_grace.sql")),
    (7, "signing keys", include_str!("../../migrations/postgres/0007_signing_keys.sql")),
    (8, "oidc", include_str!("../../migrations/postgres/0008_oidc.sql")),
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
        let expires_at = now.plus(policy.code_ttl);

        if live.is_none() {
            let v = Verification {
                id: new.id.clone(),
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
        let sends = previous.sends + 1;
        let next_resend_at = now.plus(policy.cooldown_after(sends));
        sqlx::query(
            "UPDATE verifications SET code_digest = $1, channel = $2, provider_ref = NULL, sends = $3, \
             expires_at = $4, next_resend_at = $5 WHERE id = $6",
        )
        .bind(digest_bytes(&new.code_digest))
        .bind(new.channel.as_str())
        .bind(int(sends))
        .bind(expires_at.0)
        .bind(next_resend_at.0)
        .bind(previous.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let verification = Verification {
            code_digest: new.code_digest,
            channel: new.channel,
            provider_ref: None,
            sends,
            expires_at,
            next_resend_at,
            ..previous.clone()
        };
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

    async fn acquire_tx(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        let mut keys: Vec<&str> = rules.iter().map(|r| r.key.as_str()).collect();
        // One lock order for everyone, so two acquisitions over the same keys cannot deadlock.
        keys.sort_unstable();
        keys.dedup();
        let mut tx = self.begin().await?;
        // The upsert creates missing rows and locks every row until the transaction ends; a
        // fresh row's arrival time 0 means "full bucket", like no row at all.
        let rows = sqlx::query(
            "INSERT INTO rate_limits (key, tat) SELECT k, 0 FROM unnest($1::text[]) AS k ORDER BY k \
             ON CONFLICT (key) DO UPDATE SET tat = rate_limits.tat RETURNING key, tat",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let mut tats = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("key").map_err(classify)?;
            let tat: i64 = row.try_get("tat").map_err(classify)?;
            tats.insert(key, tat);
        }
        let mut updates = Vec::with_capacity(rules.len());
        let mut denied: Option<Denied> = None;
        for rule in rules {
            let tat = tats.get(&rule.key).copied().filter(|t| *t > 0).map(Timestamp);
            match gcra(tat, now, rule.rate) {
                LimitDecision::Allow { new_tat } => updates.push((rule.key.as_str(), new_tat)),
                LimitDecision::Deny { retry_after } => {
                    if denied.is_none_or(|d| retry_after > d.retry_after) {
                        denied = Some(Denied { scope: rule.scope, retry_after });
                    }
                }
            }
        }
        if let Some(denied) = denied {
            // All or nothing: rolling back also drops the rows the upsert created.
            tx.rollback().await.map_err(classify)?;
            return Ok(Err(denied));
        }
        for (key, tat) in updates {
            sqlx::query("UPDATE rate_limits SET tat = $1 WHERE key = $2")
                .bind(tat.0)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(Ok(()))
    }
}

#[async_trait]
impl VerificationStore for PgStore {
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

    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET provider_ref = $1, code_digest = NULL WHERE id = $2")
                .bind(provider_ref)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        self.timed(async {
            // One statement: the WHERE clause is the whole decision (a concurrent update makes
            // Postgres re-check it on the new row), so callers never count past the maximum.
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE verifications SET attempts = attempts + 1 \
                 WHERE id = $1 AND status = 'pending' AND expires_at > $2 AND attempts < max_attempts \
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
            let live: Option<bool> = sqlx::query_scalar(
                "SELECT status IN ('pending', 'dead') AND expires_at > $2 FROM verifications WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
            Ok(if live == Some(true) { AttemptOutcome::Exhausted } else { AttemptOutcome::NotFound })
        })
        .await
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        self.timed(async {
            let done = sqlx::query(
                "UPDATE verifications SET status = 'approved', ended_at = $1 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now.0)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("UPDATE verifications SET status = $1, ended_at = $2 WHERE id = $3 AND status = 'pending'")
                .bind(status.as_str())
                .bind(now.0)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

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

#[async_trait]
impl RateLimiter for PgStore {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let result = self.timed(self.acquire_tx(rules, now)).await;
        if self.acquisitions.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
            && let Err(e) = self.sweep_limits(now).await
        {
            tracing::warn!(error = %e, "could not sweep spent rate-limit rows");
        }
        result
    }

    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        self.timed(async {
            let keys: Vec<&str> = rules.iter().map(|r| r.key.as_str()).collect();
            let rows = sqlx::query("SELECT key, tat FROM rate_limits WHERE key = ANY($1)")
                .bind(&keys)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
            let mut tats = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let key: String = row.try_get("key").map_err(classify)?;
                let tat: i64 = row.try_get("tat").map_err(classify)?;
                tats.insert(key, tat);
            }
            let mut denied: Option<Denied> = None;
            for rule in rules {
                // As in `acquire_tx`: an arrival time of 0 is a full bucket.
                let tat = tats.get(&rule.key).copied().filter(|t| *t > 0).map(Timestamp);
                if let LimitDecision::Deny { retry_after } = gcra(tat, now, rule.rate)
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
        self.timed(async {
            sqlx::query("DELETE FROM rate_limits WHERE key = ANY($1)")
                .bind(keys)
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO counters (key, bucket, count, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (key, bucket) DO UPDATE \
                 SET count = counters.count + 1, expires_at = GREATEST(counters.expires_at, excluded.expires_at)",
            )
            .bind(key)
            .bind(bucket)
            .bind(expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        self.timed(async {
            let sum: i64 = sqlx::query_scalar(
                "SELECT COALESCE(SUM(count), 0)::BIGINT FROM counters WHERE key = $1 AND bucket >= $2",
            )
            .bind(key)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
            Ok(u64::try_from(sum).unwrap_or(0))
        })
        .await
    }

    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        self.timed(async {
            sqlx::query_scalar(
                "SELECT value FROM shared_values WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(key)
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
        })
        .await
    }

    /// One statement per case, each atomic on its own: an upsert that overwrites only an expired
    /// row (none expected), or an update or delete whose WHERE clause is the comparison (which
    /// Postgres re-checks on the newest row after waiting for a concurrent writer).
    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let query = match (expected, new) {
            (None, Some(new)) => sqlx::query(
                "INSERT INTO shared_values (key, value, expires_at) VALUES ($1, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at \
                 WHERE shared_values.expires_at IS NOT NULL AND shared_values.expires_at <= $2",
            )
            .bind(key)
            .bind(now.0)
            .bind(&new.value)
            .bind(new.expires_at.map(|t| t.0)),
            // Nothing expected and nothing wanted: true when no live value is there.
            (None, None) => sqlx::query(
                "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM shared_values \
                 WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2))",
            )
            .bind(key)
            .bind(now.0),
            (Some(expected), Some(new)) => sqlx::query(
                "UPDATE shared_values SET value = $3, expires_at = $4 \
                 WHERE key = $1 AND value = $5 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(key)
            .bind(now.0)
            .bind(&new.value)
            .bind(new.expires_at.map(|t| t.0))
            .bind(expected),
            (Some(expected), None) => sqlx::query(
                "DELETE FROM shared_values WHERE key = $1 AND value = $3 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(key)
            .bind(now.0)
            .bind(expected),
        };
        self.timed(async {
            let done = query.execute(&self.pool).await.map_err(classify)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }
}
