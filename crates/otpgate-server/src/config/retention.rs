//! `[retention]`: how long verifications are kept and how often expired data is swept (see
//! `crate::retention`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

/// `[retention]`: how long what is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Hours a verification (and the phone number in it) is kept after it ends (1–8760).
    pub verification_hours: u64,
    /// Seconds between sweeps (10–86400).
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { verification_hours: 24, sweep_interval_secs: 300 }
    }
}

impl RetentionConfig {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.verification_hours * 3600)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // At least an hour: a dead verification must outlive its code (`codes.ttl_secs` ≤ 1 h),
        // or deleting it would let a new guess series start early.
        if !(1..=8760).contains(&self.verification_hours) {
            return Err(bad("retention.verification_hours", "must be between 1 and 8760"));
        }
        if !(10..=86_400).contains(&self.sweep_interval_secs) {
            return Err(bad("retention.sweep_interval_secs", "must be between 10 and 86400"));
        }
        Ok(())
    }
}
