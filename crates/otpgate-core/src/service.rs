//! The verification flow: send (limits -> store -> provider) and check (one atomic store
//! operation). It is the only place that decides what a request may do; the HTTP layer parses
//! and maps errors, the stores and providers carry out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::limits::{LimitRule, LimitScope};
use crate::provider::{ProviderError, render_message};
use crate::store::{CheckOutcome, IssueOutcome, NewCode};
use crate::{
    Channel, Clock, Code, CodeHasher, OtpError, OutgoingCode, PhoneError, PhoneNumber, Policy, RateLimiter,
    SmsProvider, Verification, VerificationId, VerificationStore,
};

/// What the send flow needs besides its collaborators.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub policy: Policy,
    /// Numbers that get a fixed code and never reach a provider (E.164 -> code).
    pub test_numbers: HashMap<String, Code>,
    /// Named in the message ("123456 is your Acme verification code").
    pub app_name: String,
    /// Adds the WebOTP line (`@example.com #123456`) to messages.
    pub webotp_domain: Option<String>,
}

pub struct VerificationService {
    store: Arc<dyn VerificationStore>,
    limiter: Arc<dyn RateLimiter>,
    provider: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    hasher: CodeHasher,
    settings: ServiceSettings,
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub phone: PhoneNumber,
    pub channel: Channel,
    pub locale: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub verification: Verification,
    /// True for a new verification, false for a resend of the live one.
    pub created: bool,
    pub expires_in: Duration,
    pub resend_in: Duration,
}

/// How long a client should wait after the provider failed, when it did not say.
const PROVIDER_RETRY_AFTER: Duration = Duration::from_secs(30);

impl VerificationService {
    pub fn new(
        store: Arc<dyn VerificationStore>,
        limiter: Arc<dyn RateLimiter>,
        provider: Arc<dyn SmsProvider>,
        clock: Arc<dyn Clock>,
        hasher: CodeHasher,
        settings: ServiceSettings,
    ) -> Self {
        VerificationService { store, limiter, provider, clock, hasher, settings }
    }

    pub fn policy(&self) -> &Policy {
        &self.settings.policy
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Limits that apply to a send, all checked before any store write or provider call.
    fn send_rules(&self, req: &SendRequest) -> Vec<LimitRule> {
        let mut rules = Vec::new();
        if let Some(rate) = self.settings.policy.sends_per_phone {
            rules.push(LimitRule::new(LimitScope::PhoneSend, format!("send:phone:{}", req.phone.e164()), rate));
        }
        rules
    }

    pub async fn send(&self, req: SendRequest) -> Result<Sent, OtpError> {
        let masked = req.phone.masked();
        let country = req.phone.region().unwrap_or("ZZ").to_owned();
        let test_code = self.settings.test_numbers.get(req.phone.e164()).cloned();
        if test_code.is_none() && !self.provider.supports(req.channel) {
            return Err(OtpError::InvalidRequest { field: Some("channel"), reason: "this channel is not available" });
        }
        let now = self.clock.now();

        if let Some(wait) = self.store.resend_wait(&req.phone, now).await? {
            security_event_limit(LimitScope::ResendCooldown, &masked, &country, wait);
            return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
        }
        if let Err(denied) = self.limiter.acquire(&self.send_rules(&req), now).await? {
            security_event_limit(denied.scope, &masked, &country, denied.retry_after);
            return Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope });
        }

        let is_test_number = test_code.is_some();
        let code = test_code.unwrap_or_else(|| Code::generate(self.settings.policy.code_length));
        let new = NewCode {
            id: VerificationId::generate(),
            phone: req.phone.clone(),
            channel: req.channel,
            code_digest: Some(self.hasher.digest(&req.phone, &code)),
        };
        let outcome = self.store.issue(new, now, &self.settings.policy).await?;
        let (verification, created) = match &outcome {
            IssueOutcome::Created(v) => (v.clone(), true),
            IssueOutcome::Resent { verification, .. } => (verification.clone(), false),
            IssueOutcome::Cooldown { retry_after } => {
                // Lost a race with a concurrent send for the same phone.
                security_event_limit(LimitScope::ResendCooldown, &masked, &country, *retry_after);
                return Err(OtpError::RateLimited { retry_after: *retry_after, scope: LimitScope::ResendCooldown });
            }
        };

