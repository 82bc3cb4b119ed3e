//! `webhook`: for any other gateway. otpgate POSTs one JSON message per send to the configured
//! `url`, signed per the Standard Webhooks specification:
//!
//! ```text
//! webhook-id: msg_…            (the same for every try of one send: an idempotency key)
//! webhook-timestamp: 1674087231 (Unix seconds of this try)
//! webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"> [v1,<… previous_secret>]
//! {"type":"otp.message","to":"+14155550100","channel":"sms","locale":"en","text":"…","code":"123456",
//!  "verification_id":"vf_…","expires_at":"2026-11-24T10:02:00Z"}
//! ```
//!
//! The secret is `whsec_` + base64 of the key; during a rotation `previous_secret` signs too and
//! both signatures are sent, so a receiver holding either verifies.
//!
//! A 2xx answer means sent. An error answer may say why:
//! `{"error": {"kind": "invalid_phone" | "undeliverable" | "unsupported_region" | "rate_limited" |
//! "unavailable", "retry_after": N}}`, mapped to our codes; anything else is unavailable. 401 and
//! 403 without a kind mean the receiver refused our signature: readiness says so.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, OutgoingCode, ProviderError, SmsProvider, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{error, warn};

use crate::caller::{CallError, Caller, Ctx, Reading, Refusal, retry_after};
use crate::config::{BreakerConfig, ConfigError, HttpConfig, RetryConfig, check_base_url, redact};

/// `[providers.NAME]` with `kind = "webhook"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where each message is POSTed (https; plain http only on loopback).
    pub url: String,
    /// `whsec_` + base64 of a random key of 24 to 64 bytes.
    #[serde(serialize_with = "redact_required")]
    pub secret: SecretString,
    /// The secret being rotated out: it signs too while set, so receivers can switch at leisure.
    #[serde(default, serialize_with = "redact")]
    pub previous_secret: Option<SecretString>,
    /// Channels the gateway delivers (`sms`, `whatsapp`, `call`); the message names the one used.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
}

fn redact_required<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

fn default_channels() -> Vec<String> {
    vec!["sms".to_owned()]
}

/// The key inside `whsec_<base64>`, when it is one of a sound length (the specification asks
/// for 24 to 64 bytes).
pub fn secret_key(secret: &SecretString) -> Option<Vec<u8>> {
    let b64 = secret.expose_secret().strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_base_url("url", &self.url)?;
        if secret_key(&self.secret).is_none() {
            return Err(ConfigError("secret must be whsec_ followed by the base64 of 24 to 64 random bytes".into()));
        }
        if let Some(prev) = &self.previous_secret
            && secret_key(prev).is_none()
        {
            return Err(ConfigError("previous_secret must be whsec_ followed by the base64 of 24 to 64 bytes".into()));
        }
        self.parsed_channels()?;
        self.http.validate(&self.retry, &self.breaker)
    }

    fn parsed_channels(&self) -> Result<Vec<Channel>, ConfigError> {
        if self.channels.is_empty() {
            return Err(ConfigError("channels must not be empty".into()));
        }
        self.channels
            .iter()
            .map(|c| c.parse::<Channel>().map_err(|()| ConfigError(format!("channels: unknown channel {c:?}"))))
            .collect()
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// How far a status callback's `webhook-timestamp` may be from our clock (the specification's
/// tolerance).
pub const CALLBACK_MAX_SKEW: Duration = Duration::from_secs(300);

/// Whether a status callback from the gateway is signed, per the same specification, with one
/// of `keys` (the secret, and the previous one during a rotation): `webhook-id`,
/// `webhook-timestamp` within `CALLBACK_MAX_SKEW` of `now_secs`, and one of the space-separated
/// `webhook-signature` entries. Signatures are compared in constant time.
pub fn verify_callback(
    keys: &[Vec<u8>],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_secs: i64,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if id.is_empty() || (now_secs - ts).unsigned_abs() > CALLBACK_MAX_SKEW.as_secs() {
        return false;
    }
    keys.iter().any(|key| {
        let expected = signature(key, id, ts, body);
        signatures.split_whitespace().any(|given| {
            given.len() == expected.len() && subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
        })
    })
}

/// A status callback's body: `{"type": "otp.status", "message_id": "msg_…" (the `webhook-id`
/// of the send), "to": "+E164", "status": "delivered" | "undelivered" | "failed" | "in_flight",
/// "error_code": N}`; `to` and `error_code` are optional.
#[derive(Debug, Deserialize)]
struct StatusBody {
    #[serde(rename = "type")]
    kind: String,
    message_id: Option<String>,
    to: Option<String>,
    status: String,
    error_code: Option<u32>,
}

/// Reads a status callback (call `verify_callback` first). `None` when it is not one.
pub fn parse_status(body: &[u8]) -> Option<crate::callback::DeliveryReceipt> {
    use crate::callback::DeliveryStatus;
    let report: StatusBody = serde_json::from_slice(body).ok()?;
    if report.kind != "otp.status" {
        return None;
    }
    let status = match report.status.as_str() {
        "delivered" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        "in_flight" => DeliveryStatus::InFlight,
        _ => DeliveryStatus::Other,
    };
    Some(crate::callback::DeliveryReceipt {
        // Only an id shaped like ours: this string lands in logs.
        provider_ref: report.message_id.filter(|m| {
            m.len() <= 64
                && m.strip_prefix("msg_").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        }),
        status,
        country: crate::callback::country_of(report.to.as_deref()),
        error_code: report.error_code.filter(|c| *c != 0),
    })
}

/// The message body, exactly these fields in this order.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub to: &'a str,
    pub channel: &'static str,
    pub locale: Option<&'a str>,
    pub text: &'a str,
    pub code: &'a str,
    pub verification_id: Option<&'a str>,
    pub expires_at: Option<String>,
}

