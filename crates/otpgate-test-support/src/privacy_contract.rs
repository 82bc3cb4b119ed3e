//! The retention / export / erasure contract for hot stores: `purge`, `export_phone` and
//! `delete_phone` (SQLite, Postgres: all of it). Redis keys expire on their own, so Redis keeps
//! `purge` a no-op and runs only the export/erasure checks that hold for a store that keeps no
//! ended verification once a newer one replaces it (`privacy_contract_tests!(…; check, …)`).
//! `privacy_contract_tests!` writes one `#[tokio::test]` per check, like `store_contract_tests!`.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::privacy::{phone_limit_keys, phone_resend_key};
use otpgate_core::store::{NewCode, StoredValue};
use otpgate_core::{
    Channel, CheckOutcome, Code, CodeHasher, IssueOutcome, PhoneNumber, Policy, Timestamp, VerificationId,
};

use crate::store_contract::{Backend, phone};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const MIN: Duration = Duration::from_secs(60);

fn hasher() -> CodeHasher {
    CodeHasher::new(&[7u8; 32]).expect("32-byte key")
}

fn new_code(p: &PhoneNumber, code: &str) -> NewCode {
    NewCode {
        id: VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(hasher().digest(p, &Code::parse(code, 6).expect("6 digits"))),
    }
}

