//! `vonage`: the Vonage SMS API (`POST {base_url}/json`, form body). otpgate makes the code and
//! sends its own text; checks stay local.
//!
//! Vonage answers HTTP 200 with a `status` per message part. Our error table (the issue's):
//!
//! | status | meaning | ours |
//! | --- | --- | --- |
//! | 0 | accepted | sent |
//! | 1 | throttled | `rate_limited` (repeated within the deadline first: nothing was taken) |
//! | 2, 3, 6 | missing / invalid parameters, unroutable number | `invalid_phone` |
//! | 7, 33 | number barred / deactivated | `undeliverable` |
//! | 29 | destination not whitelisted (demo account) | `undeliverable` |
//! | 4, 14 | credentials / signature refused | unavailable; readiness says so |
//! | 8, 9, 11, 15 | account suspended, out of credit, not enabled for HTTP, sender refused | unavailable; readiness says so |
//! | 5, 10 | Vonage internal error, too many binds (10 is repeated within the deadline) | unavailable |
//! | anything else | | unavailable |
//!
//! Authentication is `api_key` with `api_secret`, or signed requests (`timestamp` + `sig`) with
//! the account's signature secret and the method chosen in Vonage's dashboard. The same
//! signature scheme authenticates delivery receipts (`verify_receipt`).
//!
//! Vonage's answers use hyphenated names (`message-id`, `error-text`); the published OpenAPI
//! spec (and so its Prism mock) writes them in camelCase (`messageId`, `errorText`). Both are
//! read; the documentation's names are the ones Vonage sends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, OutgoingCode, ProviderError, SmsProvider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::callback::{DeliveryReceipt, DeliveryStatus, country_of};
use crate::caller::{CallError, Caller, Ctx, Reading, Refusal, log_text, retry_after};
use crate::config::{BreakerConfig, ConfigError, HttpConfig, RetryConfig, check_base_url, redact};

/// `[providers.NAME]` with `kind = "vonage"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    /// The account's API key (8 characters).
    pub api_key: String,
    /// The API secret. Exactly one of `api_secret` and `signature_secret` signs requests.
    #[serde(default, serialize_with = "redact")]
    pub api_secret: Option<SecretString>,
    /// The signature secret (dashboard > settings): requests are signed instead of carrying the
    /// API secret, and delivery receipts are believed only when their signature verifies.
    #[serde(default, serialize_with = "redact")]
    pub signature_secret: Option<SecretString>,
    /// The signing method chosen beside the signature secret in Vonage's dashboard.
    #[serde(default)]
    pub signature_method: SignatureMethod,
    /// Sender id: a number (digits) or an alphanumeric name where the country allows one.
    pub from: String,
    /// Base URL of the SMS API; requests go to `{base_url}/json`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Public URL of otpgate's Vonage delivery-receipt endpoint, sent with each message
    /// (`callback`); unset: the dashboard's setting applies.
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
}

/// Vonage's signing methods: `md5hash` (MD5 of the parameters and the secret, Vonage's
/// default) or an HMAC keyed by the secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    #[default]
    Md5hash,
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

fn default_base_url() -> String {
    "https://rest.nexmo.com/sms".to_owned()
}

impl VonageConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_owned()));
        if self.api_key.trim().is_empty() || !self.api_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return err("api_key must be the account's API key (letters and digits)");
        }
        match (&self.api_secret, &self.signature_secret) {
            (Some(_), None) | (None, Some(_)) => {}
            // Vonage refuses a signed request that also carries the secret (status 32).
            (Some(_), Some(_)) => return err("set api_secret or signature_secret, not both"),
            (None, None) => return err("set api_secret or signature_secret"),
        }
        if self.from.trim().is_empty() {
            return err("from must name the sender");
        }
        check_base_url("base_url", &self.base_url)?;
        if let Some(url) = &self.callback_url {
            check_base_url("callback_url", url)?;
        }
        self.http.validate(&self.retry, &self.breaker)
    }
}

