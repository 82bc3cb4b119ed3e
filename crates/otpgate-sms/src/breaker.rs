//! A small circuit breaker. When Twilio is down, every send would otherwise wait out the full
//! deadline while users stare at a spinner; after a run of failures the breaker answers
//! "unavailable" at once and lets a single probe through now and then to notice recovery.
//!
//! Time comes from a `Clock` so tests move it instead of sleeping.
//!
//! The gauge `otpgate_provider_breaker_open{provider}` is 1 from the failure that opens the
//! breaker until a call succeeds again (probes included), 0 otherwise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otpgate_core::{Clock, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Timestamp,
    },
    /// One probe is out; everyone else is refused until it reports (or is presumed lost).
    HalfOpen {
        probe_started: Timestamp,
    },
}

pub struct Breaker {
    /// The provider's name, for the `otpgate_provider_breaker_open` gauge.
    provider: &'static str,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    threshold: u32,
    open_for: Duration,
    /// A probe that never reports (its future was dropped) must not wedge the breaker; after
    /// this long another caller may probe.
    probe_timeout: Duration,
}

/// Permission to make one call; report its outcome with `Breaker::record`.
#[derive(Debug)]
#[must_use]
pub struct Permit(());

impl Breaker {
    pub fn new(
        provider: &'static str,
        clock: Arc<dyn Clock>,
        threshold: u32,
        open_for: Duration,
        probe_timeout: Duration,
    ) -> Self {
        metrics::gauge!("otpgate_provider_breaker_open", "provider" => provider).set(0.0);
        Breaker {
            provider,
            state: Mutex::new(State::Closed { failures: 0 }),
            clock,
            threshold: threshold.max(1),
            open_for,
            probe_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value; a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` while open (or while a probe is out).
    pub fn try_acquire(&self) -> Result<Permit, Duration> {
        let now = self.clock.now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Permit(())),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probe_started: now };
                Ok(Permit(()))
            }
            State::Open { until } => Err(now.until(until).max(Duration::from_secs(1))),
            State::HalfOpen { probe_started } if now >= probe_started.plus(self.probe_timeout) => {
                *state = State::HalfOpen { probe_started: now };
                Ok(Permit(()))
            }
            State::HalfOpen { .. } => Err(Duration::from_secs(1)),
        }
    }

    /// Reports a call's outcome. A success closes the breaker; a failure counts toward opening
    /// it, and a failed probe opens it again at once.
    pub fn record(&self, _permit: Permit, success: bool) {
        let now = self.clock.now();
        let mut state = self.lock();
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => {
                State::Closed { failures: failures + 1 }
            }
            (_, false) => State::Open { until: now.plus(self.open_for) },
        };
        let open = if matches!(*state, State::Closed { .. }) { 0.0 } else { 1.0 };
        metrics::gauge!("otpgate_provider_breaker_open", "provider" => self.provider).set(open);
    }

    /// `Some(retry_after)` while calls are being refused.
    pub fn open_for(&self) -> Option<Duration> {
        let now = self.clock.now();
        match *self.lock() {
            State::Open { until } if now < until => Some(now.until(until)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::ManualClock;

    fn breaker(clock: &ManualClock) -> Breaker {
        Breaker::new("test", Arc::new(clock.clone()), 3, Duration::from_secs(30), Duration::from_secs(10))
    }

    #[test]
    fn opens_after_threshold_and_one_probe_closes_it() {
        let clock = ManualClock::new(Timestamp(0));
        let b = breaker(&clock);
        for _ in 0..2 {
            b.record(b.try_acquire().unwrap(), false);
        }
        assert!(b.open_for().is_none(), "below the threshold");
        b.record(b.try_acquire().unwrap(), false);
        assert_eq!(b.try_acquire().unwrap_err(), Duration::from_secs(30));
        clock.advance(Duration::from_secs(29));
        assert!(b.try_acquire().is_err());
        clock.advance(Duration::from_secs(1));
        let probe = b.try_acquire().expect("one probe after the open period");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        b.record(probe, true);
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn failed_probe_reopens_and_success_resets_the_count() {
        let clock = ManualClock::new(Timestamp(0));
        let b = breaker(&clock);
        b.record(b.try_acquire().unwrap(), false);
        b.record(b.try_acquire().unwrap(), false);
        b.record(b.try_acquire().unwrap(), true);
        b.record(b.try_acquire().unwrap(), false);
        b.record(b.try_acquire().unwrap(), false);
        assert!(b.open_for().is_none(), "a success in between resets the run");
        b.record(b.try_acquire().unwrap(), false);
        clock.advance(Duration::from_secs(30));
        b.record(b.try_acquire().unwrap(), false);
        assert_eq!(b.open_for(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let clock = ManualClock::new(Timestamp(0));
        let b = breaker(&clock);
        for _ in 0..3 {
            b.record(b.try_acquire().unwrap(), false);
        }
        clock.advance(Duration::from_secs(30));
        drop(b.try_acquire().unwrap()); // the probe's future was dropped
        assert!(b.try_acquire().is_err());
        clock.advance(Duration::from_secs(10));
        assert!(b.try_acquire().is_ok());
    }
}
