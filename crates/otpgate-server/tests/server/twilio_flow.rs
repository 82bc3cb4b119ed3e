//! The server with real Twilio providers pointed at a fake Twilio (wiremock): Verify's
//! provider-held codes with our own attempt cap in front, Messaging with signed delivery receipts,
//! and Twilio's words never reaching a response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::common::*;
use otpgate_server::config::ProviderKind;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PHONE: &str = "+14155550188";
const FAKE_VA: &str = "VA00000000000000000000000000000000"; // fake test SID
const FAKE_VE: &str = "VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; // fake test SID
const TWILIO_TEXT: &str = "Twilio wording that must never reach a user";
const CALLBACK_URL: &str = "https://otp.example.com/v1/sms/status";
const AUTH_TOKEN: &str = "fake-auth-token-for-tests";

fn twilio_config(base: &str) -> otpgate_sms::TwilioConfig {
    serde_json::from_value(json!({
        "account_sid": "AC00000000000000000000000000000000", // fake test SID
        "auth_token": AUTH_TOKEN,
        "verify": { "service_sid": FAKE_VA, "base_url": base },
        "messaging": { "from": "+15005550006", "status_callback_url": CALLBACK_URL, "base_url": base },
        "http": { "connect_timeout_ms": 200, "request_timeout_ms": 500 },
        "retry": { "max_retries": 1, "min_delay_ms": 10, "max_delay_ms": 20, "deadline_ms": 1000 },
    }))
    .unwrap()
}

async fn app_with(kind: ProviderKind, twilio: &MockServer) -> TestApp {
    let base = twilio.uri();
    spawn_with(
        move |c| {
            c.provider.kind = Some(kind);
            c.provider.twilio = Some(twilio_config(&base));
        },
        Default::default(),
    )
    .await
}

fn verification(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "sid": FAKE_VE, "status": status, "channel": "sms" }))
}

/// A fake Verify service that starts verifications (checks and cancels are mounted per test).
async fn verify_service() -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/Verifications")))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": FAKE_VE, "status": "pending" })))
        .mount(&twilio)
        .await;
    twilio
}

async fn calls_to(server: &MockServer, suffix: &str) -> usize {
    server.received_requests().await.unwrap().iter().filter(|r| r.url.path().ends_with(suffix)).count()
}

#[tokio::test]
async fn verify_flow_checks_at_twilio_behind_our_own_attempt_cap() {
    let twilio = verify_service().await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/VerificationCheck")))
        .and(body_string_contains("Code=111111"))
        .respond_with(verification("approved"))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/VerificationCheck")))
        .respond_with(verification("pending"))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/Verifications/{FAKE_VE}")))
        .respond_with(verification("canceled"))
        .mount(&twilio)
        .await;
    let app = app_with(ProviderKind::TwilioVerify, &twilio).await;

    let sent = app.send(PHONE).await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    assert_eq!(calls_to(&twilio, "/Verifications").await, 1);
    let wrong = app.check(PHONE, "222222").await;
    assert_eq!((wrong.status, wrong.error_code().as_str()), (422, "invalid_code"));
    assert_eq!(wrong.json()["error"]["attempts_left"], 4);
    let ok = app.check(PHONE, "111111").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.json()["session"]["access_token"].is_string());
    assert_eq!(calls_to(&twilio, "/VerificationCheck").await, 2);

    // A brute force: our cap stops it; Twilio sees at most the 5 counted attempts.
    app.advance(std::time::Duration::from_secs(60));
    let other = "+14155550189";
    assert_eq!(app.send(other).await.status, 201);
    let before = calls_to(&twilio, "/VerificationCheck").await;
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(app.check(other, &format!("{:06}", 300_000 + i)).await.error_code());
    }
    assert_eq!(&codes[..4], ["invalid_code"; 4]);
    assert!(codes[4..].iter().all(|c| c == "too_many_attempts"), "{codes:?}");
    assert_eq!(calls_to(&twilio, "/VerificationCheck").await - before, 5, "never past our cap");
    assert_eq!(app.check(other, "111111").await.error_code(), "too_many_attempts", "right code after lockout");
    assert!(
        calls_to(&twilio, &format!("/Verifications/{FAKE_VE}")).await >= 1,
        "the dead verification was cancelled at Twilio"
    );
}

