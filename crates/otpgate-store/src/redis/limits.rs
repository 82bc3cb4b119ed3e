//! Rate limits (GCRA keys, one script per Cluster slot), windowed counters and shared values in
//! Redis.

use std::time::Duration;

use ::redis::cluster_routing::Slot;
use async_trait::async_trait;
use otpgate_core::limits::LimitRule;
use otpgate_core::store::{Denied, StoredValue};
use otpgate_core::{Counters, Limits, SharedValues, StoreError, Timestamp};
use std::collections::HashMap;

use otpgate_core::resend::FORGET_AFTER;

use super::{COUNTER, Conn, GIVEBACK, LIMIT, RedisStore, SWAP, SWAP_BUCKET, ValuePlace, bucket_entry, ms};

/// A shared value from its bucket entry's payload, as bucket.lua's `value_unpack` reads it: a
/// phone's resend value kept as its send count (`1`, 4 bytes), any other value as it is (`0`).
fn unpack_value(payload: &[u8], expires: i64) -> Result<String, StoreError> {
    let corrupt = || StoreError::Internal("corrupt shared value in Redis".into());
    match payload {
        [1, sends @ ..] => {
            let sends = u32::from_be_bytes(sends.try_into().map_err(|_| corrupt())?);
            Ok(format!("v1:{sends}:{}:{expires}", expires - ms(FORGET_AFTER) as i64))
        }
        [0, value @ ..] => String::from_utf8(value.to_vec()).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// One rule prepared for the limit script.
struct Prepared<'a> {
    rule: &'a LimitRule,
    key: String,
    interval_ms: u64,
}

impl<'a> Prepared<'a> {
    fn new(store: &RedisStore, rule: &'a LimitRule) -> Self {
        // Same arithmetic as `gcra()`: a zero count allows nothing (interval 0 tells the script).
        let interval_ms =
            if rule.rate.count == 0 { 0 } else { (ms(rule.rate.period) / u64::from(rule.rate.count)).max(1) };
        Prepared { rule, key: store.limit_key(&rule.key), interval_ms }
    }
}

impl RedisStore {
    /// Runs the GCRA script over `group`: `Ok(())` if every key gave a unit (taken only when
    /// `take`), else the denial with the longest wait.
    async fn limit_group(
        &self,
        group: &[&Prepared<'_>],
        now: &str,
        take: bool,
    ) -> Result<Result<(), Denied>, StoreError> {
        let mut inv = LIMIT.prepare_invoke();
        for p in group {
            inv.key(&p.key);
        }
        inv.arg(now).arg(if take { "1" } else { "0" });
        for p in group {
            inv.arg(p.interval_ms).arg(p.rule.rate.burst_window_ms());
        }
        let (allowed, index, wait): (i64, i64, i64) = self.script(&inv).await?;
        if allowed == 1 {
            return Ok(Ok(()));
        }
        let rule = usize::try_from(index - 1)
            .ok()
            .and_then(|i| group.get(i))
            .ok_or_else(|| StoreError::Internal("limit script named no rule".into()))?;
        Ok(Err(Denied { scope: rule.rule.scope, retry_after: Duration::from_millis(wait.max(0) as u64) }))
    }

    async fn give_back(&self, group: &[&Prepared<'_>], now: &str) -> Result<(), StoreError> {
        let mut inv = GIVEBACK.prepare_invoke();
        for p in group {
            inv.key(&p.key);
        }
        inv.arg(now);
        for p in group {
            inv.arg(p.interval_ms);
        }
        self.script::<i64>(&inv).await.map(drop)
    }
}

fn longer(a: Option<Denied>, b: Denied) -> Denied {
    match a {
        Some(a) if a.retry_after >= b.retry_after => a,
        _ => b,
    }
}

#[async_trait]
impl Limits for RedisStore {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let prepared: Vec<Prepared<'_>> = rules.iter().map(|r| Prepared::new(self, r)).collect();
        let now = self.limit_now(now);
        // A single server runs a script over keys of any slot: all or nothing, atomically.
        let mut groups: Vec<(Slot, Vec<&Prepared<'_>>)> = Vec::new();
        match self.conn {
            Conn::Single(_) => groups.push((Slot::for_key(""), prepared.iter().collect())),
            Conn::Cluster(_) => {
                for p in &prepared {
                    let slot = Slot::for_key(&p.key);
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(p),
                        None => groups.push((slot, vec![p])),
                    }
                }
            }
        }
        if let [(_, group)] = groups.as_slice() {
            return self.limit_group(group, &now, true).await;
        }
        // Redis Cluster, keys in several slots: one script cannot span them. Take slot group by
        // slot group; if one refuses, give back what the earlier groups took and only look at the
        // later ones (for the longest wait). This never lets more through than the limits allow;
        // the weaker part is that a concurrent request may briefly see a unit as taken that is
        // then given back, and be refused where a single server would have allowed it.
        let mut taken = Vec::new();
        let mut denied: Option<Denied> = None;
        for (_, group) in &groups {
            let result = match denied {
                None => self.limit_group(group, &now, true).await,
                Some(_) => self.limit_group(group, &now, false).await,
            };
            match result {
                Ok(Ok(())) if denied.is_none() => taken.push(group),
                Ok(Ok(())) => {}
                Ok(Err(d)) => denied = Some(longer(denied, d)),
                Err(e) => {
                    for group in &taken {
                        if let Err(undo) = self.give_back(group, &now).await {
                            tracing::warn!(error = %undo, "could not give back rate-limit units after an error");
                        }
                    }
                    return Err(e);
                }
            }
        }
        let Some(denied) = denied else { return Ok(Ok(())) };
        for group in &taken {
            self.give_back(group, &now).await?;
        }
        Ok(Err(denied))
    }

    /// The limit script in its look-only mode, once per slot group on a Cluster: a read, so it
    /// needs no atomicity across groups.
    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let prepared: Vec<Prepared<'_>> = rules.iter().map(|r| Prepared::new(self, r)).collect();
        let now = self.limit_now(now);
        let groups: Vec<Vec<&Prepared<'_>>> = match self.conn {
            Conn::Single(_) => vec![prepared.iter().collect()],
            Conn::Cluster(_) => prepared.iter().map(|p| vec![p]).collect(),
        };
        let mut denied: Option<Denied> = None;
        for group in &groups {
            if let Err(d) = self.limit_group(group, &now, false).await? {
                denied = Some(longer(denied, d));
            }
        }
        Ok(denied.map_or(Ok(()), Err))
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        // One DEL per key: on a Cluster the keys live in different slots.
        for key in keys {
            self.command::<()>(::redis::cmd("DEL").arg(self.limit_key(key))).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Counters for RedisStore {
    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        let mut inv = COUNTER.prepare_invoke();
        inv.key(format!("{}ctr:{{{key}}}", self.prefix)).arg(bucket).arg(expires_at.0);
        self.script::<i64>(&inv).await.map(drop)
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        let buckets: HashMap<i64, u64> =
            self.command(::redis::cmd("HGETALL").arg(format!("{}ctr:{{{key}}}", self.prefix))).await?;
        Ok(buckets.into_iter().filter(|(bucket, _)| *bucket >= since).map(|(_, n)| n).sum())
    }
}

#[async_trait]
impl SharedValues for RedisStore {
    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        match self.value_place(key) {
            ValuePlace::Hash(key) => {
                let (value, expires): (Option<String>, Option<i64>) =
                    self.command(::redis::cmd("HMGET").arg(key).arg("v").arg("exp")).await?;
                Ok(value.filter(|_| expires.is_none_or(|exp| exp > now.0)))
            }
            ValuePlace::Bucket { key, field } => {
                let entry: Option<Vec<u8>> = self.command(::redis::cmd("HGET").arg(key).arg(field)).await?;
                let Some((expires, payload)) = entry.as_deref().and_then(bucket_entry) else { return Ok(None) };
                if expires <= now.0 {
                    return Ok(None);
                }
                unpack_value(payload, expires).map(Some)
            }
        }
    }

    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (mut inv, field) = match self.value_place(key) {
            ValuePlace::Hash(key) => {
                let mut inv = SWAP.prepare_invoke();
                inv.key(key);
                (inv, None)
            }
            ValuePlace::Bucket { key: bucket, field } => {
                // A bucket's entries must expire (the bucket's TTL covers them): a phone's resend
                // value always does.
                if new.is_some_and(|n| n.expires_at.is_none()) {
                    return Err(StoreError::Internal(format!("the shared value {key:?} needs an expiry")));
                }
                let mut inv = SWAP_BUCKET.prepare_invoke();
                inv.key(bucket);
                (inv, Some(field))
            }
        };
        inv.arg(now.0)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or(""))
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.map_or("", |n| n.value.as_str()))
            .arg(new.and_then(|n| n.expires_at).map(|t| t.0.to_string()).unwrap_or_default());
        if let Some(field) = field {
            inv.arg(field).arg(ms(FORGET_AFTER));
        }
        Ok(self.script::<i64>(&inv).await? == 1)
    }
}
