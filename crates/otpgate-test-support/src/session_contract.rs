//! The session storage contract: users and refresh tokens, checked the same way on every backend.
//! `crates/otpgate-store/tests/store/` runs it through `session_contract_tests!`, like `store_contract`.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::session::{
    NewRefreshToken, PublicKeyMaterial, PublishedKey, RotateOutcome, Rotation, SessionStore, TokenFamily, User, UserId,
};
use otpgate_core::store::NewCode;
use otpgate_core::{
    Channel, CheckOutcome, Code, CodeDigest, CodeHasher, IssueOutcome, Policy, Timestamp, VerificationId,
    VerificationStore,
};
use tokio::task::JoinSet;

use crate::store_contract::phone;

/// What a backend must be to run the suite (verifications too: erasing a user erases them).
pub trait SessionBackend: SessionStore + VerificationStore {}
impl<T: SessionStore + VerificationStore> SessionBackend for T {}

const T0: Timestamp = Timestamp(1_800_000_000_000);
const DAY: Duration = Duration::from_secs(86_400);

fn hasher() -> CodeHasher {
    CodeHasher::new(&[9u8; 32]).expect("32-byte key")
}

/// A distinct digest per label, standing in for the HMAC of a refresh token.
fn digest(label: &str) -> CodeDigest {
    hasher().digest_parts(&[b"contract-refresh", label.as_bytes()])
}

fn token(label: &str, expires_at: Timestamp) -> NewRefreshToken {
    token_via(label, Channel::Sms, expires_at)
}

fn token_via(label: &str, channel: Channel, expires_at: Timestamp) -> NewRefreshToken {
    NewRefreshToken { digest: digest(label), family: TokenFamily::generate(), channel, expires_at }
}

async fn sign_in(store: &dyn SessionBackend, n: u32, label: &str) -> (User, bool) {
    store.sign_in(&phone(n), UserId::generate(), &token(label, T0.plus(30 * DAY)), T0).await.expect("sign_in")
}

/// A rotation without reuse grace (a repeat of a spent token always revokes).
async fn rotate(store: &dyn SessionBackend, from: &str, to: &str, now: Timestamp) -> RotateOutcome {
    rotate_with_grace(store, from, to, Duration::ZERO, now).await
}

/// What stands in for `to` sealed under `from`: the store keeps it opaque.
fn sealed(to: &str) -> Vec<u8> {
    format!("sealed:{to}").into_bytes()
}

async fn rotate_with_grace(
    store: &dyn SessionBackend,
    from: &str,
    to: &str,
    reuse_grace: Duration,
    now: Timestamp,
) -> RotateOutcome {
    let rotation = Rotation { next: token(to, now.plus(30 * DAY)), sealed_next: sealed(to), reuse_grace };
    store.rotate_refresh_token(&digest(from), &rotation, now).await.expect("rotate")
}

const GRACE: Duration = Duration::from_secs(10);

fn secs(n: u64) -> Timestamp {
    T0.plus(Duration::from_secs(n))
}

pub async fn first_sign_in_creates_the_user_then_reuses_it(store: Arc<dyn SessionBackend>) {
    let (first, created) = sign_in(&*store, 100, "a").await;
    assert!(created);
    assert_eq!(first.phone, phone(100).e164());
    assert_eq!(first.created_at, T0);
    let (again, created) = sign_in(&*store, 100, "b").await;
    assert!(!created);
    assert_eq!(again, first, "same id, phone and creation time");
    assert_eq!(store.find_user(&first.id).await.unwrap(), Some(first));
    assert_eq!(store.find_user(&UserId::generate()).await.unwrap(), None);
    let (other, created) = sign_in(&*store, 101, "c").await;
    assert!(created);
    assert_ne!(other.id, again.id);
}

