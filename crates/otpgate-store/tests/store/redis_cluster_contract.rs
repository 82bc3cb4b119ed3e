//! The storage contract (with the `Idempotency-Key` contract and the export/erasure checks of the
//! privacy contract) against a Redis Cluster (`OTPGATE_TEST_REDIS_CLUSTER_URLS`, comma-separated
//! node URLs; `scripts/redis-cluster.sh start` starts 3 masters on 127.0.0.1:7001-7003 and prints
//! the value). Each test uses its own key prefix. Ignored unless asked for (`--include-ignored`); asked for
//! without the variable, they fail.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::verification::random_base62;
use otpgate_core::{Limits, Timestamp};
use otpgate_store::redis::{LimitClock, RedisOptions, RedisStore};
use otpgate_test_support::store_contract::Backend;
use tokio::task::JoinSet;

fn nodes() -> Vec<String> {
    let urls = otpgate_test_support::service("OTPGATE_TEST_REDIS_CLUSTER_URLS");
    urls.split(',').map(|u| u.trim().to_owned()).collect()
}

async fn store() -> RedisStore {
    let nodes = nodes();
    let options = RedisOptions {
        key_prefix: format!("otpgate-test:{}:", random_base62(12)),
        limit_clock: LimitClock::Caller,
        ..Default::default()
    };
    RedisStore::connect_cluster(&nodes, options).await.expect("connect to OTPGATE_TEST_REDIS_CLUSTER_URLS")
}

async fn fresh() -> Arc<dyn Backend> {
    Arc::new(store().await)
}

otpgate_test_support::store_contract_tests!(
    ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS",
    fresh()
);

mod idempotency {
    use otpgate_core::idempotency::IdempotencyStore;

    use super::*;

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(store().await)
    }

    otpgate_test_support::idempotency_contract_tests!(
        ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS",
        fresh()
    );
}

mod privacy {
    use super::*;

    otpgate_test_support::privacy_contract_tests!(ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS", fresh(); export_then_delete_dead_and_current);
}

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn rule(key: &str, count: u32) -> LimitRule {
    LimitRule::new(LimitScope::PhoneSend, key, Rate::new(count, Duration::from_secs(60)))
}

fn slot(key: &str) -> u16 {
    // Keys are `<prefix>rl:{<limit key>}`: the hash tag is the limit key.
    let mut crc: u16 = 0;
    for b in key.bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// Rules in different slots cannot share one script: refused requests must give back what they
/// took in the other slot, and concurrency must never let more through than the tightest limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS"]
async fn multi_slot_limits_never_over_admit_and_give_back() {
    let store = store().await;
    let (wide, narrow) = ("cluster:wide", "cluster:narrow");
    assert_ne!(slot(wide), slot(narrow), "the test needs two slots");
    let store = Arc::new(store);
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.spawn(async move { store.acquire(&[rule(wide, 10), rule(narrow, 5)], T0).await.unwrap().is_ok() });
    }
    let mut allowed = 0;
    while let Some(r) = tasks.join_next().await {
        allowed += usize::from(r.unwrap());
    }
    assert!((1..=5).contains(&allowed), "allowed {allowed}");
    // Every refused request gave back its unit of the wide limit.
    let mut left = 0;
    while store.acquire(&[rule(wide, 10)], T0).await.unwrap().is_ok() {
        left += 1;
    }
    assert_eq!(left, 10 - allowed);
}
