//! `Idempotency-Key` on `POST /v1/verifications`, over HTTP against the SQLite store.

use std::time::Duration;

use crate::common::*;
use otpgate_core::ProviderError;
use serde_json::{Value, json};
use tokio::task::JoinSet;

const PHONE: &str = "+14155550142";

async fn send_keyed(app: &TestApp, key: &str, body: &Value) -> Reply {
    app.request(
        app.client
            .post(app.url("/v1/verifications"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn the_same_key_twice_sends_once_and_answers_the_same() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let first = send_keyed(&app, "key-1", &json!({ "phone": PHONE })).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);

    // Same request, written differently (national spacing, explicit default channel).
    app.advance(Duration::from_secs(40));
    let again = send_keyed(&app, "key-1", &json!({ "phone": "+1 415 555 0142", "channel": "sms" })).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.text, first.text, "the first answer, byte for byte");
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_ne!(again.header("x-request-id"), first.header("x-request-id"), "request ids stay per request");
    assert_eq!(provider.calls(), 1);

    // Without the key the same request is a resend (the cooldown has passed).
    let resend = app.send(PHONE).await;
    assert_eq!(resend.status, 200, "{}", resend.text);
    assert_eq!(provider.calls(), 2);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    assert_eq!(send_keyed(&app, "key-2", &json!({ "phone": PHONE })).await.status, 201);
    for other in [json!({ "phone": "+14155550143" }), json!({ "phone": PHONE, "locale": "fr" })] {
        let r = send_keyed(&app, "key-2", &other).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.error_code(), "invalid_request");
        assert!(r.json()["error"].get("field").is_none(), "{}", r.text);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("Idempotency-Key"));
    }
    assert_eq!(provider.calls(), 1);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = spawn_app().await;
    for key in ["", &"k".repeat(256)] {
        let r = send_keyed(&app, key, &json!({ "phone": PHONE })).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.error_code(), "invalid_request");
    }
    let ok = send_keyed(&app, &"k".repeat(255), &json!({ "phone": PHONE })).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_duplicates_send_once() {
    let provider = FakeProvider::new(FakeBehaviour::Delay(Duration::from_millis(300)));
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/v1/verifications"));
        tasks.spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", "key-3")
                .body(format!(r#"{{"phone":"{PHONE}"}}"#))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    assert_eq!(provider.calls(), 1, "exactly one message");
    assert!(answers.iter().all(|a| a == &answers[0]), "identical answers: {answers:?}");
    assert_eq!(answers[0].0, 201);
}

#[tokio::test]
async fn a_failed_send_releases_the_key() {
    let provider = FakeProvider::new(FakeBehaviour::Fail(ProviderError::Unavailable { retry_after: None }));
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let failed = send_keyed(&app, "key-4", &json!({ "phone": PHONE })).await;
    assert_eq!(failed.status, 503, "{}", failed.text);
    provider.set(FakeBehaviour::Deliver);
    let retried = send_keyed(&app, "key-4", &json!({ "phone": PHONE })).await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert_eq!(provider.calls(), 2);
    assert_eq!(provider.sent.lock().unwrap().len(), 1, "one message went out");
}

#[tokio::test]
async fn a_key_is_forgotten_after_24_hours() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let first = send_keyed(&app, "key-5", &json!({ "phone": PHONE })).await;
    assert_eq!(first.status, 201);
    app.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(send_keyed(&app, "key-5", &json!({ "phone": PHONE })).await.text, first.text);
    assert_eq!(provider.calls(), 1);

    app.advance(Duration::from_secs(1));
    let later = send_keyed(&app, "key-5", &json!({ "phone": PHONE })).await;
    assert_eq!(later.status, 201, "{}", later.text);
    assert_eq!(later.header("idempotent-replayed"), None);
    assert_ne!(later.json()["id"], first.json()["id"], "a new verification");
    assert_eq!(provider.calls(), 2);
    // And a different request may use the key now.
    app.advance(Duration::from_secs(24 * 3600));
    let other = send_keyed(&app, "key-5", &json!({ "phone": "+14155550143" })).await;
    assert_eq!(other.status, 201, "{}", other.text);
}
