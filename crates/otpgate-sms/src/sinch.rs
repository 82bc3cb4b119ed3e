//! `sinch`: the Sinch SMS REST API (`POST {base_url}/xms/v1/{service_plan_id}/batches`, Bearer
//! token, JSON `{from, to: [..], body}`). otpgate makes the code and sends its own text; checks
//! stay local. Other regions (`eu`, `au`, `br`, `ca`) by setting `base_url`.
//!
//! Sinch answers 201 with the batch (its `id` is our reference) or an HTTP error with
//! `{"code", "text"}`. Our error table:
//!
//! | answer | ours |
//! | --- | --- |
//! | 400 whose text is about `to` (`syntax_invalid_parameter_format` of `to[0]`, …) | `invalid_phone` |
//! | 403 `unprovisioned_region` | `unsupported_region` |
//! | 429 | `rate_limited` (repeated first when `Retry-After` fits in the deadline) |
//! | 401 | unavailable; readiness: credentials rejected |
//! | 403 (other codes: `missing_callback_url`, a blocked account), 404 (unknown service plan) | unavailable; readiness says which |
//! | 5xx (503 repeated within the deadline), any other answer | unavailable |
//!
//! Delivery reports: Sinch authenticates its callbacks by what Sinch provisions on the callback
//! URL on request (HTTP Basic, OAuth 2.0, mutual TLS); it does not sign them by default. otpgate
//! uses HTTP Basic: `callback_username` / `callback_password` are provisioned at Sinch for the
//! callback URL, and `verify_callback_auth` believes a report only with exactly those (compared
//! in constant time; the endpoint must be HTTPS so they are not sent in the clear).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, OutgoingCode, ProviderError, SmsProvider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::callback::{DeliveryReceipt, DeliveryStatus, country_of};
use crate::caller::{CallError, Caller, Ctx, Reading, Refusal, log_text, retry_after};
use crate::config::{BreakerConfig, ConfigError, HttpConfig, RetryConfig, check_base_url, redact};

/// `[providers.NAME]` with `kind = "sinch"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinchConfig {
    /// The service plan id (dashboard > SMS > APIs).
    pub service_plan_id: String,
    /// The service plan's API token, sent as `Authorization: Bearer …`.
    #[serde(serialize_with = "redact_required")]
    pub api_token: SecretString,
    /// Sender: a number, short code or alphanumeric id.
    pub from: String,
    /// Regional API host: `https://us.sms.api.sinch.com` (default), `https://eu.sms.api.sinch.com`, …
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Public URL of otpgate's Sinch delivery-report endpoint, sent with each batch (with
    /// `delivery_report = "per_recipient"`). Needs the Basic-auth pair below.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// The user name Sinch sends with delivery reports (provisioned at Sinch for the URL).
    #[serde(default)]
    pub callback_username: Option<String>,
    /// The password Sinch sends with delivery reports.
    #[serde(default, serialize_with = "redact")]
    pub callback_password: Option<SecretString>,
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

fn default_base_url() -> String {
    "https://us.sms.api.sinch.com".to_owned()
}

impl SinchConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_owned()));
        // It goes into the URL path: letters and digits only (Sinch's are 32 hex digits).
        if self.service_plan_id.is_empty()
            || self.service_plan_id.len() > 64
            || !self.service_plan_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return err("service_plan_id must be the service plan's id (letters and digits)");
        }
        if self.api_token.expose_secret().trim().is_empty() {
            return err("api_token must be set");
        }
        if self.from.trim().is_empty() {
            return err("from must name the sender");
        }
        check_base_url("base_url", &self.base_url)?;
        match (&self.callback_url, &self.callback_username, &self.callback_password) {
            (Some(url), Some(user), Some(_)) if !user.is_empty() && !user.contains(':') => {
                check_base_url("callback_url", url)?
            }
            (Some(_), _, _) => {
                return err("callback_url needs callback_username (without ':') and callback_password: \
                            unauthenticated delivery reports are not believed");
            }
            (None, None, None) => {}
            (None, _, _) => return err("callback_username and callback_password go with callback_url"),
        }
        self.http.validate(&self.retry, &self.breaker)
    }
}

