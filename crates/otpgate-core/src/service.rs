//! The verification flow: send (limits -> store -> provider) and check (one atomic store
//! operation). It is the only place that decides what a request may do; the HTTP layer parses
//! and maps errors, the stores and providers carry out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use std::net::IpAddr;

use crate::bot::BotCheck;
use crate::client::ClientKey;
use crate::limits::{LimitRule, LimitScope, Rate};
use crate::privacy;
use crate::provider::{MessageTemplates, ProviderCheck, ProviderError};
use crate::resend;
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
    /// The optional bot check on send: where it is required, and what passing it lifts.
    pub bot_check: Option<BotCheck>,
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

    /// Failed checks per phone (cleared by a success): looked at before every check, taken only
    /// by a check that compared a code and found it wrong.
    fn phone_check_rule(&self, phone: &PhoneNumber) -> Option<LimitRule> {
        let rate = self.settings.policy.limits.phone_check_failures?;
        Some(LimitRule::new(LimitScope::PhoneCheck, self.phone_check_key(phone), rate))
    }

    /// Checks per client IP: taken by every check, whatever it finds.
    fn ip_check_rule(&self, client_ip: Option<IpAddr>) -> Option<LimitRule> {
        let (rate, ip) = (self.settings.policy.limits.ip_check?, client_ip?);
        let client = ClientKey::new(ip, self.settings.policy.limits.ipv6_prefix).to_string();
        let key = privacy::limit_key(&self.hasher, "check:ip", client.as_bytes());
        Some(LimitRule::new(LimitScope::IpCheck, key, rate))
    }

    fn phone_check_key(&self, phone: &PhoneNumber) -> String {
        privacy::phone_limit_key(&self.hasher, "check:phone", phone)
    }

    /// Refuses a send the bot check requires and the client did not pass; `true` when the
    /// client passed it (a token is single use: it is never verified twice).
    async fn required_bot_check(&self, req: &SendRequest, country: &str) -> Result<bool, OtpError> {
        match &self.settings.bot_check {
            Some(bot) if bot.required.applies_to(country) => {
                self.verify_bot_token(bot, req, country).await.map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// Verifies the request's bot token: `invalid_request` naming `bot_token` when it is
    /// missing or fails, `provider_unavailable` when the verifier cannot be asked (fail closed).
    async fn verify_bot_token(&self, bot: &BotCheck, req: &SendRequest, country: &str) -> Result<(), OtpError> {
        let verifier = &bot.verifier;
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

    /// A send was refused by `denied`. When that is a shared budget (the prefix limit, a
    /// country limit, the tripwire) and a bot check is configured, one attacker must not be
    /// able to deny a whole number block or country to everyone: a client that passes the check
    /// may send (without a token the answer is `invalid_request` naming `bot_token`). What a
    /// passed check buys is bounded: the send is counted in an allowance of its own per shared
    /// budget key, `limit_factor` times that budget (so a bot-solving farm cannot pump a block
    /// or country without end), and it still takes from every other limit (per phone, per IP,
    /// the global spend cap), all or nothing. Otherwise the refusal stands.
    async fn send_past_a_shared_budget(
        &self,
        req: &SendRequest,
        country: &str,
        rules: Vec<LimitRule>,
        denied: crate::Denied,
        bot_passed: bool,
        now: Timestamp,
    ) -> Result<(), OtpError> {
        let masked = req.phone.masked();
        let refuse = |denied: crate::Denied| {
            security_event_limit(denied.scope, &masked, country, req.client_ip, denied.retry_after);
            Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope })
        };
        let bot = match &self.settings.bot_check {
            Some(bot) if bot.limit_factor > 0 && denied.scope.is_shared_budget() => bot,
            _ => return refuse(denied),
        };
        let (shared, others): (Vec<LimitRule>, Vec<LimitRule>) =
            rules.into_iter().partition(|rule| rule.scope.is_shared_budget());
        // A challenge only where passing it can help: the limits it does not lift have room.
        if let Err(other) = self.limiter.peek(&others, now).await? {
            return refuse(other);
        }
        if !bot_passed {
            self.verify_bot_token(bot, req, country).await?;
        }
        let allowances = shared.into_iter().map(|rule| {
            let rate = Rate::new(rule.rate.count.saturating_mul(bot.limit_factor), rule.rate.period);
            LimitRule::new(rule.scope, format!("bot_passed:{}", rule.key), rate)
        });
        let lifted: Vec<LimitRule> = others.into_iter().chain(allowances).collect();
        if let Err(denied) = self.limiter.acquire(&lifted, now).await? {
            return refuse(denied);
        }
        metrics::counter!("otpgate_limit_hits_total", "scope" => denied.scope.as_str()).increment(1);
        info!(
            event = "otp.limit",
            outcome = "lifted_by_bot_check",
            scope = denied.scope.as_str(),
            phone = %masked,
            country = %country,
        );
        Ok(())
    }

    pub async fn send(&self, req: SendRequest) -> Result<Sent, OtpError> {
        let masked = req.phone.masked();
        let country = req.phone.region().unwrap_or("ZZ").to_owned();
        let test_code = self.settings.test_numbers.get(req.phone.e164()).cloned();
        if test_code.is_none() && !self.provider.supports_for(req.channel, &req.phone) {
            return Err(OtpError::InvalidRequest { field: Some("channel"), reason: "this channel is not available" });
        }
        let now = self.clock.now();
        if !self.settings.policy.regions.allows(&req.phone) {
            warn!(event = "otp.send", outcome = "unsupported_region", phone = %masked, country = %country, kind = req.phone.kind().as_str(), client_ip = %ip_field(req.client_ip));
            metrics::counter!("otpgate_sends_total", "outcome" => "unsupported_region", "country" => country.clone())
                .increment(1);
            return Err(OtpError::UnsupportedRegion);
        }
        let bot_passed = self.required_bot_check(&req, &country).await?;

        // The phone's resend cooldown, read first so a refused send uses up no quota.
        let resend_key = privacy::phone_resend_key(&self.hasher, &req.phone);
        if let Some(wait) = resend::current_wait(&*self.limiter, &resend_key, now).await? {
            security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, wait);
            return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
        }
        let tripwire = &self.settings.policy.tripwire;
        let tripped =
            test_code.is_none() && tripwire::is_tripped(&*self.limiter, tripwire, &self.tripwire, &country, now).await;
        let rules = self.send_rules(&req, &country, tripped);
        if let Err(denied) = self.limiter.acquire(&rules, now).await? {
            self.send_past_a_shared_budget(&req, &country, rules, denied, bot_passed, now).await?;
        }
        // Taken now; given back below if the send does not happen after all.
        let first_cooldown = self.settings.policy.resend_cooldown;
        let slot = match resend::take(&*self.limiter, &resend_key, first_cooldown, now).await? {
            Ok(slot) => slot,
            Err(wait) => {
                // Lost a race with a concurrent send for the same phone.
                security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, wait);
                return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
            }
        };

        let is_test_number = test_code.is_some();
        let code = test_code.unwrap_or_else(|| Code::generate(self.settings.policy.code_length));
        let new = NewCode {
            id: VerificationId::generate(),
            phone: req.phone.clone(),
            channel: req.channel,
            code_digest: Some(self.hasher.digest(&req.phone, &code)),
        };
        let outcome = match self.store.issue(new, now, &self.settings.policy).await {
            Ok(outcome) => outcome,
            Err(e) => {
                resend::give_back(&*self.limiter, &slot, now).await;
                return Err(e.into());
            }
        };
        let (verification, created) = match &outcome {
            IssueOutcome::Created(v) => (v.clone(), true),
            IssueOutcome::Resent { verification, .. } => (verification.clone(), false),
            IssueOutcome::Cooldown { retry_after } => {
                // Lost a race with a concurrent send for the same phone.
                resend::give_back(&*self.limiter, &slot, now).await;
                security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, *retry_after);
                return Err(OtpError::RateLimited { retry_after: *retry_after, scope: LimitScope::ResendCooldown });
            }
        };

        // Who sent, and on which channel: a router names the provider it used, and a channel
        // fallback (WhatsApp undeliverable -> SMS, the same code) says the channel it used.
        let mut sent_by = if is_test_number { "test_number" } else { self.provider.name() };
        let mut sent_on = req.channel;
        if !is_test_number {
            let text = self.settings.templates.render(
                req.locale.as_deref(),
                &self.settings.app_name,
                &code,
                self.settings.policy.code_ttl,
                self.settings.webotp_domain.as_deref(),
            );
            let msg = OutgoingCode {
                to: req.phone.clone(),
                code,
                channel: req.channel,
                locale: req.locale,
                text,
                verification_id: Some(verification.id.clone()),
                expires_at: Some(verification.expires_at),
            };
            match self.provider.send(&msg).await {
                Ok(receipt) => {
                    sent_by = receipt.provider.unwrap_or(sent_by);
                    sent_on = receipt.channel.unwrap_or(sent_on);
                    match receipt.provider_ref {
                        Some(provider_ref) if receipt.provider_checks => {
                            // The provider made and sent its own code; ours was never sent.
                            self.store.mark_remote(&verification.id, &format!("{REMOTE_PREFIX}{provider_ref}")).await?;
                        }
                        Some(provider_ref) => self.store.set_provider_ref(&verification.id, &provider_ref).await?,
                        None if receipt.provider_checks => {
                            return Err(OtpError::Internal("a provider that holds codes returned no reference".into()));
                        }
                        None => {}
                    }
                }
                Err(err) => {
                    // A failed send must leave no usable code behind and cost the caller no attempt.
                    if let Err(revert) = self.store.revert_issue(&outcome).await {
                        warn!(error = %revert, "could not revert a verification after a failed send");
                    }
                    resend::give_back(&*self.limiter, &slot, now).await;
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
            "channel" => sent_on.as_str(),
            "provider" => sent_by,
        )
        .increment(1);
        info!(
            event = "otp.send",
            client_ip = %ip_field(req.client_ip),
            outcome = if created { "created" } else { "resent" },
            phone = %masked,
            country = %country,
            channel = sent_on.as_str(),
            requested_channel = req.channel.as_str(),
            provider = sent_by,
            test_number = is_test_number,
            verification_id = %verification.id,
        );
        // The answer names the channel the code went out on (the stored record keeps the one
        // asked for; the code, and so the verification, is the same either way).
        let verification = Verification { channel: sent_on, ..verification };
        Ok(Sent { expires_in: now.until(verification.expires_at), resend_in: slot.wait, verification, created })
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
        let limited = |denied: crate::Denied| {
            security_event_limit(denied.scope, &phone.masked(), country, client_ip, denied.retry_after);
            metrics::counter!("otpgate_checks_total", "outcome" => "rate_limited", "country" => country.to_owned())
                .increment(1);
            Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope })
        };
        // A phone locked by failed checks is refused before anything is compared. The lock is
        // only looked at here: a check counts against its phone below, and only when it compared
        // a code, so checks against a phone with no live verification (anyone can send them) can
        // never lock its owner out. Counting after the compare lets checks already past this
        // look go on being compared; each is still one of its verification's atomically
        // counted attempts, so at most `max_attempts - 1` guesses pass the lock.
        let phone_rule = self.phone_check_rule(phone);
        if let Some(rule) = &phone_rule
            && let Err(denied) = self.limiter.peek(std::slice::from_ref(rule), now).await?
        {
            return limited(denied);
        }
        if let Some(rule) = self.ip_check_rule(client_ip)
            && let Err(denied) = self.limiter.acquire(&[rule], now).await?
        {
            return limited(denied);
        }
        let digest = self.hasher.digest(phone, &code);
        let outcome = self.store.check(phone, &digest, now).await?;
        let Checked { label, compared_wrong, result } = match outcome {
            CheckOutcome::Approved(v) => Checked::new("approved", false, Ok(v)),
            CheckOutcome::Wrong { attempts_left } => {
                Checked::new("wrong", true, Err(OtpError::InvalidCode { attempts_left }))
            }
            CheckOutcome::Killed => Checked::new("locked", true, Err(OtpError::TooManyAttempts)),
            CheckOutcome::Exhausted => Checked::new("locked", false, Err(OtpError::TooManyAttempts)),
            CheckOutcome::NotFound => Checked::new("not_found", false, Err(OtpError::VerificationNotFound)),
            CheckOutcome::Remote(v) => self.check_remote(phone, v, &code, now).await?,
        };
        if compared_wrong && let Some(rule) = &phone_rule {
            // Refused means the phone's bucket is already full: it is locked either way.
            let _ = self.limiter.acquire(std::slice::from_ref(rule), now).await?;
        }
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
    ) -> Result<Checked, OtpError> {
        let counted = match self.store.count_attempt(&v.id, now).await? {
            AttemptOutcome::Counted(counted) => counted,
            AttemptOutcome::Exhausted => return Ok(Checked::new("locked", false, Err(OtpError::TooManyAttempts))),
            AttemptOutcome::NotFound => {
                return Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound)));
            }
        };
        let Some(provider_ref) = counted.provider_ref.as_deref().and_then(|r| r.strip_prefix(REMOTE_PREFIX)) else {
            return Err(OtpError::Internal("a provider-held verification has no provider reference".into()));
        };
        match self.provider.check(provider_ref, phone, code).await {
            Ok(ProviderCheck::Approved) => {
                if self.store.approve(&counted.id, now).await? {
                    let approved = Verification { status: VerificationStatus::Approved, ..counted };
                    Ok(Checked::new("approved", false, Ok(approved)))
                } else {
                    // A concurrent check approved it first.
                    Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound)))
                }
            }
            Ok(ProviderCheck::Wrong) if counted.attempts >= counted.max_attempts => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                self.cancel_remote(provider_ref).await;
                Ok(Checked::new("locked", true, Err(OtpError::TooManyAttempts)))
            }
            Ok(ProviderCheck::Wrong) => {
                let attempts_left = counted.attempts_left();
                Ok(Checked::new("wrong", true, Err(OtpError::InvalidCode { attempts_left })))
            }
            Ok(ProviderCheck::TooManyAttempts) => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                Ok(Checked::new("locked", false, Err(OtpError::TooManyAttempts)))
            }
            // Twilio forgets a verification once it approves it, so this may be a check that
            // raced a concurrent one of the right code whose approval has not reached our store
            // yet: ending the verification here would refuse that one too, and nobody would get
            // a session. Nothing is ended; our own expiry ends a verification the provider
            // dropped, and each check until then still counts an attempt.
            Ok(ProviderCheck::NotFound) => Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound))),
            // The attempt stays counted: a failing provider must not become a free retry. It does
            // not count against the phone: an outage must not lock phones.
            Err(e) => Ok(Checked::new("provider_error", false, Err(map_provider_error(e)))),
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

/// What one check came to: its log and metric label, whether it compared a code and found it
/// wrong (only such a check counts against its phone), and the answer.
struct Checked {
    label: &'static str,
    compared_wrong: bool,
    result: Result<Verification, OtpError>,
}

impl Checked {
    fn new(label: &'static str, compared_wrong: bool, result: Result<Verification, OtpError>) -> Self {
        Checked { label, compared_wrong, result }
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