pub async fn concurrent_first_sign_ins_create_one_user(store: Arc<dyn SessionBackend>) {
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.spawn(async move { sign_in(&*store, 102, &format!("race-{i}")).await });
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = tasks.join_next().await {
        let (user, was_created) = r.unwrap();
        created += usize::from(was_created);
        ids.insert(user.id);
    }
    assert_eq!(created, 1, "exactly one sign-in created the user");
    assert_eq!(ids.len(), 1, "everyone got the same user");
}

pub async fn a_refresh_token_rotates_once_and_keeps_its_channel(store: Arc<dyn SessionBackend>) {
    let first = token_via("r0", Channel::Whatsapp, T0.plus(30 * DAY));
    let (user, _) = store.sign_in(&phone(103), UserId::generate(), &first, T0).await.unwrap();
    let t1 = T0.plus(Duration::from_secs(60));
    // `rotate` offers Sms for the next token; the family's channel wins.
    let rotated = RotateOutcome::Rotated { user, channel: Channel::Whatsapp };
    assert_eq!(rotate(&*store, "r0", "r1", t1).await, rotated);
    assert_eq!(rotate(&*store, "r1", "r2", t1).await, rotated);
    assert_eq!(rotate(&*store, "r1", "r3", t1).await, RotateOutcome::Reused, "spent by the first rotation");
}

pub async fn reusing_a_spent_token_revokes_the_family(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 104, "f0").await;
    assert!(matches!(rotate(&*store, "f0", "f1", T0).await, RotateOutcome::Rotated { .. }));
    // A second session of the same user is another family and must survive.
    sign_in(&*store, 104, "g0").await;
    assert_eq!(rotate(&*store, "f0", "x1", T0).await, RotateOutcome::Reused);
    assert_eq!(rotate(&*store, "f1", "f2", T0).await, RotateOutcome::Invalid, "the newest of the chain is revoked");
    assert_eq!(rotate(&*store, "x1", "x2", T0).await, RotateOutcome::Invalid, "the reuse stored nothing");
    assert_eq!(rotate(&*store, "f0", "x3", T0).await, RotateOutcome::Invalid, "revoked stays revoked");
    assert!(matches!(rotate(&*store, "g0", "g1", T0).await, RotateOutcome::Rotated { .. }));
}

pub async fn concurrent_rotations_of_one_token_succeed_at_most_once(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 105, "c0").await;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.spawn(async move { rotate(&*store, "c0", &format!("c1-{i}"), T0).await });
    }
    let (mut rotated, mut reused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            RotateOutcome::Rotated { .. } => rotated += 1,
            RotateOutcome::Reused => reused += 1,
            RotateOutcome::Invalid | RotateOutcome::Repeated { .. } => {}
        }
    }
    assert_eq!(rotated, 1);
    assert!(reused >= 1, "the losers saw a spent token");
}

pub async fn expired_and_unknown_tokens_are_invalid(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 106, "e0").await;
    assert_eq!(rotate(&*store, "nope", "n1", T0).await, RotateOutcome::Invalid);
    let at_expiry = T0.plus(30 * DAY);
    assert_eq!(rotate(&*store, "e0", "e1", at_expiry).await, RotateOutcome::Invalid);
    // One millisecond before expiry it was still good.
    let just_before = Timestamp(at_expiry.0 - 1);
    assert!(matches!(rotate(&*store, "e0", "e2", just_before).await, RotateOutcome::Rotated { .. }));
}

pub async fn revoking_ends_the_whole_family(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 107, "v0").await;
    assert!(matches!(rotate(&*store, "v0", "v1", T0).await, RotateOutcome::Rotated { .. }));
    sign_in(&*store, 107, "w0").await;
    // Revoking with an older token of the chain ends the newest too.
    assert!(store.revoke_refresh_family(&digest("v0"), T0).await.unwrap());
    assert!(!store.revoke_refresh_family(&digest("v1"), T0).await.unwrap(), "already revoked");
    assert!(!store.revoke_refresh_family(&digest("unknown"), T0).await.unwrap());
    assert_eq!(rotate(&*store, "v1", "v2", T0).await, RotateOutcome::Invalid);
    assert!(matches!(rotate(&*store, "w0", "w1", T0).await, RotateOutcome::Rotated { .. }), "other family lives");
}

