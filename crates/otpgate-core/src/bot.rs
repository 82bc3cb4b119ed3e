//! The optional bot check on send: a challenge token (Cloudflare Turnstile, hCaptcha,
//! reCAPTCHA) verified with the provider. It is asked of every send where it is required
//! (`BotCheck::required`), and of a send that a shared budget (the prefix limit, a country
//! limit, the tripwire) refuses: passing it lifts that budget, within bounds (see
//! `VerificationService::send`). The implementations live at the edge; the domain only knows
//! this trait and when a check is asked for.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotCheckError {
    /// The verifier could not be reached; the send is refused (fail closed) as unavailable.
    #[error("the bot check service is unavailable")]
    Unavailable,
}

#[async_trait]
pub trait BotVerifier: Send + Sync + 'static {
    /// Whether `token` proves a human solved the challenge (from `client_ip`, when known).
    async fn verify(&self, token: &str, client_ip: Option<IpAddr>) -> Result<bool, BotCheckError>;
}

/// The bot check as the send flow uses it.
#[derive(Clone)]
pub struct BotCheck {
    pub verifier: Arc<dyn BotVerifier>,
    /// Where every send must pass it (may be empty: then it is asked only of sends that a
    /// shared budget refuses).
    pub required: BotScope,
    /// A send that passed the check and that a shared budget refused is counted in a separate
    /// allowance of this many times that budget; 0: a passed check lifts nothing.
    pub limit_factor: u32,
}

impl std::fmt::Debug for BotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCheck")
            .field("required", &self.required)
            .field("limit_factor", &self.limit_factor)
            .finish_non_exhaustive()
    }
}

/// Where the bot check is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotScope {
    All,
    /// Only numbers in these countries (ISO 3166 alpha-2).
    Countries(BTreeSet<String>),
}

impl BotScope {
    pub fn applies_to(&self, country: &str) -> bool {
        match self {
            BotScope::All => true,
            BotScope::Countries(set) => set.contains(country),
        }
    }
}
