//! The `OidcStore` contract: what every backend must do, as functions over `Arc<dyn OidcStore>`.
//! A backend's test file runs all of them with [`oidc_store_contract_tests!`](crate::oidc_store_contract_tests):
//!
//! ```ignore
//! otpgate_oidc::oidc_store_contract_tests!(async { Arc::new(open_my_store().await) as Arc<dyn OidcStore> });
//! ```
//!
//! Each check uses its own random digests and ids, so they run in parallel on one store; times
//! are explicit (no clock), far from the real now, so a backend with server-side expiry (Redis
//! TTLs computed from these timestamps) behaves the same.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::session::UserId;
use otpgate_core::verification::random_base62;
use otpgate_core::{Channel, CodeDigest, Timestamp};

/// Contract time: now-ish (so TTL-based backends store real lifetimes), fixed per run.
fn t0() -> Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(now.as_millis() as i64)
}

fn secs(t0: Timestamp, s: u64) -> Timestamp {
    t0.plus(Duration::from_secs(s))
}

fn digest() -> CodeDigest {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&random_base62(32).as_bytes()[..32]);
    CodeDigest(bytes)
}

fn code(t0: Timestamp, nonce: Option<&str>, channel: Channel) -> AuthorizationCode {
    AuthorizationCode {
        client_id: "web".into(),
        redirect_uri: "https://app.example.com/callback?x=1".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: nonce.map(str::to_owned),
        scope: "openid phone offline_access".into(),
        user_id: UserId::generate(),
        channel,
        auth_time: t0,
        expires_at: secs(t0, 60),
    }
}

fn exchange(with_refresh: bool) -> CodeExchange {
    CodeExchange { grant_id: random_base62(22), first_refresh: with_refresh.then(digest) }
}

fn assert_same_exchange(got: &CodeExchange, want: &CodeExchange) {
    assert_eq!(got.grant_id, want.grant_id);
    match (&got.first_refresh, &want.first_refresh) {
        (Some(a), Some(b)) => assert!(a.ct_eq(b), "the first refresh digest is kept"),
        (None, None) => {}
        other => panic!("first_refresh differs: {other:?}"),
    }
}

/// A code is read back whole, consumed once, and every later use is a replay that answers what
/// the first use recorded.
pub async fn codes_are_single_use_and_remember_their_exchange(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    for (nonce, channel, with_refresh) in [(Some("n-0S6_WzA2Mj"), Channel::Sms, true), (None, Channel::Call, false)] {
        let (d, c) = (digest(), code(t0, nonce, channel));
        store.create_code(&d, &c, secs(t0, 660)).await.unwrap();
        assert_eq!(store.code(&d, t0).await.unwrap(), Some(c.clone()), "every field round-trips");
        let first = exchange(with_refresh);
        match store.consume_code(&d, &first, secs(t0, 1)).await.unwrap() {
            ConsumeOutcome::Consumed(got) => assert_eq!(got, c),
            other => panic!("first use: {other:?}"),
        }
        for later in [2, 30, 59] {
            match store.consume_code(&d, &exchange(true), secs(t0, later)).await.unwrap() {
                ConsumeOutcome::Replayed(got) => assert_same_exchange(&got, &first),
                other => panic!("use at +{later}s: {other:?}"),
            }
        }
        assert_eq!(store.code(&d, secs(t0, 2)).await.unwrap(), Some(c), "a spent code can still be read");
    }
    assert!(matches!(store.consume_code(&digest(), &exchange(false), t0).await.unwrap(), ConsumeOutcome::Invalid));
    assert_eq!(store.code(&digest(), t0).await.unwrap(), None);
}

/// An unspent code past its expiry is invalid; a spent one is recognised as a replay until it is
/// no longer kept, and then it is gone.
pub async fn expired_codes_are_invalid_and_spent_ones_are_kept_until_keep_until(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    let (late, c) = (digest(), code(t0, None, Channel::Sms));
    store.create_code(&late, &c, secs(t0, 660)).await.unwrap();
    assert!(matches!(
        store.consume_code(&late, &exchange(false), secs(t0, 60)).await.unwrap(),
        ConsumeOutcome::Invalid
    ));
    assert!(
        matches!(store.consume_code(&late, &exchange(false), secs(t0, 61)).await.unwrap(), ConsumeOutcome::Invalid),
        "still unspent: no replay to report"
    );

    let (spent, c) = (digest(), code(t0, None, Channel::Sms));
    store.create_code(&spent, &c, secs(t0, 660)).await.unwrap();
    let first = exchange(true);
    assert!(matches!(store.consume_code(&spent, &first, secs(t0, 59)).await.unwrap(), ConsumeOutcome::Consumed(_)));
    match store.consume_code(&spent, &exchange(false), secs(t0, 659)).await.unwrap() {
        ConsumeOutcome::Replayed(got) => assert_same_exchange(&got, &first),
        other => panic!("a replay within the keep time: {other:?}"),
    }
    assert!(matches!(
        store.consume_code(&spent, &exchange(false), secs(t0, 660)).await.unwrap(),
        ConsumeOutcome::Invalid
    ));
    assert_eq!(store.code(&spent, secs(t0, 660)).await.unwrap(), None);
}

/// Of 20 concurrent uses of one code exactly one consumes it; all others see that one's exchange.
pub async fn concurrent_uses_of_one_code_consume_it_once(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    let d = digest();
    store.create_code(&d, &code(t0, None, Channel::Sms), secs(t0, 660)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.spawn(async move {
            let mine = exchange(true);
            (mine.clone(), store.consume_code(&d, &mine, secs(t0, 1)).await.unwrap())
        });
    }
    let mut winner = None;
    let mut replays = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (mine, ConsumeOutcome::Consumed(_)) => assert!(winner.replace(mine).is_none(), "consumed twice"),
            (_, ConsumeOutcome::Replayed(seen)) => replays.push(seen),
            (_, ConsumeOutcome::Invalid) => panic!("a live code was invalid"),
        }
    }
    let winner = winner.expect("one use consumed the code");
    assert_eq!(replays.len(), 19);
    for seen in &replays {
        assert_same_exchange(seen, &winner);
    }
}

