//! `[store]`: where state lives and how long the networked backends may take.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

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
