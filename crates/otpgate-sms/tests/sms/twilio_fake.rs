//! The Twilio providers against a fake Twilio over real HTTP (wiremock): request shapes, every
//! row of the error table, timeouts, retries, the breaker and failover. All SIDs are fake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use otpgate_core::provider::ProviderCheck;
use otpgate_core::{Channel, Clock, Code, ManualClock, OutgoingCode, PhoneNumber, ProviderError, SmsProvider};
use otpgate_sms::{TwilioConfig, TwilioMessaging, TwilioVerify, http};
use serde_json::json;
use wiremock::matchers::{basic_auth, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FAKE_AC: &str = "AC00000000000000000000000000000000"; // fake test SID
const FAKE_SK: &str = "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; // fake test SID
const FAKE_VA: &str = "VA00000000000000000000000000000000"; // fake test SID
const FAKE_VE: &str = "VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; // fake test SID
const FAKE_SM: &str = "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; // fake test SID
const VERIFICATIONS: &str = "/v2/Services/VA00000000000000000000000000000000/Verifications"; // fake test SID
const CHECK: &str = "/v2/Services/VA00000000000000000000000000000000/VerificationCheck"; // fake test SID
const MESSAGES: &str = "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"; // fake test SID

/// Twilio's words: they must reach the log only, never a returned error.
const TWILIO_TEXT: &str = "Twilio internal wording that must not leak";

/// Short timeouts so failure tests finish fast: 300 ms per request, 800 ms per call.
fn config(base: &str) -> TwilioConfig {
    serde_json::from_value(json!({
        "account_sid": FAKE_AC,
        "api_key_sid": FAKE_SK,
        "api_key_secret": "fake-secret",
        "auth_token": "fake-token",
        "verify": { "service_sid": FAKE_VA, "channels": ["sms", "whatsapp", "call"], "base_url": base },
        "messaging": { "from": "+15005550006", "status_callback_url": "https://otp.example.com/v1/sms/status", "base_url": base },
        "http": { "connect_timeout_ms": 200, "request_timeout_ms": 300 },
        "retry": { "max_retries": 2, "min_delay_ms": 10, "max_delay_ms": 40, "deadline_ms": 800 },
        "breaker": { "failure_threshold": 3, "open_secs": 30 }
    }))
    .unwrap()
}

fn clock() -> ManualClock {
    ManualClock::starting_now()
}

fn verify(base: &str, clock: &ManualClock) -> TwilioVerify {
    let cfg = config(base);
    TwilioVerify::new(&cfg, http::build_client(&cfg.http).unwrap(), Arc::new(clock.clone()) as Arc<dyn Clock>).unwrap()
}

fn messaging(base: &str, clock: &ManualClock) -> TwilioMessaging {
    let cfg = config(base);
    TwilioMessaging::new(&cfg, http::build_client(&cfg.http).unwrap(), Arc::new(clock.clone())).unwrap()
}

fn msg(channel: Channel) -> OutgoingCode {
    OutgoingCode {
        to: PhoneNumber::parse("+14155550100", None).unwrap(),
        code: Code::parse("123456", 6).unwrap(),
        channel,
        locale: Some("en".into()),
        text: "123456 is your Acme verification code.\n\n@example.com #123456".into(),
        verification_id: None,
        expires_at: None,
    }
}

fn twilio_error(status: u16, code: u32) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": TWILIO_TEXT, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status
    }))
}

fn created_verification() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({ "sid": FAKE_VE, "status": "pending", "channel": "sms" }))
}

fn created_message() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({ "sid": FAKE_SM, "status": "queued" }))
}

fn assert_no_leak(err: &ProviderError) {
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(TWILIO_TEXT) && !shown.contains("twilio.com"), "leaked: {shown}");
    }
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn verify_start_posts_the_documented_form_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(VERIFICATIONS))
        .and(basic_auth(FAKE_SK, "fake-secret"))
        .and(body_string_contains("To=%2B14155550100"))
        .and(body_string_contains("Channel=whatsapp"))
        .and(body_string_contains("Locale=en"))
        .respond_with(created_verification())
        .expect(1)
        .mount(&server)
        .await;
    let p = verify(&server.uri(), &clock());
    let receipt = p.send(&msg(Channel::Whatsapp)).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some(FAKE_VE));
    assert!(receipt.provider_checks, "Verify holds the code");
}

