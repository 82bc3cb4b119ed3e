//! The storage contract against one Redis server (`OTPGATE_TEST_REDIS_URL`, e.g.
//! `redis://127.0.0.1:6379`), the `Idempotency-Key` contract and the export/erasure part of the
//! privacy contract, plus what only Redis has to prove: every key has a TTL, codes are stored as
//! digests, limits on Redis's own clock. Each test uses its own key prefix, so tests
//! run in parallel on one server. Ignored unless asked for (`--include-ignored`); asked for
//! without the variable, they fail.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::store::NewCode;
use otpgate_core::verification::random_base62;
use otpgate_core::{
    Channel, CheckOutcome, Clock, Code, CodeHasher, Counters, IssueOutcome, Limits, Policy, Retention, SystemClock,
    VerificationId, Verifications,
};
use otpgate_store::redis::{KEY_GRACE, LimitClock, RedisOptions, RedisStore};
use otpgate_test_support::store_contract::{Backend, phone};

fn url() -> String {
    otpgate_test_support::service("OTPGATE_TEST_REDIS_URL")
}

async fn store(limit_clock: LimitClock) -> RedisStore {
    let options =
        RedisOptions { key_prefix: format!("otpgate-test:{}:", random_base62(12)), limit_clock, ..Default::default() };
    RedisStore::connect(&url(), options).await.expect("connect to OTPGATE_TEST_REDIS_URL")
}

async fn fresh() -> Arc<dyn Backend> {
    Arc::new(store(LimitClock::Caller).await)
}

