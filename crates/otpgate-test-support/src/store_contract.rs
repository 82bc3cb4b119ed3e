//! The storage contract: one suite of checks that every backend must pass. Each function takes a
//! fresh, empty store; `crates/otpgate-store/tests/store/` runs them all against each backend (the
//! macro [`store_contract_tests!`](crate::store_contract_tests) writes one `#[tokio::test]` per check). Time is passed explicitly, so expiry
//! is tested by moving `now`, not by sleeping.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::{Issued, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, Channel, CheckOutcome, Code, CodeDigest, CodeHasher, IssueOutcome, PhoneNumber, Policy,
    RateLimiter, Timestamp, VerificationId, VerificationStatus, VerificationStore,
};
use tokio::task::JoinSet;

/// What a backend must be to run the suite.
pub trait Backend: VerificationStore + RateLimiter {}
impl<T: VerificationStore + RateLimiter> Backend for T {}

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn hasher() -> CodeHasher {
    CodeHasher::new(&[7u8; 32]).expect("32-byte key")
}

/// A distinct valid US number per `n`, so checks in one store never collide.
pub fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{:04}", n % 10_000), None).expect("valid test number")
}

fn digest(p: &PhoneNumber, code: &str) -> CodeDigest {
    hasher().digest(p, &Code::parse(code, 6).expect("6 digits"))
}

fn new_code(p: &PhoneNumber, code: &str) -> NewCode {
    NewCode {
        id: VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(digest(p, code)),
    }
}

async fn issue(store: &dyn Backend, p: &PhoneNumber, code: &str, now: Timestamp) -> IssueOutcome {
    store.issue(new_code(p, code), now, &Policy::default()).await.expect("issue")
}

async fn check(store: &dyn Backend, p: &PhoneNumber, code: &str, now: Timestamp) -> CheckOutcome {
    store.check(p, &digest(p, code), now).await.expect("check")
}

pub async fn create_then_resend_keeps_id_and_follows_doubling_cooldown(store: Arc<dyn Backend>) {
    let p = phone(1);
    let IssueOutcome::Created(first) = issue(&*store, &p, "111111", T0).await else { panic!("expected Created") };
    assert_eq!(store.resend_wait(&p, T0).await.unwrap(), Some(Duration::from_secs(30)));
    let IssueOutcome::Cooldown { retry_after } = issue(&*store, &p, "222222", T0.plus(Duration::from_secs(10))).await
    else {
        panic!("expected Cooldown")
    };
    assert_eq!(retry_after, Duration::from_secs(20));
    let t1 = T0.plus(Duration::from_secs(30));
    let IssueOutcome::Resent { verification, .. } = issue(&*store, &p, "333333", t1).await else {
        panic!("expected Resent")
    };
    assert_eq!(verification.id, first.id, "a resend keeps the id");
    assert_eq!(verification.sends, 2);
    assert_eq!(store.resend_wait(&p, t1).await.unwrap(), Some(Duration::from_secs(60)), "the cooldown doubles");
    // Only the newest code is valid.
    assert!(matches!(check(&*store, &p, "111111", t1).await, CheckOutcome::Wrong { .. }));
    assert!(matches!(check(&*store, &p, "333333", t1).await, CheckOutcome::Approved(_)));
}

pub async fn resend_keeps_the_attempt_count(store: Arc<dyn Backend>) {
    let p = phone(2);
    issue(&*store, &p, "111111", T0).await;
    for expected_left in [4, 3] {
        assert!(
            matches!(check(&*store, &p, "000000", T0).await, CheckOutcome::Wrong { attempts_left } if attempts_left == expected_left)
        );
    }
    let later = T0.plus(Duration::from_secs(30));
    assert!(matches!(issue(&*store, &p, "222222", later).await, IssueOutcome::Resent { .. }));
    assert!(matches!(check(&*store, &p, "000000", later).await, CheckOutcome::Wrong { attempts_left: 2 }));
}

