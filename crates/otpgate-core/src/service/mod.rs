//! The verification flow: send (limits -> store -> provider) and check (one atomic store
//! operation). It is the only place that decides what a request may do; the HTTP layer parses
//! and maps errors, the stores and providers carry out.
//!
//! - `send`: the send flow; `rules` the limits it and the check take; `bot_gate` the bot check
//!   on send and what passing it lifts.
//! - `check`: the check flow, which alone makes an [`Approved`](crate::Approved).
//! - `events`: the security events both flows log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::bot::BotCheck;
use crate::limits::LimitScope;
use crate::provider::{MessageTemplates, ProviderError};
use crate::tripwire::TripwireState;
use crate::{
    Channel, Clock, Code, CodeHasher, OtpError, PhoneError, PhoneNumber, Policy, RateLimiter, SmsProvider,
    Verification, VerificationId, VerificationStore,
};

mod bot_gate;
mod check;
mod events;
mod rules;
mod send;

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