pub async fn deleting_a_user_erases_tokens_and_verifications(store: Arc<dyn SessionBackend>) {
    let p = phone(108);
    let (user, _) = sign_in(&*store, 108, "d0").await;
    let code = Code::parse("123456", 6).unwrap();
    let new = NewCode {
        id: VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(hasher().digest(&p, &code)),
    };
    assert!(matches!(store.issue(new, T0, &Policy::default()).await.unwrap(), IssueOutcome::Created(_)));

    assert_eq!(store.delete_user(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.delete_user(&user.id).await.unwrap(), None, "second delete is a no-op");
    assert_eq!(store.find_user(&user.id).await.unwrap(), None);
    assert_eq!(rotate(&*store, "d0", "d1", T0).await, RotateOutcome::Invalid);
    assert!(matches!(store.check(&p, &hasher().digest(&p, &code), T0).await.unwrap(), CheckOutcome::NotFound));
    assert_eq!(store.resend_wait(&p, T0).await.unwrap(), None, "the pending verification is gone");

    // The phone can sign up again, as a new user with a new id.
    let (again, created) = sign_in(&*store, 108, "d2").await;
    assert!(created);
    assert_ne!(again.id, user.id);
}

pub async fn purge_removes_only_expired_tokens(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 109, "p0").await;
    assert!(matches!(rotate(&*store, "p0", "p1", T0.plus(DAY)).await, RotateOutcome::Rotated { .. }));
    // p0 expires at T0 + 30 days, p1 a day later.
    assert_eq!(store.purge_expired_refresh_tokens(T0.plus(29 * DAY)).await.unwrap(), 0);
    assert!(store.purge_expired_refresh_tokens(T0.plus(30 * DAY)).await.unwrap() >= 1);
    assert!(matches!(rotate(&*store, "p1", "p2", T0.plus(30 * DAY)).await, RotateOutcome::Rotated { .. }));
}

/// The attacker holds a stolen refresh token and rotates it in a tight loop while the owner
/// presents the token the thief's chain grew from (spent, so: reuse). Whatever the interleaving,
/// once the owner's reuse has been answered the thief's chain must be dead: 20 trials, 0 chains
/// alive. (PostgreSQL lost this race when the revoking `UPDATE` did not see a rotation in flight.)
pub async fn reuse_revokes_a_chain_rotated_concurrently(store: Arc<dyn SessionBackend>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut survived = 0;
    for trial in 0..20u32 {
        let owner = format!("race{trial}-0");
        store
            .sign_in(&phone(110 + trial), UserId::generate(), &token(&owner, T0.plus(30 * DAY)), T0)
            .await
            .expect("sign_in");
        let stolen = format!("race{trial}-1");
        assert!(matches!(rotate(&*store, &owner, &stolen, T0).await, RotateOutcome::Rotated { .. }));
        let owner_done = Arc::new(AtomicBool::new(false));
        let thief = {
            let (store, owner_done) = (store.clone(), owner_done.clone());
            tokio::spawn(async move {
                let (mut current, mut after_owner) = (stolen, 0);
                for step in 0..5_000 {
                    let next = format!("race{trial}-t{step}");
                    let done_before = owner_done.load(Ordering::SeqCst);
                    if !matches!(rotate(&*store, &current, &next, T0).await, RotateOutcome::Rotated { .. }) {
                        break;
                    }
                    current = next;
                    after_owner += usize::from(done_before);
                    if after_owner > 2 {
                        break;
                    }
                }
                current
            })
        };
        // Let the thief get going, then replay the owner's spent token.
        tokio::time::sleep(Duration::from_millis(2 + u64::from(trial % 5))).await;
        assert_eq!(rotate(&*store, &owner, &format!("race{trial}-o"), T0).await, RotateOutcome::Reused);
        owner_done.store(true, Ordering::SeqCst);
        let last = thief.await.expect("thief task");
        if matches!(rotate(&*store, &last, &format!("race{trial}-end"), T0).await, RotateOutcome::Rotated { .. }) {
            survived += 1;
        }
    }
    assert_eq!(survived, 0, "chains still alive after the owner's reuse, of 20");
}

