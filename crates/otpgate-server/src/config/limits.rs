//! `[limits]`: every rate limit, each `count` events per `period_secs`. The eleven limits are
//! listed once, in `limits!` below: the configuration struct, its defaults, the names that
//! errors use and the core's `LimitSet` all come from that one table.

use std::time::Duration;

use otpgate_core::limits::Rate;
use serde::{Deserialize, Serialize};

/// `count` events per `period_secs` (a burst of `count`, refilling one every
/// `period_secs / count`); `count = 0` switches the limit off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub count: u32,
    pub period_secs: u64,
}

impl RateConfig {
    pub(super) const fn new(count: u32, period_secs: u64) -> Self {
        RateConfig { count, period_secs }
    }

    /// The rate, or `None` when the limit is switched off.
    pub(super) fn rate(self) -> Option<Rate> {
        (self.count > 0).then(|| Rate::new(self.count, Duration::from_secs(self.period_secs)))
    }
}

/// One table: `name: (count, period_secs)` with its doc. Each name is a key under `[limits]`
/// and a field of `otpgate_core::LimitSet`.
macro_rules! limits {
    ($($(#[doc = $doc:literal])* $name:ident: ($count:expr, $period:expr),)+) => {
        /// Every rate limit; see `docs/configuration.md`.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct LimitsConfig {
            $($(#[doc = $doc])* pub $name: RateConfig,)+
        }

        impl Default for LimitsConfig {
            fn default() -> Self {
                LimitsConfig { $($name: RateConfig::new($count, $period),)+ }
            }
        }

        impl LimitsConfig {
            /// Each limit with its key under `[limits]`.
            pub fn named(&self) -> Vec<(&'static str, RateConfig)> {
                vec![$((stringify!($name), self.$name),)+]
            }

            /// The core's limit set, with the IPv6 grouping of the per-IP limits.
            pub(super) fn set(&self, ipv6_prefix: otpgate_core::Ipv6Prefix) -> otpgate_core::LimitSet {
                otpgate_core::LimitSet { $($name: self.$name.rate(),)+ ipv6_prefix }
            }
        }
    };
}

limits! {
    /// Sends per phone number.
    phone_send: (3, 60),
    phone_send_hourly: (10, 3600),
    phone_send_daily: (20, 86_400),
    /// Sends per client IP.
    ip_send: (10, 60),
    ip_send_hourly: (100, 3600),
    /// Sends per number prefix (the number without its last four digits).
    prefix_send: (20, 3600),
    /// Sends per country (off by default).
    country_send: (0, 3600),
    /// Sends over all numbers: the spend cap.
    global_send_hourly: (10_000, 3600),
    global_send_daily: (100_000, 86_400),
    /// Failed checks per phone across verifications; a success clears them.
    phone_check_failures: (20, 3600),
    /// Checks per client IP.
    ip_check: (30, 60),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_limit_once_and_matches_the_core_defaults() {
        let config = LimitsConfig::default();
        let names: Vec<&str> = config.named().iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), 11);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json.as_object().unwrap().keys().count(), names.len(), "one key per limit");
        assert!(names.iter().all(|n| json.get(n).is_some()), "the names are the keys");
        assert_eq!(config.set(otpgate_core::Ipv6Prefix::DEFAULT), otpgate_core::LimitSet::default());
    }
}
