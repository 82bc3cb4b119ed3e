//! The storage, `Idempotency-Key` and privacy (retention, export, erasure) contracts against
//! PostgreSQL (`OTPGATE_TEST_DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`), each
//! test in its own schema so tests run in parallel on one database. Ignored unless asked for
//! (`--include-ignored`); asked for without the variable, they fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::verification::random_base62;
use otpgate_core::{Limits, StoreError, Timestamp};
use otpgate_store::postgres::{PgOptions, PgStore};
use otpgate_test_support::store_contract::Backend;

/// A store in a schema of its own on `OTPGATE_TEST_DATABASE_URL`.
pub async fn store() -> PgStore {
    let url = otpgate_test_support::service("OTPGATE_TEST_DATABASE_URL");
    let options = PgOptions {
        schema: Some(format!("otpgate_test_{}", random_base62(12).to_lowercase())),
        max_connections: 8,
        ..Default::default()
    };
    PgStore::connect(&url, options).await.expect("connect to OTPGATE_TEST_DATABASE_URL")
}

async fn fresh() -> Arc<dyn Backend> {
    Arc::new(store().await)
}

otpgate_test_support::store_contract_tests!(ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL", fresh());

mod idempotency {
    use otpgate_core::idempotency::IdempotencyStore;

    use super::*;

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(store().await)
    }

    otpgate_test_support::idempotency_contract_tests!(
        ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL",
        fresh()
    );
}

mod privacy {
    use super::*;

    otpgate_test_support::privacy_contract_tests!(ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL", fresh());
}

const T0: Timestamp = Timestamp(1_800_000_000_000);

#[tokio::test]
#[ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL"]
async fn spent_limit_rows_are_swept() {
    let store = store().await;
    let rate = Rate::new(3, Duration::from_secs(60));
    for key in ["a", "b", "c"] {
        store.acquire(&[LimitRule::new(LimitScope::PhoneSend, key, rate)], T0).await.unwrap().unwrap();
    }
    // Each row's arrival time is T0 + 20 s: before that nothing is spent, after it all is.
    assert_eq!(store.sweep_limits(T0.plus(Duration::from_secs(19))).await.unwrap(), 0);
    assert_eq!(store.sweep_limits(T0.plus(Duration::from_secs(21))).await.unwrap(), 3);
    // A swept key is a full bucket again.
    for _ in 0..3 {
        let rule = [LimitRule::new(LimitScope::PhoneSend, "a", rate)];
        assert!(store.acquire(&rule, T0.plus(Duration::from_secs(21))).await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let options = PgOptions { timeout: Duration::from_millis(500), ..Default::default() };
    let err = PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/test"), options).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
