//! `twilio-verify`: Twilio makes, sends and checks the code. otpgate still applies its own
//! limits and counts each attempt before asking Twilio, so a brute force never reaches it; the
//! VerificationSid is the `provider_ref` that later checks and cancels use.

use std::sync::Arc;

use async_trait::async_trait;
use otpgate_core::provider::{ProviderCheck, SendReceipt};
use otpgate_core::{Channel, Clock, Code, OutgoingCode, PhoneNumber, ProviderError, SmsProvider};
use serde::Deserialize;
use tracing::{error, warn};

use crate::config::{ConfigError, TwilioConfig, is_sid};
use crate::twilio::{CallError, Class, Ctx, TwilioClient, classify};

/// The parts of Twilio's Verification / VerificationCheck resources we read.
#[derive(Debug, Deserialize)]
struct VerificationResource {
    sid: Option<String>,
    status: Option<String>,
}

pub struct TwilioVerify {
    client: TwilioClient,
    /// `{base}/v2/Services/{VA…}`, without a trailing slash.
    service_url: String,
    channels: Vec<Channel>,
}

impl TwilioVerify {
    pub const NAME: &'static str = "twilio-verify";

    /// Needs `cfg.verify`. `http` is the shared client (`http::build_client`); `clock` drives
    /// the circuit breaker.
    pub fn new(cfg: &TwilioConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Self::named(Self::NAME, cfg, http, clock)
    }

    /// As `new`, under a configured provider name (logs, metrics, readiness).
    pub fn named(
        name: &'static str,
        cfg: &TwilioConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let verify = cfg.verify.as_ref().ok_or_else(|| ConfigError("twilio-verify needs a [verify] section".into()))?;
        let client = TwilioClient::new(cfg, http, clock, name)?;
        let service_url = format!("{}/v2/Services/{}", verify.base_url.trim_end_matches('/'), verify.service_sid);
        Ok(TwilioVerify { client, service_url, channels: verify.parsed_channels()? })
    }
}

/// Twilio falls back to the number's country language for a locale it lacks, but a malformed
/// value could be refused as an invalid parameter (60200, which we would read as a bad number):
/// pass only well-formed BCP 47 tags.
fn locale_param(locale: Option<&str>) -> Option<&str> {
    locale.filter(|l| {
        (2..=16).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && l.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
    })
}

#[async_trait]
impl SmsProvider for TwilioVerify {
    fn name(&self) -> &'static str {
        self.client.provider()
    }

    fn supports(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            // The service refuses unsupported channels before calling us; this is a bug guard.
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let masked = msg.to.masked();
        let ctx = Ctx { op: "verify.start", phone: Some(&masked) };
        let mut form = vec![("To", msg.to.e164()), ("Channel", msg.channel.as_str())];
        if let Some(locale) = locale_param(msg.locale.as_deref()) {
            form.push(("Locale", locale));
        }
        let url = format!("{}/Verifications", self.service_url);
        let v: VerificationResource =
            self.client.post_form(&url, &form, ctx).await.map_err(|e| self.client.send_error(e, ctx))?;
        match v.sid {
            Some(sid) if is_sid(&sid, "VE") => {
                Ok(SendReceipt { provider_ref: Some(sid), provider_checks: true, ..SendReceipt::default() })
            }
            _ => {
                // Without the SID the code could never be checked: better to fail the send now.
                error!(event = "sms.provider.bad_answer", provider = self.client.provider(), op = ctx.op, phone = %masked, "Twilio's answer has no VerificationSid");
                Err(ProviderError::Unavailable { retry_after: None })
            }
        }
    }

    async fn check(
        &self,
        provider_ref: &str,
        phone: &PhoneNumber,
        code: &Code,
    ) -> Result<ProviderCheck, ProviderError> {
        // Only our own stored SIDs get here, but a path segment is no place to trust input.
        if !is_sid(provider_ref, "VE") {
            warn!(
                event = "sms.provider.bad_ref",
                provider = self.client.provider(),
                "not a VerificationSid; treating as not found"
            );
            return Ok(ProviderCheck::NotFound);
        }
        let masked = phone.masked();
        let ctx = Ctx { op: "verify.check", phone: Some(&masked) };
        let url = format!("{}/VerificationCheck", self.service_url);
        let form = [("VerificationSid", provider_ref), ("Code", code.expose())];
        match self.client.post_form::<VerificationResource>(&url, &form, ctx).await {
            // `pending` after a check means the code was wrong; anything else but `approved`
            // (canceled, expired, max_attempts_reached) means there is nothing left to approve.
            Ok(v) => Ok(match v.status.as_deref() {
                Some("approved") => ProviderCheck::Approved,
                Some("pending") => ProviderCheck::Wrong,
                _ => ProviderCheck::NotFound,
            }),
            Err(CallError::Refused(t))
                if matches!(classify(t.status, t.code), Class::MaxCheckAttempts | Class::NotFound) =>
            {
                let class = classify(t.status, t.code);
                self.client.log(&t, class, ctx);
                Ok(if class == Class::MaxCheckAttempts {
                    ProviderCheck::TooManyAttempts
                } else {
                    ProviderCheck::NotFound
                })
            }
            Err(e) => Err(self.client.send_error(e, ctx)),
        }
    }

    async fn cancel(&self, provider_ref: &str) -> Result<(), ProviderError> {
        if !is_sid(provider_ref, "VE") {
            return Ok(());
        }
        let ctx = Ctx { op: "verify.cancel", phone: None };
        let url = format!("{}/Verifications/{provider_ref}", self.service_url);
        match self.client.post_form::<VerificationResource>(&url, &[("Status", "canceled")], ctx).await {
            Ok(_) => Ok(()),
            // Already approved, expired or canceled: the goal is met.
            Err(CallError::Refused(t)) if classify(t.status, t.code) == Class::NotFound => Ok(()),
            Err(e) => Err(self.client.send_error(e, ctx)),
        }
    }

    async fn readiness(&self) -> Result<(), String> {
        self.client.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_locales_are_passed_on() {
        assert_eq!(locale_param(Some("en")), Some("en"));
        assert_eq!(locale_param(Some("pt-BR")), Some("pt-BR"));
        assert_eq!(locale_param(Some("e")), None);
        assert_eq!(locale_param(Some("en&Channel=call")), None);
        assert_eq!(locale_param(Some("-en")), None);
        assert_eq!(locale_param(None), None);
    }
}