/// Within the grace, a repeat of the spent token answers the same rotation (the same sealed
/// successor and rotation time) and stores nothing; once that successor is spent, a repeat gets
/// nothing and revokes nothing.
pub async fn a_repeat_within_the_grace_answers_the_same_rotation(store: Arc<dyn SessionBackend>) {
    let (user, _) = sign_in(&*store, 140, "g0").await;
    let rotated = RotateOutcome::Rotated { user: user.clone(), channel: Channel::Sms };
    assert_eq!(rotate_with_grace(&*store, "g0", "g1", GRACE, T0).await, rotated);
    let repeated = RotateOutcome::Repeated {
        user: user.clone(),
        channel: Channel::Sms,
        rotated_at: T0,
        sealed_next: sealed("g1"),
    };
    assert_eq!(rotate_with_grace(&*store, "g0", "g1-again", GRACE, secs(5)).await, repeated);
    assert_eq!(rotate_with_grace(&*store, "g0", "g1-more", GRACE, secs(9)).await, repeated, "any number of repeats");
    assert_eq!(rotate(&*store, "g1-again", "x", secs(9)).await, RotateOutcome::Invalid, "a repeat stores nothing");
    // The successor moves on; the old token's repeat now gets nothing, and costs nothing.
    assert_eq!(rotate_with_grace(&*store, "g1", "g2", GRACE, secs(9)).await, rotated);
    assert_eq!(rotate_with_grace(&*store, "g0", "g1-late", GRACE, secs(9)).await, RotateOutcome::Invalid);
    assert_eq!(rotate_with_grace(&*store, "g1", "g2-again", GRACE, secs(10)).await, {
        RotateOutcome::Repeated { user, channel: Channel::Sms, rotated_at: secs(9), sealed_next: sealed("g2") }
    });
    assert!(matches!(rotate(&*store, "g2", "g3", secs(11)).await, RotateOutcome::Rotated { .. }), "the chain lives");
}

/// 2 and 10 concurrent refreshes with one token: one rotates, every other one repeats that very
/// rotation (the same sealed successor), and only that successor is stored.
pub async fn concurrent_refreshes_with_one_token_all_get_the_same_successor(store: Arc<dyn SessionBackend>) {
    for (n, racers) in [(141, 2), (142, 10)] {
        sign_in(&*store, n, &format!("k{n}-0")).await;
        let mut tasks = JoinSet::new();
        for i in 0..racers {
            let store = store.clone();
            tasks.spawn(async move {
                let to = format!("k{n}-1-{i}");
                (to.clone(), rotate_with_grace(&*store, &format!("k{n}-0"), &to, GRACE, T0).await)
            });
        }
        let (mut winners, mut repeats) = (Vec::new(), Vec::new());
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                (to, RotateOutcome::Rotated { .. }) => winners.push(to),
                (_, RotateOutcome::Repeated { sealed_next, rotated_at, .. }) => repeats.push((sealed_next, rotated_at)),
                (_, other) => panic!("{racers} racers: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{racers} racers: one rotation");
        assert_eq!(repeats.len(), racers - 1);
        assert!(repeats.iter().all(|r| *r == (sealed(&winners[0]), T0)), "{racers} racers: all the winner's");
        for i in 0..racers {
            let to = format!("k{n}-1-{i}");
            let outcome = rotate(&*store, &to, &format!("k{n}-2-{i}"), secs(1)).await;
            assert_eq!(matches!(outcome, RotateOutcome::Rotated { .. }), to == winners[0], "{to}: {outcome:?}");
        }
    }
}

