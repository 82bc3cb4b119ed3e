//! Retention: a background sweeper deletes what otpgate no longer needs. Verification rows (the
//! only place besides the user where a full number is stored) go `retention.verification_hours`
//! after they end; spent limit rows, tripwire counter buckets past their window, expired
//! idempotency entries and expired refresh tokens go as soon as they are spent. Every deletion is an idempotent batched DELETE, so any number of
//! instances may sweep the same database at once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use otpgate_core::privacy::PurgeCounts;
use otpgate_core::{Clock, SessionStore, StoreError, Timestamp, VerificationStore};

use crate::stores::Stores;

/// Runs one sweep on demand (`sweep`) or forever in the background (`spawn`).
#[derive(Clone)]
pub struct Sweeper {
    hot: Arc<dyn VerificationStore>,
    durable: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    window: Duration,
}

impl Sweeper {
    /// `window`: how long a verification is kept after it ends.
    pub fn new(stores: &Stores, clock: Arc<dyn Clock>, window: Duration) -> Sweeper {
        Sweeper { hot: stores.verifications.clone(), durable: stores.sessions.clone(), clock, window }
    }

    /// Deletes everything past its retention now.
    pub async fn sweep(&self) -> Result<PurgeCounts, StoreError> {
        let now = self.clock.now();
        let before = Timestamp(now.0.saturating_sub(self.window.as_millis() as i64));
        let mut counts = self.hot.purge(before, now).await?;
        counts.refresh_tokens += self.durable.purge_expired_refresh_tokens(now).await?;
        Ok(counts)
    }

    /// Sweeps every `interval` (with up to 10% jitter, so instances started together do not
    /// sweep in lockstep) until `alive` is gone.
    pub fn spawn(self, interval: Duration, alive: Weak<()>) {
        tokio::spawn(async move {
            loop {
                let jitter = interval.mul_f64(rand::random::<f64>() * 0.1);
                tokio::time::sleep(interval + jitter).await;
                if alive.upgrade().is_none() {
                    return;
                }
                match self.sweep().await {
                    Ok(counts) if counts.total() > 0 => tracing::info!(
                        event = "retention.sweep",
                        verifications = counts.verifications,
                        limits = counts.limits,
                        idempotency = counts.idempotency,
                        refresh_tokens = counts.refresh_tokens,
                        "expired data deleted"
                    ),
                    Ok(_) => tracing::debug!(event = "retention.sweep", "nothing to delete"),
                    Err(e) => tracing::warn!(event = "retention.sweep", error = %e, "retention sweep failed"),
                }
            }
        });
    }
}
