//! The webhook provider: the payload and headers, every error kind, a timeout, a dropped
//! connection; and, asked for with `--include-ignored` and `OTPGATE_TEST_WEBHOOK_RECEIVER=1`
//! (after `npm ci` in `tests/webhook-receiver`; node and python3 on the PATH), verification by a
//! Node receiver using the `standardwebhooks` package, including a secret rotation, and by the
//! receivers docs/providers.md shows.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use otpgate_core::{Channel, Code, ProviderError, SmsProvider, Timestamp, VerificationId};
use otpgate_sms::webhook::signature;
use otpgate_sms::{Webhook, WebhookConfig, http};
use otpgate_test_support::service;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

/// Fake secrets (test values only): 24 and 32 bytes.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn webhook(url: &str, secrets: serde_json::Value) -> Webhook {
    let cfg: WebhookConfig = serde_json::from_value(merged(merged(json!({ "url": url }), secrets), limits())).unwrap();
    Webhook::new("gateway", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap()
}

fn key(secret: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap()
}

#[tokio::test]
async fn posts_the_documented_payload_signed_per_standard_webhooks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/otp"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let p = webhook(&format!("{}/otp", server.uri()), json!({ "secret": SECRET_A }));
    let mut m = msg("+14155550100", Channel::Sms, "012345");
    let id = VerificationId::generate();
    m.verification_id = Some(id.clone());
    m.expires_at = Some(Timestamp(1_795_946_520_999));
    let receipt = p.send(&m).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    let h = |name: &str| req.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let (wid, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    assert_eq!(receipt.provider_ref.as_deref(), Some(wid.as_str()), "the webhook-id is the reference");
    assert!(wid.starts_with("msg_") && !wid.contains('.'));
    assert_eq!(sig, signature(&key(SECRET_A), &wid, ts.parse().unwrap(), &req.body));
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "otp.message", "to": "+14155550100", "channel": "sms", "locale": "en",
            "text": m.text, "code": "012345", "verification_id": id.as_str(), "expires_at": "2026-11-29T10:02:00Z"
        })
    );
    // Exactly these keys, in this order.
    let text = String::from_utf8(req.body.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"type":"otp.message","to":"+14155550100","channel":"sms","locale":"en","text":"#),
        "{text}"
    );
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&server).await;
    let p = webhook(&server.uri(), json!({ "secret": SECRET_B, "previous_secret": SECRET_A }));
    p.send(&sms("123456")).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    let h = |name: &str| req.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let ts: i64 = h("webhook-timestamp").parse().unwrap();
    let sigs: Vec<String> = h("webhook-signature").split(' ').map(str::to_owned).collect();
    assert_eq!(
        sigs,
        [
            signature(&key(SECRET_B), &h("webhook-id"), ts, &req.body),
            signature(&key(SECRET_A), &h("webhook-id"), ts, &req.body)
        ]
    );
}

#[tokio::test]
async fn channels_are_the_configured_ones() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&server).await;
    let p = webhook(&server.uri(), json!({ "secret": SECRET_A, "channels": ["sms", "whatsapp"] }));
    assert!(p.supports(Channel::Whatsapp) && !p.supports(Channel::Call));
    p.send(&msg("+14155550100", Channel::Whatsapp, "123456")).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["channel"], "whatsapp");
    assert!(!webhook(&server.uri(), json!({ "secret": SECRET_A })).supports(Channel::Whatsapp), "sms only by default");
}

