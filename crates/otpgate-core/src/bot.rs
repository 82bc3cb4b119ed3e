//! The optional bot check on send: a challenge token (Cloudflare Turnstile, hCaptcha,
//! reCAPTCHA) verified with the provider before anything else happens. The implementations
//! live at the edge; the domain only knows this trait and when a check is required.

use std::collections::BTreeSet;
use std::net::IpAddr;

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