/// `2026-11-24T10:02:00Z` (second precision, UTC).
fn rfc3339(t: Timestamp) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(t.millis().div_euclid(1000))
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[derive(Debug, Default, Deserialize)]
struct ErrorAnswer {
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    kind: Option<String>,
    retry_after: Option<u64>,
}

/// An error answer from the receiver.
#[derive(Debug)]
pub(crate) struct WebhookError {
    status: u16,
    kind: Option<String>,
    retry_after: Option<Duration>,
}

impl WebhookError {
    fn to_provider_error(&self) -> ProviderError {
        match self.kind.as_deref() {
            Some("invalid_phone") => ProviderError::InvalidNumber,
            Some("undeliverable") => ProviderError::Undeliverable,
            Some("unsupported_region") => ProviderError::UnsupportedRegion,
            Some("rate_limited") => ProviderError::RateLimited { retry_after: self.retry_after },
            _ => ProviderError::Unavailable { retry_after: self.retry_after },
        }
    }

    fn refused_us(&self) -> bool {
        matches!(self.status, 401 | 403) && self.kind.is_none()
    }
}

impl Refusal for WebhookError {
    fn retryable(&self) -> bool {
        // 503 (or 429 with a wait that fits) took nothing; a repeat carries the same webhook-id.
        self.status == 503 || (self.status == 429 && self.retry_after.is_some())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn healthy(&self) -> bool {
        matches!(self.kind.as_deref(), Some("invalid_phone" | "undeliverable" | "unsupported_region" | "rate_limited"))
    }

    fn account_problem(&self) -> Option<String> {
        self.refused_us()
            .then(|| format!("the webhook receiver refused our signature (HTTP {}): check secret", self.status))
    }

    fn kind(&self) -> &'static str {
        match self.kind.as_deref() {
            Some("invalid_phone") => "invalid_number",
            Some("undeliverable") => "undeliverable",
            Some("unsupported_region") => "unsupported_region",
            Some("rate_limited") => "rate_limited",
            _ if self.refused_us() => "auth",
            Some("unavailable") => "unavailable",
            _ => "unknown",
        }
    }

    fn brief(&self) -> String {
        format!("HTTP {}", self.status)
    }
}