pub async fn codes_are_single_use(store: Arc<dyn Backend>) {
    let p = phone(3);
    issue(&*store, &p, "123456", T0).await;
    assert!(matches!(check(&*store, &p, "123456", T0).await, CheckOutcome::Approved(_)));
    assert!(matches!(check(&*store, &p, "123456", T0).await, CheckOutcome::NotFound));
}

pub async fn codes_expire(store: Arc<dyn Backend>) {
    let p = phone(4);
    issue(&*store, &p, "123456", T0).await;
    let at_expiry = T0.plus(Duration::from_secs(120));
    assert!(matches!(check(&*store, &p, "123456", at_expiry).await, CheckOutcome::NotFound));
    // After expiry a send starts a new verification at once (no cooldown from the dead one).
    assert_eq!(store.resend_wait(&p, at_expiry).await.unwrap(), None);
    assert!(matches!(issue(&*store, &p, "654321", at_expiry).await, IssueOutcome::Created(_)));
    assert!(matches!(check(&*store, &p, "654321", at_expiry).await, CheckOutcome::Approved(_)));
}

pub async fn a_code_is_valid_only_for_its_phone(store: Arc<dyn Backend>) {
    let (a, b) = (phone(5), phone(6));
    issue(&*store, &a, "123456", T0).await;
    issue(&*store, &b, "654321", T0).await;
    assert!(matches!(check(&*store, &b, "123456", T0).await, CheckOutcome::Wrong { .. }));
    assert!(matches!(check(&*store, &a, "123456", T0).await, CheckOutcome::Approved(_)));
}

pub async fn max_wrong_codes_kill_the_verification(store: Arc<dyn Backend>) {
    let p = phone(7);
    issue(&*store, &p, "123456", T0).await;
    for _ in 0..4 {
        assert!(matches!(check(&*store, &p, "000000", T0).await, CheckOutcome::Wrong { .. }));
    }
    assert!(matches!(check(&*store, &p, "000000", T0).await, CheckOutcome::Killed), "the last attempt kills it");
    assert!(matches!(check(&*store, &p, "123456", T0).await, CheckOutcome::Exhausted), "right code after lockout");
    assert!(matches!(check(&*store, &p, "000000", T0).await, CheckOutcome::Exhausted), "nothing compared any more");
    // A new send starts a fresh verification.
    assert!(matches!(issue(&*store, &p, "222222", T0).await, IssueOutcome::Created(_)));
    assert!(matches!(check(&*store, &p, "222222", T0).await, CheckOutcome::Approved(_)));
}

pub async fn concurrent_wrong_codes_evaluate_at_most_max(store: Arc<dyn Backend>) {
    let p = phone(8);
    issue(&*store, &p, "123456", T0).await;
    let mut tasks = JoinSet::new();
    for i in 0..50 {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move { check(&*store, &p, &format!("{:06}", 900_000 + i), T0).await });
    }
    let (mut wrong, mut killed, mut exhausted) = (0, 0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            CheckOutcome::Wrong { .. } => wrong += 1,
            CheckOutcome::Killed => killed += 1,
            CheckOutcome::Exhausted => exhausted += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Exactly max - 1 answers "wrong, try again"; the 5th wrong one killed it; the rest were refused.
    assert_eq!(wrong, 4, "wrong answers");
    assert_eq!(killed, 1, "one check compared the last attempt");
    assert_eq!(exhausted, 45);
    assert!(matches!(check(&*store, &p, "123456", T0).await, CheckOutcome::Exhausted));
}

pub async fn concurrent_right_codes_approve_exactly_once(store: Arc<dyn Backend>) {
    let p = phone(9);
    issue(&*store, &p, "123456", T0).await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move { check(&*store, &p, "123456", T0).await });
    }
    let mut approved = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            CheckOutcome::Approved(_) => approved += 1,
            CheckOutcome::NotFound => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(approved, 1);
}