/// A Verify service that keeps state like Twilio's: each start makes a new verification whose
/// code is `RIGHT_CODE`; a check of the right code approves it once, and afterwards (as after a
/// cancel) Twilio no longer knows it: 404 with code 20404. Wrong codes answer `pending`.
/// An approval is answered a little later than a 404 (it writes, a 404 only looks up), so a
/// wrong check that arrives just after the approval gets its 404 back first.
#[derive(Clone, Default)]
struct StatefulVerify(Arc<Mutex<HashMap<String, &'static str>>>);

const RIGHT_CODE: &str = "481516";

impl StatefulVerify {
    async fn start() -> MockServer {
        let twilio = MockServer::start().await;
        Mock::given(method("POST")).respond_with(StatefulVerify::default()).mount(&twilio).await;
        twilio
    }
}

impl Respond for StatefulVerify {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut url = request.url.clone();
        url.set_query(Some(&String::from_utf8_lossy(&request.body)));
        let form: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let mut verifications = self.0.lock().unwrap();
        let not_found = || {
            ResponseTemplate::new(404).set_body_json(json!({
                "code": 20404, "message": "The requested resource was not found", "status": 404
            }))
        };
        let path = request.url.path();
        if path.ends_with("/Verifications") {
            let sid = format!("VE{:032x}", verifications.len() + 1); // fake test SID
            verifications.insert(sid.clone(), "pending");
            return ResponseTemplate::new(201).set_body_json(json!({ "sid": sid, "status": "pending" }));
        }
        let sid = form.get("VerificationSid").cloned().or_else(|| path.rsplit('/').next().map(str::to_owned));
        let Some(status) = sid.as_ref().and_then(|sid| verifications.get_mut(sid)) else { return not_found() };
        if *status != "pending" {
            return not_found();
        }
        if path.ends_with("/VerificationCheck") {
            if form.get("Code").map(String::as_str) == Some(RIGHT_CODE) {
                *status = "approved";
                return ResponseTemplate::new(200)
                    .set_body_json(json!({ "sid": sid, "status": "approved" }))
                    .set_delay(std::time::Duration::from_millis(40));
            }
            return ResponseTemplate::new(200).set_body_json(json!({ "sid": sid, "status": "pending" }));
        }
        *status = "canceled";
        ResponseTemplate::new(200).set_body_json(json!({ "sid": sid, "status": "canceled" }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_at_twilio_verify_approve_the_right_code_once_with_a_session() {
    let twilio = StatefulVerify::start().await;
    let base = twilio.uri();
    let app = spawn_with(
        move |c| {
            no_limits(c);
            c.provider.kind = Some(ProviderKind::TwilioVerify);
            c.provider.twilio = Some(twilio_config(&base));
        },
        Default::default(),
    )
    .await;
    for trial in 0..50 {
        let phone = format!("+1415555{:04}", 3000 + trial);
        let sent = app.send(&phone).await;
        assert_eq!(sent.status, 201, "{}", sent.text);
        // One right code and three wrong ones at once: within the cap of 5 attempts.
        let mut checks = tokio::task::JoinSet::new();
        for code in [RIGHT_CODE, "111111", "222222", "333333"] {
            let req =
                app.client.post(app.url("/v1/verifications/check")).json(&json!({ "phone": phone, "code": code }));
            checks.spawn(async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
            });
        }
        let mut answers = Vec::new();
        while let Some(answer) = checks.join_next().await {
            answers.push(answer.unwrap());
        }
        let approved: Vec<_> = answers.iter().filter(|(status, _)| *status == 200).collect();
        assert_eq!(approved.len(), 1, "trial {trial}: exactly one approval: {answers:?}");
        assert!(approved[0].1["session"]["access_token"].is_string(), "trial {trial}: with a session");
        for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(["invalid_code", "verification_not_found"].contains(&code), "trial {trial}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn cancel_reaches_twilio_verify() {
    let twilio = verify_service().await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/Verifications/{FAKE_VE}")))
        .and(body_string_contains("Status=canceled"))
        .respond_with(verification("canceled"))
        .expect(1)
        .mount(&twilio)
        .await;
    let app = app_with(ProviderKind::TwilioVerify, &twilio).await;
    let id = app.send(PHONE).await.json()["id"].as_str().unwrap().to_owned();
    let r = app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn twilio_errors_map_to_the_table_without_their_words() {
    let twilio = MockServer::start().await;
    for (code, status) in [(21211u32, 400u16), (21610, 400), (60410, 403), (20003, 401)] {
        twilio.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "code": code, "message": TWILIO_TEXT, "more_info": "https://www.twilio.com/docs/errors", "status": status
            })))
            .mount(&twilio)
            .await;
        let app = app_with(ProviderKind::TwilioMessaging, &twilio).await;
        let r = app.send(PHONE).await;
        let expected = match code {
            21211 => "invalid_phone",
            21610 => "undeliverable",
            60410 => "unsupported_region",
            _ => "provider_unavailable",
        };
        assert_eq!(r.error_code(), expected, "Twilio {code}: {}", r.text);
        assert!(!r.text.contains(TWILIO_TEXT) && !r.text.contains(&code.to_string()), "{}", r.text);
        assert_eq!(app.check(PHONE, "123456").await.error_code(), "verification_not_found", "nothing usable left");
    }
}

fn sign(params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(AUTH_TOKEN.as_bytes()).unwrap();
    mac.update(CALLBACK_URL.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn delivery_receipts_must_be_signed() {
    let twilio = MockServer::start().await;
    let app = app_with(ProviderKind::TwilioMessaging, &twilio).await;
    let params = [
        ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("MessageStatus", "undelivered"),
        ("To", PHONE),
        ("ErrorCode", "30003"),
    ];
    let body = params.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B"))).collect::<Vec<_>>().join("&");
    let post = |signature: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/v1/sms/status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("x-twilio-signature", s);
        }
        app.request(req)
    };
    assert_eq!(post(Some(sign(&params))).await.status, 204);
    let unsigned = post(None).await;
    assert_eq!((unsigned.status, unsigned.error_code().as_str()), (401, "unauthorized"));
    let forged = post(Some(sign(&[("MessageStatus", "delivered")]))).await;
    assert_eq!(forged.status, 401);
}

#[tokio::test]
async fn status_callbacks_are_off_without_configuration() {
    let app = spawn_app().await;
    let r = app.post_raw("/v1/sms/status", "application/x-www-form-urlencoded", "MessageStatus=delivered").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn readiness_reports_rejected_credentials() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "code": 20003, "message": TWILIO_TEXT, "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401
        })))
        .mount(&twilio)
        .await;
    let app = app_with(ProviderKind::TwilioMessaging, &twilio).await;
    assert_eq!(app.get("/readyz").await.status, 200);
    assert_eq!(app.send(PHONE).await.error_code(), "provider_unavailable");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.text.contains("credentials"), "{}", ready.text);
    assert!(!ready.text.contains(AUTH_TOKEN) && !ready.text.contains(TWILIO_TEXT));
}
