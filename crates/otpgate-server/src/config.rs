//! Configuration: defaults in code, then an optional `otpgate.toml`, then `OTPGATE_*` environment
//! variables (`__` separates levels: `OTPGATE_CODES__TTL_SECS=300`), then `OTPGATE_…_FILE`
//! variables whose file holds a secret (`OTPGATE_SECRETS__HMAC_KEY_FILE=/run/secrets/hmac`).
//! Unknown keys and unsafe values stop the start with a message that names the key; nothing is
//! silently "fixed".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use otpgate_core::limits::Rate;
use otpgate_core::{Code, PhoneNumber, Policy, Region};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `development` (demo provider, test numbers, generated keys) or `production` (refuses all of those).
    pub environment: Environment,
    /// Address to serve on.
    pub listen: String,
    /// Named in messages: "123456 is your {app_name} verification code".
    pub app_name: String,
    /// ISO 3166 region for national-format input (`US`); unset = E.164 (or `00…`) only.
    pub default_region: Option<String>,
    /// Adds the WebOTP line `@{domain} #{code}` to messages so browsers can fill the code in.
    pub webotp_domain: Option<String>,
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
    /// OpenID Connect provider (`crate::oidc_config`); absent: off.
    pub oidc: crate::oidc_config::OidcSection,
    /// Built-in HTTPS (certificate and key files, reloaded when they change).
    pub tls: crate::tls::TlsConfig,
    /// How long verifications are kept after they end, and how often expired data is swept.
    pub retention: crate::retention::RetentionConfig,
    pub log: LogConfig,
    /// Allows the demo provider under `environment = "production"`: anyone could read codes.
    pub dangerously_allow_demo_provider_in_production: bool,
    /// Allows test numbers under `environment = "production"`: their codes are public.
    pub dangerously_allow_test_numbers_in_production: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where hot, expiring state lives (verifications, limits): `sqlite://PATH`,
    /// `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT,HOST:PORT,…` or `postgres://…`.
    /// A password in it is printed as `<redacted>`.
    #[serde(serialize_with = "crate::redact::serialize_url")]
    pub hot: String,
    /// Where durable state lives (users, refresh tokens): `sqlite://PATH` or `postgres://…`.
    #[serde(serialize_with = "crate::redact::serialize_url")]
    pub durable: String,
    /// Put before every Redis key, so deployments can share one Redis. No `{` or `}`.
    pub redis_key_prefix: String,
    /// Longest wait for a connection or an answer from Redis or PostgreSQL (100–10000 ms);
    /// past it a request gets `service_unavailable` instead of hanging.
    pub timeout_ms: u64,
    /// Upper bound of PostgreSQL connections per instance.
    pub max_connections: u32,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("hot", &crate::redact::url(&self.hot))
            .field("durable", &crate::redact::url(&self.durable))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl StoreConfig {
    /// The two store URLs, parsed and checked; errors name `store.hot` / `store.durable`.
    pub fn urls(&self) -> Result<(otpgate_store::open::HotUrl, otpgate_store::open::DurableUrl), ConfigError> {
        use otpgate_store::open::{DurableUrl, HotUrl};
        let hot: HotUrl = self.hot.parse().map_err(|e| bad("store.hot", e))?;
        let durable: DurableUrl = self.durable.parse().map_err(|e| bad("store.durable", e))?;
        if let (HotUrl::Sqlite(a), DurableUrl::Sqlite(b)) = (&hot, &durable)
            && a != b
        {
            return Err(bad("store.durable", "with SQLite, store.hot and store.durable must be the same file"));
        }
        if self.redis_key_prefix.contains(['{', '}']) {
            return Err(bad("store.redis_key_prefix", "must not contain `{` or `}` (Redis Cluster hash tags)"));
        }
        if !(100..=10_000).contains(&self.timeout_ms) {
            return Err(bad("store.timeout_ms", "must be between 100 and 10000"));
        }
        if !(1..=1000).contains(&self.max_connections) {
            return Err(bad("store.max_connections", "must be between 1 and 1000"));
        }
        Ok((hot, durable))
    }

    pub fn settings(&self) -> otpgate_store::open::StoreSettings {
        otpgate_store::open::StoreSettings {
            redis_key_prefix: self.redis_key_prefix.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Key for the HMAC of codes, at least 32 bytes. Required in production.
    #[serde(serialize_with = "redact")]
    pub hmac_key: Option<SecretString>,
    /// Development only: where the generated HMAC key is kept between restarts.
    pub dev_hmac_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .field("dev_hmac_key_file", &self.dev_hmac_key_file)
            .finish()
    }
}

fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodesConfig {
    /// Digits per code, 4–10.
    pub length: usize,
    /// Seconds a code stays valid.
    pub ttl_secs: u64,
    /// Wrong codes a verification survives.
    pub max_attempts: u32,
    /// Seconds before the first resend; doubles with each resend.
    pub resend_cooldown_secs: u64,
}

/// `count` events per `period_secs` (a burst of `count`, refilling one every
/// `period_secs / count`); `count = 0` switches the limit off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub count: u32,
    pub period_secs: u64,
}