fn read_answer(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Reading<(), WebhookError> {
    if (200..300).contains(&status) {
        return Reading::Ok(());
    }
    let detail = serde_json::from_slice::<ErrorAnswer>(body).unwrap_or_default().error.unwrap_or_default();
    let kind = detail.kind.filter(|k| {
        matches!(k.as_str(), "invalid_phone" | "undeliverable" | "unsupported_region" | "rate_limited" | "unavailable")
    });
    Reading::Refused(WebhookError {
        status,
        kind,
        retry_after: detail.retry_after.map(|s| Duration::from_secs(s.min(3_600))).or_else(|| retry_after(headers)),
    })
}

pub struct Webhook {
    caller: Caller,
    url: String,
    keys: Vec<Vec<u8>>,
    channels: Vec<Channel>,
    clock: Arc<dyn Clock>,
}

impl Webhook {
    pub const KIND: &'static str = "webhook";

    pub fn new(
        name: &'static str,
        cfg: &WebhookConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let keys = std::iter::once(&cfg.secret).chain(cfg.previous_secret.as_ref()).filter_map(secret_key).collect();
        Ok(Webhook {
            caller: Caller::new(name, http, clock.clone(), &cfg.http, &cfg.retry, &cfg.breaker),
            url: cfg.url.clone(),
            keys,
            channels: cfg.parsed_channels()?,
            clock,
        })
    }

    fn signatures(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys.iter().map(|k| signature(k, id, timestamp, body)).collect::<Vec<_>>().join(" ")
    }
}

#[async_trait]
impl SmsProvider for Webhook {
    fn name(&self) -> &'static str {
        self.caller.name
    }

    fn supports(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let payload = Payload {
            kind: "otp.message",
            to: msg.to.e164(),
            channel: msg.channel.as_str(),
            locale: msg.locale.as_deref(),
            text: &msg.text,
            code: msg.code.expose(),
            verification_id: msg.verification_id.as_ref().map(|v| v.as_str()),
            expires_at: msg.expires_at.and_then(rfc3339),
        };
        let body = serde_json::to_vec(&payload).map_err(|_| ProviderError::Unavailable { retry_after: None })?;
        // One id per send: every try carries it, so a receiver can drop a repeat it already took.
        let id = format!("msg_{}", otpgate_core::verification::random_base62(24));
        let masked = msg.to.masked();
        let ctx = Ctx { op: "webhook.send", phone: Some(&masked) };
        let build = |http: &reqwest::Client| {
            let timestamp = self.clock.now().millis().div_euclid(1000);
            http.post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", self.signatures(&id, timestamp, &body))
                .body(body.clone())
        };
        match self.caller.call(ctx, build, read_answer).await {
            Ok(()) => Ok(SendReceipt { provider_ref: Some(id), ..SendReceipt::default() }),
            Err(CallError::BreakerOpen(wait)) => Err(ProviderError::Unavailable { retry_after: Some(wait) }),
            Err(CallError::Transport) => Err(ProviderError::Unavailable { retry_after: None }),
            Err(CallError::Refused(e)) => {
                if e.healthy() {
                    warn!(
                        event = "sms.provider.error",
                        provider = self.caller.name,
                        op = ctx.op,
                        phone = ctx.phone,
                        http_status = e.status,
                        kind = e.kind.as_deref()
                    );
                } else {
                    error!(
                        event = "sms.provider.error",
                        provider = self.caller.name,
                        op = ctx.op,
                        phone = ctx.phone,
                        http_status = e.status,
                        kind = e.kind.as_deref(),
                        "the webhook receiver refused a message"
                    );
                }
                Err(e.to_provider_error())
            }
        }
    }

    async fn readiness(&self) -> Result<(), String> {
        self.caller.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' test suites.
    #[test]
    fn signature_matches_the_specifications_reference_vector() {
        let key = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn status_callbacks_are_believed_only_signed_fresh_and_well_formed() {
        let key = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let old = vec![7u8; 32];
        let body = br#"{"type":"otp.status","message_id":"msg_abc123","to":"+919876543210","status":"delivered"}"#;
        let sig = signature(&key, "evt_1", 1_700_000_000, body);
        let keys = [old.clone(), key.clone()];
        assert!(verify_callback(&keys, "evt_1", "1700000000", &format!("v1,bogus {sig}"), body, 1_700_000_100));
        assert!(!verify_callback(&[old], "evt_1", "1700000000", &sig, body, 1_700_000_100), "other key");
        assert!(!verify_callback(&keys, "evt_2", "1700000000", &sig, body, 1_700_000_100), "other id");
        assert!(!verify_callback(&keys, "evt_1", "1700000000", &sig, b"{}", 1_700_000_100), "other body");
        assert!(!verify_callback(&keys, "evt_1", "1700000000", &sig, body, 1_700_000_400), "stale");
        assert!(!verify_callback(&keys, "evt_1", "soon", &sig, body, 1_700_000_000));
        let r = parse_status(body).unwrap();
        assert_eq!(
            (r.provider_ref.as_deref(), r.status, r.country.as_str()),
            (Some("msg_abc123"), crate::callback::DeliveryStatus::Delivered, "IN")
        );
        assert!(parse_status(br#"{"type":"otp.message","status":"delivered"}"#).is_none());
        let odd =
            parse_status(br#"{"type":"otp.status","message_id":"<script>","status":"failed","error_code":7}"#).unwrap();
        assert_eq!((odd.provider_ref, odd.country.as_str(), odd.error_code), (None, "ZZ", Some(7)));
    }

    #[test]
    fn secrets_must_be_whsec_keys_of_a_sound_length() {
        assert!(secret_key(&"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).is_some());
        assert!(secret_key(&"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).is_none());
        assert!(secret_key(&"whsec_c2hvcnQ=".into()).is_none(), "5 bytes");
        assert!(secret_key(&"whsec_not base64!".into()).is_none());
    }
}
