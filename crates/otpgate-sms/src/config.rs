//! Configuration for the Twilio providers and the HTTP client they share. The server embeds
//! `TwilioConfig` in its own config; `validate` runs at start so a bad SID or a missing secret
//! stops the process instead of failing the first user.

use std::time::Duration;

use otpgate_core::Channel;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// Everything needed to talk to one Twilio account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Account SID (`AC` + 32 hex digits). Part of Messaging's URL, and the Basic-auth user
    /// when no API key is set.
    pub account_sid: String,
    /// API key SID (`SK` + 32 hex digits). Preferred over the auth token: it can be revoked on
    /// its own and does not open the whole account.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// The API key's secret; required with `api_key_sid`.
    #[serde(default, serialize_with = "redact")]
    pub api_key_secret: Option<SecretString>,
    /// The account's auth token. Used for REST calls when no API key is set, and always to check
    /// the `X-Twilio-Signature` of status callbacks (Twilio signs them with this token even when
    /// calls use an API key).
    #[serde(default, serialize_with = "redact")]
    pub auth_token: Option<SecretString>,
    /// Settings for the `twilio-verify` provider; required to build it.
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
    /// Settings for the `twilio-messaging` provider; required to build it.
    #[serde(default)]
    pub messaging: Option<MessagingConfig>,
    /// Timeouts and connection pool of the HTTP client.
    #[serde(default)]
    pub http: HttpConfig,
    /// Retries of calls that cannot have sent anything.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to stop calling Twilio for a while.
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// Twilio Verify: Twilio makes, sends and checks the code.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Verify service SID (`VA` + 32 hex digits).
    pub service_sid: String,
    /// Channels this service is set up for at Twilio (`sms`, `whatsapp`, `call`). WhatsApp needs
    /// a sender configured on the service, so only `sms` is on by default.
    #[serde(default = "default_verify_channels")]
    pub channels: Vec<String>,
    /// Base URL of the Verify API; tests point it at loopback.
    #[serde(default = "default_verify_base_url")]
    pub base_url: String,
}

/// Twilio Programmable Messaging: otpgate makes the code and sends its own text.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingConfig {
    /// Sender phone number (E.164) or alphanumeric sender id. Exactly one of `from` and
    /// `messaging_service_sid` must be set.
    #[serde(default)]
    pub from: Option<String>,
    /// Messaging service SID (`MG` + 32 hex digits); Twilio picks the sender from its pool.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Public URL of otpgate's status-callback endpoint. When set, Twilio reports delivery there
    /// and the server checks each report with `callback::verify_signature` against this exact
    /// string, so it must be the URL as Twilio will call it.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// Base URL of the REST API (`/2010-04-01/...`); tests point it at loopback.
    #[serde(default = "default_api_base_url")]
    pub base_url: String,
    /// WhatsApp through Messaging: the SID (`HX` + 32 hex digits) of an approved content
    /// template (an authentication template) whose variable `{{1}}` is the code. Unset: no
    /// WhatsApp through this provider.
    #[serde(default)]
    pub whatsapp_content_sid: Option<String>,
    /// The WhatsApp sender's number (E.164, sent as `whatsapp:+…`). Unset: the messaging
    /// service picks its WhatsApp sender (needs `messaging_service_sid`).
    #[serde(default)]
    pub whatsapp_from: Option<String>,
}

/// The shared HTTP client's limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest wait for a TCP + TLS connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest wait for one whole request and its response, in milliseconds.
    pub request_timeout_ms: u64,
    /// Idle keep-alive connections kept per host, so a send rarely pays for a handshake.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept, in seconds.
    pub pool_idle_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            pool_max_idle_per_host: 8,
            pool_idle_timeout_secs: 90,
        }
    }
}

