//! Rate limits as GCRA (generic cell rate algorithm): a limit of `count` per `period` allows a
//! burst of `count`, then one more every `period / count`. The whole state of a key is one
//! timestamp (the "theoretical arrival time"), so every backend can update it atomically and
//! expire it on its own once it lies in the past.

use std::time::Duration;

use crate::Timestamp;

/// `count` events per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn new(count: u32, period: Duration) -> Self {
        Rate { count, period }
    }

    fn emission_interval_ms(&self) -> i64 {
        (self.period.as_millis() as i64 / i64::from(self.count.max(1))).max(1)
    }

    /// How far ahead of now a key's theoretical arrival time may run: `count` emission
    /// intervals, so a burst is exactly `count` even when the period does not divide evenly
    /// (1 s / 87 is 11 ms; the period itself would let 90 through). The whole period when
    /// `count` is 0. Backends that run GCRA themselves (the Redis script) use this as "period".
    pub fn burst_window_ms(&self) -> i64 {
        if self.count == 0 {
            return self.period.as_millis() as i64;
        }
        self.emission_interval_ms() * i64::from(self.count)
    }
}

/// What a limit protects; named in logs and metrics (never the key, which holds a number or IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    PhoneSend,
    PhoneSendHourly,
    PhoneSendDaily,
    IpSend,
    IpSendHourly,
    PrefixSend,
    CountrySend,
    GlobalSendHourly,
    GlobalSendDaily,
    PhoneCheck,
    IpCheck,
    Tripwire,
    ResendCooldown,
    /// The SMS provider itself refused for rate reasons.
    Provider,
    /// One OpenID Connect client's requests (token, revocation, login), across its users.
    OidcClient,
}

impl LimitScope {
    /// Budgets that every sender to a number block or a country shares, so that one attacker
    /// can use them up for everyone: with a bot check configured, a client that passes it may
    /// send past them (within a bounded allowance of its own). Not the global budgets: they
    /// are the spend cap.
    pub fn is_shared_budget(self) -> bool {
        matches!(self, LimitScope::PrefixSend | LimitScope::CountrySend | LimitScope::Tripwire)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::PhoneSend => "phone_send",
            LimitScope::PhoneSendHourly => "phone_send_hourly",
            LimitScope::PhoneSendDaily => "phone_send_daily",
            LimitScope::IpSend => "ip_send",
            LimitScope::IpSendHourly => "ip_send_hourly",
            LimitScope::PrefixSend => "prefix_send",
            LimitScope::CountrySend => "country_send",
            LimitScope::GlobalSendHourly => "global_send_hourly",
            LimitScope::GlobalSendDaily => "global_send_daily",
            LimitScope::PhoneCheck => "phone_check",
            LimitScope::IpCheck => "ip_check",
            LimitScope::Tripwire => "tripwire",
            LimitScope::ResendCooldown => "resend_cooldown",
            LimitScope::Provider => "provider",
            LimitScope::OidcClient => "oidc_client",
        }
    }
}

/// One limit to apply to one key (`send:phone:+14155550100`, `send:ip:203.0.113.7`, …).
#[derive(Debug, Clone)]
pub struct LimitRule {
    pub scope: LimitScope,
    pub key: String,
    pub rate: Rate,
}

impl LimitRule {
    pub fn new(scope: LimitScope, key: impl Into<String>, rate: Rate) -> Self {
        LimitRule { scope, key: key.into(), rate }
    }
}

/// The outcome of taking one unit from a key's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDecision {
    /// Allowed; store `new_tat` for the key and let it expire at `new_tat`.
    Allow {
        new_tat: Timestamp,
    },
    Deny {
        retry_after: Duration,
    },
}

/// The GCRA step for one key: `tat` is the stored value (None for a fresh key).
pub fn gcra(tat: Option<Timestamp>, now: Timestamp, rate: Rate) -> LimitDecision {
    if rate.count == 0 {
        return LimitDecision::Deny { retry_after: rate.period };
    }
    let t = rate.emission_interval_ms();
    let tat = tat.map_or(now.0, |tat| tat.0.max(now.0));
    let new_tat = tat + t;
    let allow_at = new_tat - rate.burst_window_ms();
    if now.0 < allow_at {
        LimitDecision::Deny { retry_after: Duration::from_millis((allow_at - now.0) as u64) }
    } else {
        LimitDecision::Allow { new_tat: Timestamp(new_tat) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn run(rate: Rate, times_ms: &[i64]) -> Vec<bool> {
        let mut tat = None;
        times_ms
            .iter()
            .map(|&t| match gcra(tat, Timestamp(t), rate) {
                LimitDecision::Allow { new_tat } => {
                    tat = Some(new_tat);
                    true
                }
                LimitDecision::Deny { .. } => false,
            })
            .collect()
    }

    #[test]
    fn burst_of_count_then_denied() {
        let rate = Rate::new(3, MIN);
        assert_eq!(run(rate, &[0, 0, 0, 0]), [true, true, true, false]);
    }

    #[test]
    fn retry_after_is_when_one_unit_returns() {
        let rate = Rate::new(3, MIN);
        let mut tat = None;
        for _ in 0..3 {
            if let LimitDecision::Allow { new_tat } = gcra(tat, Timestamp(0), rate) {
                tat = Some(new_tat);
            }
        }
        assert_eq!(gcra(tat, Timestamp(0), rate), LimitDecision::Deny { retry_after: Duration::from_secs(20) });
        assert_eq!(gcra(tat, Timestamp(19_999), rate), LimitDecision::Deny { retry_after: Duration::from_millis(1) });
        assert!(matches!(gcra(tat, Timestamp(20_000), rate), LimitDecision::Allow { .. }));
    }

    #[test]
    fn fully_refilled_after_the_period() {
        let rate = Rate::new(3, MIN);
        assert_eq!(run(rate, &[0, 0, 0, 60_000, 60_000, 60_000, 60_000]), [true, true, true, true, true, true, false]);
    }

    #[test]
    fn uneven_periods_still_burst_exactly_count() {
        // Found by the property tests: 87 per second let 90 through at once.
        let rate = Rate::new(87, Duration::from_secs(1));
        assert_eq!(run(rate, &[0; 100]).iter().filter(|a| **a).count(), 87);
    }

    #[test]
    fn zero_count_always_denies() {
        assert!(matches!(gcra(None, Timestamp(0), Rate::new(0, MIN)), LimitDecision::Deny { .. }));
    }
}
