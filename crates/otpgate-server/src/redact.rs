//! Secrets out of printed configuration: store URLs may carry a password
//! (`postgres://otpgate:PASSWORD@db/otpgate`, `redis://:PASSWORD@cache:6379`,
//! `postgres://db/otpgate?password=PASSWORD`), which `otpgate config check` and `Debug` must not
//! show. The URL redactor is the store's; this module adapts it to serde.

use serde::Serializer;

// The redactor itself lives with the store URLs it reads (`otpgate_store::redact`), so the
// store's own errors and this printed configuration hide the same passwords.
pub use otpgate_store::redact::url;

/// `serialize_with` for URL fields.
pub fn serialize_url<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url(value))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_secret_in_debug_or_the_redacted_print() {
        let secrets = ["hmac-0123456789abcdef0123456789-S1", "auth-token-S2", "api-key-secret-S3", "bot-S4", "pg-S5"];
        let env: Vec<(String, String)> = [
            ("OTPGATE_SECRETS__HMAC_KEY", secrets[0]),
            ("OTPGATE_PROVIDER__KIND", "twilio-verify"),
            ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", secrets[1]),
            ("OTPGATE_PROVIDER__TWILIO__API_KEY_SID", "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__API_KEY_SECRET", secrets[2]),
            ("OTPGATE_PROVIDER__TWILIO__VERIFY__SERVICE_SID", "VA00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_BOT_CHECK__KIND", "turnstile"),
            ("OTPGATE_BOT_CHECK__SECRET", secrets[3]),
            ("OTPGATE_BOT_CHECK__REQUIRED_FOR", "[\"*\"]"),
            ("OTPGATE_STORE__DURABLE", "postgres://otpgate:pg-S5@db/otpgate"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = crate::Config::load_from(None, &env).expect("valid");
        let debug = format!("{config:?}");
        let printed = config.redacted_json();
        for secret in secrets {
            assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
            assert!(!printed.contains(secret), "the print shows {secret}: {printed}");
        }
        assert!(config.provider.twilio.is_some() && config.bot_check.secret.is_some(), "the secrets were loaded");
    }
}
