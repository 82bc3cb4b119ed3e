//! The routing configuration: `[providers.NAME]` and `[[routing]]` as deserialized, provider
//! names, and the checks that turn routes into the effective route per country.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Value;
use otpgate_core::{Channel, parse_region};
use serde::de::{self, DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{ConfigError, HttpConfig, TwilioConfig};
use crate::sinch::SinchConfig;
use crate::vonage::VonageConfig;
use crate::webhook::WebhookConfig;

/// One `[providers.NAME]` table: its `kind` and that kind's keys.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProviderConfig {
    Demo,
    TwilioVerify(TwilioConfig),
    TwilioMessaging(TwilioConfig),
    Vonage(VonageConfig),
    Sinch(SinchConfig),
    Webhook(WebhookConfig),
}

/// The `kind`s, as written.
const KINDS: &[&str] = &["demo", "twilio-verify", "twilio-messaging", "vonage", "sinch", "webhook"];

/// By hand rather than serde's `tag = "kind"`: that derive reads the whole table through
/// `deserialize_any` before it knows the kind, so a number given as text — every environment
/// variable is text (`OTPGATE_PROVIDERS__VONAGE__HTTP__REQUEST_TIMEOUT_MS=5000`) — reached the
/// kind's struct as a string and was refused. Here the table is kept as figment values, and the
/// kind's struct is read from them by figment's lossy reading, the one the server's loader uses
/// for every other table: text becomes a number or a boolean only where one is expected.
impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = match <Value as Deserialize>::deserialize(d)? {
            Value::Dict(_, table) => table,
            other => return Err(D::Error::invalid_type(unexpected(&other), &"a provider table")),
        };
        let kind = match table.remove("kind") {
            Some(Value::String(_, kind)) => kind,
            Some(other) => return Err(D::Error::invalid_type(unexpected(&other), &"a provider kind")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let keys = Figment::from(Serialized::defaults(&table));
        fn read<T: DeserializeOwned, E: de::Error>(keys: &Figment) -> Result<T, E> {
            keys.extract_lossy().map_err(|e| {
                E::custom(
                    e.into_iter().map(|e| format!("`{}`: {}", e.path.join("."), e.kind)).collect::<Vec<_>>().join("; "),
                )
            })
        }
        Ok(match kind.as_str() {
            "demo" => match table.keys().next() {
                None => ProviderConfig::Demo,
                Some(key) => return Err(D::Error::unknown_field(key, &[])),
            },
            "twilio-verify" => ProviderConfig::TwilioVerify(read(&keys)?),
            "twilio-messaging" => ProviderConfig::TwilioMessaging(read(&keys)?),
            "vonage" => ProviderConfig::Vonage(read(&keys)?),
            "sinch" => ProviderConfig::Sinch(read(&keys)?),
            "webhook" => ProviderConfig::Webhook(read(&keys)?),
            other => return Err(D::Error::unknown_variant(other, KINDS)),
        })
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::String(_, s) => de::Unexpected::Str(s),
        Value::Bool(_, b) => de::Unexpected::Bool(*b),
        Value::Array(..) => de::Unexpected::Seq,
        Value::Dict(..) => de::Unexpected::Map,
        _ => de::Unexpected::Other("a value"),
    }
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Demo => "demo",
            ProviderConfig::TwilioVerify(_) => "twilio-verify",
            ProviderConfig::TwilioMessaging(_) => "twilio-messaging",
            ProviderConfig::Vonage(_) => "vonage",
            ProviderConfig::Sinch(_) => "sinch",
            ProviderConfig::Webhook(_) => "webhook",
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            ProviderConfig::Demo => Ok(()),
            ProviderConfig::TwilioVerify(t) => {
                t.validate()?;
                t.verify
                    .as_ref()
                    .map(|_| ())
                    .ok_or_else(|| ConfigError("twilio-verify needs a [verify] section".into()))
            }
            ProviderConfig::TwilioMessaging(t) => {
                t.validate()?;
                t.messaging
                    .as_ref()
                    .map(|_| ())
                    .ok_or_else(|| ConfigError("twilio-messaging needs a [messaging] section".into()))
            }
            ProviderConfig::Vonage(v) => v.validate(),
            ProviderConfig::Sinch(s) => s.validate(),
            ProviderConfig::Webhook(w) => w.validate(),
        }
    }

    pub(super) fn http(&self) -> Option<&HttpConfig> {
        match self {
            ProviderConfig::Demo => None,
            ProviderConfig::TwilioVerify(t) | ProviderConfig::TwilioMessaging(t) => Some(&t.http),
            ProviderConfig::Vonage(v) => Some(&v.http),
            ProviderConfig::Sinch(s) => Some(&s.http),
            ProviderConfig::Webhook(w) => Some(&w.http),
        }
    }
}

