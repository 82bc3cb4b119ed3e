//! Configuration: defaults in code, then an optional `otpgate.toml`, then `OTPGATE_*` environment
//! variables (`__` separates levels: `OTPGATE_CODES__TTL_SECS=300`), then `OTPGATE_…_FILE`
//! variables whose file holds a secret (`OTPGATE_SECRETS__HMAC_KEY_FILE=/run/secrets/hmac`).
//! Unknown keys and unsafe values stop the start with a message that names the key; nothing is
//! silently "fixed".

mod bot_check;
mod error;
mod http;
mod limits;
mod load;
mod log;
mod policy;
mod provider;
mod regions;
mod retention;
mod secrets;
mod sessions;
mod store;
#[cfg(test)]
mod tests;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use otpgate_core::limits::Rate;
use otpgate_core::{Code, PhoneNumber, Policy, Region};
use serde::{Deserialize, Serialize};

pub use bot_check::{BotCheckConfig, BotCheckKind};
pub use error::ConfigError;
pub(crate) use error::bad;
pub use http::HttpConfig;
pub use limits::{LimitsConfig, RateConfig};
pub use log::{LogConfig, LogFormat};
pub use policy::{CodesConfig, TripwireConfig};
pub use provider::{ProviderConfig, ProviderKind};
pub use regions::{NumberKindName, RegionCode, RegionsConfig, RequiredIn};
pub use retention::RetentionConfig;
pub use secrets::SecretsConfig;
pub use sessions::SessionsConfig;
pub use store::{StoreConfig, StoreUrl};
pub use tls::TlsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

/// `webotp_domain`: a bare host name (`example.com`), checked when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebOtpDomain(String);

impl WebOtpDomain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for WebOtpDomain {
    type Err = String;

    fn from_str(domain: &str) -> Result<WebOtpDomain, String> {
        if domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Err(format!("`{domain}` is not a bare host name like example.com"));
        }
        Ok(WebOtpDomain(domain.to_owned()))
    }
}

impl TryFrom<String> for WebOtpDomain {
    type Error = String;

    fn try_from(domain: String) -> Result<WebOtpDomain, String> {
        domain.parse()
    }
}

impl From<WebOtpDomain> for String {
    fn from(domain: WebOtpDomain) -> String {
        domain.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `development` (demo provider, test numbers, generated keys) or `production` (refuses all of those).
    pub environment: Environment,
    /// Address to serve on.
    #[serde(deserialize_with = "socket_addr::deserialize")]
    pub listen: SocketAddr,
    /// Named in messages: "123456 is your {app_name} verification code".
    pub app_name: String,
    /// ISO 3166 region for national-format input (`US`); unset = E.164 (or `00…`) only.
    pub default_region: Option<RegionCode>,
    /// Adds the WebOTP line `@{domain} #{code}` to messages so browsers can fill the code in.
    pub webotp_domain: Option<WebOtpDomain>,
    pub store: StoreConfig,
    pub secrets: SecretsConfig,
    pub codes: CodesConfig,
    pub limits: LimitsConfig,
    pub regions: RegionsConfig,
    pub tripwire: TripwireConfig,
    pub bot_check: BotCheckConfig,
    /// Message templates per locale (`en = "{code} is your {app} code…"`), added to or
    /// replacing the built-in ones (en, es, fr, de, pt, it). Placeholders: `{code}` (exactly
    /// once), `{app}`, `{minutes}`. The WebOTP line is appended automatically.
    pub messages: BTreeMap<String, String>,
    pub provider: ProviderConfig,
    pub sessions: SessionsConfig,
    /// E.164 number -> fixed code; these numbers never reach a provider. Unset: `+15005550006`
    /// -> `123456` (the first `codes.length` digits of `1234567890`) in development with the demo
    /// provider; none with a real provider or in production. Listed numbers exist with a real
    /// provider too, and each is named (masked) in a warning at start.
    pub test_numbers: Option<BTreeMap<String, String>>,
    pub http: HttpConfig,
    /// Built-in HTTPS (certificate and key files, reloaded when they change).
    pub tls: TlsConfig,
    /// How long verifications are kept after they end, and how often expired data is swept.
    pub retention: RetentionConfig,
    pub log: LogConfig,
    /// Allows the demo provider under `environment = "production"`: anyone could read codes.
    pub dangerously_allow_demo_provider_in_production: bool,
    /// Allows test numbers under `environment = "production"`: their codes are public.
    pub dangerously_allow_test_numbers_in_production: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: Environment::Development,
            listen: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080),
            app_name: "otpgate".into(),
            default_region: None,
            webotp_domain: None,
            store: StoreConfig::default(),
            secrets: SecretsConfig::default(),
            codes: CodesConfig::default(),
            limits: LimitsConfig::default(),
            regions: RegionsConfig::default(),
            tripwire: TripwireConfig::default(),
            bot_check: BotCheckConfig::default(),
            messages: BTreeMap::new(),
            provider: ProviderConfig::default(),
            sessions: SessionsConfig::default(),
            test_numbers: None,
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            retention: RetentionConfig::default(),
            log: LogConfig::default(),
            dangerously_allow_demo_provider_in_production: false,
            dangerously_allow_test_numbers_in_production: false,
        }
    }
}

/// `http.admin_listen` in production when it is not set: loopback only, for a local Prometheus
/// agent or a sidecar.
pub const DEFAULT_PRODUCTION_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

impl Config {
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    pub fn provider_kind(&self) -> Option<ProviderKind> {
        self.provider_kinds().first().copied()
    }

