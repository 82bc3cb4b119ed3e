//! Sessions over HTTP: what a check issues, `/v1/me`, refresh rotation with theft detection,
//! revoke, erasure, and key rotation without logging anyone out.

use std::time::Duration;

use crate::common::*;
use otpgate_session::{KeyRing, VerifyingKeys, verify_access_token};
use serde_json::{Value, json};

const PHONE: &str = "+14155550142";

async fn sign_in(app: &TestApp, phone: &str) -> Value {
    assert_eq!(app.send(phone).await.status, 201);
    let code = app.inbox_code(phone).await;
    let r = app.check(phone, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn me(app: &TestApp, token: &str) -> Reply {
    app.request(app.client.get(app.url("/v1/me")).bearer_auth(token)).await
}

async fn refresh(app: &TestApp, token: &str) -> Reply {
    app.post_json("/v1/sessions/refresh", &json!({ "refresh_token": token })).await
}

#[tokio::test]
async fn check_issues_a_verifiable_session_and_a_stable_user() {
    let app = spawn_app().await;
    let first = sign_in(&app, PHONE).await;
    assert_eq!(first["status"], "approved");
    assert_eq!(first["user"]["phone"], PHONE);
    assert_eq!(first["user"]["created"], true);
    let session = &first["session"];
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert_eq!(session["refresh_expires_in"], 2_592_000);
    assert!(session["refresh_token"].as_str().unwrap().starts_with("rt_"));

    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    let keys = VerifyingKeys::from_jwks_json(&jwks.text).unwrap();
    let claims = verify_access_token(
        session["access_token"].as_str().unwrap(),
        &keys,
        "otpgate",
        "otpgate",
        std::time::SystemTime::now(),
    )
    .expect("the access token verifies against the published JWKS");
    assert_eq!(claims.sub, first["user"]["id"].as_str().unwrap());
    assert_eq!(claims.phone_number, PHONE);

    app.advance(Duration::from_secs(120));
    let second = sign_in(&app, PHONE).await;
    assert_eq!(second["user"]["created"], false);
    assert_eq!(second["user"]["id"], first["user"]["id"], "one user per phone");
}

#[tokio::test]
async fn me_needs_a_valid_bearer_token() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let token = signed["session"]["access_token"].as_str().unwrap();
    let r = me(&app, token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["phone"], PHONE);
    assert_eq!(r.json()["id"], signed["user"]["id"]);

    let anonymous = app.get("/v1/me").await;
    assert_eq!((anonymous.status, anonymous.error_code().as_str()), (401, "unauthorized"));
    let mut tampered = token.to_owned();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in ["junk", tampered.as_str(), signed["session"]["refresh_token"].as_str().unwrap()] {
        let r = me(&app, bad).await;
        assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"), "{bad}");
    }
    // Access tokens expire after 15 minutes.
    app.advance(Duration::from_secs(900));
    assert_eq!(me(&app, token).await.status, 401);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_chain() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let first = signed["session"]["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(&app, &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.json()["session"]["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(me(&app, r.json()["session"]["access_token"].as_str().unwrap()).await.status, 200);

    // Past the reuse grace (10 s), a spent token is stolen: its chain ends.
    app.advance(Duration::from_secs(10));
    let reuse = refresh(&app, &first).await;
    assert_eq!((reuse.status, reuse.error_code().as_str()), (401, "unauthorized"));
    let after_theft = refresh(&app, &second).await;
    assert_eq!(after_theft.status, 401, "reuse of a spent token revoked the newer one too");
}

/// `n` refreshes with one token at once; every answer.
async fn parallel_refreshes(apps: &[&TestApp], token: &str, n: usize) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = apps[i % apps.len()];
        let request = app.client.post(app.url("/v1/sessions/refresh")).json(&json!({ "refresh_token": token }));
        tasks.spawn(async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            Reply { status, headers, text: r.text().await.unwrap() }
        });
    }
    let mut replies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        replies.push(r.unwrap());
    }
    replies
}

/// What a lost answer, two tabs or a retrying page do: the same refresh token 2 and 10 times at
/// once. Every request gets 200 and the same new tokens, and the chain lives on.
#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_the_same_session() {
    let app = spawn_app().await;
    for (phone, n) in [("+14155550143", 2), ("+14155550144", 10)] {
        let signed = sign_in(&app, phone).await;
        let token = signed["session"]["refresh_token"].as_str().unwrap().to_owned();
        let replies = parallel_refreshes(&[&app], &token, n).await;
        assert!(
            replies.iter().all(|r| r.status == 200),
            "{n}: {:?}",
            replies.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
        let sessions: Vec<Value> = replies.iter().map(|r| r.json()["session"].clone()).collect();
        assert!(sessions.iter().all(|s| *s == sessions[0]), "{n}: the same access and refresh token for all");
        assert_ne!(sessions[0]["refresh_token"], token.as_str());
        assert_eq!(me(&app, sessions[0]["access_token"].as_str().unwrap()).await.status, 200);
        assert_eq!(refresh(&app, sessions[0]["refresh_token"].as_str().unwrap()).await.status, 200, "{n}: lives on");
    }
}