pub async fn concurrent_sends_create_one_verification(store: Arc<dyn Backend>) {
    let p = phone(10);
    let mut tasks = JoinSet::new();
    for i in 0..10 {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move { issue(&*store, &p, &format!("{:06}", 100_000 + i), T0).await });
    }
    let (mut created, mut cooldown) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            IssueOutcome::Created(_) => created += 1,
            IssueOutcome::Cooldown { .. } => cooldown += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, cooldown), (1, 9));
}

pub async fn revert_undoes_a_failed_send(store: Arc<dyn Backend>) {
    let p = phone(11);
    let created = issue(&*store, &p, "111111", T0).await;
    store.revert_issue(&created).await.unwrap();
    assert!(matches!(check(&*store, &p, "111111", T0).await, CheckOutcome::NotFound), "created one is gone");
    assert_eq!(store.resend_wait(&p, T0).await.unwrap(), None);

    issue(&*store, &p, "222222", T0).await;
    let later = T0.plus(Duration::from_secs(30));
    let resent = issue(&*store, &p, "333333", later).await;
    assert!(matches!(resent, IssueOutcome::Resent { .. }));
    store.revert_issue(&resent).await.unwrap();
    // The code that failed to go out is unusable; the one before it is back, with its cooldown.
    assert!(matches!(check(&*store, &p, "333333", later).await, CheckOutcome::Wrong { .. }));
    assert!(matches!(check(&*store, &p, "222222", later).await, CheckOutcome::Approved(_)));
}

pub async fn cancel_ends_a_verification(store: Arc<dyn Backend>) {
    let p = phone(12);
    let IssueOutcome::Created(v) = issue(&*store, &p, "123456", T0).await else { panic!() };
    assert!(store.cancel(&v.id, T0).await.unwrap().is_some());
    assert!(store.cancel(&v.id, T0).await.unwrap().is_none(), "second cancel is a no-op");
    assert!(store.cancel(&VerificationId::generate(), T0).await.unwrap().is_none());
    assert!(matches!(check(&*store, &p, "123456", T0).await, CheckOutcome::NotFound));
    assert!(matches!(issue(&*store, &p, "654321", T0).await, IssueOutcome::Created(_)), "no cooldown after cancel");
}

pub async fn provider_ref_is_kept(store: Arc<dyn Backend>) {
    let p = phone(13);
    let IssueOutcome::Created(v) = issue(&*store, &p, "123456", T0).await else { panic!() };
    store.set_provider_ref(&v.id, "VE00000000000000000000000000000000").await.unwrap();
    let CheckOutcome::Approved(v) = check(&*store, &p, "123456", T0).await else { panic!() };
    assert_eq!(v.provider_ref.as_deref(), Some("VE00000000000000000000000000000000"));
}

/// A channel fallback (WhatsApp undeliverable -> SMS) is recorded: the approval names the channel
/// the code really went out on, a resend starts again from the channel it asks for, and the
/// revert of a failed resend brings back the channel the previous code went out on.
pub async fn the_channel_a_fallback_used_is_kept(store: Arc<dyn Backend>) {
    let whatsapp = |p: &PhoneNumber, code: &str| NewCode { channel: Channel::Whatsapp, ..new_code(p, code) };
    let p = phone(17);
    let IssueOutcome::Created(v) = store.issue(whatsapp(&p, "123456"), T0, &Policy::default()).await.unwrap() else {
        panic!()
    };
    assert_eq!(v.channel, Channel::Whatsapp);
    store.set_channel(&v.id, Channel::Sms).await.unwrap();
    let CheckOutcome::Approved(approved) = check(&*store, &p, "123456", T0).await else { panic!() };
    assert_eq!(approved.channel, Channel::Sms, "the approval names the channel the code went out on");

    let q = phone(18);
    let IssueOutcome::Created(w) = store.issue(whatsapp(&q, "111111"), T0, &Policy::default()).await.unwrap() else {
        panic!()
    };
    store.set_channel(&w.id, Channel::Sms).await.unwrap();
    let later = T0.plus(Duration::from_secs(30));
    let resent = store.issue(whatsapp(&q, "222222"), later, &Policy::default()).await.unwrap();
    let IssueOutcome::Resent { verification, previous } = &resent else { panic!("expected Resent") };
    assert_eq!((verification.channel, previous.channel), (Channel::Whatsapp, Channel::Sms));
    store.revert_issue(&resent).await.unwrap();
    let CheckOutcome::Approved(approved) = check(&*store, &q, "111111", later).await else { panic!() };
    assert_eq!(approved.channel, Channel::Sms, "the reverted resend brings back the channel used before");
}

