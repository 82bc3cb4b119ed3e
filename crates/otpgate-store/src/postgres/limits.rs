//! Rate limits (GCRA rows, locked in one order), windowed counters and shared values in
//! PostgreSQL.

use async_trait::async_trait;
use otpgate_core::limits::{LimitDecision, LimitRule, gcra};
use otpgate_core::store::{Denied, StoredValue};
use otpgate_core::{Counters, Limits, SharedValues, StoreError, Timestamp};
use sqlx::Row;
use std::sync::atomic::Ordering;

use super::{PgStore, SWEEP_EVERY, classify};

impl PgStore {
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
impl Limits for PgStore {
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
}

#[async_trait]
impl Counters for PgStore {
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
}

#[async_trait]
impl SharedValues for PgStore {
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
