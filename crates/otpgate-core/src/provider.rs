//! The SMS provider trait and the message a provider sends.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Channel, Code, PhoneNumber, Timestamp, VerificationId};

/// One code to deliver.
#[derive(Debug, Clone)]
pub struct OutgoingCode {
    pub to: PhoneNumber,
    pub code: Code,
    pub channel: Channel,
    pub locale: Option<String>,
    /// The rendered text, for providers that send our own message.
    pub text: String,
    /// The verification the code belongs to (`None` for a test message outside any flow), for
    /// gateways that correlate it (the `webhook` provider's payload).
    pub verification_id: Option<VerificationId>,
    /// When the code stops working (`None` outside a verification flow).
    pub expires_at: Option<Timestamp>,
}

/// What a provider reports about a delivery attempt, already sorted into the rows of our error
/// table. Provider codes and texts are logged by the provider, never carried further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider says the number is invalid")]
    InvalidNumber,
    #[error("the provider cannot deliver to this number")]
    Undeliverable,
    #[error("the provider refuses this region")]
    UnsupportedRegion,
    #[error("the provider rate-limited us")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider is unavailable")]
    Unavailable { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, Default)]
pub struct SendReceipt {
    /// The provider's id for what it sent (message SID, verification SID).
    pub provider_ref: Option<String>,
    /// True when the provider made its own code and checks it (Twilio Verify): the code in
    /// `OutgoingCode` was never sent, so checks for this verification must go to
    /// `SmsProvider::check` with `provider_ref`, after the attempt was counted locally.
    pub provider_checks: bool,
    /// The channel the code actually went out on, when a provider (the router's channel
    /// fallback) used another than the one asked for. `None`: the one asked for.
    pub channel: Option<Channel>,
    /// The name of the provider that actually sent, when the provider called is a router over
    /// several. `None`: `SmsProvider::name` of the provider called. Metrics are labelled with it.
    pub provider: Option<&'static str>,
}

/// What a provider that holds the code (see `SendReceipt::provider_checks`) says about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderCheck {
    Approved,
    /// Wrong code; the verification is still pending at the provider.
    Wrong,
    /// The provider's own cap on wrong codes was reached (Twilio 60202): `too_many_attempts`.
    TooManyAttempts,
    /// The provider no longer knows the verification: expired, used or cancelled (Twilio 20404
    /// on a check): `verification_not_found`.
    NotFound,
}

