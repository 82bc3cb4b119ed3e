//! What only the Redis layout has to prove: the id index's and the resend values' buckets drop
//! expired entries and live as long as their longest entry, and a phone's resend key is the one
//! kind of shared value kept in a bucket. The tests that need a server are ignored unless asked
//! for (`OTPGATE_TEST_REDIS_URL`).

use std::time::Duration;

use otpgate_core::store::{NewCode, StoredValue};
use otpgate_core::verification::random_base62;
use otpgate_core::{
    Channel, CodeHasher, IssueOutcome, PhoneNumber, Policy, SharedValues, Timestamp, VerificationId, Verifications,
};

use super::{KEY_GRACE, LimitClock, RedisOptions, RedisStore, ValuePlace, id_bucket, resend_bucket};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{n:04}"), None).unwrap()
}

#[test]
fn a_phones_resend_key_goes_to_a_bucket_and_nothing_else_does() {
    let hasher = CodeHasher::new(&[7u8; 32]).unwrap();
    let key = otpgate_core::privacy::phone_resend_key(&hasher, &phone(1));
    let (bucket, field) = resend_bucket(&key).expect("a phone's resend key is bucketed");
    let top = u16::from_str_radix(&key[key.len() - 32..key.len() - 28], 16).unwrap();
    assert_eq!(bucket, format!("{:04x}", top & 0x3fff), "the HMAC's first 14 bits");
    assert_eq!(field.len(), 14, "the rest of the HMAC, as bytes");
    for other in [
        "hmac-key-fingerprint",
        "contract:resend-40",
        "send:phone:resend:0123",
        "send:phone:resend:0123456789ABCDEF0123456789abcdef",
        &otpgate_core::privacy::phone_send_key(&hasher, &phone(1)),
    ] {
        assert!(resend_bucket(other).is_none(), "{other}");
    }
}

#[test]
fn ids_are_held_in_15_bytes_and_read_back() {
    use super::{id_arg, id_from};
    for id in ["vf_00000000000000000000", "vf_zzzzzzzzzzzzzzzzzzzz", "vf_0aZ9zA0000000000000z"] {
        let id = VerificationId::parse(id).unwrap();
        assert_eq!(id_from(&id_arg(&id)), Some(id.clone()));
    }
    for _ in 0..1000 {
        let id = VerificationId::generate();
        assert_eq!(id_from(&id_arg(&id)), Some(id));
    }
    assert_eq!(id_from(&[0xff; 15]), None, "more than 62^20");
    assert_eq!(id_from(&[0; 14]), None);
}

#[test]
fn id_buckets_spread_over_16384() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100_000 {
        let bucket = id_bucket(&VerificationId::generate());
        assert!(u16::from_str_radix(&bucket, 16).unwrap() < 16_384, "{bucket}");
        seen.insert(bucket);
    }
    // About 6 ids a bucket: e^-6.1 of the buckets (some 36) get none.
    assert!(seen.len() > 16_250, "{}", seen.len());
}

async fn store() -> RedisStore {
    let url = otpgate_test_support::service("OTPGATE_TEST_REDIS_URL");
    let options = RedisOptions {
        key_prefix: format!("otpgate-test:{}:", random_base62(12)),
        limit_clock: LimitClock::Caller,
        ..Default::default()
    };
    RedisStore::connect(&url, options).await.expect("connect to OTPGATE_TEST_REDIS_URL")
}