/// HMAC-`$digest` of `$text` keyed by `$key` (HMAC takes keys of any length, so making it
/// cannot fail).
macro_rules! hmac_bytes {
    ($digest:ty, $key:expr, $text:expr) => {{
        let mut mac = <Hmac<$digest> as KeyInit>::new_from_slice($key).expect("HMAC accepts any key length");
        mac.update($text.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }};
}

/// Vonage's signature over `params` (each `(name, value)`; `sig` is left out, as are empty
/// values): sorted by name, joined as `&name=value` with `&` and `=` inside names and values
/// replaced by `_`, then hashed with the secret. Lowercase hex.
pub fn sign(params: &[(String, String)], secret: &SecretString, method: SignatureMethod) -> String {
    let sorted: BTreeMap<&str, &str> = params
        .iter()
        .filter(|(k, v)| k != "sig" && !v.trim().is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let clean = |s: &str| s.replace(['&', '='], "_");
    let mut text = String::new();
    for (k, v) in sorted {
        text.push('&');
        text.push_str(&clean(k));
        text.push('=');
        text.push_str(&clean(v));
    }
    let secret = secret.expose_secret().as_bytes();
    let digest: Vec<u8> = match method {
        SignatureMethod::Md5hash => {
            use md5::Digest;
            let mut h = md5::Md5::new();
            h.update(text.as_bytes());
            h.update(secret);
            h.finalize().to_vec()
        }
        SignatureMethod::Md5 => hmac_bytes!(md5::Md5, secret, text),
        SignatureMethod::Sha1 => hmac_bytes!(sha1::Sha1, secret, text),
        SignatureMethod::Sha256 => hmac_bytes!(sha2::Sha256, secret, text),
        SignatureMethod::Sha512 => hmac_bytes!(sha2::Sha512, secret, text),
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How far a signed receipt's `timestamp` may be from our clock (Vonage's SDKs allow 5 min).
pub const RECEIPT_MAX_SKEW: Duration = Duration::from_secs(300);

/// Whether a delivery receipt's parameters (query, form or flat JSON, as strings) carry a
/// valid `sig` over the rest, made within `RECEIPT_MAX_SKEW` of `now_secs`. Constant-time on
/// the digests; a missing or malformed `sig` or `timestamp` is `false`.
pub fn verify_receipt(
    params: &[(String, String)],
    secret: &SecretString,
    method: SignatureMethod,
    now_secs: i64,
) -> bool {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (Some(given), Some(ts)) = (get("sig"), get("timestamp")) else {
        return false;
    };
    let Ok(ts) = ts.trim().parse::<i64>() else {
        return false;
    };
    if (now_secs - ts).unsigned_abs() > RECEIPT_MAX_SKEW.as_secs() {
        return false;
    }
    let expected = sign(params, secret, method);
    let given = given.trim().to_ascii_lowercase();
    // Lengths are public (they follow from the method); the bytes are compared in constant time.
    given.len() == expected.len() && subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
}

/// Reads a Vonage delivery receipt (call `verify_receipt` first when a signature secret is
/// set). `None` when it is not a receipt (no `status`).
pub fn parse_receipt(params: &[(String, String)]) -> Option<DeliveryReceipt> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let status = match get("status")? {
        "delivered" => DeliveryStatus::Delivered,
        "accepted" | "buffered" => DeliveryStatus::InFlight,
        "expired" | "rejected" => DeliveryStatus::Undelivered,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Other,
    };
    let provider_ref = get("messageId")
        .or_else(|| get("message-id"))
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned);
    Some(DeliveryReceipt {
        provider_ref,
        status,
        country: country_of(get("msisdn").map(|m| format!("+{}", m.trim_start_matches('+'))).as_deref()),
        error_code: get("err-code").or_else(|| get("errCode")).and_then(|c| c.trim().parse().ok()).filter(|c| *c != 0),
    })
}

/// GSM 03.38 (basic table and its extension): texts of these characters go as `type=text`,
/// others as `unicode` (Vonage garbles them otherwise).
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\u{c}^{}\\[~]|€";

fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| GSM7.contains(c))
}

/// Vonage's per-part answer. Status as a string per the documentation; a number is read too.
#[derive(Debug, Deserialize)]
struct SmsResponse {
    #[serde(default)]
    messages: Vec<MessagePart>,
}

#[derive(Debug, Deserialize)]
struct MessagePart {
    status: serde_json::Value,
    #[serde(default, rename = "message-id", alias = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "error-text", alias = "errorText")]
    error_text: Option<String>,
}

