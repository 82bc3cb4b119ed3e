//! Rules across keys, checked after every value has been parsed into its type.

use secrecy::ExposeSecret;

use super::{Config, ConfigError, ProviderKind, bad};

impl Config {
    fn validate_provider(&self) -> Result<(), ConfigError> {
        let kinds = self.provider_kinds();
        if kinds.len() > 1 && kinds.contains(&ProviderKind::Demo) {
            return Err(bad("provider.failover", "the demo provider cannot be part of a failover list"));
        }
        let mut seen = Vec::new();
        for kind in &kinds {
            if seen.contains(kind) {
                return Err(bad("provider.failover", "lists a provider twice"));
            }
            seen.push(*kind);
        }
        let needs_twilio = kinds.iter().any(|k| *k != ProviderKind::Demo);
        match (&self.provider.twilio, needs_twilio) {
            (None, true) => return Err(bad("provider.twilio", "is required for the twilio providers")),
            (Some(twilio), _) => {
                twilio.validate().map_err(|e| bad("provider.twilio", e))?;
                if kinds.contains(&ProviderKind::TwilioVerify) && twilio.verify.is_none() {
                    return Err(bad("provider.twilio.verify", "is required for twilio-verify"));
                }
                if kinds.contains(&ProviderKind::TwilioMessaging) && twilio.messaging.is_none() {
                    return Err(bad("provider.twilio.messaging", "is required for twilio-messaging"));
                }
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// Everything that must hold before serving, beyond each value's own type (parsed at load):
    /// ranges, rules across keys, and what production refuses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store.validate()?;
        self.policy().validate().map_err(|e| bad(policy_key(e), e))?;
        for (name, rate) in self.limits.named() {
            if rate.count > 0 && rate.period_secs == 0 {
                return Err(bad(&format!("limits.{name}"), "period_secs must be positive (count = 0 switches it off)"));
            }
        }
        if self.tripwire.trickle.period_secs == 0 {
            return Err(bad("tripwire.trickle", "period_secs must be positive"));
        }
        self.message_templates()?;
        if let Some(kind) = self.bot_check.kind
            && self.bot_check.secret.is_none()
        {
            return Err(bad("bot_check.secret", format!("is required for {kind:?}")));
        }
        if self.bot_check.passed_limit_factor > 1000 {
            return Err(bad("bot_check.passed_limit_factor", "must be between 0 and 1000"));
        }
        if self.app_name.trim().is_empty() || self.app_name.len() > 40 {
            return Err(bad("app_name", "must be 1 to 40 characters"));
        }
        if self.http.body_limit_bytes < 256 || self.http.body_limit_bytes > 1 << 20 {
            return Err(bad("http.body_limit_bytes", "must be between 256 and 1048576"));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(bad("http.request_timeout_secs", "must be positive"));
        }
        self.edge().validate()?;
        if let Some(key) = &self.secrets.hmac_key
            && key.expose_secret().len() < otpgate_core::code::MIN_KEY_LEN
        {
            return Err(bad("secrets.hmac_key", "must be at least 32 bytes"));
        }
        self.validate_provider()?;
        self.tls.validate()?;
        self.retention.validate()?;
        crate::transport::check_plain_http(self)?;
        let s = &self.sessions;
        if s.issuer.trim().is_empty() || s.audience.trim().is_empty() {
            return Err(bad("sessions.issuer", "issuer and audience must not be empty"));
        }
        if !(60..=86_400).contains(&s.access_ttl_secs) {
            return Err(bad("sessions.access_ttl_secs", "must be between 60 and 86400"));
        }
        if !(s.access_ttl_secs..=366 * 86_400).contains(&s.refresh_ttl_secs) {
            return Err(bad(
                "sessions.refresh_ttl_secs",
                "must be at least the access-token lifetime and at most 366 days",
            ));
        }
        if s.refresh_reuse_grace_secs > 60 {
            return Err(bad("sessions.refresh_reuse_grace_secs", "must be between 0 and 60"));
        }
        let test_numbers = self.effective_test_numbers()?;
        if self.is_production() {
            if self.secrets.hmac_key.is_none() {
                return Err(bad("secrets.hmac_key", "is required in production (or OTPGATE_SECRETS__HMAC_KEY_FILE)"));
            }
            if s.enabled && s.keys_file.is_none() {
                return Err(bad(
                    "sessions.keys_file",
                    "is required in production (create the file with `otpgate keys rotate --file PATH`)",
                ));
            }
            match self.provider_kind() {
                None => return Err(bad("provider.kind", "must be set in production")),
                Some(ProviderKind::Demo) if !self.dangerously_allow_demo_provider_in_production => {
                    return Err(bad(
                        "provider.kind",
                        "the demo provider shows codes to anyone; refused in production \
                         (dangerously_allow_demo_provider_in_production overrides)",
                    ));
                }
                _ => {}
            }
            if !test_numbers.is_empty() && !self.dangerously_allow_test_numbers_in_production {
                return Err(bad(
                    "test_numbers",
                    "test numbers have public codes; refused in production \
                     (dangerously_allow_test_numbers_in_production overrides)",
                ));
            }
        }
        Ok(())
    }
}

/// The configuration key of the policy value that `e` is about.
fn policy_key(e: otpgate_core::PolicyError) -> &'static str {
    use otpgate_core::PolicyError::*;
    match e {
        CodeLength(_) => "codes.length",
        CodeTtl => "codes.ttl_secs",
        MaxAttempts(_) => "codes.max_attempts",
        ResendCooldown => "codes.resend_cooldown_secs",
        TripwireApprovalRate => "tripwire.min_approval_rate",
        TripwireWindow => "tripwire.window_secs",
        TripwireMinSends => "tripwire.min_sends",
    }
}