    /// The providers in force, in failover order (empty: none configured).
    pub fn provider_kinds(&self) -> Vec<ProviderKind> {
        if !self.provider.failover.is_empty() {
            return self.provider.failover.clone();
        }
        match (self.provider.kind, self.environment) {
            (Some(kind), _) => vec![kind],
            (None, Environment::Development) => vec![ProviderKind::Demo],
            (None, Environment::Production) => vec![],
        }
    }

    /// The region for national-format input, if any.
    pub fn region(&self) -> Option<Region> {
        self.default_region.map(RegionCode::region)
    }

    pub fn policy(&self) -> Policy {
        Policy {
            code_length: self.codes.length,
            code_ttl: Duration::from_secs(self.codes.ttl_secs),
            max_attempts: self.codes.max_attempts,
            resend_cooldown: Duration::from_secs(self.codes.resend_cooldown_secs),
            limits: self.limits.set(self.http.ipv6_prefix_len),
            regions: self.regions.policy(),
            tripwire: otpgate_core::TripwirePolicy {
                enabled: self.tripwire.enabled,
                window: Duration::from_secs(self.tripwire.window_secs),
                min_sends: self.tripwire.min_sends,
                min_approval_rate: self.tripwire.min_approval_rate,
                trickle: self.tripwire.trickle.rate().unwrap_or(Rate::new(0, Duration::from_secs(3600))),
            },
        }
    }

    /// The test numbers in force, normalised to E.164, with their codes.
    pub fn effective_test_numbers(&self) -> Result<BTreeMap<String, Code>, ConfigError> {
        let demo_only = self.provider_kinds() == [ProviderKind::Demo];
        let configured = match (&self.test_numbers, self.environment) {
            (Some(map), _) => map.clone(),
            // The default exists only where no message can reach a phone anyway: with a real
            // provider it would be a public password to whoever knows it (`+15005550006` is
            // Twilio's documented magic number). The code follows the configured length.
            (None, Environment::Development) if demo_only => {
                BTreeMap::from([("+15005550006".to_owned(), "1234567890"[..self.codes.length.min(10)].to_owned())])
            }
            (None, _) => BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        for (number, code) in configured {
            let phone = PhoneNumber::parse(&number, None)
                .map_err(|e| bad("test_numbers", format!("`{number}` is not a valid E.164 number ({e})")))?;
            let code = Code::parse(&code, self.codes.length).ok_or_else(|| {
                bad("test_numbers", format!("the code for {} must be {} digits", phone.masked(), self.codes.length))
            })?;
            out.insert(phone.e164().to_owned(), code);
        }
        Ok(out)
    }

    pub fn message_templates(&self) -> Result<otpgate_core::provider::MessageTemplates, ConfigError> {
        otpgate_core::provider::MessageTemplates::with_overrides(
            self.messages.iter().map(|(l, t)| (l.as_str(), t.as_str())),
        )
        .map_err(|e| bad("messages", e))
    }

    /// Where `/metrics` and the detailed `/readyz` are served, if anywhere (see
    /// `HttpConfig::admin_listen`).
    pub fn admin_listen(&self) -> Option<SocketAddr> {
        self.http.admin_listen.or_else(|| self.is_production().then_some(DEFAULT_PRODUCTION_ADMIN_LISTEN))
    }

    /// The connection-level limits of the listeners (deadlines, sizes, caps).
    pub fn edge(&self) -> crate::serve::EdgeSettings {
        let h = &self.http;
        crate::serve::EdgeSettings {
            header_read_timeout: Duration::from_secs(h.header_read_timeout_secs),
            max_header_bytes: h.max_header_bytes,
            keep_alive_timeout: Duration::from_secs(h.keep_alive_timeout_secs),
            max_connections: h.max_connections,
            max_connections_per_ip: h.max_connections_per_ip,
            ipv6_prefix: h.ipv6_prefix_len,
            tls_handshake_timeout: Duration::from_secs(self.tls.handshake_timeout_secs),
            max_tls_handshakes_per_ip: self.tls.max_handshakes_per_ip,
        }
    }

    /// How requests' client addresses are found (trusted proxies and the header they write).
    pub fn client_ip_resolver(&self) -> crate::client_ip::ClientIpResolver {
        crate::client_ip::ClientIpResolver::new(self.http.trusted_proxies.clone(), self.http.client_ip_header)
    }

    /// The signing-key file in force (see `SessionsConfig::keys_file`).
    pub fn keys_file(&self) -> PathBuf {
        match &self.sessions.keys_file {
            Some(path) => path.clone(),
            None => self.beside_database(".signing-keys.json"),
        }
    }

    /// `<database file><suffix>` for files kept next to an SQLite database (development keys);
    /// `otpgate<suffix>` in the working directory when the database is not a file.
    pub fn beside_database(&self, suffix: &str) -> PathBuf {
        let db = self.sqlite_path().unwrap_or_else(|_| PathBuf::from("otpgate"));
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "otpgate".into());
        name.push(suffix);
        db.with_file_name(name)
    }

    /// The SQLite file the stores use (the durable one first); an error when neither store is
    /// SQLite.
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        self.store.sqlite_path().cloned().ok_or_else(|| bad("store.durable", "is not an SQLite database"))
    }

    /// The effective configuration as TOML-like JSON with every secret replaced by `<redacted>`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<cannot render config: {e}>"))
    }
}

/// `deserialize_with` for addresses (`listen`, `http.admin_listen`): the error quotes the value,
/// where serde's own says only "invalid socket address syntax".
pub(crate) mod socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer};

    fn parse<E: serde::de::Error>(value: &str) -> Result<SocketAddr, E> {
        value.parse().map_err(|_| E::custom(format!("`{value}` is not an IP address and port (like 127.0.0.1:8080)")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        parse(&String::deserialize(d)?)
    }

    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        Option::<String>::deserialize(d)?.map(|value| parse(&value)).transpose()
    }
}
