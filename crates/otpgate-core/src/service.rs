//! The verification flow: send (limits -> store -> provider) and check (one atomic store
//! operation). It is the only place that decides what a request may do; the HTTP layer parses
//! and maps errors, the stores and providers carry out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use std::net::IpAddr;

use crate::bot::{BotScope, BotVerifier};
use crate::client::ClientKey;
use crate::limits::{LimitRule, LimitScope, Rate};
use crate::privacy;
use crate::provider::{MessageTemplates, ProviderCheck, ProviderError};
use crate::store::{AttemptOutcome, CheckOutcome, IssueOutcome, NewCode};
use crate::tripwire::{self, TripwireState};
use crate::{
    Channel, Clock, Code, CodeHasher, OtpError, OutgoingCode, PhoneError, PhoneNumber, Policy, RateLimiter,
    SmsProvider, Verification, VerificationId, VerificationStore,
};
use crate::{Timestamp, VerificationStatus};

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
    /// Message templates per locale.
    pub templates: MessageTemplates,
    /// The optional bot check on send, and where it applies.
    pub bot_check: Option<(Arc<dyn BotVerifier>, BotScope)>,
}

impl std::fmt::Debug for dyn BotVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotVerifier")
    }
}

pub struct VerificationService {
    store: Arc<dyn VerificationStore>,
    limiter: Arc<dyn RateLimiter>,
    provider: Arc<dyn SmsProvider>,
    clock: Arc<dyn Clock>,
    hasher: CodeHasher,
    settings: ServiceSettings,
    tripwire: TripwireState,
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub phone: PhoneNumber,
    pub channel: Channel,
    pub locale: Option<String>,
    /// The client's address (the socket peer, or what a trusted proxy reported).
    pub client_ip: Option<IpAddr>,
    /// A bot-check challenge token, when the client has one.
    pub bot_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub verification: Verification,
    /// True for a new verification, false for a resend of the live one.
    pub created: bool,
    pub expires_in: Duration,
    pub resend_in: Duration,
}