async fn raw() -> ::redis::aio::MultiplexedConnection {
    let url = otpgate_test_support::service("OTPGATE_TEST_REDIS_URL");
    ::redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Two ids in one id index bucket (about 16,384 tries).
fn two_ids_in_one_bucket() -> (VerificationId, VerificationId) {
    let a = VerificationId::generate();
    loop {
        let b = VerificationId::generate();
        if id_bucket(&b) == id_bucket(&a) {
            return (a, b);
        }
    }
}

fn new_code(id: &VerificationId, p: &PhoneNumber) -> NewCode {
    NewCode { id: id.clone(), phone: p.clone(), channel: Channel::Sms, code_digest: None }
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn expired_id_entries_are_swept_and_a_bucket_lives_as_long_as_its_longest_entry() {
    let store = store().await;
    let mut conn = raw().await;
    let (a, b) = two_ids_in_one_bucket();
    let bucket = store.id_entry(&a).bucket;
    let long = Policy { code_ttl: Duration::from_secs(3600), ..Policy::default() };
    let short = Policy { code_ttl: Duration::from_secs(60), ..Policy::default() };

    // A lives an hour; B, issued later for a minute, must not shorten the bucket's life.
    let IssueOutcome::Created(va) = store.issue(new_code(&a, &phone(1)), T0, &long).await.unwrap() else { panic!() };
    store.issue(new_code(&b, &phone(2)), T0, &short).await.unwrap();
    let ttl: i64 = ::redis::cmd("PTTL").arg(&bucket).query_async(&mut conn).await.unwrap();
    let a_lives = T0.until(va.expires_at.plus(KEY_GRACE)).as_millis() as i64;
    assert!(ttl > a_lives - 5_000 && ttl <= a_lives, "the bucket covers its longest entry: {ttl} vs {a_lives}");
    let entries: i64 = ::redis::cmd("HLEN").arg(&bucket).query_async(&mut conn).await.unwrap();
    assert_eq!(entries, 2);

    // Past A's expiry and grace (by the caller's clock), a write to the bucket drops A's entry.
    let later = va.expires_at.plus(KEY_GRACE);
    store.issue(new_code(&b, &phone(2)), later, &short).await.unwrap();
    let entries: i64 = ::redis::cmd("HLEN").arg(&bucket).query_async(&mut conn).await.unwrap();
    assert_eq!(entries, 1, "A's expired entry was swept");
    assert_eq!(store.id_phone(&a).await.unwrap(), None);
    assert_eq!(store.id_phone(&b).await.unwrap().as_deref(), Some(phone(2).e164()));
    assert!(store.cancel(&a, later).await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn an_id_entry_whose_verification_is_gone_finds_nothing() {
    let store = store().await;
    let mut conn = raw().await;
    let id = VerificationId::generate();
    store.issue(new_code(&id, &phone(3)), T0, &Policy::default()).await.unwrap();
    let _: i64 = ::redis::cmd("DEL").arg(store.phone_key(phone(3).e164())).query_async(&mut conn).await.unwrap();
    assert_eq!(store.id_phone(&id).await.unwrap().as_deref(), Some(phone(3).e164()), "the entry is still there");
    assert!(store.cancel(&id, T0).await.unwrap().is_none(), "but finds no verification");
    store.set_provider_ref(&id, "VE1").await.unwrap();
    let exists: i64 =
        ::redis::cmd("EXISTS").arg(store.phone_key(phone(3).e164())).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "and writes none");
}

#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn resend_values_live_in_buckets_with_their_expiry() {
    let store = store().await;
    let mut conn = raw().await;
    let hasher = CodeHasher::new(&[9u8; 32]).unwrap();
    let key = otpgate_core::privacy::phone_resend_key(&hasher, &phone(4));
    let ValuePlace::Bucket { key: bucket, .. } = store.value_place(&key) else { panic!("not bucketed") };
    let until = T0.plus(Duration::from_secs(7200));
    let value = StoredValue { value: "v1:1:2:3".into(), expires_at: Some(until) };
    assert!(store.swap_value(&key, None, Some(&value), T0).await.unwrap());
    assert_eq!(store.load_value(&key, T0).await.unwrap().as_deref(), Some("v1:1:2:3"));
    assert_eq!(store.load_value(&key, until).await.unwrap(), None, "expired by the caller's clock");
    let ttl: i64 = ::redis::cmd("PTTL").arg(&bucket).query_async(&mut conn).await.unwrap();
    assert!(ttl > 7_195_000 && ttl <= 7_200_000, "{ttl}");
    // What the resend rules write (forgotten an hour after the wait ends, and expiring then) is
    // kept as its send count alone, and reads back the same.
    let forget = until.plus(Duration::from_secs(60));
    let ruled = format!("v1:3:{}:{}", forget.0 - 3_600_000, forget.0);
    let ruled_value = StoredValue { value: ruled.clone(), expires_at: Some(forget) };
    assert!(store.swap_value(&key, Some("v1:1:2:3"), Some(&ruled_value), T0).await.unwrap());
    assert_eq!(store.load_value(&key, T0).await.unwrap(), Some(ruled.clone()));
    let ValuePlace::Bucket { field, .. } = store.value_place(&key) else { panic!() };
    let entry: Vec<u8> = ::redis::cmd("HGET").arg(&bucket).arg(&field).query_async(&mut conn).await.unwrap();
    assert_eq!(entry.len(), 6 + 5, "expiry, tag, send count");
    assert!(store.swap_value(&key, Some(&ruled), Some(&value), T0).await.unwrap(), "compared as read");
    // A bucket's entries must expire.
    let forever = StoredValue { value: "x".into(), expires_at: None };
    assert!(store.swap_value(&key, Some("v1:1:2:3"), Some(&forever), T0).await.is_err());
    // The next write past its expiry sweeps it, whoever writes to the bucket.
    let mut other = key.clone();
    other.replace_range(key.len() - 1.., if key.ends_with('0') { "1" } else { "0" });
    assert!(
        store.swap_value(&other, None, Some(&value_until(until.plus(Duration::from_secs(60)))), until).await.unwrap()
    );
    let entries: i64 = ::redis::cmd("HLEN").arg(&bucket).query_async(&mut conn).await.unwrap();
    assert_eq!(entries, 1, "the expired entry was swept");
    assert!(store.swap_value(&other, Some("v"), None, until).await.unwrap(), "delete what was read");
    let exists: i64 = ::redis::cmd("EXISTS").arg(&bucket).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0, "an empty bucket is gone");
}

fn value_until(t: Timestamp) -> StoredValue {
    StoredValue { value: "v".into(), expires_at: Some(t) }
}

/// Keys an earlier deployment wrote (the verification hash `v:`, the `vid:` string, the resend
/// hash `sv:`) are never read as the new layout's: a send, a check and a cancel go on as if they
/// were not there, and they expire on their own.
#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn keys_of_the_old_layout_break_nothing() {
    use otpgate_core::resend::ResendClaim;
    let store = store().await;
    let mut conn = raw().await;
    let (p, prefix) = (phone(5), store.prefix.clone());
    let hasher = CodeHasher::new(&[9u8; 32]).unwrap();
    let resend_key = otpgate_core::privacy::phone_resend_key(&hasher, &p);
    let old_id = VerificationId::generate();
    let e164 = p.e164();
    let _: () = ::redis::pipe()
        .cmd("HSET")
        .arg(format!("{prefix}v:{{{e164}}}"))
        .arg("id")
        .arg(old_id.as_str())
        .arg("status")
        .arg("pending")
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{prefix}v:{{{e164}}}"))
        .arg(60_000)
        .ignore()
        .cmd("SET")
        .arg(format!("{prefix}vid:{{{}}}", old_id.as_str()))
        .arg(e164)
        .arg("PX")
        .arg(60_000)
        .ignore()
        .cmd("HSET")
        .arg(format!("{prefix}sv:{{{resend_key}}}"))
        .arg("v")
        .arg("v1:9:9999999999999:9999999999999")
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{prefix}sv:{{{resend_key}}}"))
        .arg(60_000)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let claim = ResendClaim { key: resend_key.clone(), first: Duration::from_secs(30) };
    let new = NewCode {
        id: VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(hasher.digest(&p, &otpgate_core::Code::parse("123456", 6).unwrap())),
    };
    let issued = store.issue_with_resend(&claim, new, T0, &Policy::default()).await.unwrap().expect("not held back");
    let IssueOutcome::Created(v) = &issued.outcome else { panic!("{:?}", issued.outcome) };
    assert_eq!(issued.slot.wait, Duration::from_secs(30), "the old resend value is not read");
    let digest = hasher.digest(&p, &otpgate_core::Code::parse("123456", 6).unwrap());
    assert!(matches!(store.check(&p, &digest, T0).await.unwrap(), otpgate_core::CheckOutcome::Approved(_)));
    assert!(store.cancel(&old_id, T0).await.unwrap().is_none(), "the old id index is not read");
    assert_eq!(store.id_phone(&v.id).await.unwrap().as_deref(), Some(e164));
    assert!(store.ttls().await.unwrap().iter().all(|(_, ttl)| *ttl > 0), "everything still expires");
}

