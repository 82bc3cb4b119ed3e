//! Builds the SMS router the configuration names: `[providers.NAME]` with `[[routing]]`, or the
//! old `[provider]` table as one route for every country over its providers in failover order.
//! Either way the server holds one `Router`; the demo inbox and the delivery-receipt checks come
//! out beside it.

use std::sync::Arc;

use otpgate_core::{Clock, SmsProvider};
use otpgate_sms::Router;
use otpgate_sms::demo::DemoInbox;

use crate::config::{Config, ConfigError};
use crate::routes::receipts::Receipts;

pub struct BuiltProvider {
    pub provider: Arc<dyn SmsProvider>,
    /// The same router, for readiness per provider and `sms test --provider`.
    pub router: Arc<Router>,
    /// The demo inbox, shown at `/dev/inbox` outside production.
    pub inbox: Option<DemoInbox>,
    /// How each provider's delivery receipts are authenticated.
    pub receipts: Receipts,
}

pub fn build(config: &Config, clock: &Arc<dyn Clock>) -> Result<BuiltProvider, ConfigError> {
    let (providers, routes) = config.sms_providers();
    // `validate` checked each table with its key; what is left is across providers (a
    // fallback channel no provider of the route supports).
    let key = if config.uses_named_providers() { "routing" } else { "provider" };
    let built = otpgate_sms::router::build(&providers, &routes, clock.clone()).map_err(|e| ConfigError::key(key, e))?;
    if built.inbox.is_some() && config.is_production() {
        tracing::warn!("the demo provider is running in production: codes are visible to anyone");
    }
    Ok(BuiltProvider {
        provider: built.router.clone(),
        router: built.router,
        inbox: built.inbox.filter(|_| !config.is_production()),
        receipts: Receipts::from_config(&providers),
    })
}

/// For `otpgate config check`: builds the providers (some rules need them built, like a route's
/// fallback channel that one of its providers must support) and answers the effective route of
/// each country that has one.
pub fn check(config: &Config) -> Result<Vec<otpgate_sms::router::EffectiveRoute>, ConfigError> {
    let clock: Arc<dyn Clock> = Arc::new(otpgate_core::SystemClock);
    build(config, &clock)?;
    config.effective_routes()
}

/// Sends one real message with the current configuration, for `otpgate sms test`: through the
/// provider named `provider`, or else by the number's route. Answers a line for the operator;
/// failures name our error kind only (the provider's own words are in the log).
pub async fn send_test_message(config: &Config, phone: &str, provider: Option<&str>) -> Result<String, String> {
    let phone =
        otpgate_core::PhoneNumber::parse(phone, config.region()).map_err(|e| format!("invalid phone number: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(otpgate_core::SystemClock);
    let built = build(config, &clock).map_err(|e| e.to_string())?;
    let sender: Arc<dyn SmsProvider> = match provider {
        Some(name) => built
            .router
            .provider(name)
            .ok_or_else(|| format!("no provider named `{name}` (configured: {})", built.router.names().join(", ")))?,
        None => built.provider.clone(),
    };
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
    match sender.send(&msg).await {
        Ok(receipt) => Ok(format!(
            "sent to {} through {} (reference {})",
            phone.masked(),
            receipt.provider.unwrap_or(sender.name()),
            receipt.provider_ref.as_deref().unwrap_or("-")
        )),
        Err(e) => Err(format!("{e} (see the log for the provider's answer)")),
    }
}
