//! Builds the SMS provider the configuration names: the demo inbox, Twilio Verify, Twilio
//! Messaging, or an ordered failover list of the Twilio ones.

use std::sync::Arc;

use otpgate_core::{Clock, SmsProvider};
use otpgate_sms::demo::{DemoInbox, DemoProvider};
use otpgate_sms::{Failover, TwilioMessaging, TwilioVerify};

use crate::config::{Config, ConfigError, ProviderKind};

pub struct BuiltProvider {
    pub provider: Arc<dyn SmsProvider>,
    /// The demo inbox, shown at `/dev/inbox` outside production.
    pub inbox: Option<DemoInbox>,
}

pub fn build(config: &Config, clock: &Arc<dyn Clock>) -> Result<BuiltProvider, ConfigError> {
    let kinds = config.provider_kinds();
    if kinds == [ProviderKind::Demo] {
        let demo = DemoProvider::new(clock.clone());
        let inbox = demo.inbox();
        if config.is_production() {
            tracing::warn!("the demo provider is running in production: codes are visible to anyone");
        }
        return Ok(BuiltProvider { provider: Arc::new(demo), inbox: (!config.is_production()).then_some(inbox) });
    }
    let twilio = config
        .provider
        .twilio
        .as_ref()
        .ok_or_else(|| ConfigError::key("provider.twilio", "is required for the twilio providers"))?;
    let named = |e: otpgate_sms::ConfigError| ConfigError::key("provider.twilio", e);
    // One pooled client for every Twilio provider: keep-alive connections are shared.
    let http = otpgate_sms::http::build_client(&twilio.http).map_err(named)?;
    let mut providers: Vec<Arc<dyn SmsProvider>> = Vec::new();
    for kind in kinds {
        providers.push(match kind {
            ProviderKind::TwilioVerify => {
                Arc::new(TwilioVerify::new(twilio, http.clone(), clock.clone()).map_err(named)?)
            }
            ProviderKind::TwilioMessaging => {
                Arc::new(TwilioMessaging::new(twilio, http.clone(), clock.clone()).map_err(named)?)
            }
            ProviderKind::Demo => {
                return Err(ConfigError::key("provider.failover", "the demo provider cannot fail over"));
            }
        });
    }
    let provider: Arc<dyn SmsProvider> =
        if providers.len() == 1 { providers.remove(0) } else { Arc::new(Failover::new(providers)) };
    Ok(BuiltProvider { provider, inbox: None })
}

/// Sends one real message through the configured provider with the current configuration, for
/// `otpgate sms test`. Answers a line for the operator; failures name our error kind only (the
/// provider's own words are in the log).
pub async fn send_test_message(config: &Config, phone: &str) -> Result<String, String> {
    let phone =
        otpgate_core::PhoneNumber::parse(phone, config.region()).map_err(|e| format!("invalid phone number: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(otpgate_core::SystemClock);
    let built = build(config, &clock).map_err(|e| e.to_string())?;
    let code = otpgate_core::Code::generate(config.codes.length);
    let text = format!(
        "This is a test message from {} (otpgate): your SMS configuration works. Test code {}.",
        config.app_name,
        code.expose()
    );
    let msg = otpgate_core::OutgoingCode {
        to: phone.clone(),
        code,
        channel: otpgate_core::Channel::Sms,
        locale: None,
        text,
        verification_id: None,
        expires_at: None,
    };
    match built.provider.send(&msg).await {
        Ok(receipt) => Ok(format!(
            "sent to {} through {} (reference {})",
            phone.masked(),
            built.provider.name(),
            receipt.provider_ref.as_deref().unwrap_or("-")
        )),
        Err(e) => Err(format!("{e} (see the log for the provider's answer)")),
    }
}