/// The dead verification before a new one is kept in the same value: a failed send after a
/// lockout is reverted to the lockout, which then lives only as long as its own key would have.
#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn reverting_a_send_after_a_lockout_keeps_the_lockout_for_its_own_life() {
    use otpgate_core::{CheckOutcome, Code};
    let store = store().await;
    let mut conn = raw().await;
    let p = phone(6);
    let hasher = CodeHasher::new(&[9u8; 32]).unwrap();
    let digest = |code: &str| hasher.digest(&p, &Code::parse(code, 6).unwrap());
    let short = Policy { code_ttl: Duration::from_secs(60), ..Policy::default() };
    let long = Policy { code_ttl: Duration::from_secs(3600), ..Policy::default() };
    let a = NewCode { code_digest: Some(digest("111111")), ..new_code(&VerificationId::generate(), &p) };
    store.issue(a, T0, &short).await.unwrap();
    for _ in 0..short.max_attempts {
        store.check(&p, &digest("000000"), T0).await.unwrap();
    }
    assert!(matches!(store.check(&p, &digest("111111"), T0).await.unwrap(), CheckOutcome::Exhausted));
    let later = T0.plus(Duration::from_secs(10));
    let b = NewCode { code_digest: Some(digest("222222")), ..new_code(&VerificationId::generate(), &p) };
    let created = store.issue(b, later, &long).await.unwrap();
    assert_eq!(store.export_phone_impl(p.e164(), &[]).await.unwrap().verifications.len(), 2, "both are held");
    store.revert_issue(&created).await.unwrap();
    assert!(matches!(store.check(&p, &digest("222222"), later).await.unwrap(), CheckOutcome::Exhausted));
    let ttl: i64 = ::redis::cmd("PTTL").arg(store.phone_key(p.e164())).query_async(&mut conn).await.unwrap();
    // The dead one's own life: its expiry (T0 + 60 s) plus the grace, from `later`.
    assert!(ttl > 105_000 && ttl <= 110_000, "{ttl}");
    let held = store.export_phone_impl(p.e164(), &[]).await.unwrap().verifications;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].status, "dead");
}