#[tokio::test]
async fn verify_check_outcomes() {
    let server = MockServer::start().await;
    let p = verify(&server.uri(), &clock());
    let m = msg(Channel::Sms);
    let cases = [
        (
            ResponseTemplate::new(200).set_body_json(json!({ "sid": FAKE_VE, "status": "approved", "valid": true })),
            ProviderCheck::Approved,
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({ "sid": FAKE_VE, "status": "pending", "valid": false })),
            ProviderCheck::Wrong,
        ),
        (twilio_error(429, 60202), ProviderCheck::TooManyAttempts),
        (twilio_error(404, 20404), ProviderCheck::NotFound),
    ];
    for (answer, expected) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(CHECK))
            .and(body_string_contains(format!("VerificationSid={FAKE_VE}")))
            .and(body_string_contains("Code=123456"))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(p.check(FAKE_VE, &m.to, &m.code).await.unwrap(), expected);
        server.verify().await;
    }
    // A ref that is not a VerificationSid never reaches Twilio.
    server.reset().await;
    assert_eq!(p.check("VE/../../x", &m.to, &m.code).await.unwrap(), ProviderCheck::NotFound);
    assert_eq!(requests(&server).await, 0);
}

#[tokio::test]
async fn verify_cancel_posts_canceled_and_ignores_gone_verifications() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{VERIFICATIONS}/{FAKE_VE}")))
        .and(body_string_contains("Status=canceled"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "sid": FAKE_VE, "status": "canceled" })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(twilio_error(404, 20404)).mount(&server).await;
    let p = verify(&server.uri(), &clock());
    p.cancel(FAKE_VE).await.unwrap();
    p.cancel(FAKE_VE).await.unwrap();
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn messaging_posts_body_sender_and_status_callback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(basic_auth(FAKE_SK, "fake-secret"))
        .and(body_string_contains("To=%2B14155550100"))
        .and(body_string_contains("From=%2B15005550006"))
        .and(body_string_contains("Body=123456+is+your+Acme+verification+code."))
        .and(body_string_contains("%40example.com+%23123456"))
        .and(body_string_contains("StatusCallback=https%3A%2F%2Fotp.example.com%2Fv1%2Fsms%2Fstatus"))
        .respond_with(created_message())
        .expect(1)
        .mount(&server)
        .await;
    let p = messaging(&server.uri(), &clock());
    assert!(!p.supports(Channel::Call));
    let receipt = p.send(&msg(Channel::Sms)).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some(FAKE_SM));
    assert!(!receipt.provider_checks);
}

/// Every row of the error table, through both providers, with Twilio's text kept out.
#[tokio::test]
async fn every_twilio_error_maps_to_our_table_without_leaking_text() {
    use ProviderError::*;
    let limited = |secs: Option<u64>| RateLimited { retry_after: secs.map(Duration::from_secs) };
    let down = Unavailable { retry_after: None };
    let rows: Vec<(u16, u32, Option<&str>, ProviderError)> = vec![
        (400, 60200, None, InvalidNumber),
        (400, 21211, None, InvalidNumber),
        (400, 21614, None, InvalidNumber),
        (400, 60205, None, Undeliverable),
        (400, 21610, None, Undeliverable),
        (400, 21612, None, Undeliverable),
        (400, 21635, None, Undeliverable),
        (403, 60410, None, UnsupportedRegion),
        (403, 60605, None, UnsupportedRegion),
        (400, 21408, None, UnsupportedRegion),
        (400, 30450, None, UnsupportedRegion),
        (429, 60203, Some("600"), limited(Some(600))),
        (429, 60212, None, limited(None)),
        // Retry-After longer than the deadline: not waited for, handed to the caller.
        (429, 20429, Some("7"), limited(Some(7))),
        (401, 20003, None, down.clone()),
        (500, 20500, None, down.clone()),
        (400, 12345, None, down.clone()),
    ];
    let server = MockServer::start().await;
    for (status, code, retry_after, expected) in rows {
        for (route, provider) in [
            (VERIFICATIONS, Box::new(verify(&server.uri(), &clock())) as Box<dyn SmsProvider>),
            (MESSAGES, Box::new(messaging(&server.uri(), &clock()))),
        ] {
            server.reset().await;
            let mut answer = twilio_error(status, code);
            if let Some(ra) = retry_after {
                answer = answer.insert_header("Retry-After", ra);
            }
            Mock::given(method("POST")).and(path(route)).respond_with(answer).mount(&server).await;
            let err = provider.send(&msg(Channel::Sms)).await.unwrap_err();
            assert_eq!(err, expected, "{code} via {route}");
            assert_no_leak(&err);
            // None of these may be repeated: one request each.
            assert_eq!(requests(&server).await, 1, "{code} via {route}");
        }
    }
}