/// Retries happen only where a repeat cannot send a second message: connect errors, 503, and
/// 429 with a `Retry-After` that fits in the deadline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first try (0 disables retrying).
    pub max_retries: usize,
    /// First backoff delay, in milliseconds; doubles per retry, with jitter.
    pub min_delay_ms: u64,
    /// Longest backoff delay, in milliseconds.
    pub max_delay_ms: u64,
    /// Total time for one provider call, all tries and waits included, in milliseconds. The user
    /// is waiting on the other end, so past this the call is `provider_unavailable`.
    pub deadline_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_retries: 2, min_delay_ms: 200, max_delay_ms: 2_000, deadline_ms: 8_000 }
    }
}

/// The circuit breaker: after `failure_threshold` consecutive failures (timeouts, connect
/// errors, 5xx, rejected credentials) calls fail at once for `open_secs`, then one probe decides.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it lets one probe through, in seconds.
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, open_secs: 30 }
    }
}

/// Secrets serialise as `<redacted>` (for `otpgate config check`), never as their value.
pub(crate) fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

fn default_verify_channels() -> Vec<String> {
    vec!["sms".to_owned()]
}

fn default_verify_base_url() -> String {
    "https://verify.twilio.com".to_owned()
}

fn default_api_base_url() -> String {
    "https://api.twilio.com".to_owned()
}

/// A configuration the providers refuse to start with. Names the field, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Twilio SIDs are a two-letter type prefix and 32 hex digits; checking the shape here turns a
/// pasted auth token or a swapped field into a start-up error instead of a 404 at the first send.
pub fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Base URLs must be https, except on loopback where tests run their fakes.
pub(crate) fn check_base_url(field: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| err(format!("{field} is not a URL")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(err(format!("{field} must be https (plain http only on loopback)"))),
    }
}

impl TwilioConfig {
    /// Checks shapes and combinations; the server calls it at start and refuses to run on error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_sid(&self.account_sid, "AC") {
            return Err(err("account_sid must be AC followed by 32 hex digits"));
        }
        match (&self.api_key_sid, &self.api_key_secret, &self.auth_token) {
            (Some(sid), Some(_), _) if is_sid(sid, "SK") => {}
            (Some(_), Some(_), _) => return Err(err("api_key_sid must be SK followed by 32 hex digits")),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(err("api_key_sid and api_key_secret go together"));
            }
            (None, None, Some(_)) => {}
            (None, None, None) => return Err(err("set api_key_sid + api_key_secret, or auth_token")),
        }
        if self.verify.is_none() && self.messaging.is_none() {
            return Err(err("configure [verify] or [messaging] (or both)"));
        }
        if let Some(v) = &self.verify {
            if !is_sid(&v.service_sid, "VA") {
                return Err(err("verify.service_sid must be VA followed by 32 hex digits"));
            }
            v.parsed_channels()?;
            check_base_url("verify.base_url", &v.base_url)?;
        }
        if let Some(m) = &self.messaging {
            match (&m.from, &m.messaging_service_sid) {
                (Some(from), None) if !from.trim().is_empty() => {}
                (None, Some(mg)) if is_sid(mg, "MG") => {}
                (None, Some(_)) => {
                    return Err(err("messaging.messaging_service_sid must be MG followed by 32 hex digits"));
                }
                _ => return Err(err("set exactly one of messaging.from and messaging.messaging_service_sid")),
            }
            if let Some(url) = &m.status_callback_url {
                check_base_url("messaging.status_callback_url", url)?;
                if self.auth_token.is_none() {
                    return Err(err("messaging.status_callback_url needs auth_token to check callback signatures"));
                }
            }
            check_base_url("messaging.base_url", &m.base_url)?;
            match (&m.whatsapp_content_sid, &m.whatsapp_from) {
                (Some(hx), _) if !is_sid(hx, "HX") => {
                    return Err(err("messaging.whatsapp_content_sid must be HX followed by 32 hex digits"));
                }
                (Some(_), Some(from)) if !from.starts_with('+') || from.len() < 8 => {
                    return Err(err("messaging.whatsapp_from must be an E.164 number (+…)"));
                }
                (Some(_), None) if m.messaging_service_sid.is_none() => {
                    return Err(err("messaging.whatsapp_content_sid needs whatsapp_from or messaging_service_sid"));
                }
                (None, Some(_)) => return Err(err("messaging.whatsapp_from needs whatsapp_content_sid")),
                _ => {}
            }
        }
        self.http.validate(&self.retry, &self.breaker)
    }
}

