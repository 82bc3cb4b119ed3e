//! Rate limits (GCRA rows), windowed counters and shared values in SQLite.

use async_trait::async_trait;
use otpgate_core::limits::{LimitDecision, gcra};
use otpgate_core::store::{Denied, StoredValue};
use otpgate_core::{Counters, Limits, SharedValues, StoreError, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, classify, execute};

#[async_trait]
impl Limits for SqliteStore {
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
}

#[async_trait]
impl Counters for SqliteStore {
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
}

#[async_trait]
impl SharedValues for SqliteStore {
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
                    Some(new) => put_value(conn, &key, &new)?,
                    None => execute(conn, "DELETE FROM shared_values WHERE key = ?", params![key])?,
                };
                Ok(true)
            })
            .await
    }
}

/// Stores `value` under `key`, replacing whatever is there.
pub(super) fn put_value(conn: &Connection, key: &str, value: &StoredValue) -> Result<usize, StoreError> {
    execute(
        conn,
        "INSERT INTO shared_values (key, value, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        params![key, value.value, value.expires_at.map(|t| t.0)],
    )
}

/// The value under `key` unless it expired by `now`.
pub(super) fn live_value(conn: &Connection, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM shared_values WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)")
        .and_then(|mut s| s.query_row(params![key, now.0], |row| row.get(0)).optional())
        .map_err(classify)
}
