//! `/metrics` after a scripted run: the series exist with plausible counts, and no digit run of
//! any phone number used appears anywhere in the text.

use crate::common::*;

#[tokio::test]
async fn metrics_count_sends_checks_limits_and_requests_without_numbers() {
    let app = spawn_app().await;
    let phones = ["+14155550161", "+14155550162", "+447400123456"];
    for phone in phones {
        assert_eq!(app.send(phone).await.status, 201);
    }
    let code = app.inbox_code(phones[0]).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.check(phones[0], wrong).await;
    assert_eq!(app.check(phones[0], &code).await.status, 200);
    assert_eq!(app.send(phones[1]).await.status, 429, "resend cooldown");
    app.send("+19002345678").await;

    let r = app.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text;
    for series in [
        r#"otpgate_sends_total{outcome="created",country="US",channel="sms",provider="demo"}"#,
        r#"otpgate_sends_total{outcome="created",country="GB",channel="sms",provider="demo"}"#,
        r#"otpgate_sends_total{outcome="unsupported_region",country="US"}"#,
        r#"otpgate_checks_total{outcome="wrong",country="US"}"#,
        r#"otpgate_checks_total{outcome="approved",country="US"}"#,
        r#"otpgate_limit_hits_total{scope="resend_cooldown"}"#,
        r#"otpgate_http_requests_total{route="/v1/verifications",method="POST",status="201"}"#,
        "otpgate_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert!(line.starts_with("otpgate_"), "every series is prefixed: {line}");
    }
    for phone in phones.iter().chain(["+19002345678"].iter()) {
        let digits = &phone[phone.len() - 7..];
        assert!(!text.contains(digits), "{digits} of {phone} leaked into /metrics");
    }
}

/// Provider and store series, with a real Twilio Messaging client against a fake Twilio: one
/// message accepted, one number refused (21211), one 503. No SID, number or token in the text.
#[tokio::test]
async fn metrics_show_provider_latency_errors_breaker_and_store_latency() {
    use otpgate_server::config::ProviderKind;
    use serde_json::json;
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ACCOUNT: &str = "AC00000000000000000000000000000000"; // fake test SID
    const MESSAGE_SID: &str = "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"; // fake test SID
    const TOKEN: &str = "fake-auth-token-for-metrics";
    let ok_phone = "+14155550171";
    let bad_phone = "+14155550172";
    let down_phone = "+14155550173";

    let twilio = MockServer::start().await;
    let messages = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    Mock::given(method("POST"))
        .and(path(messages.clone()))
        .and(body_string_contains("To=%2B14155550171"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": MESSAGE_SID, "status": "queued" })))
        .mount(&twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(messages.clone()))
        .and(body_string_contains("To=%2B14155550172"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({ "code": 21211, "message": "invalid", "status": 400 })),
        )
        .mount(&twilio)
        .await;
    Mock::given(method("POST")).and(path(messages)).respond_with(ResponseTemplate::new(503)).mount(&twilio).await;
    let base = twilio.uri();
    let app = spawn_with(
        move |c| {
            c.provider.kind = Some(ProviderKind::TwilioMessaging);
            c.provider.twilio = Some(
                serde_json::from_value(json!({
                    "account_sid": ACCOUNT,
                    "auth_token": TOKEN,
                    "messaging": { "from": "+15005550006", "base_url": base },
                    "http": { "connect_timeout_ms": 200, "request_timeout_ms": 500 },
                    "retry": { "max_retries": 0, "min_delay_ms": 10, "max_delay_ms": 20, "deadline_ms": 1000 },
                }))
                .unwrap(),
            );
        },
        Default::default(),
    )
    .await;

    let sent = app.send(ok_phone).await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    assert_eq!(app.send(bad_phone).await.error_code(), "invalid_phone");
    assert_eq!(app.send(down_phone).await.error_code(), "provider_unavailable");
    assert_eq!(app.check(ok_phone, "000000").await.status / 100, 4);

    let text = app.get("/metrics").await.text;
    for series in [
        r#"otpgate_provider_request_duration_seconds_bucket{provider="twilio-messaging",op="messaging.send",le="#,
        r#"otpgate_provider_request_duration_seconds_count{provider="twilio-messaging",op="messaging.send"}"#,
        r#"otpgate_provider_errors_total{provider="twilio-messaging",kind="invalid_number"}"#,
        r#"otpgate_provider_errors_total{provider="twilio-messaging",kind="unavailable"}"#,
        r#"otpgate_provider_breaker_open{provider="twilio-messaging"}"#,
        r#"otpgate_store_duration_seconds_count{op="issue_with_resend"}"#,
        r#"otpgate_store_duration_seconds_count{op="acquire"}"#,
        r#"otpgate_store_duration_seconds_count{op="load_value"}"#,
        r#"otpgate_store_duration_seconds_count{op="swap_value"}"#,
        r#"otpgate_store_duration_seconds_count{op="revert_issue"}"#,
        r#"otpgate_store_duration_seconds_count{op="check"}"#,
        r#"otpgate_store_duration_seconds_bucket{op="issue_with_resend",le="#,
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    let count = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}"))
    };
    assert!(
        count(r#"otpgate_provider_request_duration_seconds_count{provider="twilio-messaging",op="messaging.send"}"#)
            >= 3.0
    );
    assert!(count(r#"otpgate_provider_errors_total{provider="twilio-messaging",kind="invalid_number"}"#) >= 1.0);
    for secret in [MESSAGE_SID, TOKEN, ACCOUNT, &ok_phone[5..], &bad_phone[5..], &down_phone[5..]] {
        assert!(!text.contains(secret), "{secret} leaked into /metrics");
    }
}
