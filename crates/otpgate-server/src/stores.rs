//! Opens the stores the configuration names. This is the only place in the server that touches
//! store configuration; which backends exist and how they combine is the store crate's business
//! (`otpgate_store::open`): everything else sees the core's traits.

use otpgate_core::StoreError;

use crate::config::{Config, ConfigError};

/// The store handles the application runs on.
pub use otpgate_store::open::Stores;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
}

/// Connects to (and for SQL, migrates) the configured stores. A store that cannot be reached
/// stops the start: a wrong URL should fail loudly, not as 503s later.
pub async fn open(config: &Config) -> Result<Stores, OpenError> {
    let store = &config.store;
    Ok(otpgate_store::open::open(store.hot.get(), store.durable.get(), &store.settings()).await?)
}

/// The `Idempotency-Key` machinery over the hot store's entries (SQLite, Redis, Redis Cluster
/// or Postgres: `Stores::idempotency`), with a lease of the request deadline + 5 s.
pub fn idempotency(
    config: &Config,
    stores: &Stores,
    clock: &std::sync::Arc<dyn otpgate_core::Clock>,
) -> crate::idempotency::Idempotency {
    let timeout = std::time::Duration::from_secs(config.http.request_timeout_secs);
    crate::idempotency::Idempotency::new(stores.idempotency.clone(), clock.clone(), timeout)
}

#[cfg(test)]
mod tests {
    use otpgate_store::open::{DurableUrl, HotUrl};

    use crate::config::Config;

    fn load(vars: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let env: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_from(None, &env)
    }

    #[test]
    fn store_urls_come_from_env_per_role() {
        let c = load(&[
            ("OTPGATE_STORE__HOT", "redis+cluster://10.0.0.1:7001,10.0.0.2:7002"),
            ("OTPGATE_STORE__DURABLE", "postgres://otpgate:pw@db:5432/otpgate"),
        ])
        .unwrap();
        assert!(matches!(c.store.hot.get(), HotUrl::RedisCluster(nodes) if nodes.len() == 2));
        assert!(matches!(c.store.durable.get(), DurableUrl::Postgres(_)));
        assert!(c.sqlite_path().is_err(), "no SQLite file in this deployment");
        assert_eq!(c.sqlite_path().unwrap_or_default(), std::path::PathBuf::new());
    }

    #[test]
    fn bad_store_settings_are_named() {
        for (vars, key) in [
            (vec![("OTPGATE_STORE__HOT", "memcached://x")], "store.hot"),
            (vec![("OTPGATE_STORE__DURABLE", "redis://x:6379")], "store.durable"),
            (vec![("OTPGATE_STORE__DURABLE", "sqlite://other.db")], "store.durable"),
            (vec![("OTPGATE_STORE__REDIS_KEY_PREFIX", "a{b}")], "store.redis_key_prefix"),
            (vec![("OTPGATE_STORE__TIMEOUT_MS", "60000")], "store.timeout_ms"),
        ] {
            let e = load(&vars).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = load(&[("OTPGATE_STORE__DURABLE", "mysql://root:hunter2@db/x")]).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "passwords stay out of messages: {e}");
    }
}
