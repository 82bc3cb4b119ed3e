//! The `Idempotency-Key` contract: what every `IdempotencyStore` must do (SQLite, Redis, Redis
//! Cluster, Postgres). Each function takes a fresh, empty store; `idempotency_contract_tests!`
//! writes one `#[tokio::test]` per check, like `store_contract_tests!`. Time is passed explicitly.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::Timestamp;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse,
};
use tokio::task::JoinSet;

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(24 * 3600);
const T0: Timestamp = Timestamp(1_800_000_000_000);

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::new("contract", name.as_bytes()).expect("valid key")
}

/// Reserve, in flight, mismatch, complete, replay; the entry is forgotten after its TTL.
pub async fn reserve_complete_replay_expire(store: Arc<dyn IdempotencyStore>) {
    let key = key("k1");
    let (fp, other) = (Fingerprint::of(&[b"a"]), Fingerprint::of(&[b"b"]));
    let (t1, t2) = (LeaseToken::random(), LeaseToken::random());
    let now = T0;

    assert_eq!(store.reserve(&key, &fp, &t1, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
    assert_eq!(
        store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(),
        Reservation::InFlight { retry_after: LEASE }
    );
    assert_eq!(store.reserve(&key, &other, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Mismatch);
    // A stranger's token neither completes nor releases.
    store.release(&key, &t2).await.unwrap();
    store.complete(&key, &t2, &response("stranger"), now, TTL).await.unwrap();
    store.complete(&key, &t1, &response("{}"), now, TTL).await.unwrap();
    assert_eq!(store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Completed(response("{}")));
    // A completed entry is not released, and still belongs to its request.
    store.release(&key, &t1).await.unwrap();
    assert_eq!(store.reserve(&key, &other, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Mismatch);
    let almost = now.plus(TTL - Duration::from_millis(1));
    assert_eq!(
        store.reserve(&key, &fp, &t2, almost, LEASE, TTL).await.unwrap(),
        Reservation::Completed(response("{}"))
    );
    let later = now.plus(TTL);
    assert_eq!(store.reserve(&key, &other, &t2, later, LEASE, TTL).await.unwrap(), Reservation::Reserved);
}

/// A released key is free at once; an abandoned one when its lease ends, and then the old holder
/// can neither complete nor release it.
pub async fn released_and_abandoned_keys_can_be_taken(store: Arc<dyn IdempotencyStore>) {
    let key = key("k2");
    let fp = Fingerprint::of(&[b"a"]);
    let (t1, t2, t3) = (LeaseToken::random(), LeaseToken::random(), LeaseToken::random());
    let now = T0;
    assert_eq!(store.reserve(&key, &fp, &t1, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
    store.release(&key, &t1).await.unwrap();
    assert_eq!(store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
    // The lease still holds one millisecond before its end.
    let before = now.plus(LEASE - Duration::from_millis(1));
    assert_eq!(
        store.reserve(&key, &fp, &t3, before, LEASE, TTL).await.unwrap(),
        Reservation::InFlight { retry_after: Duration::from_millis(1) }
    );
    // t2 never finishes; after its lease t3 takes over and t2 can no longer complete.
    let later = now.plus(LEASE);
    assert_eq!(store.reserve(&key, &fp, &t3, later, LEASE, TTL).await.unwrap(), Reservation::Reserved);
    store.complete(&key, &t2, &response("late"), later, TTL).await.unwrap();
    store.release(&key, &t2).await.unwrap();
    assert!(matches!(store.reserve(&key, &fp, &t1, later, LEASE, TTL).await.unwrap(), Reservation::InFlight { .. }));
    store.complete(&key, &t3, &response("mine"), later, TTL).await.unwrap();
    assert_eq!(
        store.reserve(&key, &fp, &t1, later, LEASE, TTL).await.unwrap(),
        Reservation::Completed(response("mine"))
    );
}

/// Of many concurrent first requests with one key exactly one reserves it; keys are independent.
pub async fn concurrent_reservations_reserve_once(store: Arc<dyn IdempotencyStore>) {
    let fp = Fingerprint::of(&[b"same"]);
    let mut tasks = JoinSet::new();
    for n in 0..40 {
        let store = store.clone();
        tasks.spawn(async move {
            let key = key(if n % 2 == 0 { "even" } else { "odd" });
            store.reserve(&key, &fp, &LeaseToken::random(), T0, LEASE, TTL).await.expect("reserve")
        });
    }
    let (mut reserved, mut in_flight) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Reservation::Reserved => reserved += 1,
            Reservation::InFlight { .. } => in_flight += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((reserved, in_flight), (2, 38));
}

/// The stored answer comes back byte for byte: several headers, an empty and a binary body.
pub async fn answers_are_replayed_exactly(store: Arc<dyn IdempotencyStore>) {
    let fp = Fingerprint::of(&[b"+14155550100", b"sms", b""]);
    let cases = [
        StoredResponse { status: 200, headers: vec![], body: vec![] },
        StoredResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/json; charset=utf-8".into()),
                ("location".into(), "/v1/verifications/vf_1".into()),
            ],
            body: (0u8..=255).collect(),
        },
    ];
    for (n, stored) in cases.iter().enumerate() {
        let key = key(&format!("replay-{n}"));
        let token = LeaseToken::random();
        assert_eq!(store.reserve(&key, &fp, &token, T0, LEASE, TTL).await.unwrap(), Reservation::Reserved);
        store.complete(&key, &token, stored, T0, TTL).await.unwrap();
        let again = store.reserve(&key, &fp, &LeaseToken::random(), T0, LEASE, TTL).await.unwrap();
        assert_eq!(again, Reservation::Completed(stored.clone()));
    }
}

/// Writes one `#[tokio::test]` per check of the `Idempotency-Key` contract for a backend.
///
/// `$make` is an async expression answering a fresh, empty store. A backend that needs an outside
/// service passes `ignore = "needs …: set OTPGATE_TEST_…"` first: its tests are then reported as
/// ignored by a plain `cargo test` and run with `--include-ignored` (where `$make` gets the
/// address from [`service`](crate::service), which fails the test when it is not set). A list
/// of check names after `;` runs only those.
#[macro_export]
macro_rules! idempotency_contract_tests {
    (@all $attrs:tt $make:expr) => {
        $crate::idempotency_contract_tests!(@each $attrs $make;
            reserve_complete_replay_expire,
            released_and_abandoned_keys_can_be_taken,
            concurrent_reservations_reserve_once,
            answers_are_replayed_exactly,
        );
    };
    (@each $attrs:tt $make:expr; $($name:ident),* $(,)?) => {
        $(
            $crate::__contract_test!($attrs, $make, dyn otpgate_core::idempotency::IdempotencyStore, $crate::idempotency_contract::$name, $name);
        )*
    };
    (ignore = $reason:literal, $make:expr; $($name:ident),+ $(,)?) => {
        $crate::idempotency_contract_tests!(@each [#[ignore = $reason]] $make; $($name),+);
    };
    (ignore = $reason:literal, $make:expr) => {
        $crate::idempotency_contract_tests!(@all [#[ignore = $reason]] $make);
    };
    ($make:expr; $($name:ident),+ $(,)?) => {
        $crate::idempotency_contract_tests!(@each [] $make; $($name),+);
    };
    ($make:expr) => {
        $crate::idempotency_contract_tests!(@all [] $make);
    };
}