/// Provider-held codes (Twilio Verify): the store counts attempts and records the outcome,
/// the provider compares.
pub async fn remote_codes_count_attempts_and_approve_once(store: Arc<dyn Backend>) {
    let p = phone(14);
    let IssueOutcome::Created(v) = issue(&*store, &p, "123456", T0).await else { panic!() };
    store.mark_remote(&v.id, "remote:VE00000000000000000000000000000000").await.unwrap();
    let CheckOutcome::Remote(remote) = check(&*store, &p, "123456", T0).await else {
        panic!("a provider-held code is never compared locally")
    };
    assert_eq!(remote.provider_ref.as_deref(), Some("remote:VE00000000000000000000000000000000"));
    for expected in 1..=5 {
        let AttemptOutcome::Counted(c) = store.count_attempt(&v.id, T0).await.unwrap() else { panic!() };
        assert_eq!(c.attempts, expected);
    }
    assert!(matches!(store.count_attempt(&v.id, T0).await.unwrap(), AttemptOutcome::Exhausted));
    assert!(store.approve(&v.id, T0).await.unwrap());
    assert!(!store.approve(&v.id, T0).await.unwrap(), "approved exactly once");
    assert!(matches!(store.count_attempt(&v.id, T0).await.unwrap(), AttemptOutcome::NotFound));

    let q = phone(15);
    let IssueOutcome::Created(w) = issue(&*store, &q, "123456", T0).await else { panic!() };
    store.mark_remote(&w.id, "remote:VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await.unwrap();
    store.finish(&w.id, VerificationStatus::Dead, T0).await.unwrap();
    assert!(matches!(check(&*store, &q, "123456", T0).await, CheckOutcome::Exhausted));
    assert!(matches!(
        store.count_attempt(&w.id, T0.plus(Duration::from_secs(120))).await.unwrap(),
        AttemptOutcome::NotFound
    ));
}

pub async fn concurrent_remote_attempts_never_pass_the_maximum(store: Arc<dyn Backend>) {
    let p = phone(16);
    let IssueOutcome::Created(v) = issue(&*store, &p, "123456", T0).await else { panic!() };
    store.mark_remote(&v.id, "remote:VE00000000000000000000000000000000").await.unwrap();
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let (store, id) = (store.clone(), v.id.clone());
        tasks.spawn(async move { store.count_attempt(&id, T0).await.unwrap() });
    }
    let mut counted = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            AttemptOutcome::Counted(_) => counted += 1,
            AttemptOutcome::Exhausted => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(counted, 5);
}

pub async fn limits_reset_and_counters_add_up(store: Arc<dyn Backend>) {
    let r = [rule("contract:reset", 1)];
    assert!(store.acquire(&r, T0).await.unwrap().is_ok());
    assert!(store.acquire(&r, T0).await.unwrap().is_err());
    store.reset(&["contract:reset".to_owned()]).await.unwrap();
    assert!(store.acquire(&r, T0).await.unwrap().is_ok(), "a reset key starts afresh");

    let expires = T0.plus(Duration::from_secs(3600));
    let mut tasks = JoinSet::new();
    for i in 0..30i64 {
        let store = store.clone();
        tasks.spawn(async move { store.incr_counter("contract:counter", 1_000 * (i % 3), expires).await.unwrap() });
    }
    while tasks.join_next().await.is_some() {}
    assert_eq!(store.sum_counter("contract:counter", 0).await.unwrap(), 30, "concurrent increments are atomic");
    assert_eq!(store.sum_counter("contract:counter", 1_000).await.unwrap(), 20, "only buckets since");
    assert_eq!(store.sum_counter("contract:other", 0).await.unwrap(), 0);
}