/// Stored before the provider's reference of a verification whose code the provider holds.
pub const REMOTE_PREFIX: &str = "remote:";

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
        VerificationService { store, limiter, provider, clock, hasher, settings, tripwire: TripwireState::default() }
    }

    pub fn policy(&self) -> &Policy {
        &self.settings.policy
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Limits that apply to a send, all checked (and taken, all or nothing) before any store
    /// write or provider call. Keys of personal values are keyed HMACs (see `privacy`).
    fn send_rules(&self, req: &SendRequest, country: &str, tripped: bool) -> Vec<LimitRule> {
        let l = &self.settings.policy.limits;
        let h = &self.hasher;
        let phone = &req.phone;
        let mut rules = Vec::new();
        let mut add = |scope, rate: Option<Rate>, key: &dyn Fn() -> String| {
            if let Some(rate) = rate {
                rules.push(LimitRule::new(scope, key(), rate));
            }
        };
        add(LimitScope::PhoneSend, l.phone_send, &|| privacy::phone_send_key(h, phone));
        add(LimitScope::PhoneSendHourly, l.phone_send_hourly, &|| {
            privacy::phone_limit_key(h, "send:phone:hourly", phone)
        });
        add(LimitScope::PhoneSendDaily, l.phone_send_daily, &|| privacy::phone_limit_key(h, "send:phone:daily", phone));
        add(LimitScope::PrefixSend, l.prefix_send, &|| privacy::limit_key(h, "send:prefix", phone.prefix().as_bytes()));
        add(LimitScope::CountrySend, l.country_send, &|| format!("send:country:{country}"));
        add(LimitScope::GlobalSendHourly, l.global_send_hourly, &|| "send:global:hourly".to_owned());
        add(LimitScope::GlobalSendDaily, l.global_send_daily, &|| "send:global:daily".to_owned());
        if let Some(ip) = req.client_ip {
            // One IPv4 address, or one IPv6 network: a /64 is one client, not 2^64.
            let client = ClientKey::new(ip, l.ipv6_prefix).to_string();
            add(LimitScope::IpSend, l.ip_send, &|| privacy::limit_key(h, "send:ip", client.as_bytes()));
            add(LimitScope::IpSendHourly, l.ip_send_hourly, &|| {
                privacy::limit_key(h, "send:ip:hourly", client.as_bytes())
            });
        }
        if tripped {
            let trickle = Some(self.settings.policy.tripwire.trickle);
            add(LimitScope::Tripwire, trickle, &|| format!("tripwire:trickle:{country}"));
        }
        rules
    }

    /// Limits taken by every check: failed checks per phone (cleared by a success) and checks
    /// per client IP.
    fn check_rules(&self, phone: &PhoneNumber, client_ip: Option<IpAddr>) -> Vec<LimitRule> {
        let l = &self.settings.policy.limits;
        let mut rules = Vec::new();
        if let Some(rate) = l.phone_check_failures {
            rules.push(LimitRule::new(LimitScope::PhoneCheck, self.phone_check_key(phone), rate));
        }
        if let (Some(rate), Some(ip)) = (l.ip_check, client_ip) {
            let client = ClientKey::new(ip, l.ipv6_prefix).to_string();
            let key = privacy::limit_key(&self.hasher, "check:ip", client.as_bytes());
            rules.push(LimitRule::new(LimitScope::IpCheck, key, rate));
        }
        rules
    }

    fn phone_check_key(&self, phone: &PhoneNumber) -> String {
        privacy::phone_limit_key(&self.hasher, "check:phone", phone)
    }

    /// Refuses a send the bot check requires and the client did not pass.
    async fn bot_check(&self, req: &SendRequest, country: &str) -> Result<(), OtpError> {
        let Some((verifier, scope)) = &self.settings.bot_check else { return Ok(()) };
        if !scope.applies_to(country) {
            return Ok(());
        }
        let refused = |outcome: &'static str| {
            warn!(event = "otp.send", outcome, phone = %req.phone.masked(), country = %country, client_ip = %ip_field(req.client_ip));
            metrics::counter!("otpgate_sends_total", "outcome" => outcome, "country" => country.to_owned())
                .increment(1);
            Err(OtpError::InvalidRequest { field: Some("bot_token"), reason: "please complete the challenge first" })
        };
        let Some(token) = req.bot_token.as_deref().filter(|t| !t.is_empty()) else {
            return refused("bot_check_missing");
        };
        match verifier.verify(token, req.client_ip).await {
            Ok(true) => Ok(()),
            Ok(false) => refused("bot_check_failed"),
            Err(_) => Err(OtpError::ProviderUnavailable { retry_after: PROVIDER_RETRY_AFTER }),
        }
    }

    pub async fn send(&self, req: SendRequest) -> Result<Sent, OtpError> {
        let masked = req.phone.masked();
        let country = req.phone.region().unwrap_or("ZZ").to_owned();
        let test_code = self.settings.test_numbers.get(req.phone.e164()).cloned();
        if test_code.is_none() && !self.provider.supports(req.channel) {
            return Err(OtpError::InvalidRequest { field: Some("channel"), reason: "this channel is not available" });
        }
        let now = self.clock.now();
        if !self.settings.policy.regions.allows(&req.phone) {
            warn!(event = "otp.send", outcome = "unsupported_region", phone = %masked, country = %country, kind = req.phone.kind().as_str(), client_ip = %ip_field(req.client_ip));
            metrics::counter!("otpgate_sends_total", "outcome" => "unsupported_region", "country" => country.clone())
                .increment(1);
            return Err(OtpError::UnsupportedRegion);
        }
        self.bot_check(&req, &country).await?;

        if let Some(wait) = self.store.resend_wait(&req.phone, now).await? {
            security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, wait);
            return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
        }
        let tripwire = &self.settings.policy.tripwire;
        let tripped =
            test_code.is_none() && tripwire::is_tripped(&*self.limiter, tripwire, &self.tripwire, &country, now).await;
        if let Err(denied) = self.limiter.acquire(&self.send_rules(&req, &country, tripped), now).await? {
            security_event_limit(denied.scope, &masked, &country, req.client_ip, denied.retry_after);
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
                security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, *retry_after);
                return Err(OtpError::RateLimited { retry_after: *retry_after, scope: LimitScope::ResendCooldown });
            }
        };

        if !is_test_number {
            let text = self.settings.templates.render(
                req.locale.as_deref(),
                &self.settings.app_name,
                &code,
                self.settings.policy.code_ttl,
                self.settings.webotp_domain.as_deref(),
            );
            let msg = OutgoingCode { to: req.phone.clone(), code, channel: req.channel, locale: req.locale, text };
            match self.provider.send(&msg).await {
                Ok(receipt) => match receipt.provider_ref {
                    Some(provider_ref) if receipt.provider_checks => {
                        // The provider made and sent its own code; ours was never sent.
                        self.store.mark_remote(&verification.id, &format!("{REMOTE_PREFIX}{provider_ref}")).await?;
                    }
                    Some(provider_ref) => self.store.set_provider_ref(&verification.id, &provider_ref).await?,
                    None if receipt.provider_checks => {
                        return Err(OtpError::Internal("a provider that holds codes returned no reference".into()));
                    }
                    None => {}
                },
                Err(err) => {
                    // A failed send must leave no usable code behind and cost the caller no attempt.
                    if let Err(revert) = self.store.revert_issue(&outcome).await {
                        warn!(error = %revert, "could not revert a verification after a failed send");
                    }
                    metrics::counter!(
                        "otpgate_sends_total",
                        "outcome" => "provider_error",
                        "country" => country.clone(),
                        "channel" => req.channel.as_str(),
                        "provider" => self.provider.name(),
                    )
                    .increment(1);
                    warn!(
                        event = "otp.send",
                        outcome = "provider_error",
                        provider = self.provider.name(),
                        error = %err,
                        phone = %masked,
                        country = %country,
                        channel = req.channel.as_str(),
                        client_ip = %ip_field(req.client_ip),
                    );
                    return Err(map_provider_error(err));
                }
            }
        }

        if !is_test_number {
            tripwire::record_send(&*self.limiter, tripwire, &country, now).await;
        }
        metrics::counter!(
            "otpgate_sends_total",
            "outcome" => if created { "created" } else { "resent" },
            "country" => country.clone(),
            "channel" => req.channel.as_str(),
            "provider" => if is_test_number { "test_number" } else { self.provider.name() },
        )
        .increment(1);
        info!(
            event = "otp.send",
            client_ip = %ip_field(req.client_ip),
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
    pub async fn check(
        &self,
        phone: &PhoneNumber,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Verification, OtpError> {
        let len = self.settings.policy.code_length;
        let Some(code) = Code::parse(code, len) else {
            return Err(OtpError::InvalidRequest {
                field: Some("code"),
                reason: "the code must be a string of digits of the configured length",
            });
        };
        let now = self.clock.now();
        let country = phone.region().unwrap_or("ZZ");
        if let Err(denied) = self.limiter.acquire(&self.check_rules(phone, client_ip), now).await? {
            security_event_limit(denied.scope, &phone.masked(), country, client_ip, denied.retry_after);
            metrics::counter!("otpgate_checks_total", "outcome" => "rate_limited", "country" => country.to_owned())
                .increment(1);
            return Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope });
        }
        let digest = self.hasher.digest(phone, &code);
        let outcome = self.store.check(phone, &digest, now).await?;
        let (label, result) = match outcome {
            CheckOutcome::Approved(v) => ("approved", Ok(v)),
            CheckOutcome::Wrong { attempts_left } => ("wrong", Err(OtpError::InvalidCode { attempts_left })),
            CheckOutcome::Exhausted => ("locked", Err(OtpError::TooManyAttempts)),
            CheckOutcome::NotFound => ("not_found", Err(OtpError::VerificationNotFound)),
            CheckOutcome::Remote(v) => self.check_remote(phone, v, &code, now).await?,
        };
        if result.is_ok() {
            // A success clears the phone's failure count and feeds the tripwire.
            if let Err(e) = self.limiter.reset(&[self.phone_check_key(phone)]).await {
                warn!(error = %e, "cannot reset the check limit after an approval");
            }
            tripwire::record_approval(&*self.limiter, &self.settings.policy.tripwire, country, now).await;
        }
        metrics::counter!("otpgate_checks_total", "outcome" => label, "country" => country.to_owned()).increment(1);
        info!(
            event = "otp.check",
            outcome = label,
            phone = %phone.masked(),
            country = %country,
            client_ip = %ip_field(client_ip),
        );
        result
    }

    /// The provider holds the code (Twilio Verify). The attempt is counted here first, so a
    /// brute force is stopped by our own cap and never reaches the provider past it.
    async fn check_remote(
        &self,
        phone: &PhoneNumber,
        v: Verification,
        code: &Code,
        now: Timestamp,
    ) -> Result<(&'static str, Result<Verification, OtpError>), OtpError> {
        let counted = match self.store.count_attempt(&v.id, now).await? {
            AttemptOutcome::Counted(counted) => counted,
            AttemptOutcome::Exhausted => return Ok(("locked", Err(OtpError::TooManyAttempts))),
            AttemptOutcome::NotFound => return Ok(("not_found", Err(OtpError::VerificationNotFound))),
        };
        let Some(provider_ref) = counted.provider_ref.as_deref().and_then(|r| r.strip_prefix(REMOTE_PREFIX)) else {
            return Err(OtpError::Internal("a provider-held verification has no provider reference".into()));
        };
        match self.provider.check(provider_ref, phone, code).await {
            Ok(ProviderCheck::Approved) => {
                if self.store.approve(&counted.id, now).await? {
                    Ok(("approved", Ok(Verification { status: VerificationStatus::Approved, ..counted })))
                } else {
                    // A concurrent check approved it first.
                    Ok(("not_found", Err(OtpError::VerificationNotFound)))
                }
            }
            Ok(ProviderCheck::Wrong) if counted.attempts >= counted.max_attempts => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                self.cancel_remote(provider_ref).await;
                Ok(("locked", Err(OtpError::TooManyAttempts)))
            }
            Ok(ProviderCheck::Wrong) => {
                Ok(("wrong", Err(OtpError::InvalidCode { attempts_left: counted.attempts_left() })))
            }
            Ok(ProviderCheck::TooManyAttempts) => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                Ok(("locked", Err(OtpError::TooManyAttempts)))
            }
            Ok(ProviderCheck::NotFound) => {
                self.store.finish(&counted.id, VerificationStatus::Expired, now).await?;
                Ok(("not_found", Err(OtpError::VerificationNotFound)))
            }
            // The attempt stays counted: a failing provider must not become a free retry.
            Err(e) => Ok(("provider_error", Err(map_provider_error(e)))),
        }
    }

    /// Best effort: a failed cancel at the provider is logged, never shown.
    async fn cancel_remote(&self, provider_ref: &str) {
        if let Err(e) = self.provider.cancel(provider_ref).await {
            warn!(provider = self.provider.name(), error = %e, "could not cancel a provider-held verification");
        }
    }

    pub async fn cancel(&self, id: &VerificationId) -> Result<(), OtpError> {
        let canceled = self.store.cancel(id, self.clock.now()).await?;
        if let Some(v) = canceled {
            let phone = PhoneNumber::from_e164(&v.phone).map(|p| p.masked()).unwrap_or_else(|_| "*****".into());
            info!(event = "otp.cancel", outcome = "canceled", phone = %phone, verification_id = %v.id);
            if let Some(provider_ref) = v.provider_ref.as_deref().and_then(|r| r.strip_prefix(REMOTE_PREFIX)) {
                self.cancel_remote(provider_ref).await;
            }
        }
        Ok(())
    }
}

fn security_event_limit(
    scope: LimitScope,
    masked: &str,
    country: &str,
    client_ip: Option<IpAddr>,
    retry_after: Duration,
) {
    metrics::counter!("otpgate_limit_hits_total", "scope" => scope.as_str()).increment(1);
    warn!(
        event = "otp.limit",
        outcome = "rate_limited",
        scope = scope.as_str(),
        phone = %masked,
        country = %country,
        client_ip = %ip_field(client_ip),
        retry_after_ms = retry_after.as_millis() as u64,
    );
}

/// The client's address in a security event (the resolved client, never a proxy), `-` when
/// unknown.
fn ip_field(client_ip: Option<IpAddr>) -> impl std::fmt::Display {
    struct Field(Option<IpAddr>);
    impl std::fmt::Display for Field {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0 {
                Some(ip) => write!(f, "{ip}"),
                None => f.write_str("-"),
            }
        }
    }
    Field(client_ip)
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
