//! What both Twilio providers share: Basic auth, one form POST with retries inside a deadline
//! behind a circuit breaker, and the mapping of Twilio's error codes onto our error table.
//!
//! Twilio's own error text goes to the log only, with every number in it masked (its 21211
//! text quotes the `To` number back): all text from the network passes `mask_numbers_in_text`
//! before it is logged. Every error returned from here is one of `ProviderError`'s fixed
//! variants, so it cannot leak into a response.
//!
//! Retries, the breaker, metrics and readiness are the shared `caller` machinery; the
//! `kind` label of `otpgate_provider_errors_total` comes from `error_kind` here.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::{Clock, ProviderError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{error, warn};

pub(crate) use crate::caller::{CallError, Ctx};
use crate::caller::{Caller, Reading, Refusal, log_text, retry_after};
use crate::config::{ConfigError, TwilioConfig};

/// Twilio's JSON error body. Every field is optional: a proxy or an outage page may answer
/// with something else entirely.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// An error answer from Twilio. Holds Twilio's text for the log; never leaves this crate.
#[derive(Debug)]
pub(crate) struct TwilioError {
    pub status: u16,
    pub code: Option<u32>,
    message: String,
    more_info: Option<String>,
    pub retry_after: Option<Duration>,
}

/// Which row of our error table a Twilio answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    InvalidNumber,
    Undeliverable,
    UnsupportedRegion,
    RateLimited,
    /// 60202: the verification took Twilio's maximum of wrong codes.
    MaxCheckAttempts,
    /// 20404 (or a bare 404): Twilio does not know the resource.
    NotFound,
    /// Our side or Twilio's is broken (5xx, rejected credentials): the operator must look.
    Operator,
    Unknown,
}

pub(crate) fn classify(status: u16, code: Option<u32>) -> Class {
    if status >= 500 || status == 401 || code == Some(20003) {
        return Class::Operator;
    }
    match code {
        Some(60200 | 21211 | 21614) => Class::InvalidNumber,
        // 63003 / 63024: WhatsApp cannot reach the number (no WhatsApp account behind it).
        Some(60205 | 21610 | 21612 | 21635 | 63003 | 63024) => Class::Undeliverable,
        Some(60410 | 60605 | 21408 | 30450) => Class::UnsupportedRegion,
        Some(60203 | 60212 | 20429) => Class::RateLimited,
        Some(60202) => Class::MaxCheckAttempts,
        Some(20404) => Class::NotFound,
        Some(_) => Class::Unknown,
        None if status == 429 => Class::RateLimited,
        None if status == 404 => Class::NotFound,
        None => Class::Unknown,
    }
}

/// The shared machinery of one Twilio provider instance (each has its own breaker).
pub(crate) struct TwilioClient {
    caller: Caller,
    user: String,
    secret: SecretString,
}

impl Refusal for TwilioError {
    fn retryable(&self) -> bool {
        // Per-number limits (60203, 60212) do not clear in seconds; an account-level 429 with a
        // short Retry-After does.
        self.status == 503
            || (self.status == 429 && self.retry_after.is_some() && !matches!(self.code, Some(60203 | 60212)))
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn healthy(&self) -> bool {
        // A 4xx about one number or request (even an unknown code) shows Twilio is up; only 5xx
        // and rejected credentials count toward opening the breaker.
        classify(self.status, self.code) != Class::Operator
    }

    fn account_problem(&self) -> Option<String> {
        (self.status == 401 || self.code == Some(20003)).then(|| "Twilio rejected the credentials (20003)".to_owned())
    }

    fn kind(&self) -> &'static str {
        error_kind(self)
    }

    fn brief(&self) -> String {
        format!("HTTP {}", self.status)
    }
}

impl TwilioClient {
    pub fn new(
        cfg: &TwilioConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        provider: &'static str,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        // API key first: it can be revoked alone and does not open the whole account.
        let (user, secret) = match (&cfg.api_key_sid, &cfg.api_key_secret, &cfg.auth_token) {
            (Some(sid), Some(secret), _) => (sid.clone(), secret.clone()),
            (_, _, Some(token)) => (cfg.account_sid.clone(), token.clone()),
            _ => return Err(ConfigError("no credentials".into())),
        };
        let caller = Caller::new(provider, http, clock, &cfg.http, &cfg.retry, &cfg.breaker);
        Ok(TwilioClient { caller, user, secret })
    }