        if !is_test_number {
            let text = render_message(
                &self.settings.app_name,
                &code,
                self.settings.policy.code_ttl,
                self.settings.webotp_domain.as_deref(),
            );
            let msg = OutgoingCode { to: req.phone.clone(), code, channel: req.channel, locale: req.locale, text };
            match self.provider.send(&msg).await {
                Ok(receipt) => {
                    if let Some(provider_ref) = receipt.provider_ref {
                        self.store.set_provider_ref(&verification.id, &provider_ref).await?;
                    }
                }
                Err(err) => {
                    // A failed send must leave no usable code behind and cost the caller no attempt.
                    if let Err(revert) = self.store.revert_issue(&outcome).await {
                        warn!(error = %revert, "could not revert a verification after a failed send");
                    }
                    warn!(
                        event = "otp.send",
                        outcome = "provider_error",
                        provider = self.provider.name(),
                        error = %err,
                        phone = %masked,
                        country = %country,
                        channel = req.channel.as_str(),
                    );
                    return Err(map_provider_error(err));
                }
            }
        }

        info!(
            event = "otp.send",
            outcome = if created { "created" } else { "resent" },
            phone = %masked,
            country = %country,
            channel = req.channel.as_str(),
            test_number = is_test_number,
            verification_id = %verification.id,
        );
        Ok(Sent {
            expires_in: now.until(verification.expires_at),
            resend_in: now.until(verification.next_resend_at),
            verification,
            created,
        })
    }

    /// Checks `code` for `phone`. Succeeds exactly once per verification.
    pub async fn check(&self, phone: &PhoneNumber, code: &str) -> Result<Verification, OtpError> {
        let len = self.settings.policy.code_length;
        let Some(code) = Code::parse(code, len) else {
            return Err(OtpError::InvalidRequest {
                field: Some("code"),
                reason: "the code must be a string of digits of the configured length",
            });
        };
        let now = self.clock.now();
        let digest = self.hasher.digest(phone, &code);
        let outcome = self.store.check(phone, &digest, now).await?;
        let masked = phone.masked();
        let country = phone.region().unwrap_or("ZZ");
        let (label, result) = match outcome {
            CheckOutcome::Approved(v) => ("approved", Ok(v)),
            CheckOutcome::Wrong { attempts_left } => ("wrong", Err(OtpError::InvalidCode { attempts_left })),
            CheckOutcome::Exhausted => ("locked", Err(OtpError::TooManyAttempts)),
            CheckOutcome::NotFound => ("not_found", Err(OtpError::VerificationNotFound)),
        };
        info!(event = "otp.check", outcome = label, phone = %masked, country = %country);
        result
    }

    pub async fn cancel(&self, id: &VerificationId) -> Result<(), OtpError> {
        let canceled = self.store.cancel(id, self.clock.now()).await?;
        if let Some(v) = canceled {
            let phone = PhoneNumber::from_e164(&v.phone).map(|p| p.masked()).unwrap_or_else(|_| "*****".into());
            info!(event = "otp.cancel", outcome = "canceled", phone = %phone, verification_id = %v.id);
        }
        Ok(())
    }
}

fn security_event_limit(scope: LimitScope, masked: &str, country: &str, retry_after: Duration) {
    warn!(
        event = "otp.limit",
        outcome = "rate_limited",
        scope = scope.as_str(),
        phone = %masked,
        country = %country,
        retry_after_ms = retry_after.as_millis() as u64,
    );
}

fn map_provider_error(err: ProviderError) -> OtpError {
    match err {
        ProviderError::InvalidNumber => OtpError::InvalidPhone(PhoneError::NotValid),
        ProviderError::Undeliverable => OtpError::Undeliverable,
        ProviderError::UnsupportedRegion => OtpError::UnsupportedRegion,
        ProviderError::RateLimited { retry_after } => OtpError::RateLimited {
            retry_after: retry_after.unwrap_or(PROVIDER_RETRY_AFTER),
            scope: LimitScope::Provider,
        },
        ProviderError::Unavailable { retry_after } => {
            OtpError::ProviderUnavailable { retry_after: retry_after.unwrap_or(PROVIDER_RETRY_AFTER) }
        }
    }
}
