//! The storage, `Idempotency-Key` and privacy (retention, export, erasure) contracts against
//! PostgreSQL (`OTPGATE_TEST_DATABASE_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`), each
//! test in its own schema so tests run in parallel on one database. Without the variable every
//! test skips with a notice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::verification::random_base62;
use otpgate_core::{RateLimiter, StoreError, Timestamp};
use otpgate_store::contract::Backend;
use otpgate_store::postgres::{PgOptions, PgStore};

pub fn url() -> Option<String> {
    std::env::var("OTPGATE_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

pub async fn store() -> Option<PgStore> {
    let url = url()?;
    let options = PgOptions {
        schema: Some(format!("otpgate_test_{}", random_base62(12).to_lowercase())),
        max_connections: 8,
        ..Default::default()
    };
    Some(PgStore::connect(&url, options).await.expect("connect to OTPGATE_TEST_DATABASE_URL"))
}

async fn fresh() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(store().await?))
}

otpgate_store::contract_tests!(fresh());

mod idempotency {
    use super::*;
    use otpgate_store::idempotency_contract::DynStore;

    async fn fresh() -> Option<DynStore> {
        Some(Arc::new(store().await?))
    }

    otpgate_store::idempotency_contract_tests!(fresh());
}

mod privacy {
    use super::*;

    otpgate_store::privacy_contract_tests!(fresh());
}

const T0: Timestamp = Timestamp(1_800_000_000_000);

#[tokio::test]
async fn spent_limit_rows_are_swept() {
    let Some(store) = store().await else {
        return eprintln!("skipped spent_limit_rows_are_swept: OTPGATE_TEST_DATABASE_URL is not set");
    };
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