/// Whether the `Authorization` header of a delivery report is HTTP Basic with exactly the
/// configured pair. Constant time over the whole header value.
pub fn verify_callback_auth(authorization: Option<&str>, username: &str, password: &SecretString) -> bool {
    let Some(given) = authorization else {
        return false;
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose_secret()))
    );
    let given = given.trim();
    given.len() == expected.len() && subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
}

/// Sinch's delivery-report callback body (`delivery_report_sms` or
/// `recipient_delivery_report_sms`).
#[derive(Debug, Deserialize)]
struct ReportBody {
    #[serde(rename = "type")]
    kind: String,
    batch_id: Option<String>,
    // recipient_delivery_report_sms
    recipient: Option<String>,
    status: Option<String>,
    code: Option<u32>,
    // delivery_report_sms
    #[serde(default)]
    statuses: Vec<StatusEntry>,
}

#[derive(Debug, Deserialize)]
struct StatusEntry {
    code: Option<u32>,
    status: Option<String>,
    #[serde(default)]
    recipients: Vec<String>,
}

fn status_of(s: Option<&str>) -> DeliveryStatus {
    match s {
        Some("Queued" | "Dispatched") => DeliveryStatus::InFlight,
        Some("Delivered") => DeliveryStatus::Delivered,
        Some("Aborted" | "Rejected" | "Deleted" | "Expired") => DeliveryStatus::Undelivered,
        Some("Failed") => DeliveryStatus::Failed,
        _ => DeliveryStatus::Other,
    }
}

/// Sinch's recipients come as digits, with or without `+`.
fn sinch_country(recipient: Option<&str>) -> String {
    country_of(recipient.map(|r| format!("+{}", r.trim().trim_start_matches('+'))).as_deref())
}

/// Reads a delivery report (call `verify_callback_auth` first): one receipt per recipient, or
/// per status line of a summary report (which names no recipients, so its country is `ZZ`).
/// `None` when the body is not a delivery report.
pub fn parse_delivery_report(body: &[u8]) -> Option<Vec<DeliveryReceipt>> {
    let report: ReportBody = serde_json::from_slice(body).ok()?;
    // Only a batch id shaped like Sinch's (letters and digits): this string lands in logs.
    let batch = report.batch_id.filter(|b| (1..=64).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_alphanumeric()));
    let receipt = |status: Option<&str>, code: Option<u32>, recipient: Option<&str>| {
        let status = status_of(status);
        DeliveryReceipt {
            provider_ref: batch.clone(),
            status,
            country: sinch_country(recipient),
            // Code 0 is "delivered"; only an error code is carried.
            error_code: code.filter(|c| *c != 0 && status != DeliveryStatus::Delivered),
        }
    };
    match report.kind.as_str() {
        "recipient_delivery_report_sms" => {
            Some(vec![receipt(report.status.as_deref(), report.code, report.recipient.as_deref())])
        }
        "delivery_report_sms" => Some(
            report
                .statuses
                .iter()
                .flat_map(|s| {
                    if s.recipients.is_empty() {
                        vec![receipt(s.status.as_deref(), s.code, None)]
                    } else {
                        s.recipients.iter().map(|r| receipt(s.status.as_deref(), s.code, Some(r))).collect()
                    }
                })
                .collect(),
        ),
        _ => None,
    }
}