/// A send in one script with a phone's real resend key (kept in a bucket, packed): the slot is
/// taken, refused while its wait runs, doubled on the next send, and given back to what it was.
#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn a_send_takes_and_gives_back_a_bucketed_resend_slot() {
    sends_take_and_give_back_a_bucketed_resend_slot(store().await).await;
}

/// The same on a Cluster, where the slot is taken in steps (`resend::issue_in_steps`).
#[tokio::test]
#[ignore = "needs a Redis Cluster: set OTPGATE_TEST_REDIS_CLUSTER_URLS"]
async fn on_a_cluster_a_send_takes_and_gives_back_a_bucketed_resend_slot() {
    let urls = otpgate_test_support::service("OTPGATE_TEST_REDIS_CLUSTER_URLS");
    let nodes: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
    let options = RedisOptions {
        key_prefix: format!("otpgate-test:{}:", random_base62(12)),
        limit_clock: LimitClock::Caller,
        ..Default::default()
    };
    let store = RedisStore::connect_cluster(&nodes, options).await.expect("connect to the cluster");
    sends_take_and_give_back_a_bucketed_resend_slot(store).await;
}

async fn sends_take_and_give_back_a_bucketed_resend_slot(store: RedisStore) {
    use otpgate_core::resend::{ResendClaim, give_back};
    let p = phone(7);
    let hasher = CodeHasher::new(&[9u8; 32]).unwrap();
    let claim =
        ResendClaim { key: otpgate_core::privacy::phone_resend_key(&hasher, &p), first: Duration::from_secs(30) };
    let policy = Policy::default();
    let send = |now| store.issue_with_resend(&claim, new_code(&VerificationId::generate(), &p), now, &policy);
    let first = send(T0).await.unwrap().expect("the first send goes");
    assert_eq!(first.slot.taken(), claim.take(None, T0).unwrap().taken());
    assert_eq!(store.load_value(&claim.key, T0).await.unwrap().as_deref(), Some(first.slot.taken().value.as_str()));
    let early = T0.plus(Duration::from_secs(10));
    assert_eq!(send(early).await.unwrap().unwrap_err(), Duration::from_secs(20));
    let later = T0.plus(Duration::from_secs(30));
    let second = send(later).await.unwrap().expect("the wait is over");
    let IssueOutcome::Resent { verification: v, .. } = &second.outcome else { panic!("{:?}", second.outcome) };
    assert_eq!(second.slot.wait, Duration::from_secs(60), "the wait doubles");
    // The resend found the id's entry where the store put it (the script computes its place
    // itself) and extended it to the new expiry: one entry, not two.
    let entry = store.id_entry(&v.id);
    let all: Vec<Vec<u8>> = store.command(::redis::cmd("HGETALL").arg(&entry.bucket)).await.unwrap();
    assert_eq!(all.len(), 2, "one entry");
    assert_eq!(all[0], entry.field);
    assert_eq!(super::bucket_entry(&all[1]).unwrap().0, v.expires_at.plus(KEY_GRACE).0);
    assert_eq!(store.load_value(&claim.key, later).await.unwrap().as_deref(), Some(second.slot.taken().value.as_str()));
    give_back(&store, &second.slot, later).await;
    assert_eq!(store.load_value(&claim.key, later).await.unwrap().as_deref(), Some(first.slot.taken().value.as_str()));
}

