//! The `OidcStore` contract (`otpgate_oidc::contract`) on every backend: SQLite (always), and
//! PostgreSQL, Redis and Redis Cluster as ignored tests that need their servers
//! (`OTPGATE_TEST_DATABASE_URL`, `OTPGATE_TEST_REDIS_URL`, `OTPGATE_TEST_REDIS_CLUSTER_URLS`). Each test has its own file, schema or key prefix. The store the
//! server opens (`open::open`) is checked too: its `oidc` handle is the hot store's.

use std::sync::Arc;

use otpgate_core::oidc::OidcStore;
use otpgate_core::verification::random_base62;

use otpgate_test_support::service;

mod sqlite {
    use super::*;

    async fn fresh() -> Arc<dyn OidcStore> {
        // Leaked on purpose: the directory must outlive the store, and the OS cleans /tmp.
        let dir = tempfile::tempdir().expect("temp dir").keep();
        Arc::new(otpgate_store::SqliteStore::open(&dir.join("oidc.db")).await.expect("open sqlite"))
    }

    otpgate_oidc::oidc_store_contract_tests!(fresh());
}

mod postgres {
    use super::*;
    use otpgate_store::postgres::{PgOptions, PgStore};

    async fn fresh() -> Arc<dyn OidcStore> {
        let url = service("OTPGATE_TEST_DATABASE_URL");
        let options = PgOptions {
            schema: Some(format!("otpgate_test_{}", random_base62(12).to_lowercase())),
            max_connections: 8,
            ..Default::default()
        };
        Arc::new(PgStore::connect(&url, options).await.expect("connect to OTPGATE_TEST_DATABASE_URL"))
    }

    otpgate_oidc::oidc_store_contract_tests!(ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL", fresh());
}

fn redis_options() -> otpgate_store::redis::RedisOptions {
    otpgate_store::redis::RedisOptions {
        key_prefix: format!("otpgate-test:{}:", random_base62(12)),
        limit_clock: otpgate_store::redis::LimitClock::Caller,
        ..Default::default()
    }
}

mod redis {
    use super::*;
    use otpgate_store::redis::RedisStore;

    async fn fresh() -> Arc<dyn OidcStore> {
        let url = service("OTPGATE_TEST_REDIS_URL");
        Arc::new(RedisStore::connect(&url, redis_options()).await.expect("connect to OTPGATE_TEST_REDIS_URL"))
    }

    otpgate_oidc::oidc_store_contract_tests!(ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL", fresh());

    /// Every OpenID Connect key expires on its own (no sweep runs on Redis).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
    async fn every_key_has_a_ttl() {
        let url = service("OTPGATE_TEST_REDIS_URL");
        let store = RedisStore::connect(&url, redis_options()).await.expect("connect");
        let dyn_store: Arc<dyn OidcStore> = Arc::new(store.clone());
        otpgate_oidc::contract::codes_are_single_use_and_remember_their_exchange(dyn_store.clone()).await;
        otpgate_oidc::contract::revoked_ids_stay_revoked_until_their_time(dyn_store.clone()).await;
        otpgate_oidc::contract::purge_keeps_everything_in_force(dyn_store).await;
        let ttls = store.ttls().await.expect("scan");
        assert!(ttls.len() >= 6, "codes, a login session and revocations were written: {ttls:?}");
        for (key, ttl) in ttls {
            assert!(ttl > 0, "{key} has no TTL ({ttl})");
        }
    }
}

mod redis_cluster {
    use super::*;
    use otpgate_store::redis::RedisStore;

    async fn fresh() -> Arc<dyn OidcStore> {
        let urls = service("OTPGATE_TEST_REDIS_CLUSTER_URLS");
        let nodes: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
        let store = RedisStore::connect_cluster(&nodes, redis_options()).await;
        Arc::new(store.expect("connect to OTPGATE_TEST_REDIS_CLUSTER_URLS"))
    }

    otpgate_oidc::oidc_store_contract_tests!(
        ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS",
        fresh()
    );
}

/// The stores `open` gives the server carry an OpenID Connect store that works (SQLite for both
/// roles: the one file serves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_stores_carry_the_oidc_store() {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("both.db").display());
    let stores = otpgate_store::open::open(&url.parse().unwrap(), &url.parse().unwrap(), &Default::default())
        .await
        .expect("open");
    otpgate_oidc::contract::revoked_ids_stay_revoked_until_their_time(stores.oidc).await;
}
