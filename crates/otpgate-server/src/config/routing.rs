//! `[providers.NAME]` and `[[routing]]`: named SMS providers and the route of each country.
//!
//! Names, country codes and channels are parsed into their types at load (a bad one stops the
//! load naming `routing.0.countries` and the value); the rules across tables (a route naming a
//! provider nobody defined, a country routed twice, a route hidden behind `"*"`) are checked by
//! `validate_routing`, each error naming its key (`routing[1].countries`). The old `[provider]`
//! table is read as one unnamed route over its providers (`Config::sms_providers`).

use std::collections::BTreeMap;
use std::fmt;

use otpgate_core::Channel;
use otpgate_sms::router::{EffectiveRoute, RouteConfig};
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, ProviderKind, RegionCode, bad};

/// A provider's name (`vonage-in`): it labels metrics and logs and tags stored references, so
/// 1 to 32 lowercase letters, digits, `-` or `_`, not only digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderName(String);

impl ProviderName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderName {
    type Error = String;

    fn try_from(name: String) -> Result<ProviderName, String> {
        otpgate_sms::router::check_name(&name).map_err(|e| e.to_string())?;
        Ok(ProviderName(name))
    }
}

impl From<ProviderName> for String {
    fn from(name: ProviderName) -> String {
        name.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of a route's `countries`: an ISO 3166-1 code the numbering plan knows, or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CountryMatch {
    All,
    Country(RegionCode),
}

impl TryFrom<String> for CountryMatch {
    type Error = String;

    fn try_from(value: String) -> Result<CountryMatch, String> {
        match value.as_str() {
            "*" => Ok(CountryMatch::All),
            code => code.parse().map(CountryMatch::Country).map_err(|e| format!("{e}, or \"*\" for every country")),
        }
    }
}

impl From<CountryMatch> for String {
    fn from(country: CountryMatch) -> String {
        match country {
            CountryMatch::All => "*".to_owned(),
            CountryMatch::Country(code) => code.to_string(),
        }
    }
}

/// A channel named in configuration (`sms`, `whatsapp`, `call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(pub Channel);

impl TryFrom<String> for ChannelName {
    type Error = String;

    fn try_from(value: String) -> Result<ChannelName, String> {
        value.parse().map(ChannelName).map_err(|()| format!("`{value}` is not a channel (sms, whatsapp or call)"))
    }
}

impl From<ChannelName> for String {
    fn from(channel: ChannelName) -> String {
        channel.0.as_str().to_owned()
    }
}

/// One `[[routing]]` table: the first route naming a number's country sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// ISO 3166-1 codes (`["IN", "BD"]`), or `["*"]` for every country.
    pub countries: Vec<CountryMatch>,
    /// Provider names in order: the next one sends only when the previous is unavailable.
    pub providers: Vec<ProviderName>,
    /// A WhatsApp (or call) send its providers report undeliverable goes out on this channel at
    /// once, with the same code.
    #[serde(default)]
    pub fallback_channel: Option<ChannelName>,
}

impl RouteTable {
    fn to_sms(&self) -> RouteConfig {
        RouteConfig {
            countries: self.countries.iter().map(|c| String::from(*c)).collect(),
            providers: self.providers.iter().map(|p| p.0.clone()).collect(),
            fallback_channel: self.fallback_channel.map(String::from),
        }
    }
}

/// The name a legacy `[provider]` kind gets as a provider: its kind (`twilio-verify`), so
/// metrics keep the labels they had.
fn legacy_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Demo => "demo",
        ProviderKind::TwilioVerify => "twilio-verify",
        ProviderKind::TwilioMessaging => "twilio-messaging",
    }
}

impl Config {
    /// Whether `[providers.NAME]` / `[[routing]]` are in use (rather than the `[provider]` table).
    pub fn uses_named_providers(&self) -> bool {
        !self.providers.is_empty() || !self.routing.is_empty()
    }

    fn legacy_provider_set(&self) -> bool {
        self.provider.kind.is_some() || !self.provider.failover.is_empty() || self.provider.twilio.is_some()
    }

