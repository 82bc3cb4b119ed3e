//! What both Twilio providers share: Basic auth, one form POST with retries inside a deadline
//! behind a circuit breaker, and the mapping of Twilio's error codes onto our error table.
//!
//! Twilio's own error text goes to the log only, with every number in it masked (its 21211
//! text quotes the `To` number back): all text from the network passes `mask_numbers_in_text`
//! before it is logged. Every error returned from here is one of `ProviderError`'s fixed
//! variants, so it cannot leak into a response.
//!
//! Metrics (labels are static names only): `otpgate_provider_request_duration_seconds{provider,op}`
//! per call that reached the network (retries included), `otpgate_provider_errors_total{provider,kind}`
//! per failed call (see `error_kind`), and the breaker's `otpgate_provider_breaker_open{provider}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use otpgate_core::{Clock, ProviderError, mask_numbers_in_text};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{error, warn};

use crate::breaker::Breaker;
use crate::config::{ConfigError, RetryConfig, TwilioConfig};

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

pub(crate) enum CallError {
    /// The breaker refused the call; nothing was sent.
    BreakerOpen(Duration),
    /// No usable answer (connect error, timeout, deadline, unreadable body); already logged.
    Transport,
    Twilio(TwilioError),
}

/// One try's failure, before retries decide what to do with it.
enum Attempt {
    /// The request never reached Twilio: repeating it cannot send a second message.
    Connect(String),
    /// The request may have reached Twilio (timeout, reset mid-answer): a repeat might send a
    /// second message, so it is never retried.
    Lost(String),
    Status(TwilioError),
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
        Some(60205 | 21610 | 21612 | 21635) => Class::Undeliverable,
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
    http: reqwest::Client,
    user: String,
    secret: SecretString,
    retry: RetryConfig,
    /// Per try; `RequestBuilder::timeout` replaces the client's own, so it is applied again.
    request_timeout: Duration,
    breaker: Breaker,
    credentials_rejected: AtomicBool,
    pub provider: &'static str,
}