#[tokio::test]
async fn rejected_credentials_show_in_readiness() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(twilio_error(401, 20003)).up_to_n_times(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(created_message()).mount(&server).await;
    let p = messaging(&server.uri(), &clock());
    assert!(p.readiness().await.is_ok());
    p.send(&msg(Channel::Sms)).await.unwrap_err();
    assert!(p.readiness().await.unwrap_err().contains("20003"));
    p.send(&msg(Channel::Sms)).await.unwrap();
    assert!(p.readiness().await.is_ok(), "a success clears it");
}

#[tokio::test]
async fn a_slow_twilio_is_unavailable_within_the_deadline_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(created_message().set_delay(Duration::from_secs(5))).mount(&server).await;
    let p = messaging(&server.uri(), &clock());
    let started = Instant::now();
    let err = p.send(&msg(Channel::Sms)).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable { retry_after: None });
    assert!(started.elapsed() < Duration::from_millis(1_500), "took {:?}", started.elapsed());
    // The request may have been sent: repeating it could send a second message.
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_503_is_retried_once_and_exactly_one_message_goes_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(twilio_error(503, 20503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(MESSAGES)).respond_with(created_message()).expect(1).mount(&server).await;
    let p = messaging(&server.uri(), &clock());
    let receipt = p.send(&msg(Channel::Sms)).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some(FAKE_SM));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_503_that_persists_is_unavailable_after_the_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(twilio_error(503, 20503)).mount(&server).await;
    let err = messaging(&server.uri(), &clock()).send(&msg(Channel::Sms)).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable { retry_after: None });
    assert_eq!(requests(&server).await, 3, "first try and two retries");
}

#[tokio::test]
async fn connection_refused_is_unavailable_quickly() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = verify(&format!("http://127.0.0.1:{port}"), &clock());
    let started = Instant::now();
    let err = p.send(&msg(Channel::Sms)).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable { retry_after: None });
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_a_probe_closes_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(twilio_error(500, 20500)).mount(&server).await;
    let clock = clock();
    let p = messaging(&server.uri(), &clock);
    for _ in 0..3 {
        p.send(&msg(Channel::Sms)).await.unwrap_err();
    }
    assert_eq!(requests(&server).await, 3);
    // Open: answered at once, with a retry_after, and Twilio is not called.
    let err = p.send(&msg(Channel::Sms)).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable { retry_after: Some(Duration::from_secs(30)) });
    assert_eq!(requests(&server).await, 3);
    assert!(p.readiness().await.unwrap_err().contains("breaker"));

    clock.advance(Duration::from_secs(30));
    server.reset().await;
    Mock::given(method("POST")).respond_with(created_message()).mount(&server).await;
    p.send(&msg(Channel::Sms)).await.expect("the probe goes through");
    assert!(p.readiness().await.is_ok());
    p.send(&msg(Channel::Sms)).await.expect("closed again");
}

#[tokio::test]
async fn an_account_level_429_with_a_short_retry_after_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(twilio_error(429, 20429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(created_verification()).expect(1).mount(&server).await;
    let receipt = verify(&server.uri(), &clock()).send(&msg(Channel::Sms)).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some(FAKE_VE));
    assert_eq!(requests(&server).await, 2);
}