impl RateConfig {
    const fn new(count: u32, period_secs: u64) -> Self {
        RateConfig { count, period_secs }
    }

    fn rate(self) -> Option<Rate> {
        (self.count > 0).then(|| Rate::new(self.count, Duration::from_secs(self.period_secs)))
    }
}

/// Every rate limit; see `docs/configuration.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sends per phone number.
    pub phone_send: RateConfig,
    pub phone_send_hourly: RateConfig,
    pub phone_send_daily: RateConfig,
    /// Sends per client IP.
    pub ip_send: RateConfig,
    pub ip_send_hourly: RateConfig,
    /// Sends per number prefix (the number without its last four digits).
    pub prefix_send: RateConfig,
    /// Sends per country (off by default).
    pub country_send: RateConfig,
    /// Sends over all numbers: the spend cap.
    pub global_send_hourly: RateConfig,
    pub global_send_daily: RateConfig,
    /// Failed checks per phone across verifications; a success clears them.
    pub phone_check_failures: RateConfig,
    /// Checks per client IP.
    pub ip_check: RateConfig,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            phone_send: RateConfig::new(3, 60),
            phone_send_hourly: RateConfig::new(10, 3600),
            phone_send_daily: RateConfig::new(20, 86_400),
            ip_send: RateConfig::new(10, 60),
            ip_send_hourly: RateConfig::new(100, 3600),
            prefix_send: RateConfig::new(20, 3600),
            country_send: RateConfig::new(0, 3600),
            global_send_hourly: RateConfig::new(10_000, 3600),
            global_send_daily: RateConfig::new(100_000, 86_400),
            phone_check_failures: RateConfig::new(20, 3600),
            ip_check: RateConfig::new(30, 60),
        }
    }
}

impl LimitsConfig {
    fn named(&self) -> [(&'static str, RateConfig); 11] {
        [
            ("phone_send", self.phone_send),
            ("phone_send_hourly", self.phone_send_hourly),
            ("phone_send_daily", self.phone_send_daily),
            ("ip_send", self.ip_send),
            ("ip_send_hourly", self.ip_send_hourly),
            ("prefix_send", self.prefix_send),
            ("country_send", self.country_send),
            ("global_send_hourly", self.global_send_hourly),
            ("global_send_daily", self.global_send_daily),
            ("phone_check_failures", self.phone_check_failures),
            ("ip_check", self.ip_check),
        ]
    }

    fn set(&self, ipv6_prefix: otpgate_core::Ipv6Prefix) -> otpgate_core::LimitSet {
        otpgate_core::LimitSet {
            phone_send: self.phone_send.rate(),
            phone_send_hourly: self.phone_send_hourly.rate(),
            phone_send_daily: self.phone_send_daily.rate(),
            ip_send: self.ip_send.rate(),
            ip_send_hourly: self.ip_send_hourly.rate(),
            prefix_send: self.prefix_send.rate(),
            country_send: self.country_send.rate(),
            global_send_hourly: self.global_send_hourly.rate(),
            global_send_daily: self.global_send_daily.rate(),
            phone_check_failures: self.phone_check_failures.rate(),
            ip_check: self.ip_check.rate(),
            ipv6_prefix,
        }
    }
}

/// Which countries and kinds of number may receive codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionsConfig {
    /// When set, only numbers of these countries (ISO 3166 alpha-2, e.g. `["US", "CA"]`).
    pub allow: Option<Vec<String>>,
    /// Never numbers of these countries.
    pub deny: Vec<String>,
    /// Number kinds that are refused: by default those that are never a person's phone.
    pub refused_kinds: Vec<String>,
}

impl Default for RegionsConfig {
    fn default() -> Self {
        let kinds = otpgate_core::RegionPolicy::default().refused_kinds;
        RegionsConfig {
            allow: None,
            deny: Vec::new(),
            refused_kinds: kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        }
    }
}