#[tokio::test]
async fn every_error_kind_maps_to_our_table() {
    use ProviderError::*;
    let down = Unavailable { retry_after: None };
    let kind = |status: u16, kind: &str, retry_after: Option<u64>| {
        let mut e = json!({ "kind": kind });
        if let Some(s) = retry_after {
            e["retry_after"] = json!(s);
        }
        ResponseTemplate::new(status).set_body_json(json!({ "error": e }))
    };
    // (answer, ours, tries, readiness must mention)
    let rows: Vec<(ResponseTemplate, ProviderError, usize, Option<&str>)> = vec![
        (kind(422, "invalid_phone", None), InvalidNumber, 1, None),
        (kind(422, "undeliverable", None), Undeliverable, 1, None),
        (kind(422, "unsupported_region", None), UnsupportedRegion, 1, None),
        (kind(429, "rate_limited", Some(60)), RateLimited { retry_after: Some(Duration::from_secs(60)) }, 1, None),
        (kind(500, "unavailable", Some(9)), Unavailable { retry_after: Some(Duration::from_secs(9)) }, 1, None),
        (kind(503, "unavailable", None), down.clone(), 3, None),
        (kind(400, "something_else", None), down.clone(), 1, None),
        (ResponseTemplate::new(500).set_body_string(VENDOR_TEXT), down.clone(), 1, None),
        (ResponseTemplate::new(302).insert_header("location", "https://elsewhere.example.com/"), down.clone(), 1, None),
        (ResponseTemplate::new(401), down.clone(), 1, Some("refused our signature (HTTP 401)")),
    ];
    let server = MockServer::start().await;
    for (i, (answer, expected, tries, readiness)) in rows.into_iter().enumerate() {
        server.reset().await;
        Mock::given(method("POST")).respond_with(answer).mount(&server).await;
        let p = webhook(&server.uri(), json!({ "secret": SECRET_A }));
        let err = p.send(&sms("123456")).await.unwrap_err();
        assert_eq!(err, expected, "row {i}");
        assert_no_leak(&err);
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), tries, "row {i}: tries");
        // Every try of one send carries the same webhook-id (an idempotency key).
        let ids: std::collections::HashSet<_> =
            reqs.iter().map(|r| r.headers.get("webhook-id").unwrap().clone()).collect();
        assert_eq!(ids.len(), 1, "row {i}");
        match readiness {
            Some(why) => assert!(p.readiness().await.unwrap_err().contains(why), "row {i}"),
            None => assert!(p.readiness().await.is_ok(), "row {i}"),
        }
    }
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_unavailable_and_not_repeated() {
    let down = ProviderError::Unavailable { retry_after: None };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let started = Instant::now();
    assert_eq!(webhook(&server.uri(), json!({ "secret": SECRET_A })).send(&sms("123456")).await.unwrap_err(), down);
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let fake = RawFake::start(|_| Action::Drop).await;
    assert_eq!(webhook(&fake.url, json!({ "secret": SECRET_A })).send(&sms("123456")).await.unwrap_err(), down);
    assert_eq!(fake.requests(), 1);
    assert_eq!(
        webhook(&closed_port_url(), json!({ "secret": SECRET_A })).send(&sms("123456")).await.unwrap_err(),
        down
    );
}

#[test]
fn bad_secrets_are_refused_at_start() {
    for secret in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ=", "whsec_!!"] {
        let cfg: WebhookConfig =
            serde_json::from_value(json!({ "url": "https://gw.example.com/otp", "secret": secret })).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("whsec_") && !e.contains(secret), "{e}");
    }
    let cfg: WebhookConfig =
        serde_json::from_value(json!({ "url": "http://gw.example.com/otp", "secret": SECRET_A })).unwrap();
    assert!(cfg.validate().unwrap_err().to_string().contains("https"));
}

/// The Node receiver, holding one secret; killed on drop.
struct Receiver {
    child: Child,
    url: String,
}

