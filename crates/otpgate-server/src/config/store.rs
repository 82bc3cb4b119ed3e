//! `[store]`: where state lives and how long the networked backends may take. The two URLs are
//! parsed into the store crate's `HotUrl` / `DurableUrl` when the configuration is loaded, once.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use otpgate_store::open::{DurableUrl, HotUrl, StoreSettings};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigError, bad};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where hot, expiring state lives (verifications, limits): `sqlite://PATH`,
    /// `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT,HOST:PORT,…` or `postgres://…`.
    /// A password in it is printed as `<redacted>`.
    pub hot: StoreUrl<HotUrl>,
    /// Where durable state lives (users, refresh tokens): `sqlite://PATH` or `postgres://…`.
    pub durable: StoreUrl<DurableUrl>,
    /// Put before every Redis key, so deployments can share one Redis. No `{` or `}`.
    pub redis_key_prefix: String,
    /// Longest wait for a connection or an answer from Redis or PostgreSQL (100–10000 ms);
    /// past it a request gets `service_unavailable` instead of hanging.
    pub timeout_ms: u64,
    /// Upper bound of PostgreSQL connections per instance.
    pub max_connections: u32,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("hot", &self.hot)
            .field("durable", &self.durable)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// A store URL as written (printed only with its password redacted) and as the store crate
/// reads it, parsed once when the configuration is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl<T> {
    written: String,
    parsed: T,
}

impl<T> StoreUrl<T> {
    /// The parsed URL, for `otpgate_store::open`.
    pub fn get(&self) -> &T {
        &self.parsed
    }

    /// The URL as written, password included: only for connecting, never for printing.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The URL with any password replaced by `<redacted>`, for messages.
    pub fn redacted(&self) -> String {
        otpgate_store::redact::url(&self.written)
    }
}

impl<T: FromStr<Err = String>> FromStr for StoreUrl<T> {
    type Err = String;

    /// The store crate's error, which never holds the password.
    fn from_str(url: &str) -> Result<Self, String> {
        Ok(StoreUrl { written: url.to_owned(), parsed: url.parse()? })
    }
}

impl<T> fmt::Debug for StoreUrl<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<T> Serialize for StoreUrl<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for StoreUrl<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let url = String::deserialize(d)?;
        url.parse().map_err(serde::de::Error::custom)
    }
}

impl StoreConfig {
    /// Rules across the store keys (each URL parsed on its own at load).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(path) = self.sqlite_hot()
            && matches!(self.durable.get(), DurableUrl::Sqlite(other) if other != path)
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
        Ok(())
    }

    fn sqlite_hot(&self) -> Option<&PathBuf> {
        match self.hot.get() {
            HotUrl::Sqlite(path) => Some(path),
            _ => None,
        }
    }

    /// The SQLite file the stores use (the durable one first), if any.
    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        match self.durable.get() {
            DurableUrl::Sqlite(path) => Some(path),
            DurableUrl::Postgres(_) => self.sqlite_hot(),
        }
    }

    pub fn settings(&self) -> StoreSettings {
        StoreSettings {
            redis_key_prefix: self.redis_key_prefix.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let settings = StoreSettings::default();
        let db = "sqlite://otpgate.db";
        StoreConfig {
            hot: StoreUrl { written: db.into(), parsed: HotUrl::Sqlite("otpgate.db".into()) },
            durable: StoreUrl { written: db.into(), parsed: DurableUrl::Sqlite("otpgate.db".into()) },
            redis_key_prefix: settings.redis_key_prefix,
            timeout_ms: settings.timeout.as_millis() as u64,
            max_connections: settings.max_connections,
        }
    }
}
