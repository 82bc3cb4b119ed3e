//! The knobs of the verification flow, with the product brief's defaults.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::client::Ipv6Prefix;
use crate::limits::Rate;
use crate::{NumberKind, PhoneNumber};

#[derive(Debug, Clone)]
pub struct Policy {
    /// Digits per code (4–10).
    pub code_length: usize,
    /// How long a code is valid after it is sent.
    pub code_ttl: Duration,
    /// Wrong codes a verification survives; the next one kills it.
    pub max_attempts: u32,
    /// Wait before the first resend; each later resend waits twice as long as the one before.
    pub resend_cooldown: Duration,
    /// Every rate limit of the send and check flows.
    pub limits: LimitSet,
    /// Which countries and kinds of number may receive codes.
    pub regions: RegionPolicy,
    /// The conversion tripwire (sends vs approvals per country).
    pub tripwire: TripwirePolicy,
}

/// The rate limits, each `None` when switched off. Send limits are all checked (and taken
/// together, all or nothing) before any store write or provider call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSet {
    pub phone_send: Option<Rate>,
    pub phone_send_hourly: Option<Rate>,
    pub phone_send_daily: Option<Rate>,
    pub ip_send: Option<Rate>,
    pub ip_send_hourly: Option<Rate>,
    /// Per number without its last four digits: catches sweeps over sequential numbers.
    pub prefix_send: Option<Rate>,
    /// Per country (off by default; the tripwire watches countries).
    pub country_send: Option<Rate>,
    /// A spend cap over all sends.
    pub global_send_hourly: Option<Rate>,
    pub global_send_daily: Option<Rate>,
    /// Failed checks per phone across its verifications; a success clears it.
    pub phone_check_failures: Option<Rate>,
    /// Checks per client IP (one IP guessing across many phones).
    pub ip_check: Option<Rate>,
    /// How the per-IP limits group IPv6 clients (see `ClientKey`).
    pub ipv6_prefix: Ipv6Prefix,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl Default for LimitSet {
    fn default() -> Self {
        LimitSet {
            phone_send: Some(Rate::new(3, MINUTE)),
            phone_send_hourly: Some(Rate::new(10, HOUR)),
            phone_send_daily: Some(Rate::new(20, DAY)),
            ip_send: Some(Rate::new(10, MINUTE)),
            ip_send_hourly: Some(Rate::new(100, HOUR)),
            prefix_send: Some(Rate::new(20, HOUR)),
            country_send: None,
            global_send_hourly: Some(Rate::new(10_000, HOUR)),
            global_send_daily: Some(Rate::new(100_000, DAY)),
            phone_check_failures: Some(Rate::new(20, HOUR)),
            ip_check: Some(Rate::new(30, MINUTE)),
            ipv6_prefix: Ipv6Prefix::DEFAULT,
        }
    }
}

/// Countries (ISO 3166 alpha-2) and number kinds that may receive codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPolicy {
    /// When set, only these countries.
    pub allow: Option<BTreeSet<String>>,
    /// Never these countries.
    pub deny: BTreeSet<String>,
    /// Kinds of number that are never a person's phone, and non-geographic numbers.
    pub refused_kinds: BTreeSet<NumberKind>,
}

impl Default for RegionPolicy {
    fn default() -> Self {
        use NumberKind::*;
        RegionPolicy {
            allow: None,
            deny: BTreeSet::new(),
            refused_kinds: [PremiumRate, SharedCost, TollFree, Uan, Pager, Voicemail, NonGeographic]
                .into_iter()
                .collect(),
        }
    }
}

impl RegionPolicy {
    /// Whether `phone` may receive a code.
    pub fn allows(&self, phone: &PhoneNumber) -> bool {
        let country = phone.region().unwrap_or("ZZ");
        if self.allow.as_ref().is_some_and(|allow| !allow.contains(country)) || self.deny.contains(country) {
            return false;
        }
        !self.refused_kinds.contains(&phone.kind())
    }
}

/// SMS-pumping tripwire: when a country's approvals fall far behind its sends, its sends are
/// throttled to a trickle until the window shows normal conversion again.
#[derive(Debug, Clone, PartialEq)]
pub struct TripwirePolicy {
    pub enabled: bool,
    /// Sliding window over which sends and approvals are compared.
    pub window: Duration,
    /// Sends in the window before the rate means anything.
    pub min_sends: u64,
    /// Trip when approvals / sends falls below this.
    pub min_approval_rate: f64,
    /// What a tripped country may still send.
    pub trickle: Rate,
}

impl Default for TripwirePolicy {
    fn default() -> Self {
        TripwirePolicy {
            enabled: true,
            window: HOUR,
            min_sends: 50,
            min_approval_rate: 0.2,
            trickle: Rate::new(5, HOUR),
        }
    }
}