async fn issue(store: &dyn Backend, p: &PhoneNumber, now: Timestamp) -> VerificationId {
    match store.issue(new_code(p, "123456"), now, &Policy::default()).await.expect("issue") {
        IssueOutcome::Created(v) => v.id,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn at(minutes: u64) -> Timestamp {
    T0.plus(MIN * minutes as u32)
}

/// Ended rows (approved, cancelled, dead) and pending rows past their expiry go once the cut-off
/// passes them; live rows and rows that ended after the cut-off stay.
pub async fn purge_deletes_only_what_ended_before_the_cutoff(store: Arc<dyn Backend>) {
    let (approved, expired, cancelled, live, recent) =
        (phone(6001), phone(6002), phone(6003), phone(6004), phone(6005));
    issue(&*store, &approved, at(0)).await;
    let digest = hasher().digest(&approved, &Code::parse("123456", 6).unwrap());
    assert!(matches!(store.check(&approved, &digest, at(1)).await.unwrap(), CheckOutcome::Approved(_)));
    issue(&*store, &expired, at(0)).await; // expires at 2 min, never ended
    let id = issue(&*store, &cancelled, at(0)).await;
    store.cancel(&id, at(1)).await.unwrap();
    issue(&*store, &live, at(9)).await; // expires at 11 min
    let id = issue(&*store, &recent, at(9)).await;
    store.cancel(&id, at(9)).await.unwrap(); // ended after the cut-off

    let counts = store.purge(at(5), at(10)).await.expect("purge");
    assert_eq!(counts.verifications, 3, "{counts:?}");
    for (p, left) in [(&approved, 0), (&expired, 0), (&cancelled, 0), (&live, 1), (&recent, 1)] {
        let records = store.export_phone(p, &[]).await.expect("export");
        assert_eq!(records.verifications.len(), left, "{}", p.masked());
    }
    // Idempotent: nothing left to delete.
    assert_eq!(store.purge(at(5), at(10)).await.unwrap().verifications, 0);
}

/// A limit row goes only once it is spent (its bucket refilled), so purging never grants quota;
/// a shared value (a phone's resend cooldown) once it expired, and never one without an expiry.
pub async fn purge_deletes_only_spent_limits(store: Arc<dyn Backend>) {
    let rule = [LimitRule::new(LimitScope::PhoneSend, "contract:purge", Rate::new(3, Duration::from_secs(60)))];
    for _ in 0..3 {
        store.acquire(&rule, T0).await.unwrap().expect("allowed");
    }
    let until = |secs| Some(T0.plus(Duration::from_secs(secs)));
    let value = |expires_at| StoredValue { value: "v".into(), expires_at };
    assert!(store.swap_value("contract:purge-value", None, Some(&value(until(90))), T0).await.unwrap());
    assert!(store.swap_value("contract:purge-kept", None, Some(&value(None)), T0).await.unwrap());
    // All three taken at T0: the bucket refills one every 20 s, fully at T0 + 60 s.
    let counts = store.purge(T0, T0.plus(Duration::from_secs(30))).await.unwrap();
    assert_eq!(counts.limits, 0, "not spent yet");
    store.acquire(&rule, T0.plus(Duration::from_secs(30))).await.unwrap().expect("allowed");
    assert!(store.acquire(&rule, T0.plus(Duration::from_secs(30))).await.unwrap().is_err(), "the state was kept");
    let counts = store.purge(T0, T0.plus(Duration::from_secs(120))).await.unwrap();
    assert_eq!(counts.limits, 2, "the spent row and the expired value");
    assert_eq!(store.purge(T0, T0.plus(Duration::from_secs(120))).await.unwrap().limits, 0);
    let far = T0.plus(Duration::from_secs(365 * 86_400));
    assert_eq!(store.load_value("contract:purge-kept", far).await.unwrap().as_deref(), Some("v"));
}

/// Tripwire counter buckets go once they are past the time they had to be kept (their window),
/// never before: a store without TTLs must not keep them forever.
pub async fn purge_deletes_expired_counters(store: Arc<dyn Backend>) {
    let hour = Duration::from_secs(3600);
    for (key, bucket) in [("contract:ctr:old", 0), ("contract:ctr:old", 1), ("contract:ctr:new", 2)] {
        let keep_until = if key.ends_with("old") { T0.plus(hour) } else { T0.plus(hour * 3) };
        store.incr_counter(key, T0.0 + bucket, keep_until).await.expect("incr");
    }
    store.purge(T0, T0.plus(hour / 2)).await.expect("purge");
    assert_eq!(store.sum_counter("contract:ctr:old", 0).await.unwrap(), 2, "kept until its time");
    store.purge(T0, T0.plus(hour * 2)).await.expect("purge");
    assert_eq!(store.sum_counter("contract:ctr:old", 0).await.unwrap(), 0, "swept once past it");
    assert_eq!(store.sum_counter("contract:ctr:new", 0).await.unwrap(), 1, "a younger counter stays");
}

/// More rows than one batch, and several sweepers at once: every row is deleted exactly once.
pub async fn concurrent_purges_delete_every_row_once(store: Arc<dyn Backend>) {
    const N: u32 = 1_100;
    for n in 0..N {
        let p = phone(n);
        let id = issue(&*store, &p, T0).await;
        store.cancel(&id, T0).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let store = store.clone();
        tasks.spawn(async move { store.purge(at(60), at(60)).await.expect("purge") });
    }
    let mut total = 0;
    while let Some(counts) = tasks.join_next().await {
        total += counts.unwrap().verifications;
    }
    assert_eq!(total, u64::from(N));
}

/// Takes a unit from every per-phone limit of `p` and records its resend cooldown (a shared value
/// under its own key), as a send does.
async fn hold_every_limit(store: &dyn Backend, p: &PhoneNumber, keys: &[String]) {
    let resend = phone_resend_key(&hasher(), p);
    let rules: Vec<LimitRule> = keys
        .iter()
        .filter(|k| **k != resend)
        .map(|k| LimitRule::new(LimitScope::PhoneSend, k.clone(), Rate::new(3, MIN)))
        .collect();
    assert_eq!(rules.len(), keys.len() - 1, "the resend key is one of the phone's keys");
    store.acquire(&rules, T0).await.unwrap().expect("allowed");
    let cooldown = StoredValue { value: "1".into(), expires_at: Some(at(90)) };
    assert!(store.swap_value(&resend, None, Some(&cooldown), T0).await.unwrap());
}

/// Export names what is held (no digests exist in the records); erasure removes it, limits too.
pub async fn export_then_delete_by_phone(store: Arc<dyn Backend>) {
    let p = phone(7001);
    let other = phone(7002);
    let keys = phone_limit_keys(&hasher(), &p);
    hold_every_limit(&*store, &p, &keys).await;
    let id = issue(&*store, &p, T0).await;
    store.cancel(&id, at(1)).await.unwrap();
    issue(&*store, &p, at(2)).await;
    issue(&*store, &other, at(2)).await;

    let records = store.export_phone(&p, &keys).await.expect("export");
    assert_eq!(records.verifications.len(), 2);
    assert_eq!(records.verifications[0].id, id.as_str());
    assert_eq!(records.verifications[0].status, "canceled");
    assert_eq!(records.verifications[0].ended_at, Some(at(1)));
    assert_eq!(records.verifications[1].status, "pending");
    assert_eq!(records.limits.len(), keys.len());

    let deleted = store.delete_phone(&p, &keys).await.expect("delete");
    assert_eq!((deleted.verifications, deleted.limits), (2, keys.len() as u64));
    let records = store.export_phone(&p, &keys).await.unwrap();
    assert!(records.verifications.is_empty() && records.limits.is_empty(), "{records:?}");
    assert_eq!(store.export_phone(&other, &[]).await.unwrap().verifications.len(), 1, "other numbers stay");
}

/// Export and erasure of what every hot store keeps: a verification killed by wrong codes and
/// its successor, and the phone's limits. Erasure is idempotent and touches no other number.
pub async fn export_then_delete_dead_and_current(store: Arc<dyn Backend>) {
    let p = phone(7101);
    let other = phone(7102);
    let keys = phone_limit_keys(&hasher(), &p);
    hold_every_limit(&*store, &p, &keys).await;
    let dead = issue(&*store, &p, T0).await;
    let wrong = hasher().digest(&p, &Code::parse("000000", 6).unwrap());
    let max = Policy::default().max_attempts;
    for _ in 0..max {
        store.check(&p, &wrong, at(1)).await.expect("check");
    }
    // Before the dead one expires (at 2 min): a store that keeps it while dead must show it.
    let current = issue(&*store, &p, at(1)).await;
    issue(&*store, &other, at(1)).await;

    let records = store.export_phone(&p, &keys).await.expect("export");
    assert_eq!(records.verifications.len(), 2, "{records:?}");
    let (first, second) = (&records.verifications[0], &records.verifications[1]);
    assert_eq!((first.id.as_str(), first.status.as_str()), (dead.as_str(), "dead"));
    assert_eq!((first.attempts, first.ended_at), (max, Some(at(1))));
    assert_eq!((second.id.as_str(), second.status.as_str(), second.ended_at), (current.as_str(), "pending", None));
    assert_eq!((second.created_at, second.sends), (at(1), 1));
    let limit_keys: Vec<&str> = records.limits.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(limit_keys, keys.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(records.limits.iter().all(|l| l.refilled_at > T0), "{records:?}");

    let deleted = store.delete_phone(&p, &keys).await.expect("delete");
    assert_eq!((deleted.verifications, deleted.limits), (2, keys.len() as u64));
    let records = store.export_phone(&p, &keys).await.unwrap();
    assert!(records.verifications.is_empty() && records.limits.is_empty(), "{records:?}");
    let again = store.delete_phone(&p, &keys).await.unwrap();
    assert_eq!((again.verifications, again.limits), (0, 0), "erasure is idempotent");
    let digest = hasher().digest(&p, &Code::parse("123456", 6).unwrap());
    assert!(matches!(store.check(&p, &digest, at(3)).await.unwrap(), CheckOutcome::NotFound));
    assert_eq!(store.export_phone(&other, &[]).await.unwrap().verifications.len(), 1, "other numbers stay");
}

/// Writes one `#[tokio::test]` per check of the retention / export / erasure contract.
///
/// `$make` is an async expression answering a fresh, empty store. A backend that needs an outside
/// service passes `ignore = "needs …: set OTPGATE_TEST_…"` first: its tests are then reported as
/// ignored by a plain `cargo test` and run with `--include-ignored` (where `$make` gets the
/// address from [`service`](crate::service), which fails the test when it is not set). A list
/// of check names after `;` runs only those.
#[macro_export]
macro_rules! privacy_contract_tests {
    (@all $attrs:tt $make:expr) => {
        $crate::privacy_contract_tests!(@each $attrs $make;
            purge_deletes_only_what_ended_before_the_cutoff,
            purge_deletes_only_spent_limits,
            purge_deletes_expired_counters,
            concurrent_purges_delete_every_row_once,
            export_then_delete_by_phone,
            export_then_delete_dead_and_current,
        );
    };
    (@each $attrs:tt $make:expr; $($name:ident),* $(,)?) => {
        $(
            $crate::__contract_test!($attrs, $make, dyn $crate::store_contract::Backend, $crate::privacy_contract::$name, $name);
        )*
    };
    (ignore = $reason:literal, $make:expr; $($name:ident),+ $(,)?) => {
        $crate::privacy_contract_tests!(@each [#[ignore = $reason]] $make; $($name),+);
    };
    (ignore = $reason:literal, $make:expr) => {
        $crate::privacy_contract_tests!(@all [#[ignore = $reason]] $make);
    };
    ($make:expr; $($name:ident),+ $(,)?) => {
        $crate::privacy_contract_tests!(@each [] $make; $($name),+);
    };
    ($make:expr) => {
        $crate::privacy_contract_tests!(@all [] $make);
    };
}
