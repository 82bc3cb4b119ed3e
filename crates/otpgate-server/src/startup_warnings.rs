//! Warnings at start about configurations that are allowed but easy to get wrong: a test
//! number (public, fixed code) next to a real SMS provider, and development mode (no production
//! safeguards) with a real provider on an address other hosts can reach. Logged once, when the
//! application is built, so they are the first lines an operator sees.

use otpgate_core::PhoneNumber;

use crate::config::{Config, ProviderKind};

/// Logs every warning that applies to `config` (already validated).
pub fn log(config: &Config) {
    let real_provider = config.provider_kinds().iter().any(|k| *k != ProviderKind::Demo);
    if !real_provider {
        return;
    }
    // Only explicitly listed numbers exist with a real provider (`Config::effective_test_numbers`).
    for number in config.effective_test_numbers().unwrap_or_default().keys() {
        let masked = PhoneNumber::from_e164(number).map(|p| p.masked()).unwrap_or_else(|_| "*****".into());
        tracing::warn!(
            event = "startup.test_number",
            phone = %masked,
            "test number {masked} is active with a real SMS provider: it never gets a message and its code \
             is fixed, so anyone who knows both signs in as it (remove it from `test_numbers` unless this \
             deployment is a test)"
        );
    }
    if !config.is_production() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            event = "startup.unsafe_environment",
            listen = %config.listen,
            "!!! DEVELOPMENT MODE ON A NON-LOOPBACK ADDRESS WITH A REAL SMS PROVIDER !!! `environment` is \
             `development` (the default), so none of the production safeguards apply: plain HTTP on a public \
             address, generated secrets and signing keys, test numbers and the demo provider are all allowed. \
             Set `environment = \"production\"` for a real deployment."
        );
    }
}