/// A resend whose id entry is gone (Redis lost it between the issue and the index write) writes
/// it again, hiding the phone as the store does: the script's pad is the store's.
#[tokio::test]
#[ignore = "needs Redis: set OTPGATE_TEST_REDIS_URL"]
async fn a_resend_writes_a_lost_id_entry_again_as_the_store_would() {
    use otpgate_core::resend::ResendClaim;
    let store = store().await;
    let p = phone(8);
    let claim = ResendClaim { key: "test:resend-8".into(), first: Duration::from_secs(30) };
    let policy = Policy::default();
    let first = store.issue_with_resend(&claim, new_code(&VerificationId::generate(), &p), T0, &policy).await;
    let IssueOutcome::Created(v) = first.unwrap().unwrap().outcome else { panic!() };
    store.id_delete(&v.id).await.unwrap();
    assert_eq!(store.id_phone(&v.id).await.unwrap(), None);
    let later = T0.plus(Duration::from_secs(30));
    let second = store.issue_with_resend(&claim, new_code(&VerificationId::generate(), &p), later, &policy).await;
    assert!(matches!(second.unwrap().unwrap().outcome, IssueOutcome::Resent { .. }));
    assert_eq!(store.id_phone(&v.id).await.unwrap().as_deref(), Some(p.e164()));
}
