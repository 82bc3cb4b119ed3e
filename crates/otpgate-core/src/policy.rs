//! The knobs of the verification flow, with the product brief's defaults.

use std::time::Duration;

use crate::limits::Rate;

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
    /// Sends (first sends and resends alike) per phone number.
    pub sends_per_phone: Option<Rate>,
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
            sends_per_phone: Some(Rate::new(3, Duration::from_secs(60))),
        }
    }
}

impl Policy {
    /// Cooldown after the `sends`-th message of a verification (1-based): 30 s, 60 s, 120 s, …
    pub fn cooldown_after(&self, sends: u32) -> Duration {
        let doublings = sends.saturating_sub(1).min(20);
        self.resend_cooldown.saturating_mul(1u32 << doublings).min(MAX_RESEND_COOLDOWN.max(self.resend_cooldown))
    }

    /// Checks the values a configuration may set; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=10).contains(&self.code_length) {
            return Err(format!("code length must be 4 to 10 digits, not {}", self.code_length));
        }
        if self.code_ttl < Duration::from_secs(10) || self.code_ttl > Duration::from_secs(3600) {
            return Err("code ttl must be between 10 and 3600 seconds".into());
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(format!("max attempts must be 1 to 20, not {}", self.max_attempts));
        }
        if self.resend_cooldown > MAX_RESEND_COOLDOWN {
            return Err("resend cooldown must be at most 3600 seconds".into());
        }
        Ok(())
    }
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
    fn validate_names_bad_values() {
        let p = Policy { code_length: 3, ..Policy::default() };
        assert!(p.validate().unwrap_err().contains("code length"));
        assert!(Policy::default().validate().is_ok());
    }
}