/// 87 per second does not divide evenly: the burst must still stop at 87, not 90.
pub async fn limits_with_an_uneven_period_never_burst_past_count(store: Arc<dyn Backend>) {
    let r = [LimitRule::new(LimitScope::IpSend, "contract:uneven", Rate::new(87, Duration::from_secs(1)))];
    let mut allowed = 0;
    for _ in 0..100 {
        allowed += usize::from(store.acquire(&r, T0).await.unwrap().is_ok());
    }
    assert_eq!(allowed, 87);
}

fn rule(key: &str, count: u32) -> LimitRule {
    LimitRule::new(LimitScope::PhoneSend, key, Rate::new(count, Duration::from_secs(60)))
}

pub async fn limits_allow_a_burst_then_refuse_with_retry_after(store: Arc<dyn Backend>) {
    let r = [rule("contract:a", 3)];
    for _ in 0..3 {
        assert!(store.acquire(&r, T0).await.unwrap().is_ok());
    }
    let denied = store.acquire(&r, T0).await.unwrap().unwrap_err();
    assert_eq!(denied.retry_after, Duration::from_secs(20));
    assert_eq!(denied.scope, LimitScope::PhoneSend);
    assert!(store.acquire(&r, T0.plus(Duration::from_secs(19))).await.unwrap().is_err());
    assert!(store.acquire(&r, T0.plus(Duration::from_secs(20))).await.unwrap().is_ok());
}

pub async fn limits_are_all_or_nothing(store: Arc<dyn Backend>) {
    let open = rule("contract:open", 10);
    let shut = rule("contract:shut", 1);
    assert!(store.acquire(std::slice::from_ref(&shut), T0).await.unwrap().is_ok());
    for _ in 0..20 {
        assert!(store.acquire(&[open.clone(), shut.clone()], T0).await.unwrap().is_err());
    }
    // None of the refused requests took from the open bucket.
    for _ in 0..10 {
        assert!(store.acquire(std::slice::from_ref(&open), T0).await.unwrap().is_ok());
    }
    assert!(store.acquire(std::slice::from_ref(&open), T0).await.unwrap().is_err());
}

/// `peek` answers what `acquire` would, longest wait first, and never takes or writes.
pub async fn limits_peek_without_taking(store: Arc<dyn Backend>) {
    let fresh = rule("contract:peek:fresh", 2);
    for _ in 0..10 {
        assert!(store.peek(std::slice::from_ref(&fresh), T0).await.unwrap().is_ok());
    }
    for _ in 0..2 {
        assert!(store.acquire(std::slice::from_ref(&fresh), T0).await.unwrap().is_ok(), "peeks took nothing");
    }
    let full = store.peek(std::slice::from_ref(&fresh), T0).await.unwrap().unwrap_err();
    assert_eq!((full.scope, full.retry_after), (LimitScope::PhoneSend, Duration::from_secs(30)));
    assert!(store.acquire(std::slice::from_ref(&fresh), T0).await.unwrap().is_err());
    let later = T0.plus(Duration::from_secs(30));
    assert!(store.peek(std::slice::from_ref(&fresh), later).await.unwrap().is_ok(), "a unit returned");
    assert!(store.peek(std::slice::from_ref(&fresh), later).await.unwrap().is_ok(), "and is still there");
    // Several rules: refused when any is full, naming the longest wait; an empty list passes.
    let other = LimitRule::new(LimitScope::IpCheck, "contract:peek:other", Rate::new(1, Duration::from_secs(600)));
    assert!(store.acquire(std::slice::from_ref(&other), T0).await.unwrap().is_ok());
    let both = store.peek(&[fresh.clone(), other.clone()], T0).await.unwrap().unwrap_err();
    assert_eq!((both.scope, both.retry_after), (LimitScope::IpCheck, Duration::from_secs(600)));
    assert!(store.peek(&[], T0).await.unwrap().is_ok());
    // Concurrent peeks of a key with one unit left all see it; only one acquire gets it.
    let last = rule("contract:peek:last", 1);
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (store, last) = (store.clone(), last.clone());
        tasks.spawn(async move { store.peek(&[last], T0).await.unwrap().is_ok() });
    }
    while let Some(seen) = tasks.join_next().await {
        assert!(seen.unwrap());
    }
    assert!(store.acquire(std::slice::from_ref(&last), T0).await.unwrap().is_ok());
    assert!(store.acquire(std::slice::from_ref(&last), T0).await.unwrap().is_err());
}

