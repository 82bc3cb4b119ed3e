//! Test numbers are no backdoor: the default one exists only with the demo provider; with a real
//! provider only listed numbers exist, each named (masked) in a warning at start; development
//! mode with a real provider on a non-loopback address warns loudly. The tests that read the
//! logs capture their own (`otpgate_test_support::logs`).

use crate::common::*;
use otpgate_server::config::ProviderKind;
use otpgate_test_support::logs::{self, LogCapture};
use serde_json::json;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// This test's logs (JSON, `info` and up).
fn capture_logs() -> LogCapture {
    logs::capture(|writer| {
        tracing_subscriber::fmt().json().with_writer(writer).with_max_level(tracing::Level::INFO).finish()
    })
}

/// A fake Twilio Messaging API that accepts every message, so nothing leaves the machine.
async fn fake_twilio() -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued" })), // fake test SID
        )
        .mount(&twilio)
        .await;
    twilio
}

fn twilio_messaging(c: &mut otpgate_server::Config, base: &str) {
    c.provider.kind = Some(ProviderKind::TwilioMessaging);
    c.provider.twilio = Some(
        serde_json::from_value(json!({
            "account_sid": "AC00000000000000000000000000000000", // fake test SID
            "auth_token": "fake-auth-token-for-tests",
            "messaging": { "from": "+15005550006", "base_url": base },
        }))
        .unwrap(),
    );
}

#[tokio::test]
async fn a_real_provider_in_the_default_environment_has_no_default_test_number() {
    let twilio = fake_twilio().await;
    let base = twilio.uri();
    // The misconfigured deployment: a real provider, `environment` left at its default.
    let app = spawn_with(|c| twilio_messaging(c, &base), Default::default()).await;
    assert!(!app.config.is_production());
    let sent = app.send("+15005550006").await;
    assert_eq!(sent.status, 201, "an ordinary number now: {}", sent.text);
    assert_eq!(twilio.received_requests().await.unwrap().len(), 1, "its code went to the provider");
    let r = app.check("+15005550006", "123456").await;
    assert_ne!(r.status, 200, "the public code signs nobody in: {}", r.text);
    assert_eq!(r.error_code(), "invalid_code");
    assert!(r.json().get("session").is_none());
}

#[tokio::test]
async fn listed_test_numbers_with_a_real_provider_work_and_are_named_at_start() {
    let logs = capture_logs();
    let twilio = fake_twilio().await;
    let base = twilio.uri();
    let app = spawn_with(
        |c| {
            twilio_messaging(c, &base);
            c.test_numbers = Some([("+15005550042".to_owned(), "654321".to_owned())].into());
        },
        Default::default(),
    )
    .await;
    let log = logs.text();
    let warning = log
        .lines()
        .find(|l| l.contains(r#""event":"startup.test_number""#) && l.contains("+1******0042"))
        .unwrap_or_else(|| panic!("a warning naming the masked number: {log}"));
    assert!(warning.contains(r#""level":"WARN""#), "{warning}");
    assert!(!log.contains("5005550042"), "the number is masked: {log}");
    assert_eq!(app.send("+15005550042").await.status, 201);
    assert_eq!(twilio.received_requests().await.unwrap().len(), 0, "a test number never reaches the provider");
    assert_eq!(app.check("+15005550042", "654321").await.status, 200, "the operator asked for it");
    assert_eq!(app.check("+15005550006", "123456").await.error_code(), "verification_not_found", "no default");
}

#[tokio::test]
async fn development_with_a_real_provider_on_a_public_address_warns_loudly() {
    let logs = capture_logs();
    let twilio = fake_twilio().await;
    let mut config = test_config(&tempfile::tempdir().unwrap());
    twilio_messaging(&mut config, &twilio.uri());
    // Built on loopback (tests bind 127.0.0.1 only): no warning.
    let _app = spawn_with(|c| twilio_messaging(c, &twilio.uri()), Default::default()).await;
    assert!(!logs.text().contains("startup.unsafe_environment"), "{}", logs.text());
    // What `Application::build` logs for a public listen address, without binding one.
    config.listen = "0.0.0.0:8080".parse().unwrap();
    config.validate().unwrap();
    otpgate_server::startup_warnings::log(&config);
    let log = logs.text();
    let warning = log.lines().find(|l| l.contains(r#""event":"startup.unsafe_environment""#)).expect("a warning");
    assert!(warning.contains("0.0.0.0:8080") && warning.contains("DEVELOPMENT MODE"), "{warning}");
    // The same with the demo provider, or in production, is no such case.
    config.provider.kind = Some(ProviderKind::Demo);
    let before = log.matches("startup.unsafe_environment").count();
    otpgate_server::startup_warnings::log(&config);
    assert_eq!(logs.text().matches("startup.unsafe_environment").count(), before);
}
