//! The conversion tripwire, our answer to SMS pumping for every provider: per country, sends and
//! approvals are counted in store-backed buckets over a sliding window; when a country's
//! approval rate falls below the threshold with enough volume, its sends are throttled to a
//! trickle (an extra limit on the send path) until conversion recovers. Counting happens in the
//! store, so every instance sees the same numbers.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::warn;

use crate::policy::TripwirePolicy;
use crate::{RateLimiter, Timestamp};

/// Buckets per window: the window slides in steps of 1/12 (5 minutes for an hour).
const BUCKETS: i64 = 12;

/// Remembers the last state per country, so a change is logged once per instance.
#[derive(Default)]
pub struct TripwireState(Mutex<HashMap<String, bool>>);

impl TripwireState {
    /// Records `tripped` for `country`; `Some(new state)` when it changed.
    fn update(&self, country: &str, tripped: bool) -> Option<bool> {
        let mut states = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let previous = states.insert(country.to_owned(), tripped).unwrap_or(false);
        (previous != tripped).then_some(tripped)
    }
}

fn bucket_len(policy: &TripwirePolicy) -> i64 {
    (policy.window.as_millis() as i64 / BUCKETS).max(1)
}

fn bucket_of(policy: &TripwirePolicy, now: Timestamp) -> i64 {
    now.0 - now.0.rem_euclid(bucket_len(policy))
}

fn send_key(country: &str) -> String {
    format!("tripwire:send:{country}")
}

fn approval_key(country: &str) -> String {
    format!("tripwire:approved:{country}")
}

async fn incr(limiter: &dyn RateLimiter, policy: &TripwirePolicy, key: &str, now: Timestamp) {
    let bucket = bucket_of(policy, now);
    let expires_at = Timestamp(bucket + policy.window.as_millis() as i64 + bucket_len(policy));
    if let Err(e) = limiter.incr_counter(key, bucket, expires_at).await {
        warn!(error = %e, "tripwire: cannot count");
    }
}

pub async fn record_send(limiter: &dyn RateLimiter, policy: &TripwirePolicy, country: &str, now: Timestamp) {
    if policy.enabled {
        incr(limiter, policy, &send_key(country), now).await;
    }
}

pub async fn record_approval(limiter: &dyn RateLimiter, policy: &TripwirePolicy, country: &str, now: Timestamp) {
    if policy.enabled {
        incr(limiter, policy, &approval_key(country), now).await;
    }
}

/// Whether `country` is tripped now. A store error counts as "not tripped" (logged): the hard
/// limits still hold, and a broken heuristic must not stop all sends.
pub async fn is_tripped(
    limiter: &dyn RateLimiter,
    policy: &TripwirePolicy,
    state: &TripwireState,
    country: &str,
    now: Timestamp,
) -> bool {
    if !policy.enabled {
        return false;
    }
    // Whole buckets only: the oldest one still inside the window.
    let since = bucket_of(policy, now) - bucket_len(policy) * (BUCKETS - 1);
    let sends = match limiter.sum_counter(&send_key(country), since).await {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "tripwire: cannot read counters");
            return false;
        }
    };
    let tripped = if sends < policy.min_sends {
        false
    } else {
        let approvals = limiter.sum_counter(&approval_key(country), since).await.unwrap_or(sends);
        (approvals as f64) < policy.min_approval_rate * sends as f64
    };
    if let Some(now_tripped) = state.update(country, tripped) {
        warn!(
            event = "otp.tripwire",
            outcome = if now_tripped { "tripped" } else { "cleared" },
            country = %country,
            sends,
            "conversion tripwire changed state"
        );
        metrics::gauge!("otpgate_tripwire_tripped", "country" => country.to_owned()).set(if now_tripped {
            1.0
        } else {
            0.0
        });
    }
    tripped
}