/// Revoked ids are revoked until their `until`; revoking again never shortens it.
pub async fn revoked_ids_stay_revoked_until_their_time(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    let (a, b) = (random_base62(22), random_base62(22));
    assert!(!store.any_revoked(&[&a, &b], t0).await.unwrap());
    store.revoke_token_id(&a, secs(t0, 100), t0).await.unwrap();
    assert!(store.any_revoked(&[&b, &a], t0).await.unwrap());
    assert!(store.any_revoked(&[&a], secs(t0, 99)).await.unwrap());
    assert!(!store.any_revoked(&[&b], secs(t0, 50)).await.unwrap(), "only the revoked id");
    assert!(!store.any_revoked(&[], t0).await.unwrap());
    store.revoke_token_id(&a, secs(t0, 50), secs(t0, 10)).await.unwrap();
    assert!(store.any_revoked(&[&a], secs(t0, 99)).await.unwrap(), "an earlier until does not shorten it");
    store.revoke_token_id(&a, secs(t0, 300), secs(t0, 10)).await.unwrap();
    assert!(store.any_revoked(&[&a], secs(t0, 299)).await.unwrap(), "a later one extends it");
    assert!(!store.any_revoked(&[&a], secs(t0, 300)).await.unwrap());
}

/// Login sessions live until their expiry or until they are ended.
pub async fn login_sessions_live_until_they_expire_or_end(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    let (d, other) = (digest(), digest());
    let session = LoginSession {
        user_id: UserId::generate(),
        channel: Channel::Whatsapp,
        auth_time: t0,
        expires_at: secs(t0, 3600),
    };
    store.create_login_session(&d, &session).await.unwrap();
    assert_eq!(store.login_session(&d, secs(t0, 3599)).await.unwrap(), Some(session.clone()));
    assert_eq!(store.login_session(&d, secs(t0, 3600)).await.unwrap(), None, "expired");
    assert_eq!(store.login_session(&other, t0).await.unwrap(), None);
    assert!(!store.end_login_session(&other).await.unwrap());
    assert!(store.end_login_session(&d).await.unwrap());
    assert_eq!(store.login_session(&d, t0).await.unwrap(), None, "ended");
    assert!(!store.end_login_session(&d).await.unwrap());
}

/// Purging never removes anything still in force (what it removes is already invisible).
pub async fn purge_keeps_everything_in_force(store: Arc<dyn OidcStore>) {
    let t0 = t0();
    let (code_digest, session_digest, id) = (digest(), digest(), random_base62(22));
    let c = code(t0, None, Channel::Sms);
    store.create_code(&code_digest, &c, secs(t0, 660)).await.unwrap();
    let session =
        LoginSession { user_id: UserId::generate(), channel: Channel::Sms, auth_time: t0, expires_at: secs(t0, 3600) };
    store.create_login_session(&session_digest, &session).await.unwrap();
    store.revoke_token_id(&id, secs(t0, 900), t0).await.unwrap();
    store.purge_oidc(secs(t0, 600)).await.unwrap();
    assert_eq!(store.code(&code_digest, secs(t0, 600)).await.unwrap(), Some(c));
    assert!(store.login_session(&session_digest, secs(t0, 600)).await.unwrap().is_some());
    assert!(store.any_revoked(&[&id], secs(t0, 600)).await.unwrap());
    store.purge_oidc(secs(t0, 3600)).await.unwrap();
    assert_eq!(store.code(&code_digest, secs(t0, 3600)).await.unwrap(), None);
    assert!(store.login_session(&session_digest, secs(t0, 3600)).await.unwrap().is_none());
    assert!(!store.any_revoked(&[&id], secs(t0, 3600)).await.unwrap());
}

/// Writes one `#[tokio::test]` per contract check; `$make` is an async block that yields an
/// `Arc<dyn OidcStore>`. A backend that needs a server is written
/// `oidc_store_contract_tests!(ignore = "needs …: set OTPGATE_TEST_…", fresh())`: its tests are
/// `#[ignore]`d, so a plain `cargo test` reports them as ignored, never as passed.
#[macro_export]
macro_rules! oidc_store_contract_tests {
    (ignore = $reason:literal, $make:expr) => {
        $crate::oidc_store_contract_tests!(@all [#[ignore = $reason]] $make);
    };
    ($make:expr) => {
        $crate::oidc_store_contract_tests!(@all [] $make);
    };
    (@all $attrs:tt $make:expr) => {
        $crate::oidc_store_contract_tests!(@each $attrs $make;
            codes_are_single_use_and_remember_their_exchange,
            expired_codes_are_invalid_and_spent_ones_are_kept_until_keep_until,
            concurrent_uses_of_one_code_consume_it_once,
            revoked_ids_stay_revoked_until_their_time,
            login_sessions_live_until_they_expire_or_end,
            purge_keeps_everything_in_force,
        );
    };
    (@each $attrs:tt $make:expr; $($name:ident),* $(,)?) => {
        $( $crate::oidc_store_contract_tests!(@one $attrs $make, $name); )*
    };
    (@one [$($attr:tt)*] $make:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $($attr)*
        async fn $name() {
            let store: std::sync::Arc<dyn otpgate_core::oidc::OidcStore> = $make.await;
            $crate::contract::$name(store).await;
        }
    };
}
