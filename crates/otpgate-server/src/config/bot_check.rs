//! `[bot_check]`: the optional challenge on send.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::RequiredIn;
use super::secrets::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BotCheckKind {
    Turnstile,
    Hcaptcha,
    Recaptcha,
}

/// The optional bot check on send (a challenge token in the request's `bot_token`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotCheckConfig {
    /// Unset: no bot check.
    pub kind: Option<BotCheckKind>,
    /// The verifier's secret key.
    #[serde(serialize_with = "redact")]
    pub secret: Option<SecretString>,
    /// Where the check is required on every send: `["*"]`, or country codes (`["NG", "ID"]`).
    /// Empty: asked only of sends that the prefix limit, a country limit or the tripwire refuses.
    pub required_for: Vec<RequiredIn>,
    /// A send that passed the check past the prefix limit, a country limit or the tripwire is
    /// counted in an allowance of its own, this many times that limit (0–1000; 0: a passed
    /// check lifts nothing and those limits refuse as without a bot check).
    pub passed_limit_factor: u32,
    /// Override of the verifier's URL (tests point it at loopback).
    pub verify_url: Option<String>,
}

impl Default for BotCheckConfig {
    fn default() -> Self {
        BotCheckConfig { kind: None, secret: None, required_for: Vec::new(), passed_limit_factor: 10, verify_url: None }
    }
}

impl std::fmt::Debug for BotCheckConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCheckConfig")
            .field("kind", &self.kind)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("required_for", &self.required_for)
            .field("passed_limit_factor", &self.passed_limit_factor)
            .field("verify_url", &self.verify_url)
            .finish()
    }
}