pub async fn limits_are_atomic_under_concurrency(store: Arc<dyn Backend>) {
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.spawn(async move { store.acquire(&[rule("contract:race", 10)], T0).await.unwrap().is_ok() });
    }
    let mut allowed = 0;
    while let Some(r) = tasks.join_next().await {
        allowed += usize::from(r.unwrap());
    }
    assert_eq!(allowed, 10);
}

fn value(v: &str, expires_at: Option<Timestamp>) -> StoredValue {
    StoredValue { value: v.to_owned(), expires_at }
}

/// Compare and swap: set only if absent, replace only what was read, delete; an expired value
/// counts as absent (by the caller's clock), one without an expiry stays.
pub async fn shared_values_swap_only_what_was_read(store: Arc<dyn Backend>) {
    let (k, t1) = ("contract:value", T0.plus(Duration::from_secs(60)));
    assert_eq!(store.load_value(k, T0).await.unwrap(), None);
    assert!(store.swap_value(k, None, None, T0).await.unwrap(), "nothing expected, nothing there");
    assert!(store.swap_value(k, None, Some(&value("a", Some(t1))), T0).await.unwrap());
    assert_eq!(store.load_value(k, T0).await.unwrap().as_deref(), Some("a"));
    assert!(!store.swap_value(k, None, Some(&value("b", None)), T0).await.unwrap(), "set only if absent");
    assert!(!store.swap_value(k, None, None, T0).await.unwrap(), "a live value is there");
    assert!(!store.swap_value(k, Some("x"), Some(&value("b", None)), T0).await.unwrap(), "wrong expectation");
    assert_eq!(store.load_value(k, T0).await.unwrap().as_deref(), Some("a"), "a failed swap changes nothing");
    // Expired by the caller's clock: gone for reads and for the comparison.
    assert_eq!(store.load_value(k, t1).await.unwrap(), None);
    assert!(!store.swap_value(k, Some("a"), None, t1).await.unwrap(), "an expired value is not there");
    assert!(store.swap_value(k, None, Some(&value("c", None)), t1).await.unwrap(), "replaces the expired one");
    let far = T0.plus(Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(store.load_value(k, far).await.unwrap().as_deref(), Some("c"), "no expiry: kept");
    assert!(store.swap_value(k, Some("c"), Some(&value("d", Some(far))), T0).await.unwrap());
    assert!(store.swap_value(k, Some("d"), None, T0).await.unwrap(), "delete what was read");
    assert_eq!(store.load_value(k, T0).await.unwrap(), None);
    assert_eq!(store.load_value("contract:other", T0).await.unwrap(), None);
}

/// 20 concurrent swaps from one read value: exactly one wins.
pub async fn concurrent_swaps_of_one_value_succeed_once(store: Arc<dyn Backend>) {
    let k = "contract:value-race";
    assert!(store.swap_value(k, None, Some(&value("0", None)), T0).await.unwrap());
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.spawn(async move { store.swap_value(k, Some("0"), Some(&value(&format!("v{i}"), None)), T0).await });
    }
    let mut won = Vec::new();
    while let Some(r) = tasks.join_next().await {
        won.push(r.unwrap().unwrap());
    }
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        let new = value(&format!("{i}"), None);
        tasks.spawn(async move { store.swap_value("contract:value-new", None, Some(&new), T0).await });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        created += usize::from(r.unwrap().unwrap());
    }
    assert_eq!(created, 1, "set-if-absent creates once");
}

