//! What reaches the logs: masked phone numbers and security events, never a code or a full
//! number. Each test reads only its own logs (`otpgate_test_support::logs`).

use crate::common::*;
use otpgate_core::ProviderError;
use otpgate_test_support::logs::{self, LogCapture};
use serde_json::{Value, json};

/// This test's logs: JSON as in production, with the request span on every line, at the
/// production filter's most verbose (even `trace` must not leak numbers or codes).
fn captured() -> LogCapture {
    logs::capture(|writer| {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(writer)
            .with_env_filter(otpgate_server::telemetry::env_filter("trace"))
            .finish()
    })
}

#[tokio::test]
async fn logs_hold_masked_numbers_and_no_codes() {
    let captured = captured();

    let app = spawn_app().await;
    let phone = "+14155550177";
    app.send(phone).await;
    let code = app.inbox_code(phone).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.check(phone, wrong).await;
    app.check(phone, &code).await;
    app.send("+15005550006").await;
    app.check("+15005550006", "123456").await;

    let logs = captured.text();
    for needle in [code.as_str(), "123456", "4155550177", "5005550006"] {
        assert!(!logs.contains(needle), "`{needle}` leaked into the logs:\n{logs}");
    }
    assert!(logs.contains("+1******0177"), "masked number is logged");
    for event in [r#""event":"otp.send""#, r#""outcome":"wrong""#, r#""outcome":"approved""#] {
        assert!(logs.contains(event), "missing {event}");
    }
    assert!(logs.contains("request_id"), "events carry the request id");
    let check_event = logs
        .lines()
        .find(|l| l.contains(r#""event":"otp.check""#) && l.contains("+1******0177"))
        .expect("a check event");
    assert!(check_event.contains(r#""client_ip":"127.0.0.1""#), "{check_event}");
    assert!(check_event.contains(r#""country":"US""#), "{check_event}");
}

/// Every JSON log line that has `field` = `value`.
fn lines_with(logs: &str, field: &str, value: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v[field].as_str() == Some(value))
        .collect()
}

#[tokio::test]
async fn security_events_behind_a_trusted_proxy_name_the_client_not_the_proxy() {
    let captured = captured();
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(
        |c| {
            no_limits(c);
            c.limits.ip_send.count = 2;
            c.limits.ip_send.period_secs = 60;
            c.limits.ip_check.count = 1;
            c.limits.ip_check.period_secs = 60;
            c.http.trusted_proxies = otpgate_server::client_ip::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
        },
        with_provider(provider.clone()),
    )
    .await;
    // The proxy (127.0.0.1, the socket peer) forwards the client 203.0.113.41; the client's own
    // spoofed hop on the left is not believed.
    let from_client = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "192.0.2.99, 203.0.113.41")
            .body(body.to_string())
    };
    assert_eq!(app.request(from_client("/v1/verifications", json!({"phone": "+14155550181"}))).await.status, 201);
    provider.set(FakeBehaviour::Fail(ProviderError::Unavailable { retry_after: None }));
    let failed = app.request(from_client("/v1/verifications", json!({"phone": "+14155550183"}))).await;
    assert_eq!(failed.status, 503);
    let limited = app.request(from_client("/v1/verifications", json!({"phone": "+14155550182"}))).await;
    assert_eq!(limited.status, 429);
    app.request(from_client("/v1/verifications/check", json!({"phone": "+14155550181", "code": "000000"}))).await;
    app.request(from_client("/v1/verifications/check", json!({"phone": "+14155550181", "code": "000000"}))).await;

    let logs = captured.text();
    let mine = |event: &str| -> Vec<Value> {
        lines_with(&logs, "event", event)
            .into_iter()
            .filter(|v| v["phone"].as_str().is_some_and(|p| p.starts_with("+1******018")))
            .collect()
    };
    let limit = mine("otp.limit");
    assert!(!limit.is_empty(), "a limit event:\n{logs}");
    let sends = mine("otp.send");
    let provider_failure: Vec<_> = sends.iter().filter(|v| v["outcome"] == "provider_error").collect();
    assert!(!provider_failure.is_empty(), "a provider-failure event:\n{logs}");
    let checks = mine("otp.check");
    assert!(!checks.is_empty(), "a check event:\n{logs}");
    for event in limit.iter().chain(provider_failure.iter().copied()).chain(&checks).chain(&sends) {
        assert_eq!(event["client_ip"], "203.0.113.41", "the event names the client: {event}");
        assert_eq!(event["span"]["client_ip"], "203.0.113.41", "the request span names the client: {event}");
        let peer = event["span"]["peer"].as_str().unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "the span names the socket peer: {event}");
    }
    assert!(
        limit.iter().any(|v| v["scope"] == "ip_send") && limit.iter().any(|v| v["scope"] == "ip_check"),
        "{limit:?}"
    );
}
