//! Two otpgate instances on one Redis (hot) and one PostgreSQL (durable), as behind a load
//! balancer: a code sent through one is approved through the other, and limits and attempt caps
//! hold across both. Those tests need `OTPGATE_TEST_REDIS_URL` and `OTPGATE_TEST_DATABASE_URL`:
//! ignored unless asked for (`--include-ignored`), and failing when asked for without them. Each
//! has its own Redis key prefix and Postgres schema. Two instances on one SQLite file need nothing.

use std::time::Duration;

use crate::common::*;
use otpgate_core::verification::random_base62;
use otpgate_server::{Application, Overrides};
use otpgate_store::postgres::{PgOptions, PgStore};
use otpgate_test_support::service;
use secrecy::SecretString;

/// Points a configuration at one Redis (its own key prefix) and one PostgreSQL schema of its own
/// (created and migrated first; reached through search_path).
async fn shared_stores() -> impl Fn(&mut otpgate_server::Config) + Clone {
    let (redis, database) = (service("OTPGATE_TEST_REDIS_URL"), service("OTPGATE_TEST_DATABASE_URL"));
    let schema = format!("otpgate_test_{}", random_base62(12).to_lowercase());
    let options = PgOptions { schema: Some(schema.clone()), ..Default::default() };
    PgStore::connect(&database, options).await.expect("connect to OTPGATE_TEST_DATABASE_URL");
    let sep = if database.contains('?') { '&' } else { '?' };
    let durable = format!("{database}{sep}options=-c%20search_path%3D{schema}");
    let prefix = format!("otpgate-test:{}:", random_base62(12));
    move |c: &mut otpgate_server::Config| {
        c.store.hot = redis.parse().unwrap();
        c.store.durable = durable.parse().unwrap();
        c.store.redis_key_prefix = prefix.clone();
    }
}

/// Two apps sharing stores, HMAC key and signing keys.
async fn pair(extra: impl Fn(&mut otpgate_server::Config)) -> (TestApp, TestApp, tempfile::TempDir) {
    let stores = shared_stores().await;
    let shared = tempfile::tempdir().unwrap();
    let keys = shared.path().join("signing-keys.json");
    let configure = |c: &mut otpgate_server::Config| {
        stores(c);
        c.secrets.hmac_key = Some(SecretString::from("k".repeat(40)));
        c.sessions.keys_file = Some(keys.clone());
        extra(c);
    };
    let a = spawn_with(configure, Overrides::default()).await;
    let b = spawn_with(configure, Overrides::default()).await;
    (a, b, shared)
}

