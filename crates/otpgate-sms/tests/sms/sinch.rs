//! Sinch against a fake Sinch over real HTTP: the request shape (Bearer, JSON batch), every row
//! of the error table, a timeout, a dropped connection and readiness.

use std::time::{Duration, Instant};

use otpgate_core::{Channel, ProviderError, SmsProvider};
use otpgate_sms::{Sinch, SinchConfig, http};
use serde_json::json;
use wiremock::matchers::{bearer_token, body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const BATCHES: &str = "/xms/v1/fakeplan0001/batches";

fn config(base: &str, extra: serde_json::Value) -> SinchConfig {
    let cfg = merged(
        json!({ "service_plan_id": "fakeplan0001", "api_token": "fake-token", "from": "Acme", "base_url": base }),
        extra,
    );
    serde_json::from_value(merged(cfg, limits())).unwrap()
}

fn sinch(base: &str) -> Sinch {
    let cfg = config(base, json!({}));
    Sinch::new("sinch", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap()
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": "01FC66621XXXXX119Z8PMV1QPQ", "to": ["+14155550100"], "from": "Acme", "canceled": false,
        "body": "…", "type": "mt_text", "created_at": "2026-11-24T10:00:00Z"
    }))
}

fn error(status: u16, code: &str, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "code": code, "text": text }))
}

#[tokio::test]
async fn posts_the_documented_batch_with_bearer_auth() {
    let server = MockServer::start().await;
    let m = sms("123456");
    Mock::given(method("POST"))
        .and(path(BATCHES))
        .and(bearer_token("fake-token"))
        .and(body_json(json!({ "from": "Acme", "to": ["+14155550100"], "body": m.text })))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    let p = sinch(&server.uri());
    assert!(p.supports(Channel::Sms) && !p.supports(Channel::Whatsapp));
    let receipt = p.send(&m).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some("01FC66621XXXXX119Z8PMV1QPQ"));
}

#[tokio::test]
async fn a_callback_url_asks_for_per_recipient_reports() {
    let server = MockServer::start().await;
    let m = sms("123456");
    Mock::given(method("POST"))
        .and(body_json(json!({
            "from": "Acme", "to": ["+14155550100"], "body": m.text,
            "delivery_report": "per_recipient", "callback_url": "https://otp.example.com/v1/sms/sinch"
        })))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(
        &server.uri(),
        json!({ "callback_url": "https://otp.example.com/v1/sms/sinch", "callback_username": "sinch", "callback_password": "pw" }),
    );
    Sinch::new("sinch", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap().send(&m).await.unwrap();
}

#[tokio::test]
async fn every_sinch_error_maps_to_our_table() {
    use ProviderError::*;
    let down = Unavailable { retry_after: None };
    // (answer, ours, tries, readiness must mention)
    let rows: Vec<(ResponseTemplate, ProviderError, usize, Option<&str>)> = vec![
        (
            error(
                400,
                "syntax_invalid_parameter_format",
                "The format of parameter 'to[0]' is invalid; value '+1' is not a valid MSISDN",
            ),
            InvalidNumber,
            1,
            None,
        ),
        (error(400, "syntax_invalid_json", VENDOR_TEXT), down.clone(), 1, None),
        (ResponseTemplate::new(401), down.clone(), 1, Some("rejected the API token (HTTP 401)")),
        (error(403, "unprovisioned_region", VENDOR_TEXT), UnsupportedRegion, 1, None),
        (error(403, "missing_callback_url", VENDOR_TEXT), down.clone(), 1, Some("HTTP 403 missing_callback_url")),
        (error(404, "not_found", VENDOR_TEXT), down.clone(), 1, Some("does not know the service plan")),
        (
            error(429, "too_many_requests", VENDOR_TEXT).insert_header("Retry-After", "7"),
            RateLimited { retry_after: Some(Duration::from_secs(7)) },
            1,
            None,
        ),
        (error(429, "too_many_requests", VENDOR_TEXT), RateLimited { retry_after: None }, 1, None),
        (error(500, "internal_error", VENDOR_TEXT), down.clone(), 1, None),
        (error(503, "internal_error", VENDOR_TEXT), down.clone(), 3, None),
    ];
    let server = MockServer::start().await;
    for (i, (answer, expected, tries, readiness)) in rows.into_iter().enumerate() {
        server.reset().await;
        Mock::given(method("POST")).and(path(BATCHES)).respond_with(answer).mount(&server).await;
        let p = sinch(&server.uri());
        let err = p.send(&sms("123456")).await.unwrap_err();
        assert_eq!(err, expected, "row {i}");
        assert_no_leak(&err);
        assert_eq!(server.received_requests().await.unwrap().len(), tries, "row {i}: tries");
        match readiness {
            Some(why) => assert!(p.readiness().await.unwrap_err().contains(why), "row {i}"),
            None => assert!(p.readiness().await.is_ok(), "row {i}"),
        }
    }
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(429, "too_many_requests", "slow down").insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(created()).expect(1).mount(&server).await;
    sinch(&server.uri()).send(&sms("123456")).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_unavailable_and_not_repeated() {
    let down = ProviderError::Unavailable { retry_after: None };
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(created().set_delay(Duration::from_secs(5))).mount(&server).await;
    let started = Instant::now();
    assert_eq!(sinch(&server.uri()).send(&sms("123456")).await.unwrap_err(), down);
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let fake = RawFake::start(|_| Action::Drop).await;
    assert_eq!(sinch(&fake.url).send(&sms("123456")).await.unwrap_err(), down);
    assert_eq!(fake.requests(), 1);
    assert_eq!(sinch(&closed_port_url()).send(&sms("123456")).await.unwrap_err(), down);
}