impl Receiver {
    fn start(secret: &str) -> Receiver {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook-receiver");
        let mut child = Command::new("node")
            .arg("receiver.mjs")
            .current_dir(dir)
            .env("WEBHOOK_SECRET", secret)
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs (installed by .ci/run)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("receiver printed {line:?}"));
        Receiver { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn received(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/received", self.url)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs the standardwebhooks receiver (node, npm ci in tests/webhook-receiver): set OTPGATE_TEST_WEBHOOK_RECEIVER=1"]
async fn a_standardwebhooks_receiver_verifies_us_through_a_rotation() {
    service("OTPGATE_TEST_WEBHOOK_RECEIVER");
    let (old, new) = (Receiver::start(SECRET_A), Receiver::start(SECRET_B));
    let mut m = msg("+14155550100", Channel::Sms, "024680");
    m.verification_id = Some(VerificationId::generate());
    // Before the rotation: the secret is A.
    webhook(&old.url, json!({ "secret": SECRET_A })).send(&m).await.expect("A verifies under A");
    // During: B signs, A still signs too; receivers holding either verify.
    let rotating = json!({ "secret": SECRET_B, "previous_secret": SECRET_A });
    webhook(&old.url, rotating.clone()).send(&m).await.expect("a receiver still on A verifies");
    webhook(&new.url, rotating).send(&m).await.expect("a receiver already on B verifies");
    // After: only B signs; a receiver left on A refuses, and we say why.
    let after = webhook(&old.url, json!({ "secret": SECRET_B }));
    assert_eq!(after.send(&m).await.unwrap_err(), ProviderError::Unavailable { retry_after: None });
    assert!(after.readiness().await.unwrap_err().contains("refused our signature"));
    webhook(&new.url, json!({ "secret": SECRET_B })).send(&m).await.expect("B verifies under B");

    let got = old.received().await;
    assert_eq!(got.len(), 2);
    let payload = &got[0]["payload"];
    assert_eq!(payload["type"], "otp.message");
    assert_eq!(payload["code"], "024680");
    assert_eq!(payload["to"], "+14155550100");
    assert_eq!(payload["verification_id"], m.verification_id.as_ref().unwrap().as_str());
    assert_eq!(new.received().await.len(), 2);
    assert!(Code::parse(payload["code"].as_str().unwrap(), 6).is_some());
}

/// A documented receiver snippet, started on a free port; killed on drop.
struct Snippet {
    child: Child,
    url: String,
}

impl Snippet {
    async fn start(program: &str, file: &str, secret: &str) -> Snippet {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program)
            .arg(file)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook-receiver"))
            .env("WEBHOOK_SECRET", secret)
            .env("PORT", port.to_string())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs (installed by .ci/run): {e}"));
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "{file} did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Snippet { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Snippet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The receivers docs/providers.md shows, as files the next test runs.
const DOCUMENTED_RECEIVERS: [(&str, &str); 2] = [("node", "docs-receiver.mjs"), ("python3", "docs_receiver.py")];

fn documented_receiver(file: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook-receiver/").to_owned() + file).unwrap()
}

#[test]
fn the_documented_receivers_are_shown_verbatim_and_short() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/providers.md")).unwrap();
    for (_, file) in DOCUMENTED_RECEIVERS {
        let text = documented_receiver(file);
        assert!(docs.contains(&text), "docs/providers.md shows {file} verbatim");
        assert!(text.lines().count() <= 20, "{file}: at most 20 lines");
    }
}

#[tokio::test]
#[ignore = "needs node, python3 and npm ci in tests/webhook-receiver: set OTPGATE_TEST_WEBHOOK_RECEIVER=1"]
async fn the_documented_receivers_verify_us() {
    service("OTPGATE_TEST_WEBHOOK_RECEIVER");
    for (program, file) in DOCUMENTED_RECEIVERS {
        let receiver = Snippet::start(program, file, SECRET_A).await;
        let m = msg("+14155550100", Channel::Sms, "135790");
        webhook(&receiver.url, json!({ "secret": SECRET_A }))
            .send(&m)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        webhook(&receiver.url, json!({ "secret": SECRET_B, "previous_secret": SECRET_A }))
            .send(&m)
            .await
            .unwrap_or_else(|e| panic!("{file} during a rotation: {e:?}"));
        let wrong = webhook(&receiver.url, json!({ "secret": SECRET_B }));
        assert_eq!(wrong.send(&m).await.unwrap_err(), ProviderError::Unavailable { retry_after: None }, "{file}");
        assert!(wrong.readiness().await.unwrap_err().contains("refused our signature"), "{file}");
    }
}