fn claim(key: &str) -> ResendClaim {
    ResendClaim { key: key.to_owned(), first: Duration::from_secs(30) }
}

async fn issue_with_resend(
    store: &dyn Backend,
    claim: &ResendClaim,
    p: &PhoneNumber,
    code: &str,
    now: Timestamp,
) -> Result<Issued, Duration> {
    store.issue_with_resend(claim, new_code(p, code), now, &Policy::default()).await.expect("issue_with_resend")
}

/// A send in one call: the resend slot is taken by `ResendClaim::take`'s rules, stored where
/// `load_value` and `give_back` find it, and the verification issued, or neither.
pub async fn issue_with_resend_takes_the_slot_and_issues_together(store: Arc<dyn Backend>) {
    let (p, c) = (phone(40), claim("contract:resend-40"));
    // A value the rules did not write counts as none (and is overwritten).
    assert!(store.swap_value(&c.key, None, Some(&value("junk", None)), T0).await.unwrap());
    let first = issue_with_resend(&*store, &c, &p, "111111", T0).await.expect("first send goes");
    let IssueOutcome::Created(created) = &first.outcome else { panic!("expected Created, got {:?}", first.outcome) };
    assert_eq!(first.slot.wait, Duration::from_secs(30));
    let expected = c.take(None, T0).expect("no wait");
    assert_eq!(first.slot.taken(), expected.taken(), "the same state the rules compute");
    assert_eq!(store.load_value(&c.key, T0).await.unwrap().as_deref(), Some(expected.taken().value.as_str()));

    let early = T0.plus(Duration::from_secs(10));
    assert_eq!(issue_with_resend(&*store, &c, &p, "222222", early).await.unwrap_err(), Duration::from_secs(20));
    assert_eq!(store.load_value(&c.key, early).await.unwrap().as_deref(), Some(expected.taken().value.as_str()));
    assert!(matches!(check(&*store, &p, "222222", early).await, CheckOutcome::Wrong { .. }), "not resent");

    let later = T0.plus(Duration::from_secs(30));
    let second = issue_with_resend(&*store, &c, &p, "333333", later).await.expect("the wait is over");
    let IssueOutcome::Resent { verification, .. } = &second.outcome else { panic!("expected Resent") };
    assert_eq!(verification.id, created.id);
    assert_eq!(second.slot.wait, Duration::from_secs(60), "the wait doubles");
    let stored = store.load_value(&c.key, later).await.unwrap();
    assert_eq!(stored.as_deref(), Some(second.slot.taken().value.as_str()));
    // Given back, the state before this send is there again, for the next send to find.
    otpgate_core::resend::give_back(&*store, &second.slot, later).await;
    assert_eq!(store.load_value(&c.key, later).await.unwrap().as_deref(), Some(expected.taken().value.as_str()));
    // The verification is reachable by id (the id index was written with it).
    assert!(store.cancel(&created.id, later).await.unwrap().is_some());
}

/// When the issue itself refuses (the verification's own resend wait), nothing is taken.
pub async fn issue_with_resend_writes_nothing_when_the_issue_refuses(store: Arc<dyn Backend>) {
    let (p, c) = (phone(41), claim("contract:resend-41"));
    issue(&*store, &p, "111111", T0).await;
    let early = T0.plus(Duration::from_secs(10));
    assert_eq!(issue_with_resend(&*store, &c, &p, "222222", early).await.unwrap_err(), Duration::from_secs(20));
    assert_eq!(store.load_value(&c.key, early).await.unwrap(), None, "no slot taken");
    assert!(matches!(check(&*store, &p, "111111", early).await, CheckOutcome::Approved(_)), "the first code stands");
}