otpgate_test_support::store_contract_tests!(ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL", fresh());

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn every_key_has_a_ttl_and_codes_are_digests() {
    let store = store(LimitClock::Caller).await;
    let now = SystemClock.now();
    let policy = Policy::default();
    let hasher = CodeHasher::new(&[3u8; 32]).unwrap();
    for n in 0..3 {
        let p = phone(500 + n);
        let code = Code::parse("123456", 6).unwrap();
        let new = NewCode {
            id: VerificationId::generate(),
            phone: p.clone(),
            channel: Channel::Sms,
            code_digest: Some(hasher.digest(&p, &code)),
        };
        let IssueOutcome::Created(v) = store.issue(new, now, &policy).await.unwrap() else { panic!() };
        store.set_provider_ref(&v.id, "VE123").await.unwrap();
        // A dead verification and its successor (the dead one moves aside, keeping its TTL).
        for _ in 0..policy.max_attempts {
            store.check(&p, &hasher.digest(&p, &Code::parse("000000", 6).unwrap()), now).await.unwrap();
        }
        let new = NewCode {
            id: VerificationId::generate(),
            phone: p.clone(),
            channel: Channel::Sms,
            code_digest: Some(hasher.digest(&p, &code)),
        };
        assert!(matches!(store.issue(new, now, &policy).await.unwrap(), IssueOutcome::Created(_)));
    }
    let rate = Rate::new(3, Duration::from_secs(60));
    store
        .acquire(&[LimitRule::new(LimitScope::PhoneSend, "send:phone:+14155550500", rate)], now)
        .await
        .unwrap()
        .unwrap();

    let keys = store.ttls().await.unwrap();
    // Per phone one value (the current verification and the dead one before it); the six ids in
    // the id index's buckets (shared by ids, so at most six); one limit key.
    let count = |kind: &str| keys.iter().filter(|(k, _)| k.contains(kind)).count();
    assert_eq!(count(":v2:{"), 3, "{keys:?}");
    assert!((1..=6).contains(&count(":ix:{")), "{keys:?}");
    assert_eq!(count(":rl:{"), 1, "{keys:?}");
    assert_eq!(keys.len(), 3 + count(":ix:{") + 1, "{keys:?}");
    let longest = (policy.code_ttl + KEY_GRACE).as_millis() as i64;
    for (key, ttl) in &keys {
        assert!(*ttl > 0 && *ttl <= longest, "{key} has TTL {ttl} ms");
        if key.contains("rl:") {
            assert!(*ttl <= 20_000, "a limit key lives until its arrival time passes: {key} {ttl}");
        }
    }
    // Hashed at rest: the code is nowhere, its keyed digest is; the id index holds no number.
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for n in 0..3 {
        let p = phone(500 + n);
        let key = keys.iter().map(|(k, _)| k).find(|k| k.ends_with(&format!(":v2:{{{}}}", p.e164()))).unwrap();
        let value: Vec<u8> = redis::cmd("GET").arg(key).query_async(&mut conn).await.unwrap();
        assert!(!value.windows(6).any(|w| w == b"123456"), "{key} holds the code");
        let digest = hasher.digest(&p, &Code::parse("123456", 6).unwrap());
        assert!(value.windows(32).any(|w| w == digest.as_bytes().as_slice()), "{key} holds the digest");
    }
    for (key, _) in keys.iter().filter(|(k, _)| k.contains(":ix:{")) {
        let fields: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(key).query_async(&mut conn).await.unwrap();
        let all = fields.concat();
        assert!(!all.windows(7).any(|w| w == b"4155550"), "{key} holds a number in clear");
        assert!(!all.windows(3).any(|w| w == b"vf_"), "{key} holds a verification id");
    }
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn limits_run_on_the_redis_clock() {
    let store = store(LimitClock::Redis).await;
    let rule = [LimitRule::new(LimitScope::PhoneSend, "send:phone:x", Rate::new(3, Duration::from_secs(60)))];
    // The passed `now` is ignored: a time far in the past or future changes nothing.
    for now in [0, i64::MAX / 4, 1_800_000_000_000] {
        assert!(store.acquire(&rule, otpgate_core::Timestamp(now)).await.unwrap().is_ok());
    }
    let denied = store.acquire(&rule, otpgate_core::Timestamp(0)).await.unwrap().unwrap_err();
    assert!(
        denied.retry_after > Duration::from_secs(19) && denied.retry_after <= Duration::from_secs(20),
        "{denied:?}"
    );
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn expired_keys_are_gone_from_redis() {
    let store = store(LimitClock::Redis).await;
    // A limit of 10 per 200 ms: its key lives at most one interval after the take.
    let rule = [LimitRule::new(LimitScope::PhoneSend, "send:phone:ttl", Rate::new(10, Duration::from_millis(200)))];
    store.acquire(&rule, SystemClock.now()).await.unwrap().unwrap();
    assert_eq!(store.ttls().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(store.ttls().await.unwrap().is_empty(), "the spent limit key expired");
}

/// Redis sweeps nothing (`purge` is a no-op): tripwire counters must expire on their own.
#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn tripwire_counters_expire_on_their_own() {
    let store = store(LimitClock::Caller).await;
    let now = SystemClock.now();
    let hour = Duration::from_secs(3600);
    store.incr_counter("tripwire:send:US", now.0, now.plus(hour)).await.unwrap();
    let keys = store.ttls().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (key, ttl) = &keys[0];
    assert!(key.contains("ctr:"), "{key}");
    assert!(*ttl > 0 && *ttl <= hour.as_millis() as i64, "{key} has TTL {ttl} ms");
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn a_key_prefix_with_braces_is_refused() {
    let options = RedisOptions { key_prefix: "bad{".into(), ..Default::default() };
    assert!(RedisStore::connect(&url(), options).await.is_err());
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn erasing_a_phone_removes_its_verifications() {
    let store = store(LimitClock::Caller).await;
    let now = SystemClock.now();
    let p = phone(600);
    let hasher = CodeHasher::new(&[3u8; 32]).unwrap();
    let code = Code::parse("123456", 6).unwrap();
    let new = NewCode {
        id: VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(hasher.digest(&p, &code)),
    };
    store.issue(new, now, &Policy::default()).await.unwrap();
    store.forget_phone(p.e164()).await.unwrap();
    assert!(matches!(store.check(&p, &hasher.digest(&p, &code), now).await.unwrap(), CheckOutcome::NotFound));
    assert!(store.ttls().await.unwrap().is_empty());
}

mod idempotency {
    use otpgate_core::idempotency::IdempotencyStore;

    use super::*;

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(store(LimitClock::Caller).await)
    }

    otpgate_test_support::idempotency_contract_tests!(ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL", fresh());
}

mod privacy {
    use super::*;

    // Redis keeps `purge` a no-op (keys expire) and no ended verification once replaced.
    otpgate_test_support::privacy_contract_tests!(
        ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL",
        fresh();
        export_then_delete_dead_and_current
    );
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn idempotency_keys_live_one_lease_then_the_replay_ttl() {
    use otpgate_core::idempotency::{
        Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, REPLAY_TTL, Reservation, StoredResponse,
    };
    let store = store(LimitClock::Caller).await;
    let key = IdempotencyKey::new("test", b"ttl").unwrap();
    let (fp, token, now) = (Fingerprint::of(&[b"x"]), LeaseToken::random(), SystemClock.now());
    let lease = Duration::from_secs(35);
    assert_eq!(store.reserve(&key, &fp, &token, now, lease, REPLAY_TTL).await.unwrap(), Reservation::Reserved);
    let keys = store.ttls().await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].0.contains(":idem:{") && keys[0].0.ends_with('}'), "one hash-tagged key: {keys:?}");
    assert!(keys[0].1 > 30_000 && keys[0].1 <= 35_000, "a reservation lives one lease: {keys:?}");
    let response = StoredResponse { status: 201, headers: vec![], body: b"{}".to_vec() };
    store.complete(&key, &token, &response, now, REPLAY_TTL).await.unwrap();
    let keys = store.ttls().await.unwrap();
    let day = REPLAY_TTL.as_millis() as i64;
    assert!(keys[0].1 > day - 10_000 && keys[0].1 <= day, "an answer lives 24 h: {keys:?}");
    // Neither the client's key nor the request is stored in clear.
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let fields: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(&keys[0].0).query_async(&mut conn).await.unwrap();
    assert!(!fields.concat().windows(3).any(|w| w == b"ttl") && !keys[0].0.contains("ttl"));
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn purge_is_a_noop_because_keys_expire() {
    let store = store(LimitClock::Caller).await;
    let now = SystemClock.now();
    let p = phone(700);
    let new = NewCode { id: VerificationId::generate(), phone: p.clone(), channel: Channel::Sms, code_digest: None };
    let IssueOutcome::Created(v) = store.issue(new, now, &Policy::default()).await.unwrap() else { panic!() };
    store.cancel(&v.id, now).await.unwrap();
    let far = otpgate_core::Timestamp(now.0 + 86_400_000);
    assert_eq!(store.purge(far, far).await.unwrap(), otpgate_core::privacy::PurgeCounts::default());
    // Nothing was deleted, and everything left expires by itself.
    let keys = store.ttls().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|(_, ttl)| *ttl > 0), "{keys:?}");
}