#[async_trait]
pub trait SmsProvider: Send + Sync + 'static {
    /// Short name for logs and metrics (`demo`, `twilio-verify`, …).
    fn name(&self) -> &'static str;

    fn supports(&self, channel: Channel) -> bool;

    /// Whether a code for `to` can go out on `channel` (directly or through a channel fallback).
    /// A router answers per destination country; a single provider as `supports`.
    fn supports_for(&self, channel: Channel, _to: &PhoneNumber) -> bool {
        self.supports(channel)
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError>;

    /// `Err(reason)` when the provider cannot currently send (bad credentials, breaker open).
    async fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Checks `code` against the provider-held verification `provider_ref` (only for receipts
    /// with `provider_checks`). Providers that do not hold codes never get here; answering
    /// `Unavailable` keeps a wiring mistake from approving anything.
    async fn check(
        &self,
        _provider_ref: &str,
        _phone: &PhoneNumber,
        _code: &Code,
    ) -> Result<ProviderCheck, ProviderError> {
        Err(ProviderError::Unavailable { retry_after: None })
    }

    /// Tells the provider that a verification was abandoned or replaced, so it stops counting
    /// it (Twilio's per-number send limit, 60203, counts pending verifications). Best effort:
    /// the caller logs a failure and goes on. Providers that hold nothing do nothing.
    async fn cancel(&self, _provider_ref: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Message templates per locale. Placeholders: `{code}`, `{app}`, `{minutes}`. The code comes
/// first so it shows in notification previews; the WebOTP line is appended by `render`, never
/// written in a template, so browsers can always fill the code in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplates(BTreeMap<String, String>);

/// Built-in templates; configuration adds locales or replaces these.
const BUILT_IN: &[(&str, &str)] = &[
    ("en", "{code} is your {app} verification code. It expires in {minutes} min. Do not share it."),
    ("es", "{code} es tu código de verificación de {app}. Caduca en {minutes} min. No lo compartas."),
    ("fr", "{code} est votre code de vérification {app}. Il expire dans {minutes} min. Ne le partagez pas."),
    ("de", "{code} ist dein {app}-Bestätigungscode. Er läuft in {minutes} Min. ab. Gib ihn nicht weiter."),
    ("pt", "{code} é o seu código de verificação do {app}. Expira em {minutes} min. Não o partilhe."),
    ("it", "{code} è il tuo codice di verifica {app}. Scade tra {minutes} min. Non condividerlo."),
];

/// Longest template accepted: two SMS segments of GSM-7 leave room for the WebOTP line.
pub const MAX_TEMPLATE_LEN: usize = 240;

impl Default for MessageTemplates {
    fn default() -> Self {
        MessageTemplates(BUILT_IN.iter().map(|(l, t)| ((*l).to_owned(), (*t).to_owned())).collect())
    }
}

impl MessageTemplates {
    /// The built-ins with `overrides` (locale -> template) added or replacing them. The error
    /// names the locale whose template is unusable.
    pub fn with_overrides<'a>(overrides: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut templates = MessageTemplates::default();
        for (locale, template) in overrides {
            let valid_tag = !locale.is_empty()
                && locale
                    .split('-')
                    .all(|p| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !valid_tag {
                return Err(format!("`{locale}` is not a language tag like en or pt-BR"));
            }
            if template.matches("{code}").count() != 1 {
                return Err(format!("the template for `{locale}` must contain {{code}} exactly once"));
            }
            if template.chars().count() > MAX_TEMPLATE_LEN {
                return Err(format!("the template for `{locale}` is longer than {MAX_TEMPLATE_LEN} characters"));
            }
            templates.0.insert(locale.to_ascii_lowercase(), template.to_owned());
        }
        Ok(templates)
    }

    /// The template for a BCP 47 `locale`: the exact tag, else its language, else English.
    pub fn select(&self, locale: Option<&str>) -> &str {
        let wanted = locale.unwrap_or("en").to_ascii_lowercase();
        let language = wanted.split('-').next().unwrap_or("en");
        self.0
            .get(&wanted)
            .or_else(|| self.0.get(language))
            .or_else(|| self.0.get("en"))
            .map_or(BUILT_IN[0].1, String::as_str)
    }

    /// The message for `code`, with the WebOTP line (`@example.com #123456`) when a domain is set.
    pub fn render(
        &self,
        locale: Option<&str>,
        app_name: &str,
        code: &Code,
        ttl: Duration,
        webotp_domain: Option<&str>,
    ) -> String {
        let minutes = ttl.as_secs().div_ceil(60).max(1).to_string();
        // One pass over the template: values are never scanned for placeholders, so an app name
        // like "{code}" cannot put a second code in the message.
        let mut text = String::new();
        let mut rest = self.select(locale);
        while let Some(start) = rest.find('{') {
            text.push_str(&rest[..start]);
            let tail = &rest[start..];
            let (value, len) = [("{code}", code.expose()), ("{app}", app_name), ("{minutes}", minutes.as_str())]
                .into_iter()
                .find(|(name, _)| tail.starts_with(name))
                .map_or(("{", 1), |(name, value)| (value, name.len()));
            text.push_str(value);
            rest = &tail[len..];
        }
        text.push_str(rest);
        if let Some(domain) = webotp_domain {
            text.push_str(&format!("\n\n@{domain} #{}", code.expose()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> Code {
        Code::parse("123456", 6).unwrap()
    }

    #[test]
    fn message_names_app_code_expiry_and_webotp_line() {
        let t = MessageTemplates::default();
        let text = t.render(None, "Acme", &code(), Duration::from_secs(120), Some("example.com"));
        assert!(text.starts_with("123456 is your Acme verification code"), "{text}");
        assert!(text.contains("2 min"));
        assert!(text.ends_with("\n\n@example.com #123456"));
        let plain = t.render(None, "Acme", &code(), Duration::from_secs(60), None);
        assert!(plain.contains("1 min") && !plain.contains('@'));
    }

    #[test]
    fn locale_picks_exact_tag_then_language_then_english() {
        let t = MessageTemplates::with_overrides([("pt-BR", "{code} é o seu código do {app}.")]).unwrap();
        let render = |l: Option<&str>| t.render(l, "Acme", &code(), Duration::from_secs(120), None);
        assert_eq!(render(Some("pt-BR")), "123456 é o seu código do Acme.");
        assert!(render(Some("pt-PT")).contains("partilhe"), "falls back to the language");
        assert!(render(Some("es-419")).starts_with("123456 es tu código"));
        assert!(render(Some("xx")).starts_with("123456 is your"), "unknown locales get English");
        assert!(render(Some("FR")).contains("Ne le partagez pas"), "tags are case-insensitive");
    }

    #[test]
    fn bad_templates_are_refused_by_locale() {
        assert!(MessageTemplates::with_overrides([("en", "no code here")]).unwrap_err().contains("`en`"));
        assert!(MessageTemplates::with_overrides([("en", "{code} {code}")]).is_err());
        assert!(MessageTemplates::with_overrides([("e n", "{code}")]).is_err());
        let too_long = format!("{{code}}{}", "y".repeat(300));
        assert!(MessageTemplates::with_overrides([("de", too_long.as_str())]).unwrap_err().contains("longer"));
    }

    #[test]
    fn an_app_name_cannot_inject_a_code() {
        let text = MessageTemplates::default().render(None, "{code}", &code(), Duration::from_secs(60), None);
        assert_eq!(text.matches("123456").count(), 1, "{text}");
    }
}
