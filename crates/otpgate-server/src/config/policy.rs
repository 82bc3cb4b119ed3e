//! `[codes]` and `[tripwire]`: the verification flow's own knobs (see `Config::policy`).

use otpgate_core::Policy;
use serde::{Deserialize, Serialize};

use super::RateConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodesConfig {
    /// Digits per code, 4–10.
    pub length: usize,
    /// Seconds a code stays valid.
    pub ttl_secs: u64,
    /// Wrong codes a verification survives.
    pub max_attempts: u32,
    /// Seconds before the first resend; doubles with each resend.
    pub resend_cooldown_secs: u64,
}

impl Default for CodesConfig {
    fn default() -> Self {
        let p = Policy::default();
        CodesConfig {
            length: p.code_length,
            ttl_secs: p.code_ttl.as_secs(),
            max_attempts: p.max_attempts,
            resend_cooldown_secs: p.resend_cooldown.as_secs(),
        }
    }
}

/// The SMS-pumping tripwire (sends vs approvals per country).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TripwireConfig {
    pub enabled: bool,
    /// Sliding window, seconds.
    pub window_secs: u64,
    /// Sends in the window before the approval rate counts.
    pub min_sends: u64,
    /// Trip when approvals / sends falls below this (0–1).
    pub min_approval_rate: f64,
    /// What a tripped country may still send.
    pub trickle: RateConfig,
}

impl Default for TripwireConfig {
    fn default() -> Self {
        let d = otpgate_core::TripwirePolicy::default();
        TripwireConfig {
            enabled: d.enabled,
            window_secs: d.window.as_secs(),
            min_sends: d.min_sends,
            min_approval_rate: d.min_approval_rate,
            trickle: RateConfig::new(d.trickle.count, d.trickle.period.as_secs()),
        }
    }
}