    /// The providers and routes in force: the named ones, or the `[provider]` table as one route
    /// for every country over its providers in failover order (empty when none is configured).
    pub fn sms_providers(&self) -> (BTreeMap<String, otpgate_sms::ProviderConfig>, Vec<RouteConfig>) {
        if self.uses_named_providers() {
            let providers = self.providers.iter().map(|(name, p)| (name.0.clone(), p.clone())).collect();
            return (providers, self.routing.iter().map(RouteTable::to_sms).collect());
        }
        let kinds = self.provider_kinds();
        let mut providers = BTreeMap::new();
        for kind in &kinds {
            // A twilio kind without `[provider.twilio]` is left out (validation refuses it; the
            // route then names a provider that is not there).
            let twilio = self.provider.twilio.clone();
            let provider = match (kind, twilio) {
                (ProviderKind::Demo, _) => otpgate_sms::ProviderConfig::Demo,
                (ProviderKind::TwilioVerify, Some(t)) => otpgate_sms::ProviderConfig::TwilioVerify(t),
                (ProviderKind::TwilioMessaging, Some(t)) => otpgate_sms::ProviderConfig::TwilioMessaging(t),
                (_, None) => continue,
            };
            providers.insert(legacy_name(*kind).to_owned(), provider);
        }
        let routes = if kinds.is_empty() {
            Vec::new()
        } else {
            vec![RouteConfig::everywhere(kinds.iter().map(|k| legacy_name(*k).to_owned()).collect())]
        };
        (providers, routes)
    }

    /// The kinds of the providers in force (`demo`, `vonage`, …).
    pub fn sms_provider_kinds(&self) -> Vec<&'static str> {
        self.sms_providers().0.values().map(otpgate_sms::ProviderConfig::kind).collect()
    }

    /// Only the demo inbox delivers (no message can reach a phone).
    pub fn demo_only(&self) -> bool {
        let kinds = self.sms_provider_kinds();
        !kinds.is_empty() && kinds.iter().all(|k| *k == "demo")
    }

    /// The route of each country that has one, and of `*`, in configuration order (for
    /// `otpgate config check`).
    pub fn effective_routes(&self) -> Result<Vec<EffectiveRoute>, ConfigError> {
        let (providers, routes) = self.sms_providers();
        let names: Vec<&str> = providers.keys().map(String::as_str).collect();
        otpgate_sms::router::check_routes(&names, &routes).map_err(|e| bad("routing", e))
    }

    /// Rules of `[providers.NAME]` and `[[routing]]` across tables; each error names its key.
    pub(super) fn validate_routing(&self) -> Result<(), ConfigError> {
        if !self.uses_named_providers() {
            return Ok(());
        }
        if self.legacy_provider_set() {
            return Err(bad(
                "provider",
                "set either the [provider] table or [providers.NAME] with [[routing]], not both",
            ));
        }
        if self.providers.is_empty() {
            return Err(bad("providers", "[[routing]] needs at least one [providers.NAME] table"));
        }
        if self.routing.is_empty() {
            return Err(bad(
                "routing",
                "[providers.NAME] needs at least one [[routing]] table (countries = [\"*\"] for all)",
            ));
        }
        for (name, provider) in &self.providers {
            provider.validate().map_err(|e| bad(&format!("providers.{name}"), e))?;
            if matches!(provider, otpgate_sms::ProviderConfig::Demo)
                && self.is_production()
                && !self.dangerously_allow_demo_provider_in_production
            {
                return Err(bad(
                    &format!("providers.{name}.kind"),
                    "the demo provider shows codes to anyone; refused in production \
                     (dangerously_allow_demo_provider_in_production overrides)",
                ));
            }
        }
        // Where each country was routed first, for "already routed by routing[j]".
        let mut routed: BTreeMap<String, usize> = BTreeMap::new();
        let mut everywhere: Option<usize> = None;
        for (i, route) in self.routing.iter().enumerate() {
            let key = |field: &str| format!("routing[{i}].{field}");
            if let Some(j) = everywhere {
                return Err(bad(
                    &format!("routing[{i}]"),
                    format!("comes after routing[{j}] for \"*\" and would never be used"),
                ));
            }
            if route.countries.is_empty() {
                return Err(bad(&key("countries"), "must not be empty (use [\"*\"] for every country)"));
            }
            if route.providers.is_empty() {
                return Err(bad(&key("providers"), "must not be empty"));
            }
            for (n, name) in route.providers.iter().enumerate() {
                if !self.providers.contains_key(name) {
                    return Err(bad(
                        &key("providers"),
                        format!("no provider named `{name}` (define it as [providers.{name}])"),
                    ));
                }
                if route.providers[..n].contains(name) {
                    return Err(bad(&key("providers"), format!("lists `{name}` twice")));
                }
            }
            for country in &route.countries {
                match country {
                    CountryMatch::All if route.countries.len() > 1 => {
                        return Err(bad(&key("countries"), "\"*\" stands alone (it already takes every country)"));
                    }
                    CountryMatch::All => everywhere = Some(i),
                    CountryMatch::Country(code) => {
                        if let Some(j) = routed.insert(code.to_string(), i) {
                            let whom = if j == i { "this route".to_owned() } else { format!("routing[{j}]") };
                            return Err(bad(&key("countries"), format!("{code} is already routed by {whom}")));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
