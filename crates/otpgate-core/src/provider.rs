//! The SMS provider trait and the message a provider sends.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Channel, Code, PhoneNumber};

/// One code to deliver.
#[derive(Debug, Clone)]
pub struct OutgoingCode {
    pub to: PhoneNumber,
    pub code: Code,
    pub channel: Channel,
    pub locale: Option<String>,
    /// The rendered text, for providers that send our own message.
    pub text: String,
}

/// What a provider reports about a delivery attempt, already sorted into the rows of our error
/// table. Provider codes and texts are logged by the provider, never carried further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider says the number is invalid")]
    InvalidNumber,
    #[error("the provider cannot deliver to this number")]
    Undeliverable,
    #[error("the provider refuses this region")]
    UnsupportedRegion,
    #[error("the provider rate-limited us")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider is unavailable")]
    Unavailable { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, Default)]
pub struct SendReceipt {
    /// The provider's id for what it sent (message SID, verification SID).
    pub provider_ref: Option<String>,
    /// True when the provider made its own code and checks it (Twilio Verify): the code in
    /// `OutgoingCode` was never sent, so checks for this verification must go to
    /// `SmsProvider::check` with `provider_ref`, after the attempt was counted locally.
    pub provider_checks: bool,
}

/// What a provider that holds the code (see `SendReceipt::provider_checks`) says about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderCheck {
    Approved,
    /// Wrong code; the verification is still pending at the provider.
    Wrong,
    /// The provider's own cap on wrong codes was reached (Twilio 60202): `too_many_attempts`.
    TooManyAttempts,
    /// The provider no longer knows the verification: expired, used or cancelled (Twilio 20404
    /// on a check): `verification_not_found`.
    NotFound,
}

#[async_trait]
pub trait SmsProvider: Send + Sync + 'static {
    /// Short name for logs and metrics (`demo`, `twilio-verify`, …).
    fn name(&self) -> &'static str;

    fn supports(&self, channel: Channel) -> bool;

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError>;

    /// `Err(reason)` when the provider cannot currently send (bad credentials, breaker open).
    async fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Checks `code` against the provider-held verification `provider_ref` (only for receipts
    /// with `provider_checks`). Providers that do not hold codes never get here; answering
    /// `Unavailable` keeps a wiring mistake from approving anything.
    async fn check(
        &self,
        _provider_ref: &str,
        _phone: &PhoneNumber,
        _code: &Code,
    ) -> Result<ProviderCheck, ProviderError> {
        Err(ProviderError::Unavailable { retry_after: None })
    }

    /// Tells the provider that a verification was abandoned or replaced, so it stops counting
    /// it (Twilio's per-number send limit, 60203, counts pending verifications). Best effort:
    /// the caller logs a failure and goes on. Providers that hold nothing do nothing.
    async fn cancel(&self, _provider_ref: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The default message: the code first (so it shows in notification previews), the app's name,
/// the expiry, and the WebOTP line when a domain is configured so browsers can fill the code in.
pub fn render_message(app_name: &str, code: &Code, ttl: Duration, webotp_domain: Option<&str>) -> String {
    let minutes = ttl.as_secs().div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    let mut text = format!(
        "{code} is your {app_name} verification code. It expires in {minutes} {unit}. Do not share it.",
        code = code.expose()
    );
    if let Some(domain) = webotp_domain {
        text.push_str(&format!("\n\n@{domain} #{}", code.expose()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_app_code_expiry_and_webotp_line() {
        let code = Code::parse("123456", 6).unwrap();
        let text = render_message("Acme", &code, Duration::from_secs(120), Some("example.com"));
        assert!(text.starts_with("123456 is your Acme verification code"));
        assert!(text.contains("2 minutes"));
        assert!(text.ends_with("\n\n@example.com #123456"));
        let plain = render_message("Acme", &code, Duration::from_secs(60), None);
        assert!(plain.contains("1 minute.") && !plain.contains('@'));
    }
}