    pub fn provider(&self) -> &'static str {
        self.caller.name
    }

    pub fn readiness(&self) -> Result<(), String> {
        self.caller.readiness()
    }

    /// POSTs a form and decodes a 2xx JSON answer. Retries only what cannot have sent anything,
    /// and gives up when the deadline passes.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        ctx: Ctx<'_>,
    ) -> Result<T, CallError<TwilioError>> {
        self.caller
            .call(
                ctx,
                |http| http.post(url).basic_auth(&self.user, Some(self.secret.expose_secret())).form(form),
                |status, headers, body| {
                    if (200..300).contains(&status) {
                        return match serde_json::from_slice(body) {
                            Ok(value) => Reading::Ok(value),
                            Err(e) => Reading::Unreadable(e.to_string()),
                        };
                    }
                    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
                    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
                    Reading::Refused(TwilioError {
                        status,
                        code: parsed.code,
                        message: parsed.message.unwrap_or_else(|| reason.unwrap_or("").to_owned()),
                        more_info: parsed.more_info,
                        retry_after: retry_after(headers),
                    })
                },
            )
            .await
    }

    /// Maps a failed send-side call (start, message, cancel) to our error table and logs
    /// Twilio's words for the operator.
    pub fn send_error(&self, err: CallError<TwilioError>, ctx: Ctx<'_>) -> ProviderError {
        match err {
            CallError::BreakerOpen(wait) => ProviderError::Unavailable { retry_after: Some(wait) },
            CallError::Transport => ProviderError::Unavailable { retry_after: None },
            CallError::Refused(t) => {
                let class = classify(t.status, t.code);
                self.log(&t, class, ctx);
                match class {
                    Class::InvalidNumber => ProviderError::InvalidNumber,
                    Class::Undeliverable => ProviderError::Undeliverable,
                    Class::UnsupportedRegion => ProviderError::UnsupportedRegion,
                    Class::RateLimited => ProviderError::RateLimited { retry_after: t.retry_after },
                    Class::MaxCheckAttempts | Class::NotFound | Class::Operator | Class::Unknown => {
                        ProviderError::Unavailable { retry_after: t.retry_after }
                    }
                }
            }
        }
    }

    /// Logs a Twilio error answer: loud when the operator must act, a warning when it is about
    /// one number or one verification.
    pub fn log(&self, t: &TwilioError, class: Class, ctx: Ctx<'_>) {
        // Twilio's message can quote the number back; it goes to the log only, bounded and
        // with every number in it masked.
        let message = log_text(&t.message);
        let more_info = log_text(t.more_info.as_deref().unwrap_or(""));
        let more_info = more_info.as_str();
        let class_name = format!("{class:?}");
        let provider = self.caller.name;
        match class {
            Class::Operator | Class::Unknown => error!(
                event = "sms.provider.error", provider, op = ctx.op, phone = ctx.phone,
                http_status = t.status, twilio_code = t.code, twilio_message = %message, more_info,
                class = %class_name, "Twilio refused a call; check the account, credentials and Twilio's status"
            ),
            _ => warn!(
                event = "sms.provider.error", provider, op = ctx.op, phone = ctx.phone,
                http_status = t.status, twilio_code = t.code, twilio_message = %message, more_info,
                class = %class_name
            ),
        }
    }
}

/// The `kind` label of `otpgate_provider_errors_total` for a Twilio refusal: the row of our
/// error table, plus what an operator must tell apart (credentials). A fixed set of names;
/// never Twilio's text, a SID or a number.
fn error_kind(t: &TwilioError) -> &'static str {
    if t.status == 401 || t.code == Some(20003) {
        return "auth";
    }
    match classify(t.status, t.code) {
        Class::InvalidNumber => "invalid_number",
        Class::Undeliverable => "undeliverable",
        Class::UnsupportedRegion => "unsupported_region",
        Class::RateLimited => "rate_limited",
        Class::MaxCheckAttempts => "max_attempts",
        Class::NotFound => "not_found",
        Class::Operator => "unavailable",
        Class::Unknown => "unknown",
    }
}