/// After the grace a repeat is reuse, and the grace never revives a chain that was signed out or
/// whose user was erased.
#[tokio::test]
async fn the_reuse_grace_ends_and_never_extends_a_dead_chain() {
    let app = spawn_app().await;
    let token = |v: &Value| v["session"]["refresh_token"].as_str().unwrap().to_owned();
    let first = token(&sign_in(&app, PHONE).await);
    let next = refresh(&app, &first).await;
    app.advance(Duration::from_secs(9));
    assert_eq!(refresh(&app, &first).await.text, next.text, "within the grace: the same answer");
    app.advance(Duration::from_secs(1));
    assert_eq!(refresh(&app, &first).await.status, 401, "past it: reuse");
    assert_eq!(refresh(&app, &token(&next.json())).await.status, 401, "and the chain is revoked");

    // Signed out right after a refresh: the spent token gets nothing within the grace.
    app.advance(Duration::from_secs(120));
    let first = token(&sign_in(&app, PHONE).await);
    let next = token(&refresh(&app, &first).await.json());
    assert_eq!(app.post_json("/v1/sessions/revoke", &json!({ "refresh_token": next })).await.status, 204);
    assert_eq!(refresh(&app, &first).await.status, 401, "revoked");

    // Erased right after a refresh: nothing either.
    app.advance(Duration::from_secs(120));
    let signed = sign_in(&app, PHONE).await;
    let next = refresh(&app, &token(&signed)).await.json();
    let access = next["session"]["access_token"].as_str().unwrap();
    assert_eq!(app.request(app.client.delete(app.url("/v1/me")).bearer_auth(access)).await.status, 204);
    assert_eq!(refresh(&app, &token(&signed)).await.status, 401, "deleted");
}

#[tokio::test]
async fn the_reuse_grace_is_configurable_and_bounded() {
    let app = spawn_with(|c| c.sessions.refresh_reuse_grace_secs = 0, Default::default()).await;
    let first = sign_in(&app, PHONE).await["session"]["refresh_token"].as_str().unwrap().to_owned();
    let next = refresh(&app, &first).await.json();
    assert_eq!(refresh(&app, &first).await.status, 401, "0 switches the grace off");
    assert_eq!(refresh(&app, next["session"]["refresh_token"].as_str().unwrap()).await.status, 401, "revoked");
    let mut config = otpgate_server::Config::default();
    config.sessions.refresh_reuse_grace_secs = 61;
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("sessions.refresh_reuse_grace_secs"), "{e}");
}

#[tokio::test]
async fn revoke_signs_out() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let token = signed["session"]["refresh_token"].as_str().unwrap();
    let r = app.post_json("/v1/sessions/revoke", &json!({ "refresh_token": token })).await;
    assert_eq!(r.status, 204);
    assert_eq!(refresh(&app, token).await.status, 401);
    let unknown = app.post_json("/v1/sessions/revoke", &json!({ "refresh_token": "rt_unknown" })).await;
    assert_eq!(unknown.status, 204);
    let bad = app.post_json("/v1/sessions/revoke", &json!({ "token": token })).await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "invalid_request"));
}

#[tokio::test]
async fn delete_me_erases_the_user_and_stops_their_tokens() {
    let app = spawn_app().await;
    let signed = sign_in(&app, PHONE).await;
    let access = signed["session"]["access_token"].as_str().unwrap();
    let r = app.request(app.client.delete(app.url("/v1/me")).bearer_auth(access)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(me(&app, access).await.status, 401);
    assert_eq!(refresh(&app, signed["session"]["refresh_token"].as_str().unwrap()).await.status, 401);
    app.advance(Duration::from_secs(120));
    let again = sign_in(&app, PHONE).await;
    assert_eq!(again["user"]["created"], true);
    assert_ne!(again["user"]["id"], signed["user"]["id"]);
}

#[tokio::test]
async fn sessions_can_be_disabled() {
    let app = spawn_with(|c| c.sessions.enabled = false, Default::default()).await;
    let body = sign_in(&app, PHONE).await;
    assert_eq!(body["status"], "approved");
    assert!(body.get("session").is_none() && body.get("user").is_none());
    assert_eq!(app.get("/.well-known/jwks.json").await.status, 404);
}

#[tokio::test]
async fn key_rotation_keeps_existing_tokens_valid() {
    let app = spawn_app().await;
    let before = sign_in(&app, PHONE).await;
    let old_token = before["session"]["access_token"].as_str().unwrap().to_owned();
    let keys_file = app.config.keys_file();
    KeyRing::rotate_file(&keys_file).unwrap();
    // The server re-reads the file within a couple of seconds; poll rather than assume.
    let mut published = 0;
    for _ in 0..50 {
        let jwks: Value = app.get("/.well-known/jwks.json").await.json();
        published = jwks["keys"].as_array().unwrap().len();
        if published == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(published, 2, "current and previous key are published");
    assert_eq!(me(&app, &old_token).await.status, 200, "a token signed with the previous key still works");
    app.advance(Duration::from_secs(120));
    let after = sign_in(&app, PHONE).await;
    let header = |t: &str| -> Value {
        use base64::Engine;
        let part = t.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_ne!(header(&old_token)["kid"], header(after["session"]["access_token"].as_str().unwrap())["kid"]);
}
