//! Bot-check verifiers: Cloudflare Turnstile, hCaptcha and reCAPTCHA all take a form POST of
//! `secret`, `response` (the token) and `remoteip`, and answer JSON with `success`. One client,
//! three default URLs.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::bot::{BotCheckError, BotVerifier};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::BotCheckKind;

pub struct HttpBotVerifier {
    kind: BotCheckKind,
    secret: SecretString,
    url: String,
    http: reqwest::Client,
}

impl HttpBotVerifier {
    pub fn new(kind: BotCheckKind, secret: SecretString, url: Option<String>) -> Result<Self, String> {
        let url = url.unwrap_or_else(|| default_url(kind).to_owned());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| format!("cannot build the bot-check HTTP client: {e}"))?;
        Ok(HttpBotVerifier { kind, secret, url, http })
    }
}

pub fn default_url(kind: BotCheckKind) -> &'static str {
    match kind {
        BotCheckKind::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        BotCheckKind::Hcaptcha => "https://api.hcaptcha.com/siteverify",
        BotCheckKind::Recaptcha => "https://www.google.com/recaptcha/api/siteverify",
    }
}

#[derive(Deserialize)]
struct SiteVerify {
    success: bool,
}

#[async_trait]
impl BotVerifier for HttpBotVerifier {
    async fn verify(&self, token: &str, client_ip: Option<IpAddr>) -> Result<bool, BotCheckError> {
        let ip = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let mut form = vec![("secret", self.secret.expose_secret()), ("response", token)];
        if !ip.is_empty() {
            form.push(("remoteip", ip.as_str()));
        }
        let answer = self.http.post(&self.url).form(&form).send().await.and_then(reqwest::Response::error_for_status);
        match answer {
            Ok(resp) => match resp.json::<SiteVerify>().await {
                Ok(v) => Ok(v.success),
                Err(e) => {
                    tracing::error!(kind = ?self.kind, error = %e, "bot check: unreadable answer");
                    Err(BotCheckError::Unavailable)
                }
            },
            Err(e) => {
                tracing::error!(kind = ?self.kind, error = %e, "bot check: verifier unreachable");
                Err(BotCheckError::Unavailable)
            }
        }
    }
}