/// Concurrent sends to one phone: one takes the slot and sends, the others are refused.
pub async fn concurrent_issue_with_resend_take_one_slot(store: Arc<dyn Backend>) {
    let p = phone(42);
    let mut tasks = JoinSet::new();
    for i in 0..10 {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move {
            issue_with_resend(&*store, &claim("contract:resend-42"), &p, &format!("{:06}", 100_000 + i), T0).await
        });
    }
    let mut sent = Vec::new();
    let mut refused = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(issued) => sent.push(issued),
            Err(wait) => {
                assert!(wait <= Duration::from_secs(30) && wait > Duration::ZERO, "{wait:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((sent.len(), refused), (1, 9));
    assert!(matches!(sent[0].outcome, IssueOutcome::Created(_)));
    let stored = store.load_value("contract:resend-42", T0).await.unwrap();
    assert_eq!(stored.as_deref(), Some(sent[0].slot.taken().value.as_str()));
}

/// Writes one `#[tokio::test]` per check of the storage contract for a backend.
///
/// `$make` is an async expression answering a fresh, empty store. A backend that needs an outside
/// service passes `ignore = "needs …: set OTPGATE_TEST_…"` first: its tests are then reported as
/// ignored by a plain `cargo test` and run with `--include-ignored` (where `$make` gets the
/// address from [`service`](crate::service), which fails the test when it is not set). A list
/// of check names after `;` runs only those.
#[macro_export]
macro_rules! store_contract_tests {
    (@all $attrs:tt $make:expr) => {
        $crate::store_contract_tests!(@each $attrs $make;
            create_then_resend_keeps_id_and_follows_doubling_cooldown,
            resend_keeps_the_attempt_count,
            codes_are_single_use,
            codes_expire,
            a_code_is_valid_only_for_its_phone,
            max_wrong_codes_kill_the_verification,
            concurrent_wrong_codes_evaluate_at_most_max,
            concurrent_right_codes_approve_exactly_once,
            concurrent_sends_create_one_verification,
            revert_undoes_a_failed_send,
            cancel_ends_a_verification,
            provider_ref_is_kept,
            the_channel_a_fallback_used_is_kept,
            limits_allow_a_burst_then_refuse_with_retry_after,
            limits_are_all_or_nothing,
            limits_are_atomic_under_concurrency,
            limits_peek_without_taking,
            remote_codes_count_attempts_and_approve_once,
            concurrent_remote_attempts_never_pass_the_maximum,
            limits_reset_and_counters_add_up,
            limits_with_an_uneven_period_never_burst_past_count,
            shared_values_swap_only_what_was_read,
            concurrent_swaps_of_one_value_succeed_once,
            issue_with_resend_takes_the_slot_and_issues_together,
            issue_with_resend_writes_nothing_when_the_issue_refuses,
            concurrent_issue_with_resend_take_one_slot,
        );
    };
    (@each $attrs:tt $make:expr; $($name:ident),* $(,)?) => {
        $(
            $crate::__contract_test!($attrs, $make, dyn $crate::store_contract::Backend, $crate::store_contract::$name, $name);
        )*
    };
    (ignore = $reason:literal, $make:expr; $($name:ident),+ $(,)?) => {
        $crate::store_contract_tests!(@each [#[ignore = $reason]] $make; $($name),+);
    };
    (ignore = $reason:literal, $make:expr) => {
        $crate::store_contract_tests!(@all [#[ignore = $reason]] $make);
    };
    ($make:expr; $($name:ident),+ $(,)?) => {
        $crate::store_contract_tests!(@each [] $make; $($name),+);
    };
    ($make:expr) => {
        $crate::store_contract_tests!(@all [] $make);
    };
}