impl MessagePart {
    fn status(&self) -> Option<String> {
        match &self.status {
            serde_json::Value::String(s) => Some(s.trim().to_owned()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A refusal from Vonage: a non-zero status, or an HTTP error.
#[derive(Debug)]
pub(crate) struct VonageError {
    http_status: u16,
    /// Vonage's `status` (`None` for an HTTP-level error).
    status: Option<String>,
    text: String,
    retry_after: Option<Duration>,
}

/// Which row of our table a Vonage refusal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Throttled,
    InvalidNumber,
    Undeliverable,
    Credentials,
    OutOfCredit,
    Suspended,
    NotEnabled,
    SenderRefused,
    /// Vonage's side: internal error, too many binds, 5xx.
    Down,
    Unknown,
}

impl VonageError {
    fn class(&self) -> Class {
        match self.status.as_deref() {
            Some("1") => Class::Throttled,
            Some("2" | "3" | "6") => Class::InvalidNumber,
            Some("7" | "33" | "29") => Class::Undeliverable,
            Some("4" | "14") => Class::Credentials,
            Some("9") => Class::OutOfCredit,
            Some("8") => Class::Suspended,
            Some("11") => Class::NotEnabled,
            Some("15") => Class::SenderRefused,
            Some("5" | "10") => Class::Down,
            Some(_) => Class::Unknown,
            None if self.http_status == 401 || self.http_status == 403 => Class::Credentials,
            None if self.http_status == 429 => Class::Throttled,
            None if self.http_status >= 500 => Class::Down,
            None => Class::Unknown,
        }
    }

    fn to_provider_error(&self) -> ProviderError {
        match self.class() {
            Class::Throttled => ProviderError::RateLimited { retry_after: self.retry_after },
            Class::InvalidNumber => ProviderError::InvalidNumber,
            Class::Undeliverable => ProviderError::Undeliverable,
            _ => ProviderError::Unavailable { retry_after: self.retry_after },
        }
    }
}

impl Refusal for VonageError {
    fn retryable(&self) -> bool {
        // Throttled (1) and too many binds (10) took nothing: Vonage's own advice is to back
        // off and retry. 503 (and a 429 with a Retry-After) were not processed either.
        matches!(self.status.as_deref(), Some("1" | "10"))
            || self.http_status == 503
            || (self.http_status == 429 && self.retry_after.is_some())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn healthy(&self) -> bool {
        matches!(self.class(), Class::Throttled | Class::InvalidNumber | Class::Undeliverable | Class::Unknown)
    }

    fn account_problem(&self) -> Option<String> {
        let code =
            self.status.as_deref().map_or_else(|| format!("HTTP {}", self.http_status), |s| format!("status {s}"));
        let what = match self.class() {
            Class::Credentials => "Vonage rejected the credentials",
            Class::OutOfCredit => "the Vonage account is out of credit",
            Class::Suspended => "the Vonage account is suspended",
            Class::NotEnabled => "the Vonage account is not enabled for the SMS API",
            Class::SenderRefused => "Vonage refuses the configured sender (from)",
            _ => return None,
        };
        Some(format!("{what} ({code})"))
    }

    fn kind(&self) -> &'static str {
        match self.class() {
            Class::Throttled => "rate_limited",
            Class::InvalidNumber => "invalid_number",
            Class::Undeliverable => "undeliverable",
            Class::Credentials => "auth",
            Class::OutOfCredit => "balance",
            Class::Suspended | Class::NotEnabled | Class::SenderRefused => "account",
            Class::Down => "unavailable",
            Class::Unknown => "unknown",
        }
    }

    fn brief(&self) -> String {
        match &self.status {
            Some(s) => format!("status {s}"),
            None => format!("HTTP {}", self.http_status),
        }
    }
}

enum Auth {
    Secret(SecretString),
    Signed { secret: SecretString, method: SignatureMethod },
}

pub struct Vonage {
    caller: Caller,
    url: String,
    api_key: String,
    auth: Auth,
    from: String,
    callback_url: Option<String>,
    clock: Arc<dyn Clock>,
}

impl Vonage {
    pub const KIND: &'static str = "vonage";

    /// `name` labels logs, metrics and readiness; `http` is the shared client.
    pub fn new(
        name: &'static str,
        cfg: &VonageConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let auth = match (&cfg.api_secret, &cfg.signature_secret) {
            (_, Some(secret)) => Auth::Signed { secret: secret.clone(), method: cfg.signature_method },
            (Some(secret), None) => Auth::Secret(secret.clone()),
            (None, None) => return Err(ConfigError("set api_secret or signature_secret".into())),
        };
        Ok(Vonage {
            caller: Caller::new(name, http, clock.clone(), &cfg.http, &cfg.retry, &cfg.breaker),
            url: format!("{}/json", cfg.base_url.trim_end_matches('/')),
            api_key: cfg.api_key.clone(),
            auth,
            from: cfg.from.clone(),
            callback_url: cfg.callback_url.clone(),
            clock,
        })
    }

    /// The form for one try: signed requests get a fresh timestamp each time.
    fn form(&self, msg: &OutgoingCode) -> Vec<(String, String)> {
        let mut form: Vec<(String, String)> = vec![
            ("api_key".into(), self.api_key.clone()),
            ("from".into(), self.from.clone()),
            // Vonage wants the number without its `+`.
            ("to".into(), msg.to.e164().trim_start_matches('+').to_owned()),
            ("text".into(), msg.text.clone()),
            ("type".into(), if is_gsm7(&msg.text) { "text" } else { "unicode" }.into()),
        ];
        if let Some(url) = &self.callback_url {
            form.push(("callback".into(), url.clone()));
        }
        match &self.auth {
            Auth::Secret(secret) => form.push(("api_secret".into(), secret.expose_secret().to_owned())),
            Auth::Signed { secret, method } => {
                let now_secs = self.clock.now().millis().div_euclid(1000);
                form.push(("timestamp".into(), now_secs.to_string()));
                let sig = sign(&form, secret, *method);
                form.push(("sig".into(), sig));
            }
        }
        form
    }

    fn log(&self, e: &VonageError, ctx: Ctx<'_>) {
        let text = log_text(&e.text);
        let class = format!("{:?}", e.class());
        if e.healthy() {
            warn!(event = "sms.provider.error", provider = self.caller.name, op = ctx.op, phone = ctx.phone,
                http_status = e.http_status, vonage_status = e.status.as_deref(), vonage_text = %text, class = %class);
        } else {
            error!(event = "sms.provider.error", provider = self.caller.name, op = ctx.op, phone = ctx.phone,
                http_status = e.http_status, vonage_status = e.status.as_deref(), vonage_text = %text, class = %class,
                "Vonage refused a call; check the account, credentials and Vonage's status");
        }
    }
}

/// Reads one answer: success when any part was accepted (the code is in the first part, and a
/// repeat elsewhere would send it twice), else the first part's status.
fn read_answer(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Reading<Option<String>, VonageError> {
    if !(200..300).contains(&status) {
        return Reading::Refused(VonageError {
            http_status: status,
            status: None,
            text: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            retry_after: retry_after(headers),
        });
    }
    let answer: SmsResponse = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(e) => return Reading::Unreadable(e.to_string()),
    };
    if let Some(part) = answer.messages.iter().find(|p| p.status().as_deref() == Some("0")) {
        return Reading::Ok(part.message_id.clone());
    }
    match answer.messages.first() {
        Some(part) => Reading::Refused(VonageError {
            http_status: status,
            status: Some(part.status().unwrap_or_default()),
            text: part.error_text.clone().unwrap_or_default(),
            retry_after: None,
        }),
        None => Reading::Unreadable("no message parts in the answer".into()),
    }
}

#[async_trait]
impl SmsProvider for Vonage {
    fn name(&self) -> &'static str {
        self.caller.name
    }

    /// SMS only (the SMS API; WhatsApp and voice are other Vonage APIs).
    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let masked = msg.to.masked();
        let ctx = Ctx { op: "vonage.send", phone: Some(&masked) };
        let result = self.caller.call(ctx, |http| http.post(&self.url).form(&self.form(msg)), read_answer).await;
        match result {
            Ok(message_id) => Ok(SendReceipt { provider_ref: message_id, ..SendReceipt::default() }),
            Err(CallError::BreakerOpen(wait)) => Err(ProviderError::Unavailable { retry_after: Some(wait) }),
            Err(CallError::Transport) => Err(ProviderError::Unavailable { retry_after: None }),
            Err(CallError::Refused(e)) => {
                self.log(&e, ctx);
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Vectors from Vonage's own SDKs (their test suites), so the scheme is Vonage's, not ours.
    #[test]
    fn signatures_match_vonages_sdk_vectors() {
        let old = pairs(&[("a", "1"), ("b", "2"), ("timestamp", "1461605396")]);
        assert_eq!(sign(&old, &"secret".into(), SignatureMethod::Md5hash), "6af838ef94998832dbfc29020b564830");
        let secret = SecretString::from("signature_secret");
        let p = pairs(&[("param1", "value1"), ("param2", "value2"), ("timestamp", "1234567890")]);
        assert_eq!(sign(&p, &secret, SignatureMethod::Md5), "724c2bf6ca423c36e20631b11d1c5753");
        assert_eq!(
            sign(&p, &secret, SignatureMethod::Sha256),
            "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
        );
        let special = pairs(&[("param1", "value&1"), ("param2", "value=2"), ("timestamp", "1234567890")]);
        assert_eq!(sign(&special, &secret, SignatureMethod::Md5), "2bbf0abafb2c55e5af6231513896a2ac");
    }

    #[test]
    fn receipts_verify_only_when_signed_recently_with_the_secret() {
        let secret = SecretString::from("signature_secret");
        let signed =
            pairs(&[("param", "value"), ("timestamp", "1234567890"), ("sig", "655a4d0b7f064dff438defc52b012cf5")]);
        assert!(verify_receipt(&signed, &secret, SignatureMethod::Md5, 1_234_567_890));
        assert!(verify_receipt(&signed, &secret, SignatureMethod::Md5, 1_234_567_890 + 299));
        assert!(!verify_receipt(&signed, &secret, SignatureMethod::Md5, 1_234_567_890 + 301), "too old");
        assert!(!verify_receipt(&signed, &secret, SignatureMethod::Md5hash, 1_234_567_890), "wrong method");
        assert!(!verify_receipt(&signed, &"other".into(), SignatureMethod::Md5, 1_234_567_890));
        let mut altered = signed.clone();
        altered[0].1 = "other".into();
        assert!(!verify_receipt(&altered, &secret, SignatureMethod::Md5, 1_234_567_890));
        let unsigned = pairs(&[("param", "value"), ("timestamp", "1234567890")]);
        assert!(!verify_receipt(&unsigned, &secret, SignatureMethod::Md5, 1_234_567_890));
        let upper =
            pairs(&[("param", "value"), ("timestamp", "1234567890"), ("sig", "655A4D0B7F064DFF438DEFC52B012CF5")]);
        assert!(verify_receipt(&upper, &secret, SignatureMethod::Md5, 1_234_567_890), "hex case is not significant");
    }

    #[test]
    fn receipts_parse_to_reference_status_and_country_only() {
        let r = parse_receipt(&pairs(&[
            ("msisdn", "442071838750"),
            ("to", "AcmeInc"),
            ("messageId", "0A0000001234567B"),
            ("status", "rejected"),
            ("err-code", "6"),
        ]))
        .unwrap();
        assert_eq!(r.provider_ref.as_deref(), Some("0A0000001234567B"));
        assert_eq!((r.status, r.country.as_str(), r.error_code), (DeliveryStatus::Undelivered, "GB", Some(6)));
        assert!(!format!("{r:?}").contains("2071838750"));
        let ok = parse_receipt(&pairs(&[("status", "delivered"), ("err-code", "0"), ("messageId", "<x>")])).unwrap();
        assert_eq!(
            (ok.status, ok.error_code, ok.provider_ref, ok.country.as_str()),
            (DeliveryStatus::Delivered, None, None, "ZZ")
        );
        assert!(parse_receipt(&pairs(&[("msisdn", "447700900000")])).is_none());
    }

    #[test]
    fn gsm_texts_go_as_text_and_others_as_unicode() {
        assert!(is_gsm7("123456 is your Acme verification code.\n\n@example.com #123456"));
        assert!(is_gsm7("123456 ist dein Acme-Bestätigungscode. Er läuft in 2 Min. ab."));
        assert!(!is_gsm7("123456 es tu código de verificación"));
        assert!(!is_gsm7("123456 是您的验证码"));
    }

    #[test]
    fn config_needs_one_way_to_authenticate() {
        let base = serde_json::json!({ "api_key": "abcd1234", "from": "Acme" });
        let parse = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<VonageConfig>(v).unwrap()
        };
        assert!(parse(serde_json::json!({})).validate().is_err());
        parse(serde_json::json!({ "api_secret": "s3cr3t-value" })).validate().unwrap();
        parse(serde_json::json!({ "signature_secret": "s", "signature_method": "sha256" })).validate().unwrap();
        let both = parse(serde_json::json!({ "api_secret": "s3cr3t-value", "signature_secret": "s" }));
        let e = both.validate().unwrap_err().to_string();
        assert!(e.contains("not both") && !e.contains("s3cr3t"), "{e}");
        assert!(
            serde_json::from_value::<VonageConfig>(serde_json::json!({ "api_key": "k", "from": "A", "sender": "x" }))
                .is_err()
        );
    }
}
