//! What every HTTP provider shares: one call to a vendor, with retries inside a deadline, behind
//! the provider's own circuit breaker, with its metrics and its readiness state. Each vendor
//! module builds its request and reads the answer into its own refusal type (`Refusal`); the
//! machinery here decides what may be repeated.
//!
//! Repeats (retries on the same provider) happen only where a repeat cannot send a second
//! message: a connect error (nothing reached the vendor) and refusals the vendor module marks
//! `retryable` (503, a 429 with a short `Retry-After`, a vendor status that means "not taken,
//! back off"). A timeout or a connection dropped after the request was written may have sent a
//! message: it is never repeated here (the router may still fail over; see `router`).
//!
//! Metrics (labels are static names only): `otpgate_provider_request_duration_seconds{provider,op}`
//! per call that reached the network (retries included), `otpgate_provider_errors_total{provider,kind}`
//! per failed call, and the breaker's `otpgate_provider_breaker_open{provider}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use otpgate_core::{Clock, mask_numbers_in_text};
use tokio::time::Instant;
use tracing::{error, warn};

use crate::breaker::Breaker;
use crate::config::{BreakerConfig, HttpConfig, RetryConfig};

/// A vendor's answer that is not a success, sorted by the vendor module.
pub(crate) trait Refusal: Send + Sync {
    /// Nothing was sent and a repeat soon may succeed.
    fn retryable(&self) -> bool;
    /// What the vendor asked us to wait, if it said.
    fn retry_after(&self) -> Option<Duration>;
    /// The vendor is up (a refusal about one number or request): does not count toward
    /// opening the breaker.
    fn healthy(&self) -> bool;
    /// An account-level problem the operator must fix (credentials refused, out of credit),
    /// shown by readiness until a call succeeds.
    fn account_problem(&self) -> Option<String>;
    /// The `kind` label of `otpgate_provider_errors_total`: a fixed name, never vendor text.
    fn kind(&self) -> &'static str;
    /// A short description for the retry log line (`HTTP 503`, `status 10`).
    fn brief(&self) -> String;
}

/// How a vendor module read one answer.
pub(crate) enum Reading<T, R> {
    Ok(T),
    Refused(R),
    /// A 2xx (or otherwise successful-looking) answer we cannot read: the message may have
    /// gone out, so it is not repeated. The string is for the log (masked there).
    Unreadable(String),
}

pub(crate) enum CallError<R> {
    /// The breaker refused the call; nothing was sent.
    BreakerOpen(Duration),
    /// No usable answer (connect error, timeout, deadline, dropped, unreadable); already logged.
    Transport,
    Refused(R),
}

/// One try's failure, before retries decide what to do with it.
enum Attempt<R> {
    /// The request never reached the vendor: repeating it cannot send a second message.
    Connect(String),
    /// The request may have reached the vendor: never repeated.
    Lost(String),
    Refused(R),
}

/// What a call is about, for the log.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub op: &'static str,
    /// Masked phone, when the call concerns one.
    pub phone: Option<&'a str>,
}

/// One provider instance's call machinery (each has its own breaker and readiness state).
pub(crate) struct Caller {
    http: reqwest::Client,
    pub name: &'static str,
    retry: RetryConfig,
    /// Per try; `RequestBuilder::timeout` replaces the client's own, so it is applied again.
    request_timeout: Duration,
    breaker: Breaker,
    account_problem: Mutex<Option<String>>,
}

impl Caller {
    pub fn new(
        name: &'static str,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        http_cfg: &HttpConfig,
        retry: &RetryConfig,
        breaker: &BreakerConfig,
    ) -> Self {
        let deadline = Duration::from_millis(retry.deadline_ms);
        Caller {
            http,
            name,
            retry: retry.clone(),
            request_timeout: http_cfg.request_timeout(),
            breaker: Breaker::new(
                name,
                clock,
                breaker.failure_threshold,
                Duration::from_secs(breaker.open_secs),
                deadline,
            ),
            account_problem: Mutex::new(None),
        }
    }