/// A repeat once the grace has passed is reuse: the family is revoked, as without a grace.
pub async fn a_reuse_after_the_grace_revokes_the_family(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 143, "a0").await;
    assert!(matches!(rotate_with_grace(&*store, "a0", "a1", GRACE, T0).await, RotateOutcome::Rotated { .. }));
    assert!(matches!(rotate_with_grace(&*store, "a0", "x", GRACE, secs(9)).await, RotateOutcome::Repeated { .. }));
    assert_eq!(rotate_with_grace(&*store, "a0", "x", GRACE, secs(10)).await, RotateOutcome::Reused);
    assert_eq!(rotate(&*store, "a1", "a2", secs(10)).await, RotateOutcome::Invalid, "the chain is revoked");
    assert_eq!(rotate_with_grace(&*store, "a0", "x", GRACE, secs(10)).await, RotateOutcome::Invalid);
}

/// The grace never brings back a chain that was revoked (signed out) or whose user was erased.
pub async fn the_grace_never_extends_a_revoked_or_deleted_chain(store: Arc<dyn SessionBackend>) {
    sign_in(&*store, 144, "r0").await;
    assert!(matches!(rotate_with_grace(&*store, "r0", "r1", GRACE, T0).await, RotateOutcome::Rotated { .. }));
    assert!(store.revoke_refresh_family(&digest("r1"), secs(1)).await.unwrap());
    assert_eq!(rotate_with_grace(&*store, "r0", "x", GRACE, secs(2)).await, RotateOutcome::Invalid, "revoked");
    assert_eq!(rotate_with_grace(&*store, "r1", "x", GRACE, secs(2)).await, RotateOutcome::Invalid);

    let (user, _) = sign_in(&*store, 145, "d0").await;
    assert!(matches!(rotate_with_grace(&*store, "d0", "d1", GRACE, T0).await, RotateOutcome::Rotated { .. }));
    assert!(store.delete_user(&user.id).await.unwrap().is_some());
    assert_eq!(rotate_with_grace(&*store, "d0", "x", GRACE, secs(2)).await, RotateOutcome::Invalid, "deleted");
    assert_eq!(rotate_with_grace(&*store, "d1", "x", GRACE, secs(2)).await, RotateOutcome::Invalid);
}

fn published(kid: &str, byte: u8, valid_until: Timestamp) -> PublishedKey {
    let public_key = PublicKeyMaterial::Ed25519([byte; 32]);
    PublishedKey { kid: kid.into(), public_key, valid_until, mac: digest(&format!("{kid}{byte}")) }
}

/// An RSA-2048-sized public key (a DER SEQUENCE of 270 bytes; the store does not parse it).
fn published_rsa(kid: &str, byte: u8, valid_until: Timestamp) -> PublishedKey {
    let mut der = vec![0x30, 0x82, 0x01, 0x0a];
    der.resize(270, byte);
    let public_key = PublicKeyMaterial::Rsa(der);
    PublishedKey { kid: kid.into(), public_key, valid_until, mac: digest(&format!("{kid}{byte}")) }
}