/// What `Application::build` answers for `config`: the start error's text, or `None` if it started.
async fn start_error(config: &otpgate_server::Config) -> Option<String> {
    Application::build(config, Overrides::default()).await.err().map(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn an_instance_with_another_hmac_key_refuses_to_start_on_shared_redis() {
    let stores = shared_stores().await;
    let with_key = |key: &str| {
        let (stores, key) = (stores.clone(), key.to_owned());
        move |c: &mut otpgate_server::Config| {
            stores(c);
            c.secrets.hmac_key = Some(SecretString::from(key.repeat(40)));
            // Without a SQLite file the default would be the working directory.
            c.sessions.keys_file = Some(std::env::temp_dir().join(format!("otpgate-test-{}.json", random_base62(12))));
        }
    };
    let _a = spawn_with(with_key("a"), Overrides::default()).await;
    let _same = spawn_with(with_key("a"), Overrides::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut other = test_config(&dir);
    with_key("b")(&mut other);
    other.sessions.keys_file = Some(dir.path().join("signing-keys.json"));
    let error = start_error(&other).await.expect("another key must not start");
    assert!(error.contains("secrets.hmac_key"), "{error}");
    assert!(!error.contains(&"b".repeat(40)) && !error.contains(&"a".repeat(40)), "no key in the message: {error}");
}

/// Two development instances in different directories, each generating its own HMAC key, on one
/// SQLite file: the second refuses to start; one that shares the first's key file starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_with_another_hmac_key_refuses_to_start_on_a_shared_sqlite_file() {
    let a = spawn_app().await;
    assert_eq!(a.send("+14155550145").await.status, 201);
    let elsewhere = tempfile::tempdir().unwrap();
    let mut other = a.config.clone();
    other.secrets.dev_hmac_key_file = Some(elsewhere.path().join("hmac-key"));
    let error = start_error(&other).await.expect("another key must not start");
    assert!(error.contains("secrets.hmac_key") && error.contains("adopt-hmac-key"), "{error}");
    assert!(start_error(&a.config).await.is_none(), "the same key file starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn a_code_sent_through_one_instance_is_approved_through_the_other() {
    let (a, b, _keep) = pair(|_| {}).await;
    let phone = "+14155550141";
    assert!((a.send(phone).await.status / 100) == 2);
    let code = a.inbox_code(phone).await;
    let reply = b.check(phone, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(a.check(phone, &code).await.error_code(), "verification_not_found", "single use across instances");
    assert_eq!(b.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn sends_spread_over_both_instances_share_the_phone_limit() {
    let (a, b, _keep) = pair(|_| {}).await;
    let phone = "+14155550142";
    // Each app has its own manual clock, started a few ms apart (like two hosts): a second
    // more than each cooldown covers that skew.
    let both = |d: Duration| {
        a.advance(d);
        b.advance(d);
    };
    assert!((a.send(phone).await.status / 100) == 2);
    both(Duration::from_secs(31));
    assert!((b.send(phone).await.status / 100) == 2, "resend after the cooldown");
    both(Duration::from_secs(61));
    let reply = a.send(phone).await;
    assert_eq!(reply.status / 100, 2, "{}", reply.text);
    both(Duration::from_secs(122));
    // Three sends within a few real seconds: the limit runs on Redis's clock, shared by both.
    let reply = b.send(phone).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn fifty_wrong_codes_spread_over_both_evaluate_at_most_five() {
    // The stores' own guarantee, with the check limits out of the way.
    let no_check_limits = |c: &mut otpgate_server::Config| {
        c.limits.phone_check_failures.count = 0;
        c.limits.ip_check.count = 0;
    };
    let (a, b, _keep) = pair(no_check_limits).await;
    let phone = "+14155550143";
    assert!((a.send(phone).await.status / 100) == 2);
    let code = a.inbox_code(phone).await;
    let counts = parallel_wrong_codes(&[&a, &b], phone, &code, 50).await;
    let (invalid, locked) = (counts.get("invalid_code").copied(), counts.get("too_many_attempts").copied());
    assert_eq!(counts.len(), 2, "unexpected answers: {counts:?}");
    assert_eq!((invalid, locked), (Some(4), Some(46)));
    assert_eq!(b.check(phone, &code).await.error_code(), "too_many_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn an_idempotent_retry_through_the_other_instance_replays_the_first_answer() {
    let (a, b, _keep) = pair(|_| {}).await;
    let phone = "+14155550144";
    let keyed = |app: &TestApp, key: &str| {
        app.client
            .post(app.url("/v1/verifications"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(serde_json::json!({ "phone": phone }).to_string())
    };
    let first = a.request(keyed(&a, "scale-out-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = b.request(keyed(&b, "scale-out-1")).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.text, first.text, "the first answer, byte for byte");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    // One message in all: sent by the first instance, none by the second.
    for (app, sent) in [(&a, 1), (&b, 0)] {
        let inbox = app.get(&format!("/dev/inbox?phone={}", phone.replace('+', "%2B"))).await;
        assert_eq!(inbox.json()["messages"].as_array().map(Vec::len), Some(sent), "{}", inbox.text);
    }
}

/// A refresh retried through the other instance (a lost answer behind a load balancer), 10 at
/// once over both: every answer is 200 with the same new tokens, and the chain lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn concurrent_refreshes_over_both_instances_get_one_session() {
    let (a, b, _keep) = pair(|_| {}).await;
    let phone = "+14155550146";
    assert!((a.send(phone).await.status / 100) == 2);
    let code = a.inbox_code(phone).await;
    let signed = b.check(phone, &code).await.json();
    let token = signed["session"]["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        let request =
            app.client.post(app.url("/v1/sessions/refresh")).json(&serde_json::json!({ "refresh_token": token }));
        tasks.spawn(async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
    }
    let mut sessions = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (status, text) = r.unwrap();
        assert_eq!(status, 200, "{text}");
        sessions.push(serde_json::from_str::<serde_json::Value>(&text).unwrap()["session"].clone());
    }
    assert!(sessions.iter().all(|s| *s == sessions[0]), "one session for all: {sessions:?}");
    let next = a
        .post_json("/v1/sessions/refresh", &serde_json::json!({ "refresh_token": sessions[0]["refresh_token"] }))
        .await;
    assert_eq!(next.status, 200, "{}", next.text);
}

/// Signs in through `app`; the session.
async fn sign_in(app: &TestApp, phone: &str) -> serde_json::Value {
    assert_eq!(app.send(phone).await.status / 100, 2);
    let code = app.inbox_code(phone).await;
    let r = app.check(phone, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["session"].clone()
}

/// Whether `app`'s `/.well-known/jwks.json` verifies `token`, and whether its `/v1/me` accepts it.
async fn accepted_by(app: &TestApp, token: &str) -> (bool, u16) {
    let jwks = app.get("/.well-known/jwks.json").await;
    let keys = otpgate_session::VerifyingKeys::from_jwks_json(&jwks.text).unwrap();
    let verified =
        otpgate_session::verify_access_token(token, &keys, "otpgate", "otpgate", std::time::SystemTime::now()).is_ok();
    let me = app.request(app.client.get(app.url("/v1/me")).bearer_auth(token)).await;
    (verified, me.status)
}

/// Two instances with their own signing-key files on one Redis and PostgreSQL: a token issued
/// through one verifies against the other's JWKS and is accepted by the other's `/v1/me`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL"]
async fn instances_with_their_own_signing_keys_accept_each_others_tokens() {
    let stores = shared_stores().await;
    let keys = tempfile::tempdir().unwrap();
    let configure = |name: &str| {
        let (stores, file) = (stores.clone(), keys.path().join(name));
        move |c: &mut otpgate_server::Config| {
            stores(c);
            c.secrets.hmac_key = Some(SecretString::from("k".repeat(40)));
            c.sessions.keys_file = Some(file);
        }
    };
    let a = spawn_with(configure("a.json"), Overrides::default()).await;
    let b = spawn_with(configure("b.json"), Overrides::default()).await;
    let from_a = sign_in(&a, "+14155550147").await;
    let from_b = sign_in(&b, "+14155550148").await;
    // Each app has its own manual clock, frozen at its spawn: when the two spawned in different
    // seconds, the later token is "not yet valid" by the earlier clock. Move both past that.
    a.advance(Duration::from_secs(5));
    b.advance(Duration::from_secs(5));
    for (app, session) in [(&b, &from_a), (&a, &from_b)] {
        assert_eq!(accepted_by(app, session["access_token"].as_str().unwrap()).await, (true, 200));
    }
}

/// The same on one SQLite file (two instances sharing the file and its HMAC key file, each with
/// its own signing keys), and after `otpgate keys rotate` of one instance's file: the rotated
/// instance's new tokens are accepted by the other at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_on_one_sqlite_file_share_their_signing_keys_across_a_rotation() {
    let a = spawn_app().await;
    let keys = tempfile::tempdir().unwrap();
    let db = a.config.store.hot.clone();
    let b = spawn_with(
        |c| {
            c.store.hot = db.clone();
            c.store.durable = db.as_str().parse().unwrap();
            c.secrets.dev_hmac_key_file = Some(a.dir.path().join("otpgate.db.hmac-key"));
            c.sessions.keys_file = Some(keys.path().join("b-signing-keys.json"));
        },
        Overrides::default(),
    )
    .await;
    let from_a = sign_in(&a, "+14155550149").await;
    assert_eq!(accepted_by(&b, from_a["access_token"].as_str().unwrap()).await, (true, 200));

    let before = a.config.keys_file();
    let rotated = otpgate_session::KeyRing::rotate_file(&before).unwrap();
    // A re-reads its key file within a couple of seconds; poll rather than assume.
    for _ in 0..50 {
        let jwks = a.get("/.well-known/jwks.json").await.json();
        if jwks["keys"][0]["kid"] == rotated.current().kid() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both clocks on (each app has its own manual clock; tokens are checked against it).
    a.advance(Duration::from_secs(120));
    b.advance(Duration::from_secs(120));
    let after = sign_in(&a, "+14155550149").await;
    let token = after["access_token"].as_str().unwrap();
    assert_eq!(accepted_by(&b, token).await.1, 200, "B accepts A's new key at once");
    assert_eq!(accepted_by(&b, from_a["access_token"].as_str().unwrap()).await.1, 200, "and the old one");
}