/// The SMS-pumping tripwire (sends vs approvals per country).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TripwireConfig {
    pub enabled: bool,
    /// Sliding window, seconds.
    pub window_secs: u64,
    /// Sends in the window before the approval rate counts.
    pub min_sends: u64,
    /// Trip when approvals / sends falls below this (0–1).
    pub min_approval_rate: f64,
    /// What a tripped country may still send.
    pub trickle: RateConfig,
}

impl Default for TripwireConfig {
    fn default() -> Self {
        let d = otpgate_core::TripwirePolicy::default();
        TripwireConfig {
            enabled: d.enabled,
            window_secs: d.window.as_secs(),
            min_sends: d.min_sends,
            min_approval_rate: d.min_approval_rate,
            trickle: RateConfig::new(d.trickle.count, d.trickle.period.as_secs()),
        }
    }
}

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
    pub required_for: Vec<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Records messages in the dev inbox (`GET /dev/inbox`); sends nothing.
    Demo,
    /// Twilio Verify: Twilio makes, sends and checks the code (`provider.twilio.verify`).
    TwilioVerify,
    /// Twilio Programmable Messaging: otpgate makes the code and sends its own text
    /// (`provider.twilio.messaging`).
    TwilioMessaging,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Unset: `demo` in development; required in production (unless `failover` is set).
    pub kind: Option<ProviderKind>,
    /// Ordered providers: the next one sends only when the one before is unavailable (never
    /// when it rejects a number). Overrides `kind` when not empty.
    pub failover: Vec<ProviderKind>,
    /// The Twilio account, for `twilio-verify` and `twilio-messaging`.
    pub twilio: Option<otpgate_sms::TwilioConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Issue a session (access + refresh token) on every approved check.
    pub enabled: bool,
    /// `iss` of access tokens; the public base URL of this server is a good value.
    pub issuer: String,
    /// `aud` of access tokens: the app(s) that accept them.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (each refresh starts a new period).
    pub refresh_ttl_secs: u64,
    /// Seconds after a refresh during which the spent refresh token, presented again, gets the
    /// same new session instead of revoking the chain (0–60; 0: never).
    pub refresh_reuse_grace_secs: u64,
    /// The signing-key file (JSON, current + previous Ed25519 keys). Required in production
    /// (create it with `otpgate keys rotate`); in development it defaults to
    /// `<database file>.signing-keys.json` and is generated when missing. A running server
    /// reloads it within seconds after `otpgate keys rotate`.
    pub keys_file: Option<PathBuf>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            enabled: true,
            issuer: "otpgate".into(),
            audience: "otpgate".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 10,
            keys_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Whole-request deadline, in seconds.
    pub request_timeout_secs: u64,
    /// Proxies (IP addresses or CIDR ranges) whose `client_ip_header` is believed; the client
    /// is the right-most address in it not in this list. Empty: the socket peer is the client
    /// and forwarding headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write the client's address into:
    /// `x-forwarded-for`, `forwarded` (RFC 7239) or `x-real-ip`. Every other forwarding header
    /// is ignored (a client can send any of them through a proxy that does not manage it).
    pub client_ip_header: crate::client_ip::ClientIpHeader,
    /// Leading bits of an IPv6 address that name one client, for per-IP limits and connection
    /// caps (32–128; a /64 is one LAN).
    pub ipv6_prefix_len: otpgate_core::Ipv6Prefix,
    /// Longest a client may take to send a request's headers, counted from the moment the
    /// connection opens (or finishes its TLS handshake) or the previous answer was sent (1–60).
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) in bytes, 8192–1048576; larger ones get
    /// `431` and the connection is closed.
    pub max_header_bytes: usize,
    /// A connection with no request in flight and no bytes moving is closed after this many
    /// seconds (1–300).
    pub keep_alive_timeout_secs: u64,
    /// Open connections (TLS handshakes included) at once; past it a new connection is closed
    /// as soon as it is accepted.
    pub max_connections: usize,
    /// Open connections per client address (an IPv4 address or an IPv6 `ipv6_prefix_len`
    /// network) at once; past it a new one is closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Where `/metrics` and the detailed `/readyz` are served (`"127.0.0.1:9090"`); when set,
    /// the public listener answers `/metrics` with 404 and `/readyz` with its status only.
    /// Unset: `127.0.0.1:9090` in production, nothing in development (all on `listen`).
    pub admin_listen: Option<SocketAddr>,
    /// Origins (`https://app.example.com`) whose pages may call the API (CORS). Empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Where the sign-in page served at `/` sends its API calls; unset: this server. Its origin
    /// is added to the page's CSP `connect-src` (and must allow the page's origin by CORS).
    pub page_api_base: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `otpgate=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            environment: Environment::Development,
            listen: "127.0.0.1:8080".into(),
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
            oidc: None,
            tls: crate::tls::TlsConfig::default(),
            retention: crate::retention::RetentionConfig::default(),
            log: LogConfig::default(),
            dangerously_allow_demo_provider_in_production: false,
            dangerously_allow_test_numbers_in_production: false,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let settings = otpgate_store::open::StoreSettings::default();
        StoreConfig {
            hot: "sqlite://otpgate.db".into(),
            durable: "sqlite://otpgate.db".into(),
            redis_key_prefix: settings.redis_key_prefix,
            timeout_ms: settings.timeout.as_millis() as u64,
            max_connections: settings.max_connections,
        }
    }
}

impl Default for CodesConfig {
    fn default() -> Self {
        let p = Policy::default();
        CodesConfig {
            length: p.code_length,
            ttl_secs: p.code_ttl.as_secs(),
            max_attempts: p.max_attempts,
            resend_cooldown_secs: p.resend_cooldown.as_secs(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 4096,
            request_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            client_ip_header: crate::client_ip::ClientIpHeader::default(),
            ipv6_prefix_len: otpgate_core::Ipv6Prefix::DEFAULT,
            header_read_timeout_secs: 5,
            max_header_bytes: 16 * 1024,
            keep_alive_timeout_secs: 5,
            max_connections: 4096,
            max_connections_per_ip: 64,
            cors_allowed_origins: Vec::new(),
            page_api_base: None,
            admin_listen: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Auto, level: "info".into() }
    }
}

/// `http.admin_listen` in production when it is not set: loopback only, for a local Prometheus
/// agent or a sidecar.
pub const DEFAULT_PRODUCTION_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("config key `{key}`: {why}"))
}

/// Environment variables that belong to the test suites, not to the server (unless they name a
/// key: `OTPGATE_TEST_NUMBERS` is `test_numbers`).
const IGNORED_ENV_PREFIX: &str = "TEST_";

impl Config {
    /// Loads `file` (if given; otherwise `otpgate.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As `load`, with the environment passed in (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("otpgate.toml").exists() => figment = figment.merge(Toml::file_exact("otpgate.toml")),
            None => {}
        }
        // Plain variables first, then `_FILE` ones (read from disk), so a secret file wins.
        let mut plain = Vec::new();
        let mut from_files = Vec::new();
        let schema = serde_json::to_value(Config::default()).unwrap_or_default();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("OTPGATE_") else { continue };
            if key.starts_with(IGNORED_ENV_PREFIX) && !is_config_key(&schema, key) {
                continue;
            }
            // `X_FILE` reads X from a file, unless `X_FILE` is itself a key (`sessions.keys_file`).
            match key.strip_suffix("_FILE").filter(|_| !is_config_key(&schema, key)) {
                Some(secret_key) => {
                    let contents = std::fs::read_to_string(value)
                        .map_err(|e| ConfigError(format!("{name}: cannot read {value}: {e}")))?;
                    from_files.push((secret_key.to_owned(), contents.trim_end_matches(['\n', '\r']).to_owned()));
                }
                None => plain.push((key.to_owned(), value.clone())),
            }
        }
        figment = figment
            .merge(EnvVars(env_dict(plain), "environment variables OTPGATE_*"))
            .merge(EnvVars(env_dict(from_files), "secret files named by OTPGATE_*_FILE"));
        // Lossy: environment values are strings; "300" becomes a number only where a number
        // is expected, so a phone number like +15005550006 stays a string.
        let config: Config = figment.extract_lossy().map_err(|e| ConfigError(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

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

    fn validate_provider(&self) -> Result<(), ConfigError> {
        let kinds = self.provider_kinds();
        if kinds.len() > 1 && kinds.contains(&ProviderKind::Demo) {
            return Err(bad("provider.failover", "the demo provider cannot be part of a failover list"));
        }
        let mut seen = Vec::new();
        for kind in &kinds {
            if seen.contains(kind) {
                return Err(bad("provider.failover", "lists a provider twice"));
            }
            seen.push(*kind);
        }
        let needs_twilio = kinds.iter().any(|k| *k != ProviderKind::Demo);
        match (&self.provider.twilio, needs_twilio) {
            (None, true) => return Err(bad("provider.twilio", "is required for the twilio providers")),
            (Some(twilio), _) => {
                twilio.validate().map_err(|e| bad("provider.twilio", e))?;
                if kinds.contains(&ProviderKind::TwilioVerify) && twilio.verify.is_none() {
                    return Err(bad("provider.twilio.verify", "is required for twilio-verify"));
                }
                if kinds.contains(&ProviderKind::TwilioMessaging) && twilio.messaging.is_none() {
                    return Err(bad("provider.twilio.messaging", "is required for twilio-messaging"));
                }
            }
            (None, false) => {}
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| bad("listen", format!("`{}` is not an IP address and port", self.listen)))
    }

    pub fn region(&self) -> Result<Option<Region>, ConfigError> {
        self.default_region
            .as_deref()
            .map(|r| {
                otpgate_core::parse_region(r)
                    .ok_or_else(|| bad("default_region", format!("`{r}` is not a known region code (like US or GB)")))
            })
            .transpose()
    }

    pub fn policy(&self) -> Policy {
        Policy {
            code_length: self.codes.length,
            code_ttl: Duration::from_secs(self.codes.ttl_secs),
            max_attempts: self.codes.max_attempts,
            resend_cooldown: Duration::from_secs(self.codes.resend_cooldown_secs),
            limits: self.limits.set(self.http.ipv6_prefix_len),
            regions: otpgate_core::RegionPolicy {
                allow: self.regions.allow.as_ref().map(|a| a.iter().cloned().collect()),
                deny: self.regions.deny.iter().cloned().collect(),
                refused_kinds: self
                    .regions
                    .refused_kinds
                    .iter()
                    .filter_map(|k| otpgate_core::NumberKind::from_name(k))
                    .collect(),
            },
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
    pub fn client_ip_resolver(&self) -> Result<crate::client_ip::ClientIpResolver, ConfigError> {
        Ok(crate::client_ip::ClientIpResolver::new(self.trusted_proxies()?, self.http.client_ip_header))
    }

    pub fn trusted_proxies(&self) -> Result<crate::client_ip::TrustedProxies, ConfigError> {
        crate::client_ip::TrustedProxies::parse(&self.http.trusted_proxies).map_err(|e| bad("http.trusted_proxies", e))
    }

    /// The signing-key file in force (see `SessionsConfig::keys_file`).
    pub fn keys_file(&self) -> Result<PathBuf, ConfigError> {
        if let Some(path) = &self.sessions.keys_file {
            return Ok(path.clone());
        }
        Ok(self.beside_database(".signing-keys.json"))
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
    /// SQLite or the store configuration is invalid.
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        use otpgate_store::open::{DurableUrl, HotUrl};
        match self.store.urls()? {
            (_, DurableUrl::Sqlite(path)) | (HotUrl::Sqlite(path), _) => Ok(path),
            _ => Err(bad("store.durable", "is not an SQLite database")),
        }
    }

    /// Everything that must hold before serving; production refuses what is unsafe there.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.region()?;
        self.store.urls()?;
        crate::oidc_config::validate(self)?;
        self.policy().validate().map_err(|e| bad(if e.starts_with("tripwire") { "tripwire" } else { "codes" }, e))?;
        for (name, rate) in self.limits.named() {
            if rate.count > 0 && rate.period_secs == 0 {
                return Err(bad(&format!("limits.{name}"), "period_secs must be positive (count = 0 switches it off)"));
            }
        }
        for (key, list) in [
            ("regions.allow", self.regions.allow.clone().unwrap_or_default()),
            ("regions.deny", self.regions.deny.clone()),
        ] {
            if let Some(bad_code) = list.iter().find(|c| otpgate_core::parse_region(c).is_none()) {
                return Err(bad(key, format!("`{bad_code}` is not a known region code (like US or GB)")));
            }
        }
        if let Some(k) = self.regions.refused_kinds.iter().find(|k| otpgate_core::NumberKind::from_name(k).is_none()) {
            let known: Vec<&str> = otpgate_core::NumberKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(bad("regions.refused_kinds", format!("`{k}` is not one of {}", known.join(", "))));
        }
        if self.tripwire.trickle.period_secs == 0 {
            return Err(bad("tripwire.trickle", "period_secs must be positive"));
        }
        self.trusted_proxies()?;
        self.message_templates()?;
        if let Some(kind) = self.bot_check.kind {
            if self.bot_check.secret.is_none() {
                return Err(bad("bot_check.secret", format!("is required for {kind:?}")));
            }
            for c in &self.bot_check.required_for {
                if c != "*" && otpgate_core::parse_region(c).is_none() {
                    return Err(bad("bot_check.required_for", format!("`{c}` is not `*` or a region code")));
                }
            }
        }
        if self.bot_check.passed_limit_factor > 1000 {
            return Err(bad("bot_check.passed_limit_factor", "must be between 0 and 1000"));
        }
        if self.app_name.trim().is_empty() || self.app_name.len() > 40 {
            return Err(bad("app_name", "must be 1 to 40 characters"));
        }
        if self.http.body_limit_bytes < 256 || self.http.body_limit_bytes > 1 << 20 {
            return Err(bad("http.body_limit_bytes", "must be between 256 and 1048576"));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(bad("http.request_timeout_secs", "must be positive"));
        }
        self.edge().validate()?;
        for origin in &self.http.cors_allowed_origins {
            crate::cors::check_origin(origin).map_err(|e| bad("http.cors_allowed_origins", e))?;
        }
        if let Some(base) = &self.http.page_api_base {
            crate::routes::web::check_api_base(base).map_err(|e| bad("http.page_api_base", e))?;
        }
        if let Some(domain) = &self.webotp_domain
            && (domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        {
            return Err(bad("webotp_domain", "must be a bare host name like example.com"));
        }
        if let Some(key) = &self.secrets.hmac_key
            && key.expose_secret().len() < otpgate_core::code::MIN_KEY_LEN
        {
            return Err(bad("secrets.hmac_key", "must be at least 32 bytes"));
        }
        self.validate_provider()?;
        self.tls.validate().map_err(ConfigError)?;
        self.retention.validate().map_err(ConfigError)?;
        crate::transport::check_plain_http(self)?;
        let s = &self.sessions;
        if s.issuer.trim().is_empty() || s.audience.trim().is_empty() {
            return Err(bad("sessions.issuer", "issuer and audience must not be empty"));
        }
        if !(60..=86_400).contains(&s.access_ttl_secs) {
            return Err(bad("sessions.access_ttl_secs", "must be between 60 and 86400"));
        }
        if !(s.access_ttl_secs..=366 * 86_400).contains(&s.refresh_ttl_secs) {
            return Err(bad(
                "sessions.refresh_ttl_secs",
                "must be at least the access-token lifetime and at most 366 days",
            ));
        }
        if s.refresh_reuse_grace_secs > 60 {
            return Err(bad("sessions.refresh_reuse_grace_secs", "must be between 0 and 60"));
        }
        let test_numbers = self.effective_test_numbers()?;
        if self.is_production() {
            if self.secrets.hmac_key.is_none() {
                return Err(bad("secrets.hmac_key", "is required in production (or OTPGATE_SECRETS__HMAC_KEY_FILE)"));
            }
            if s.enabled && s.keys_file.is_none() {
                return Err(bad(
                    "sessions.keys_file",
                    "is required in production (create the file with `otpgate keys rotate --file PATH`)",
                ));
            }
            match self.provider_kind() {
                None => return Err(bad("provider.kind", "must be set in production")),
                Some(ProviderKind::Demo) if !self.dangerously_allow_demo_provider_in_production => {
                    return Err(bad(
                        "provider.kind",
                        "the demo provider shows codes to anyone; refused in production \
                         (dangerously_allow_demo_provider_in_production overrides)",
                    ));
                }
                _ => {}
            }
            if !test_numbers.is_empty() && !self.dangerously_allow_test_numbers_in_production {
                return Err(bad(
                    "test_numbers",
                    "test numbers have public codes; refused in production \
                     (dangerously_allow_test_numbers_in_production overrides)",
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML-like JSON with every secret replaced by `<redacted>`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<cannot render config: {e}>"))
    }
}

/// `__` separates nesting levels; names are lowercased (`OTPGATE_CODES__TTL_SECS` -> `codes.ttl_secs`).
/// Whether an environment key (`SESSIONS__KEYS_FILE`) names a configuration key.
fn is_config_key(schema: &serde_json::Value, env_key: &str) -> bool {
    let mut node = schema;
    for part in env_key.split("__") {
        match node.get(part.to_ascii_lowercase()) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// Environment values as a figment dictionary: `__` separates levels, names are lowercased
/// (`OTPGATE_CODES__TTL_SECS` -> `codes.ttl_secs`). Values stay strings (see `extract_lossy`),
/// except arrays and tables written inline (`[twilio-verify, twilio-messaging]`).
fn env_dict(vars: Vec<(String, String)>) -> figment::value::Dict {
    let mut root = figment::value::Dict::new();
    for (key, value) in vars {
        let path: Vec<String> = key.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let trimmed = value.trim_start();
        let parsed = if trimmed.starts_with('[') || trimmed.starts_with('{') {
            value.parse::<figment::value::Value>().unwrap_or_else(|_| figment::value::Value::from(value.clone()))
        } else {
            figment::value::Value::from(value)
        };
        insert_path(&mut root, &path, parsed);
    }
    root
}

/// A figment provider for values read from the environment, named so errors say where a bad
/// value came from.
struct EnvVars(figment::value::Dict, &'static str);

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.1)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.0.clone()))
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry =
                dict.entry(first.clone()).or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = figment::value::Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = figment::value::Value::from(inner);
            }
        }
    }
}

/// "config key `codes.length` (from otpgate.toml): invalid type: …" for each error.
fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| match &m.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", m.name),
            });
            let key = if key.is_empty() { "(top level)".to_owned() } else { format!("`{key}`") };
            format!("config key {key}{}: {}", source.unwrap_or_default(), e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load(toml: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpgate.toml");
        if let Some(toml) = toml {
            std::fs::write(&path, toml).unwrap();
        }
        Config::load_from(toml.map(|_| path.as_path()), &env(vars))
    }

    const PROD_KEY: &str = "0123456789abcdef0123456789abcdef-prod";

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.sqlite_path().unwrap(), PathBuf::from("otpgate.db"));
        assert_eq!(c.provider_kind(), Some(ProviderKind::Demo));
        let p = c.policy();
        assert_eq!((p.code_length, p.code_ttl.as_secs(), p.max_attempts, p.resend_cooldown.as_secs()), (6, 120, 5, 30));
        assert_eq!(p.limits.phone_send, Some(Rate::new(3, Duration::from_secs(60))));
        assert_eq!(p.limits.country_send, None, "per-country limit off by default");
        assert_eq!(p.limits.ip_check, Some(Rate::new(30, Duration::from_secs(60))));
        let tn = c.effective_test_numbers().unwrap();
        assert_eq!(tn.get("+15005550006").map(|c| c.expose().to_owned()).as_deref(), Some("123456"));
    }

    #[test]
    fn the_default_test_number_exists_only_with_the_demo_provider() {
        let twilio = [
            ("OTPGATE_PROVIDER__TWILIO__MESSAGING__FROM", "+15005550006"),
            ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", "fake-token"),
        ];
        for kind in ["twilio-messaging", "[twilio-messaging]"] {
            let key = if kind.starts_with('[') { "OTPGATE_PROVIDER__FAILOVER" } else { "OTPGATE_PROVIDER__KIND" };
            let mut vars = twilio.to_vec();
            vars.push((key, kind));
            let c = load(None, &vars).unwrap();
            assert!(c.effective_test_numbers().unwrap().is_empty(), "{kind}: no default test number");
            let listed = load(Some("[test_numbers]\n\"+15005550007\" = \"654321\"\n"), &vars).unwrap();
            let numbers = listed.effective_test_numbers().unwrap();
            assert_eq!(numbers.keys().collect::<Vec<_>>(), ["+15005550007"], "{kind}: only what is listed");
        }
        let demo = load(Some("[provider]\nkind = \"demo\"\n"), &[]).unwrap();
        assert_eq!(demo.effective_test_numbers().unwrap().len(), 1);
    }

    #[test]
    fn a_bot_check_may_be_required_nowhere() {
        let c = load(Some("[bot_check]\nkind = \"turnstile\"\nsecret = \"s\"\n"), &[]).unwrap();
        assert!(c.bot_check.required_for.is_empty());
        assert_eq!(c.bot_check.passed_limit_factor, 10);
        let e = load(None, &[("OTPGATE_BOT_CHECK__PASSED_LIMIT_FACTOR", "5000")]).unwrap_err().to_string();
        assert!(e.contains("bot_check.passed_limit_factor"), "{e}");
    }

    #[test]
    fn file_then_env_then_file_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hmac");
        std::fs::write(&secret, format!("{PROD_KEY}\n")).unwrap();
        let c = load(
            Some("app_name = \"Acme\"\n[codes]\nttl_secs = 300\nlength = 8\n"),
            &[
                ("OTPGATE_CODES__TTL_SECS", "240"),
                ("OTPGATE_SECRETS__HMAC_KEY", "x".repeat(40).as_str()),
                ("OTPGATE_SECRETS__HMAC_KEY_FILE", secret.to_str().unwrap()),
                ("OTPGATE_TEST_REDIS_URL", "redis://ignored"),
                ("OTPGATE_TEST_NUMBERS", r#"{"+15005550007" = "87654321"}"#),
                ("OTPGATE_PROVIDER__TWILIO__MESSAGING__FROM", "+15005550006"),
                ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
                ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", "fake-token"),
                ("OTPGATE_PROVIDER__FAILOVER", "[twilio-messaging]"),
                ("UNRELATED", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.app_name, "Acme");
        assert_eq!(c.codes.length, 8);
        assert_eq!(c.codes.ttl_secs, 240, "env beats the file");
        assert_eq!(
            c.secrets.hmac_key.as_ref().unwrap().expose_secret(),
            PROD_KEY,
            "the _FILE secret wins, newline trimmed"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load(Some("[codes]\nttl = 5\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("ttl"), "{e}");
        let e = load(None, &[("OTPGATE_CODEZ__LENGTH", "6")]).unwrap_err().to_string();
        assert!(e.contains("codez") && e.contains("environment variables"), "{e}");
        let e = load(None, &[("OTPGATE_CODES__LENGTH", "six")]).unwrap_err().to_string();
        assert!(e.contains("`codes.length`"), "{e}");
    }

    #[test]
    fn unsafe_values_are_named() {
        for (vars, key) in [
            (vec![("OTPGATE_CODES__LENGTH", "3")], "codes"),
            (vec![("OTPGATE_LISTEN", "nowhere")], "listen"),
            (vec![("OTPGATE_DEFAULT_REGION", "XX")], "default_region"),
            (vec![("OTPGATE_SECRETS__HMAC_KEY", "short")], "secrets.hmac_key"),
            (vec![("OTPGATE_STORE__HOT", "mysql://x")], "store.hot"),
            (vec![("OTPGATE_WEBOTP_DOMAIN", "exa mple.com")], "webotp_domain"),
        ] {
            let e = load(None, &vars).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = load(Some("[messages]\nen = \"no placeholder\"\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("messages") && e.contains("`en`"), "{e}");
        let e = load(Some("[test_numbers]\n\"+15005550006\" = \"12ab56\"\n"), &[]).unwrap_err().to_string();
        assert!(e.contains("test_numbers") && !e.contains("12ab56"), "{e}");
    }

    #[test]
    fn production_refuses_demo_test_numbers_and_missing_key() {
        let prod = [("OTPGATE_ENVIRONMENT", "production")];
        let e = load(None, &prod).unwrap_err().to_string();
        assert!(e.contains("secrets.hmac_key"), "{e}");
        let e = load(None, &[("OTPGATE_ENVIRONMENT", "production"), ("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sessions.keys_file"), "{e}");
        let with_key = [
            ("OTPGATE_ENVIRONMENT", "production"),
            ("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY),
            ("OTPGATE_SESSIONS__KEYS_FILE", "/var/lib/otpgate/keys.json"),
        ];
        let e = load(None, &with_key).unwrap_err().to_string();
        assert!(e.contains("provider.kind"), "{e}");
        let e = load(Some("[provider]\nkind = \"demo\"\n"), &with_key).unwrap_err().to_string();
        assert!(e.contains("demo provider"), "{e}");
        let ok = load(
            Some("dangerously_allow_demo_provider_in_production = true\n[provider]\nkind = \"demo\"\n"),
            &with_key,
        )
        .unwrap();
        assert!(ok.effective_test_numbers().unwrap().is_empty(), "no test numbers by default in production");
        let e = load(
            Some("dangerously_allow_demo_provider_in_production = true\n[provider]\nkind = \"demo\"\n[test_numbers]\n\"+15005550006\" = \"123456\"\n"),
            &with_key,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("test_numbers"), "{e}");
    }

    #[test]
    fn redacted_print_holds_no_secret() {
        let c = load(None, &[("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY)]).unwrap();
        let printed = c.redacted_json();
        assert!(!printed.contains(PROD_KEY), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert!(!format!("{c:?}").contains(PROD_KEY));
    }
}