/// What a call is about, for the log.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub op: &'static str,
    /// Masked phone, when the call concerns one.
    pub phone: Option<&'a str>,
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
        let deadline = Duration::from_millis(cfg.retry.deadline_ms);
        let breaker = Breaker::new(
            provider,
            clock,
            cfg.breaker.failure_threshold,
            Duration::from_secs(cfg.breaker.open_secs),
            deadline,
        );
        Ok(TwilioClient {
            http,
            user,
            secret,
            retry: cfg.retry.clone(),
            request_timeout: cfg.http.request_timeout(),
            breaker,
            credentials_rejected: AtomicBool::new(false),
            provider,
        })
    }

    pub fn readiness(&self) -> Result<(), String> {
        if self.credentials_rejected.load(Ordering::Relaxed) {
            return Err(format!("{}: Twilio rejected the credentials (20003)", self.provider));
        }
        if let Some(wait) = self.breaker.open_for() {
            return Err(format!("{}: circuit breaker open for {} s more", self.provider, wait.as_secs().max(1)));
        }
        Ok(())
    }

    /// POSTs a form and decodes a 2xx JSON answer. Retries only what cannot have sent anything,
    /// and gives up when the deadline passes.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        ctx: Ctx<'_>,
    ) -> Result<T, CallError> {
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(wait) => {
                let err = CallError::BreakerOpen(wait);
                self.count_error(&err);
                return Err(err);
            }
        };
        let started = std::time::Instant::now();
        let result = self.post_with_retries(url, form, ctx).await;
        metrics::histogram!("otpgate_provider_request_duration_seconds", "provider" => self.provider, "op" => ctx.op)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            self.count_error(err);
        }
        let healthy = match &result {
            Ok(_) => {
                self.credentials_rejected.store(false, Ordering::Relaxed);
                true
            }
            Err(CallError::Twilio(e)) => {
                if e.status == 401 || e.code == Some(20003) {
                    self.credentials_rejected.store(true, Ordering::Relaxed);
                }
                // A 4xx about one number or request (even an unknown code) shows Twilio is up;
                // only 5xx and rejected credentials count toward opening the breaker.
                classify(e.status, e.code) != Class::Operator
            }
            Err(_) => false,
        };
        self.breaker.record(permit, healthy);
        result
    }

    /// `otpgate_provider_errors_total{provider,kind}`: one per failed call (after retries).
    fn count_error(&self, err: &CallError) {
        metrics::counter!("otpgate_provider_errors_total", "provider" => self.provider, "kind" => error_kind(err))
            .increment(1);
    }

    async fn post_with_retries<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        ctx: Ctx<'_>,
    ) -> Result<T, CallError> {
        let deadline_len = Duration::from_millis(self.retry.deadline_ms);
        let deadline = Instant::now() + deadline_len;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.min_delay_ms))
            .with_max_delay(Duration::from_millis(self.retry.max_delay_ms))
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let attempt = || self.attempt(url, form, deadline);
        let retried = attempt
            .retry(backoff)
            .when(|e| match e {
                Attempt::Connect(_) => true,
                Attempt::Status(t) if t.status == 503 => true,
                // Per-number limits (60203, 60212) do not clear in seconds; an account-level
                // 429 with a short Retry-After does.
                Attempt::Status(t) => t.status == 429 && t.retry_after.is_some() && !matches!(t.code, Some(60203 | 60212)),
                Attempt::Lost(_) => false,
            })
            .adjust(|e, backoff| {
                let wait = match e {
                    Attempt::Status(TwilioError { retry_after: Some(ra), .. }) => backoff.map(|b| b.max(*ra)),
                    _ => backoff,
                }?;
                // A wait that would end past the deadline is a wait for nothing.
                (Instant::now() + wait < deadline).then_some(wait)
            })
            .notify(|e, wait| {
                let why = match e {
                    Attempt::Connect(why) | Attempt::Lost(why) => mask_numbers_in_text(why),
                    Attempt::Status(t) => format!("HTTP {}", t.status),
                };
                warn!(event = "sms.provider.retry", provider = self.provider, op = ctx.op, reason = %why, wait_ms = wait.as_millis() as u64);
            });
        // The outer timeout also bounds what per-request timeouts cannot: DNS, pool waits.
        let outcome = match tokio::time::timeout(deadline_len, retried).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Attempt::Lost("deadline passed".into())),
        };
        let body = match outcome {
            Ok(body) => body,
            Err(Attempt::Status(t)) => return Err(CallError::Twilio(t)),
            Err(Attempt::Connect(why) | Attempt::Lost(why)) => {
                let why = mask_numbers_in_text(&why);
                error!(event = "sms.provider.unreachable", provider = self.provider, op = ctx.op, phone = ctx.phone, reason = %why, "Twilio did not answer");
                return Err(CallError::Transport);
            }
        };
        serde_json::from_slice(&body).map_err(|e| {
            // serde quotes the values it could not read, and a value can be the number.
            let e = mask_numbers_in_text(&e.to_string());
            error!(event = "sms.provider.bad_answer", provider = self.provider, op = ctx.op, phone = ctx.phone, error = %e, "Twilio answered 2xx with a body we cannot read");
            CallError::Transport
        })
    }

    async fn attempt(&self, url: &str, form: &[(&str, &str)], deadline: Instant) -> Result<Vec<u8>, Attempt> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Attempt::Lost("deadline passed".into()));
        }
        let sent = self
            .http
            .post(url)
            .basic_auth(&self.user, Some(self.secret.expose_secret()))
            .form(form)
            // Never outlive the deadline, even when the client's own timeout is longer.
            .timeout(left.min(self.request_timeout))
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            // reqwest reports connect timeouts as connect errors: nothing was sent either way.
            Err(e) if e.is_connect() => return Err(Attempt::Connect(describe(&e))),
            Err(e) => return Err(Attempt::Lost(describe(&e))),
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let body = resp.bytes().await.map_err(|e| Attempt::Lost(describe(&e)))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        Err(Attempt::Status(TwilioError {
            status: status.as_u16(),
            code: parsed.code,
            message: parsed.message.unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
            more_info: parsed.more_info,
            retry_after,
        }))
    }

    /// Maps a failed send-side call (start, message, cancel) to our error table and logs
    /// Twilio's words for the operator.
    pub fn send_error(&self, err: CallError, ctx: Ctx<'_>) -> ProviderError {
        match err {
            CallError::BreakerOpen(wait) => ProviderError::Unavailable { retry_after: Some(wait) },
            CallError::Transport => ProviderError::Unavailable { retry_after: None },
            CallError::Twilio(t) => {
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
        let message = mask_numbers_in_text(&t.message.chars().take(300).collect::<String>());
        let more_info =
            mask_numbers_in_text(&t.more_info.as_deref().unwrap_or("").chars().take(300).collect::<String>());
        let more_info = more_info.as_str();
        let class_name = format!("{class:?}");
        match class {
            Class::Operator | Class::Unknown => error!(
                event = "sms.provider.error", provider = self.provider, op = ctx.op, phone = ctx.phone,
                http_status = t.status, twilio_code = t.code, twilio_message = %message, more_info,
                class = %class_name, "Twilio refused a call; check the account, credentials and Twilio's status"
            ),
            _ => warn!(
                event = "sms.provider.error", provider = self.provider, op = ctx.op, phone = ctx.phone,
                http_status = t.status, twilio_code = t.code, twilio_message = %message, more_info,
                class = %class_name
            ),
        }
    }
}

/// The `kind` label of `otpgate_provider_errors_total`: the row of our error table a failed call
/// maps to, plus what an operator must tell apart (credentials, transport, breaker). A fixed set
/// of names; never Twilio's text, a SID or a number.
fn error_kind(err: &CallError) -> &'static str {
    match err {
        CallError::BreakerOpen(_) => "breaker_open",
        // Connect error, timeout, deadline, connection dropped, unreadable 2xx body.
        CallError::Transport => "transport",
        CallError::Twilio(t) if t.status == 401 || t.code == Some(20003) => "auth",
        CallError::Twilio(t) => match classify(t.status, t.code) {
            Class::InvalidNumber => "invalid_number",
            Class::Undeliverable => "undeliverable",
            Class::UnsupportedRegion => "unsupported_region",
            Class::RateLimited => "rate_limited",
            Class::MaxCheckAttempts => "max_attempts",
            Class::NotFound => "not_found",
            Class::Operator => "unavailable",
            Class::Unknown => "unknown",
        },
    }
}

/// reqwest's errors can carry the URL (with SIDs, never secrets); keep the kind and the cause.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_owned(),
    }
}

/// `Retry-After` in seconds (Twilio sends seconds; an HTTP date is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3_600)))
}