impl VerifyConfig {
    pub(crate) fn parsed_channels(&self) -> Result<Vec<Channel>, ConfigError> {
        if self.channels.is_empty() {
            return Err(err("verify.channels must not be empty"));
        }
        self.channels
            .iter()
            .map(|c| c.parse::<Channel>().map_err(|()| err(format!("verify.channels: unknown channel {c:?}"))))
            .collect()
    }
}

impl HttpConfig {
    /// Checks the timeouts, retries and breaker of one provider (every kind has the three).
    pub(crate) fn validate(&self, retry: &RetryConfig, breaker: &BreakerConfig) -> Result<(), ConfigError> {
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(err("http timeouts must be above zero"));
        }
        if retry.deadline_ms < self.request_timeout_ms {
            return Err(err("retry.deadline_ms must be at least http.request_timeout_ms"));
        }
        if breaker.failure_threshold == 0 {
            return Err(err("breaker.failure_threshold must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Obviously fake SIDs in Twilio's shapes (test values only).
    pub(crate) const FAKE_AC: &str = "AC00000000000000000000000000000000"; // fake test SID
    const FAKE_SK: &str = "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; // fake test SID
    const FAKE_VA: &str = "VA00000000000000000000000000000000"; // fake test SID

    fn parse(toml_like: serde_json::Value) -> TwilioConfig {
        serde_json::from_value(toml_like).unwrap()
    }

    #[test]
    fn minimal_verify_config_is_valid_and_defaults_apply() {
        let cfg = parse(serde_json::json!({
            "account_sid": FAKE_AC, "api_key_sid": FAKE_SK, "api_key_secret": "fake-secret",
            "verify": { "service_sid": FAKE_VA }
        }));
        cfg.validate().unwrap();
        assert_eq!(cfg.verify.as_ref().unwrap().base_url, "https://verify.twilio.com");
        assert_eq!(cfg.retry.max_retries, 2);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let res: Result<TwilioConfig, _> = serde_json::from_value(serde_json::json!({
            "account_sid": FAKE_AC, "auth_token": "fake", "verfiy": {}
        }));
        assert!(res.is_err());
    }

    #[test]
    fn bad_shapes_are_refused_without_echoing_secrets() {
        let mut cfg = parse(serde_json::json!({
            "account_sid": FAKE_AC, "auth_token": "fake-token-value",
            "messaging": { "from": "+15005550006", "base_url": "http://twilio.example.com" }
        }));
        let e = cfg.validate().unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(!e.to_string().contains("fake-token-value"));
        cfg.messaging.as_mut().unwrap().base_url = "http://127.0.0.1:9".into();
        cfg.validate().unwrap();
        cfg.account_sid = "fake-token-value".into();
        assert!(!cfg.validate().unwrap_err().to_string().contains("fake-token-value"));
    }

    #[test]
    fn messaging_needs_exactly_one_sender_and_callbacks_need_the_token() {
        let cfg = parse(serde_json::json!({
            "account_sid": FAKE_AC, "api_key_sid": FAKE_SK, "api_key_secret": "fake",
            "messaging": { "status_callback_url": "https://otp.example.com/v1/sms/status" }
        }));
        assert!(cfg.validate().is_err());
        let cfg = parse(serde_json::json!({
            "account_sid": FAKE_AC, "api_key_sid": FAKE_SK, "api_key_secret": "fake",
            "messaging": { "from": "+15005550006", "status_callback_url": "https://otp.example.com/v1/sms/status" }
        }));
        assert!(cfg.validate().unwrap_err().to_string().contains("auth_token"));
    }

    #[test]
    fn verify_channels_are_checked() {
        let cfg = parse(serde_json::json!({
            "account_sid": FAKE_AC, "auth_token": "fake",
            "verify": { "service_sid": FAKE_VA, "channels": ["sms", "fax"] }
        }));
        assert!(cfg.validate().unwrap_err().to_string().contains("fax"));
    }
}