/// Longest resend cooldown, however many resends came before: doubling stops here.
pub const MAX_RESEND_COOLDOWN: Duration = Duration::from_secs(3600);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_length: 6,
            code_ttl: Duration::from_secs(120),
            max_attempts: 5,
            resend_cooldown: Duration::from_secs(30),
            limits: LimitSet::default(),
            regions: RegionPolicy::default(),
            tripwire: TripwirePolicy::default(),
        }
    }
}

/// Cooldown after the `sends`-th message when the first resend waits `first`: the policy's rule
/// without the policy, for the phone's resend schedule (`resend`), whose first wait is its claim's.
pub fn resend_cooldown_after(first: Duration, sends: u32) -> Duration {
    let doublings = sends.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << doublings).min(MAX_RESEND_COOLDOWN.max(first))
}

impl Policy {
    /// Cooldown after the `sends`-th message of a verification (1-based): 30 s, 60 s, 120 s, …
    pub fn cooldown_after(&self, sends: u32) -> Duration {
        resend_cooldown_after(self.resend_cooldown, sends)
    }

    /// Checks the values a configuration may set; the error says which one is wrong, so the
    /// configuration can name its key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(4..=10).contains(&self.code_length) {
            return Err(PolicyError::CodeLength(self.code_length));
        }
        if self.code_ttl < Duration::from_secs(10) || self.code_ttl > Duration::from_secs(3600) {
            return Err(PolicyError::CodeTtl);
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(PolicyError::MaxAttempts(self.max_attempts));
        }
        if self.resend_cooldown > MAX_RESEND_COOLDOWN {
            return Err(PolicyError::ResendCooldown);
        }
        let t = &self.tripwire;
        if !(0.0..=1.0).contains(&t.min_approval_rate) {
            return Err(PolicyError::TripwireApprovalRate);
        }
        if t.window < Duration::from_secs(60) {
            return Err(PolicyError::TripwireWindow);
        }
        if t.min_sends == 0 {
            return Err(PolicyError::TripwireMinSends);
        }
        Ok(())
    }
}

/// A policy value outside what the flow can work with; one variant per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("code length must be 4 to 10 digits, not {0}")]
    CodeLength(usize),
    #[error("code ttl must be between 10 and 3600 seconds")]
    CodeTtl,
    #[error("max attempts must be 1 to 20, not {0}")]
    MaxAttempts(u32),
    #[error("resend cooldown must be at most 3600 seconds")]
    ResendCooldown,
    #[error("tripwire: min_approval_rate must be between 0 and 1")]
    TripwireApprovalRate,
    #[error("tripwire: the window must be at least 60 s")]
    TripwireWindow,
    #[error("tripwire: min_sends must be positive")]
    TripwireMinSends,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_doubles_and_stops_growing() {
        let p = Policy::default();
        assert_eq!(p.cooldown_after(1), Duration::from_secs(30));
        assert_eq!(p.cooldown_after(2), Duration::from_secs(60));
        assert_eq!(p.cooldown_after(3), Duration::from_secs(120));
        assert_eq!(p.cooldown_after(40), MAX_RESEND_COOLDOWN);
    }

    #[test]
    fn region_policy_refuses_denied_countries_and_non_personal_kinds() {
        let p = RegionPolicy::default();
        let us = PhoneNumber::parse("+14155550100", None).unwrap();
        assert!(p.allows(&us));
        assert!(!p.allows(&PhoneNumber::parse("+19002345678", None).unwrap()), "premium rate");
        assert!(!p.allows(&PhoneNumber::parse("+18002345678", None).unwrap()), "toll free");
        for satellite_or_network in ["+881612345678", "+870301234567", "+8823421234", "+883510012345"] {
            assert!(!p.allows(&PhoneNumber::parse(satellite_or_network, None).unwrap()), "{satellite_or_network}");
        }
        let deny = RegionPolicy { deny: ["US".to_owned()].into(), ..RegionPolicy::default() };
        assert!(!deny.allows(&us));
        let allow = RegionPolicy { allow: Some(["GB".to_owned()].into()), ..RegionPolicy::default() };
        assert!(!allow.allows(&us));
        assert!(allow.allows(&PhoneNumber::parse("+447400123456", None).unwrap()));
    }

    #[test]
    fn validate_names_bad_values() {
        let p = Policy { code_length: 3, ..Policy::default() };
        assert_eq!(p.validate(), Err(PolicyError::CodeLength(3)));
        assert!(p.validate().unwrap_err().to_string().contains("code length"));
        let mut t = Policy::default();
        t.tripwire.min_sends = 0;
        assert_eq!(t.validate(), Err(PolicyError::TripwireMinSends));
        assert!(Policy::default().validate().is_ok());
    }
}