/// One `[[routing]]` table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// ISO 3166-1 alpha-2 codes (`IN`, `BD`), or `*` for every country.
    pub countries: Vec<String>,
    /// Provider names in order: the next one sends only when the previous is unavailable.
    pub providers: Vec<String>,
    /// The channel a send falls back to when its providers report it undeliverable (`sms`).
    #[serde(default)]
    pub fallback_channel: Option<String>,
}

impl RouteConfig {
    /// The legacy `[provider]` table: one route for every country over `providers` in order.
    pub fn everywhere(providers: Vec<String>) -> Self {
        RouteConfig { countries: vec!["*".to_owned()], providers, fallback_channel: None }
    }
}

/// A provider name: used in metric labels, logs and references, so a short plain word.
pub fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        // All digits would read as an old failover position in references.
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "provider name {name:?}: use 1 to 32 lowercase letters, digits, - or _ (not only digits)"
        )))
    }
}

/// Names live as long as the process (metric labels and `SmsProvider::name` are `&'static`);
/// each distinct name is kept once, so rebuilding from the same configuration adds nothing.
pub fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The checked routes, before providers exist: `otpgate config check` can print them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRoute {
    /// `*` or an ISO code.
    pub country: String,
    pub providers: Vec<String>,
    pub fallback_channel: Option<Channel>,
}

/// Checks routes against the provider names: known names, no repeats, parseable countries and
/// channels, and no route that an earlier one hides entirely. Answers the effective route of
/// each country that has one (and of `*`), in the order of the configuration.
pub fn check_routes(names: &[&str], routes: &[RouteConfig]) -> Result<Vec<EffectiveRoute>, ConfigError> {
    if routes.is_empty() {
        return Err(ConfigError("routing: at least one route is needed".into()));
    }
    let mut effective: Vec<EffectiveRoute> = Vec::new();
    let mut seen_all = false;
    for (i, r) in routes.iter().enumerate() {
        let at = |m: String| ConfigError(format!("routing[{i}]: {m}"));
        if r.countries.is_empty() {
            return Err(at("countries must not be empty (use [\"*\"] for every country)".into()));
        }
        if r.providers.is_empty() {
            return Err(at("providers must not be empty".into()));
        }
        let mut listed = HashSet::new();
        for p in &r.providers {
            if !names.contains(&p.as_str()) {
                return Err(at(format!("no provider named {p:?} (define it under [providers.{p}])")));
            }
            if !listed.insert(p) {
                return Err(at(format!("lists {p:?} twice")));
            }
        }
        let fallback = match &r.fallback_channel {
            Some(c) => Some(c.parse::<Channel>().map_err(|()| at(format!("fallback_channel: unknown channel {c:?}")))?),
            None => None,
        };
        if seen_all {
            return Err(at("comes after a route for \"*\" and would never be used".into()));
        }
        let mut taken_here = 0;
        for c in &r.countries {
            if c == "*" {
                if r.countries.len() > 1 {
                    return Err(at("\"*\" stands alone in countries".into()));
                }
                seen_all = true;
            } else if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) || parse_region(c).is_none() {
                return Err(at(format!("countries: {c:?} is not an ISO 3166-1 code like \"IN\"")));
            } else if effective.iter().any(|e| &e.country == c) {
                // First match wins: this entry is dead. Say so rather than ignore it.
                return Err(at(format!("countries: {c} is already routed by an earlier route")));
            }
            taken_here += 1;
            effective.push(EffectiveRoute {
                country: c.clone(),
                providers: r.providers.clone(),
                fallback_channel: fallback,
            });
        }
        debug_assert!(taken_here > 0);
    }
    Ok(effective)
}