/// Published signing keys: listed while valid, a longer validity replaces a shorter one (never the
/// other way round), and expired ones go.
pub async fn published_signing_keys_are_listed_while_valid(store: Arc<dyn SessionBackend>) {
    let listed = |keys: Vec<PublishedKey>| -> Vec<(String, u8, Timestamp)> {
        keys.into_iter().map(|k| (k.kid, k.public_key.as_bytes()[0], k.valid_until)).collect()
    };
    assert!(store.published_signing_keys(T0).await.unwrap().is_empty());
    store.publish_signing_key(&published("kid-b", 2, secs(600)), T0).await.unwrap();
    store.publish_signing_key(&published("kid-a", 1, secs(300)), T0).await.unwrap();
    let keys = store.published_signing_keys(T0).await.unwrap();
    assert_eq!(listed(keys.clone()), [("kid-a".into(), 1, secs(300)), ("kid-b".into(), 2, secs(600))]);
    assert!(keys[0].mac.ct_eq(&digest("kid-a1")), "the MAC is kept as published");
    // Republished for longer: extended; for less long: unchanged.
    store.publish_signing_key(&published("kid-a", 1, secs(900)), secs(10)).await.unwrap();
    store.publish_signing_key(&published("kid-b", 9, secs(400)), secs(10)).await.unwrap();
    let keys = store.published_signing_keys(secs(10)).await.unwrap();
    assert_eq!(listed(keys), [("kid-a".into(), 1, secs(900)), ("kid-b".into(), 2, secs(600))]);
    // Past its validity a key is no longer listed, and the next publication deletes it.
    assert_eq!(listed(store.published_signing_keys(secs(600)).await.unwrap()), [("kid-a".into(), 1, secs(900))]);
    store.publish_signing_key(&published("kid-c", 3, secs(1200)), secs(700)).await.unwrap();
    let keys = store.published_signing_keys(secs(0)).await.unwrap();
    assert_eq!(listed(keys), [("kid-a".into(), 1, secs(900)), ("kid-c".into(), 3, secs(1200))], "kid-b deleted");
    // RSA keys (OpenID Connect's RS256) are published beside them and come back byte for byte.
    let rsa = published_rsa("kid-r", 4, secs(1200));
    store.publish_signing_key(&rsa, secs(700)).await.unwrap();
    let keys = store.published_signing_keys(secs(700)).await.unwrap();
    let back = keys.iter().find(|k| k.kid == "kid-r").expect("the RSA key is listed");
    assert_eq!(back.public_key, rsa.public_key);
    assert!(back.mac.ct_eq(&rsa.mac));
    assert!(keys.iter().any(|k| k.public_key == PublicKeyMaterial::Ed25519([1; 32])), "Ed25519 keys stay Ed25519");
}

/// Writes one `#[tokio::test]` per check of the session contract for a backend.
///
/// `$make` is an async expression answering a fresh, empty store. A backend that needs an outside
/// service passes `ignore = "needs …: set OTPGATE_TEST_…"` first: its tests are then reported as
/// ignored by a plain `cargo test` and run with `--include-ignored` (where `$make` gets the
/// address from [`service`](crate::service), which fails the test when it is not set). A list
/// of check names after `;` runs only those.
#[macro_export]
macro_rules! session_contract_tests {
    (@all $attrs:tt $make:expr) => {
        $crate::session_contract_tests!(@each $attrs $make;
            first_sign_in_creates_the_user_then_reuses_it,
            concurrent_first_sign_ins_create_one_user,
            a_refresh_token_rotates_once_and_keeps_its_channel,
            reusing_a_spent_token_revokes_the_family,
            concurrent_rotations_of_one_token_succeed_at_most_once,
            expired_and_unknown_tokens_are_invalid,
            revoking_ends_the_whole_family,
            deleting_a_user_erases_tokens_and_verifications,
            purge_removes_only_expired_tokens,
            reuse_revokes_a_chain_rotated_concurrently,
            a_repeat_within_the_grace_answers_the_same_rotation,
            concurrent_refreshes_with_one_token_all_get_the_same_successor,
            a_reuse_after_the_grace_revokes_the_family,
            the_grace_never_extends_a_revoked_or_deleted_chain,
            published_signing_keys_are_listed_while_valid,
        );
    };
    (@each $attrs:tt $make:expr; $($name:ident),* $(,)?) => {
        $(
            $crate::__contract_test!($attrs, $make, dyn $crate::session_contract::SessionBackend, $crate::session_contract::$name, $name);
        )*
    };
    (ignore = $reason:literal, $make:expr; $($name:ident),+ $(,)?) => {
        $crate::session_contract_tests!(@each [#[ignore = $reason]] $make; $($name),+);
    };
    (ignore = $reason:literal, $make:expr) => {
        $crate::session_contract_tests!(@all [#[ignore = $reason]] $make);
    };
    ($make:expr; $($name:ident),+ $(,)?) => {
        $crate::session_contract_tests!(@each [] $make; $($name),+);
    };
    ($make:expr) => {
        $crate::session_contract_tests!(@all [] $make);
    };
}