    /// `Err(reason)` while the account is refused or the breaker is open; the reason names the
    /// provider and what the operator must look at, never a secret.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(problem) = self.account_problem.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Err(format!("{}: {problem}", self.name));
        }
        if let Some(wait) = self.breaker.open_for() {
            return Err(format!("{}: circuit breaker open for {} s more", self.name, wait.as_secs().max(1)));
        }
        Ok(())
    }

    /// Makes one call: `build` makes the request for each try (a signature with a fresh
    /// timestamp, say), `read` turns an answer into a result or a refusal.
    pub async fn call<T, R: Refusal>(
        &self,
        ctx: Ctx<'_>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        read: impl Fn(u16, &reqwest::header::HeaderMap, &[u8]) -> Reading<T, R>,
    ) -> Result<T, CallError<R>> {
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(wait) => {
                let err = CallError::BreakerOpen(wait);
                self.count_error(&err);
                return Err(err);
            }
        };
        let started = std::time::Instant::now();
        let result = self.with_retries(ctx, &build, &read).await;
        metrics::histogram!("otpgate_provider_request_duration_seconds", "provider" => self.name, "op" => ctx.op)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            self.count_error(err);
        }
        let healthy = match &result {
            Ok(_) => {
                *self.account_problem.lock().unwrap_or_else(|e| e.into_inner()) = None;
                true
            }
            Err(CallError::Refused(r)) => {
                if let Some(problem) = r.account_problem() {
                    *self.account_problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(problem);
                }
                r.healthy()
            }
            Err(_) => false,
        };
        self.breaker.record(permit, healthy);
        result
    }

    fn count_error<R: Refusal>(&self, err: &CallError<R>) {
        let kind = match err {
            CallError::BreakerOpen(_) => "breaker_open",
            // Connect error, timeout, deadline, connection dropped, unreadable 2xx body.
            CallError::Transport => "transport",
            CallError::Refused(r) => r.kind(),
        };
        metrics::counter!("otpgate_provider_errors_total", "provider" => self.name, "kind" => kind).increment(1);
    }

    async fn with_retries<T, R: Refusal>(
        &self,
        ctx: Ctx<'_>,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        read: &impl Fn(u16, &reqwest::header::HeaderMap, &[u8]) -> Reading<T, R>,
    ) -> Result<T, CallError<R>> {
        let deadline_len = Duration::from_millis(self.retry.deadline_ms);
        let deadline = Instant::now() + deadline_len;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.min_delay_ms))
            .with_max_delay(Duration::from_millis(self.retry.max_delay_ms))
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let attempt = || self.attempt(build, read, deadline);
        let retried = attempt
            .retry(backoff)
            .when(|e| match e {
                Attempt::Connect(_) => true,
                Attempt::Refused(r) => r.retryable(),
                Attempt::Lost(_) => false,
            })
            .adjust(|e, backoff| {
                let wait = match e {
                    Attempt::Refused(r) => match r.retry_after() {
                        Some(ra) => backoff.map(|b| b.max(ra)),
                        None => backoff,
                    },
                    _ => backoff,
                }?;
                // A wait that would end past the deadline is a wait for nothing.
                (Instant::now() + wait < deadline).then_some(wait)
            })
            .notify(|e, wait| {
                let why = match e {
                    Attempt::Connect(why) | Attempt::Lost(why) => mask_numbers_in_text(why),
                    Attempt::Refused(r) => r.brief(),
                };
                warn!(event = "sms.provider.retry", provider = self.name, op = ctx.op, reason = %why, wait_ms = wait.as_millis() as u64);
            });
        // The outer timeout also bounds what per-request timeouts cannot: DNS, pool waits.
        let outcome = match tokio::time::timeout(deadline_len, retried).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Attempt::Lost("deadline passed".into())),
        };
        match outcome {
            Ok(value) => Ok(value),
            Err(Attempt::Refused(r)) => Err(CallError::Refused(r)),
            Err(Attempt::Connect(why) | Attempt::Lost(why)) => {
                let why = mask_numbers_in_text(&why);
                error!(event = "sms.provider.unreachable", provider = self.name, op = ctx.op, phone = ctx.phone, reason = %why, "the provider did not answer");
                Err(CallError::Transport)
            }
        }
    }

    async fn attempt<T, R: Refusal>(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        read: &impl Fn(u16, &reqwest::header::HeaderMap, &[u8]) -> Reading<T, R>,
        deadline: Instant,
    ) -> Result<T, Attempt<R>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Attempt::Lost("deadline passed".into()));
        }
        // Never outlive the deadline, even when the client's own timeout is longer.
        let sent = build(&self.http).timeout(left.min(self.request_timeout)).send().await;
        let resp = match sent {
            Ok(resp) => resp,
            // reqwest reports connect timeouts as connect errors: nothing was sent either way.
            Err(e) if e.is_connect() => return Err(Attempt::Connect(describe(&e))),
            Err(e) => return Err(Attempt::Lost(describe(&e))),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| Attempt::Lost(describe(&e)))?;
        match read(status, &headers, &body) {
            Reading::Ok(value) => Ok(value),
            Reading::Refused(r) => Err(Attempt::Refused(r)),
            Reading::Unreadable(why) => {
                // Serde quotes the values it could not read, and a value can be the number.
                let why = mask_numbers_in_text(&why);
                error!(event = "sms.provider.bad_answer", provider = self.name, http_status = status, error = %why, "the provider answered with a body we cannot read");
                Err(Attempt::Lost("unreadable answer".into()))
            }
        }
    }
}

/// reqwest's errors can carry the URL (with account ids, never secrets); keep the kind and the
/// cause.
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

/// `Retry-After` in seconds (an HTTP date is ignored), capped at an hour.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3_600)))
}

/// Vendor text for a log line: bounded, every number in it masked.
pub(crate) fn log_text(text: &str) -> String {
    mask_numbers_in_text(&text.chars().take(300).collect::<String>())
}
