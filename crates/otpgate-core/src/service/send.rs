//! The send flow: the region policy, the bot check, the resend cooldown and the limits (all
//! before any store write or provider call), then the store, then the provider.

use tracing::{info, warn};

use super::events::{ip_field, security_event_limit};
use super::{REMOTE_PREFIX, SendRequest, Sent, VerificationService, map_provider_error};
use crate::limits::LimitScope;
use crate::resend::ResendClaim;
use crate::store::{IssueOutcome, Issued, NewCode};
use crate::{Code, OtpError, OutgoingCode, Verification, VerificationId, privacy, resend, tripwire};

impl VerificationService {
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

        let resend_key = privacy::phone_resend_key(&self.hasher, &req.phone);
        let tripwire = &self.settings.policy.tripwire;
        let tripped =
            test_code.is_none() && tripwire::is_tripped(&*self.limiter, tripwire, &self.tripwire, &country, now).await;
        let rules = self.send_rules(&req, &country, tripped);
        if !rules.is_empty() {
            // The phone's resend cooldown, read before any limit is taken so a refused send uses
            // up no quota. Without limits there is no quota to spend, and the store's send below
            // refuses a running wait itself: no read.
            if let Some(wait) = resend::current_wait(&*self.limiter, &resend_key, now).await? {
                security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, wait);
                return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
            }
            if let Err(denied) = self.limiter.acquire(&rules, now).await? {
                self.send_past_a_shared_budget(&req, &country, rules, denied, bot_passed, now).await?;
            }
        }

        let is_test_number = test_code.is_some();
        let code = test_code.unwrap_or_else(|| Code::generate(self.settings.policy.code_length));
        let new = NewCode {
            id: VerificationId::generate(),
            phone: req.phone.clone(),
            channel: req.channel,
            code_digest: Some(self.hasher.digest(&req.phone, &code)),
        };
        // The resend slot is taken and the verification written in one store call; given back
        // below if the send does not happen after all.
        let claim = ResendClaim { key: resend_key, first: self.settings.policy.resend_cooldown };
        let Issued { outcome, slot } =
            match self.store.issue_with_resend(&claim, new, now, &self.settings.policy).await? {
                Ok(issued) => issued,
                Err(wait) => {
                    // The phone's wait is running (a send that read none above lost a race with a
                    // concurrent send for the same phone, or read nothing because no limit applies).
                    security_event_limit(LimitScope::ResendCooldown, &masked, &country, req.client_ip, wait);
                    return Err(OtpError::RateLimited { retry_after: wait, scope: LimitScope::ResendCooldown });
                }
            };
        let (verification, created) = match &outcome {
            IssueOutcome::Created(v) => (v.clone(), true),
            IssueOutcome::Resent { verification, .. } => (verification.clone(), false),
            IssueOutcome::Cooldown { .. } => {
                return Err(OtpError::Internal("the store answered a cooldown as a send".into()));
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
                    if sent_on != verification.channel {
                        self.store.set_channel(&verification.id, sent_on).await?;
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
        // The answer names the channel the code went out on (stored above when a fallback
        // changed it; the code, and so the verification, is the same either way).
        let verification = Verification { channel: sent_on, ..verification };
        Ok(Sent { expires_in: now.until(verification.expires_at), resend_in: slot.wait, verification, created })
    }
}