#[derive(Debug, Serialize)]
struct Batch<'a> {
    from: &'a str,
    to: [&'a str; 1],
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_report: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct BatchCreated {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<String>,
    text: Option<String>,
}

/// An error answer from Sinch.
#[derive(Debug)]
pub(crate) struct SinchError {
    status: u16,
    code: Option<String>,
    text: String,
    retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    InvalidNumber,
    UnsupportedRegion,
    RateLimited,
    Credentials,
    /// 403 other than a region, 404: the account or its configuration.
    Account,
    Down,
    Unknown,
}

impl SinchError {
    fn class(&self) -> Class {
        match (self.status, self.code.as_deref()) {
            (401, _) => Class::Credentials,
            (403, Some("unprovisioned_region")) => Class::UnsupportedRegion,
            (403 | 404, _) => Class::Account,
            (429, _) => Class::RateLimited,
            // The only per-request value is the recipient; Sinch names the field in its text.
            (400, _) if self.text.contains("'to") || self.text.contains("\"to") => Class::InvalidNumber,
            (s, _) if s >= 500 => Class::Down,
            _ => Class::Unknown,
        }
    }

    fn to_provider_error(&self) -> ProviderError {
        match self.class() {
            Class::InvalidNumber => ProviderError::InvalidNumber,
            Class::UnsupportedRegion => ProviderError::UnsupportedRegion,
            Class::RateLimited => ProviderError::RateLimited { retry_after: self.retry_after },
            _ => ProviderError::Unavailable { retry_after: self.retry_after },
        }
    }
}

impl Refusal for SinchError {
    fn retryable(&self) -> bool {
        self.status == 503 || (self.status == 429 && self.retry_after.is_some())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn healthy(&self) -> bool {
        matches!(self.class(), Class::InvalidNumber | Class::UnsupportedRegion | Class::RateLimited | Class::Unknown)
    }

    fn account_problem(&self) -> Option<String> {
        let code = self.code.as_deref().filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        match self.class() {
            Class::Credentials => Some("Sinch rejected the API token (HTTP 401)".to_owned()),
            Class::Account if self.status == 404 => Some("Sinch does not know the service plan (HTTP 404)".to_owned()),
            Class::Account => Some(format!("Sinch refuses the account's requests (HTTP 403 {})", code.unwrap_or("-"))),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self.class() {
            Class::InvalidNumber => "invalid_number",
            Class::UnsupportedRegion => "unsupported_region",
            Class::RateLimited => "rate_limited",
            Class::Credentials => "auth",
            Class::Account => "account",
            Class::Down => "unavailable",
            Class::Unknown => "unknown",
        }
    }

    fn brief(&self) -> String {
        format!("HTTP {}", self.status)
    }
}

pub struct Sinch {
    caller: Caller,
    url: String,
    token: SecretString,
    from: String,
    callback_url: Option<String>,
}

impl Sinch {
    pub const KIND: &'static str = "sinch";

    pub fn new(
        name: &'static str,
        cfg: &SinchConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Sinch {
            caller: Caller::new(name, http, clock, &cfg.http, &cfg.retry, &cfg.breaker),
            url: format!("{}/xms/v1/{}/batches", cfg.base_url.trim_end_matches('/'), cfg.service_plan_id),
            token: cfg.api_token.clone(),
            from: cfg.from.clone(),
            callback_url: cfg.callback_url.clone(),
        })
    }
}

fn read_answer(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Reading<Option<String>, SinchError> {
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<BatchCreated>(body) {
            Ok(b) => Reading::Ok(
                b.id.filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_alphanumeric())),
            ),
            Err(e) => Reading::Unreadable(e.to_string()),
        };
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    Reading::Refused(SinchError {
        status,
        code: parsed.code,
        text: parsed.text.unwrap_or_default(),
        retry_after: retry_after(headers),
    })
}

#[async_trait]
impl SmsProvider for Sinch {
    fn name(&self) -> &'static str {
        self.caller.name
    }

    /// SMS only (the SMS REST API; WhatsApp and voice are Sinch's other APIs).
    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let masked = msg.to.masked();
        let ctx = Ctx { op: "sinch.send", phone: Some(&masked) };
        let batch = Batch {
            from: &self.from,
            to: [msg.to.e164()],
            body: &msg.text,
            delivery_report: self.callback_url.as_ref().map(|_| "per_recipient"),
            callback_url: self.callback_url.as_deref(),
        };
        let result = self
            .caller
            .call(ctx, |http| http.post(&self.url).bearer_auth(self.token.expose_secret()).json(&batch), read_answer)
            .await;
        match result {
            Ok(batch_id) => Ok(SendReceipt { provider_ref: batch_id, ..SendReceipt::default() }),
            Err(CallError::BreakerOpen(wait)) => Err(ProviderError::Unavailable { retry_after: Some(wait) }),
            Err(CallError::Transport) => Err(ProviderError::Unavailable { retry_after: None }),
            Err(CallError::Refused(e)) => {
                let text = log_text(&e.text);
                let class = format!("{:?}", e.class());
                if e.healthy() {
                    warn!(event = "sms.provider.error", provider = self.caller.name, op = ctx.op, phone = ctx.phone,
                        http_status = e.status, sinch_code = e.code.as_deref(), sinch_text = %text, class = %class);
                } else {
                    error!(event = "sms.provider.error", provider = self.caller.name, op = ctx.op, phone = ctx.phone,
                        http_status = e.status, sinch_code = e.code.as_deref(), sinch_text = %text, class = %class,
                        "Sinch refused a call; check the service plan, the token and Sinch's status");
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

    #[test]
    fn callback_auth_is_the_exact_basic_pair() {
        let pw = SecretString::from("s3cret");
        // "sinch:s3cret"
        let good = "Basic c2luY2g6czNjcmV0";
        assert!(verify_callback_auth(Some(good), "sinch", &pw));
        assert!(!verify_callback_auth(None, "sinch", &pw));
        assert!(!verify_callback_auth(Some("Basic c2luY2g6czNjcmV1"), "sinch", &pw));
        assert!(!verify_callback_auth(Some("Bearer c2luY2g6czNjcmV0"), "sinch", &pw));
        assert!(!verify_callback_auth(Some(good), "other", &pw));
    }

    #[test]
    fn recipient_reports_parse_to_batch_status_country_and_code() {
        let body = br#"{"type":"recipient_delivery_report_sms","batch_id":"01FC66621VHDBN119Z8PMV1QPQ",
            "recipient":"442071838750","code":402,"status":"Aborted","at":"2022-08-24T14:15:22Z"}"#;
        let r = parse_delivery_report(body).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].provider_ref.as_deref(), Some("01FC66621VHDBN119Z8PMV1QPQ"));
        assert_eq!(
            (r[0].status, r[0].country.as_str(), r[0].error_code),
            (DeliveryStatus::Undelivered, "GB", Some(402))
        );
        assert!(!format!("{r:?}").contains("2071838750"));
    }

    #[test]
    fn summary_reports_give_one_receipt_per_recipient_or_status() {
        // The spec's own example.
        let body = br#"{"type":"delivery_report_sms","batch_id":"01FC66621VHDBN119Z8PMV1QPQ","total_message_count":"20000",
            "statuses":[{"code":0,"status":"Delivered","count":19999},{"code":401,"status":"Dispatched","count":1,"recipients":["+14155550100"]}]}"#;
        let r = parse_delivery_report(body).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].status, r[0].country.as_str(), r[0].error_code), (DeliveryStatus::Delivered, "ZZ", None));
        assert_eq!((r[1].status, r[1].country.as_str()), (DeliveryStatus::InFlight, "US"));
        assert!(parse_delivery_report(br#"{"type":"mo_text","body":"hi"}"#).is_none());
        assert!(parse_delivery_report(b"not json").is_none());
    }

    #[test]
    fn a_callback_url_needs_its_credentials() {
        let cfg = |extra: serde_json::Value| {
            let mut v = serde_json::json!({ "service_plan_id": "abc123", "api_token": "tok", "from": "Acme" });
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<SinchConfig>(v).unwrap()
        };
        cfg(serde_json::json!({})).validate().unwrap();
        assert!(cfg(serde_json::json!({ "callback_url": "https://otp.example.com/dr" })).validate().is_err());
        cfg(serde_json::json!({ "callback_url": "https://otp.example.com/dr", "callback_username": "u", "callback_password": "p" }))
            .validate()
            .unwrap();
        assert!(cfg(serde_json::json!({ "service_plan_id": "../x" })).validate().is_err());
    }
}
