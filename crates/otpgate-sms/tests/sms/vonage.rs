//! Vonage against a fake Vonage over real HTTP: the request shape (form, `to` without `+`,
//! secret or signature), every row of the status table, HTTP errors, a timeout, a dropped
//! connection, the breaker and readiness.

use std::time::{Duration, Instant};

use otpgate_core::{Channel, ProviderError, SmsProvider};
use otpgate_sms::vonage::{SignatureMethod, sign};
use otpgate_sms::{Vonage, VonageConfig, http};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

fn config(base: &str, auth: serde_json::Value) -> VonageConfig {
    let cfg = merged(json!({ "api_key": "abcd1234", "from": "Acme", "base_url": format!("{base}/sms") }), auth);
    serde_json::from_value(merged(cfg, limits())).unwrap()
}

fn vonage(base: &str) -> Vonage {
    let cfg = config(base, json!({ "api_secret": "fake-secret-1" }));
    Vonage::new("vonage", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap()
}

/// Vonage's documented answer (hyphenated names) with one part of `status`.
fn answer(status: &str) -> ResponseTemplate {
    let part = if status == "0" {
        json!({ "to": "14155550100", "message-id": "0A0000000123ABCD1", "status": "0", "remaining-balance": "3.14", "message-price": "0.03", "network": "12345" })
    } else {
        json!({ "status": status, "error-text": VENDOR_TEXT })
    };
    ResponseTemplate::new(200).set_body_json(json!({ "message-count": "1", "messages": [part] }))
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn posts_the_documented_form_with_the_number_without_plus() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .and(body_string_contains("api_key=abcd1234"))
        .and(body_string_contains("api_secret=fake-secret-1"))
        .and(body_string_contains("from=Acme"))
        .and(body_string_contains("to=14155550100&"))
        .and(body_string_contains("type=text"))
        .respond_with(answer("0"))
        .expect(1)
        .mount(&server)
        .await;
    let p = vonage(&server.uri());
    assert!(p.supports(Channel::Sms) && !p.supports(Channel::Whatsapp) && !p.supports(Channel::Call));
    let receipt = p.send(&sms("123456")).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some("0A0000000123ABCD1"));
    assert!(!receipt.provider_checks);
    let body = &server.received_requests().await.unwrap()[0].body;
    let form = form_of(body);
    assert!(form.contains(&("text".into(), sms("123456").text)));
    assert!(!String::from_utf8_lossy(body).contains("%2B1415"), "no + before the number");
}

#[tokio::test]
async fn signed_requests_carry_a_fresh_signature_and_no_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("0")).mount(&server).await;
    let cfg =
        config(&server.uri(), json!({ "signature_secret": "fake-signature-secret", "signature_method": "sha256" }));
    let p = Vonage::new("vonage", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap();
    p.send(&msg("+442071838750", Channel::Sms, "654321")).await.unwrap();
    let form = form_of(&server.received_requests().await.unwrap()[0].body);
    assert!(!form.iter().any(|(k, _)| k == "api_secret"), "a signed request must not carry the secret (status 32)");
    let sig = form.iter().find(|(k, _)| k == "sig").map(|(_, v)| v.clone()).expect("sig");
    let ts: i64 = form.iter().find(|(k, _)| k == "timestamp").unwrap().1.parse().unwrap();
    assert!(
        (ts - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64).abs() < 60
    );
    // What Vonage computes on its side: the same scheme over what it received.
    assert_eq!(sig, sign(&form, &SecretString::from("fake-signature-secret"), SignatureMethod::Sha256));
    assert!(form.contains(&("to".into(), "442071838750".into())));
}

#[tokio::test]
async fn a_text_outside_gsm_goes_as_unicode() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("type=unicode"))
        .respond_with(answer("0"))
        .expect(1)
        .mount(&server)
        .await;
    let mut m = sms("123456");
    m.text = "123456 es tu código de verificación".into();
    vonage(&server.uri()).send(&m).await.unwrap();
}

/// Every row of the table, with Vonage's text kept out of the error, and the
/// readiness reason for the account problems.
#[tokio::test]
async fn every_vonage_status_maps_to_our_table() {
    use ProviderError::*;
    let down = Unavailable { retry_after: None };
    // (status, ours, tries, readiness must mention)
    let rows: Vec<(&str, ProviderError, usize, Option<&str>)> = vec![
        ("1", RateLimited { retry_after: None }, 3, None),
        ("2", InvalidNumber, 1, None),
        ("3", InvalidNumber, 1, None),
        ("6", InvalidNumber, 1, None),
        ("7", Undeliverable, 1, None),
        ("33", Undeliverable, 1, None),
        ("29", Undeliverable, 1, None),
        ("4", down.clone(), 1, Some("rejected the credentials (status 4)")),
        ("14", down.clone(), 1, Some("rejected the credentials (status 14)")),
        ("8", down.clone(), 1, Some("suspended (status 8)")),
        ("9", down.clone(), 1, Some("out of credit (status 9)")),
        ("11", down.clone(), 1, Some("not enabled for the SMS API (status 11)")),
        ("15", down.clone(), 1, Some("refuses the configured sender (from) (status 15)")),
        ("5", down.clone(), 1, None),
        ("10", down.clone(), 3, None),
        ("99", down.clone(), 1, None),
    ];
    let server = MockServer::start().await;
    for (status, expected, tries, readiness) in rows {
        server.reset().await;
        Mock::given(method("POST")).and(path("/sms/json")).respond_with(answer(status)).mount(&server).await;
        let p = vonage(&server.uri());
        let err = p.send(&sms("123456")).await.unwrap_err();
        assert_eq!(err, expected, "status {status}");
        assert_no_leak(&err);
        assert_eq!(server.received_requests().await.unwrap().len(), tries, "status {status}: tries");
        match readiness {
            Some(why) => {
                let r = p.readiness().await.unwrap_err();
                assert!(r.contains(why) && r.starts_with("vonage: "), "status {status}: {r}");
            }
            None => assert!(p.readiness().await.is_ok(), "status {status}"),
        }
    }
}

#[tokio::test]
async fn a_success_clears_an_account_problem() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("9")).up_to_n_times(1).with_priority(1).mount(&server).await;
    Mock::given(method("POST")).respond_with(answer("0")).mount(&server).await;
    let p = vonage(&server.uri());
    p.send(&sms("123456")).await.unwrap_err();
    assert!(p.readiness().await.unwrap_err().contains("credit"));
    p.send(&sms("123456")).await.unwrap();
    assert!(p.readiness().await.is_ok());
}

#[tokio::test]
async fn the_specs_camel_case_answer_and_multipart_answers_are_read() {
    let server = MockServer::start().await;
    // The published spec's shape (what its Prism mock answers); Vonage documents hyphens.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messageCount": "2",
            "messages": [{ "messageId": "0A01", "status": "0" }, { "status": "5", "errorText": VENDOR_TEXT }]
        })))
        .mount(&server)
        .await;
    let receipt = vonage(&server.uri()).send(&sms("123456")).await.unwrap();
    assert_eq!(receipt.provider_ref.as_deref(), Some("0A01"), "the first part (with the code) went out");
}

#[tokio::test]
async fn http_errors_timeouts_and_dropped_connections_are_unavailable() {
    let down = ProviderError::Unavailable { retry_after: None };
    let server = MockServer::start().await;
    for (status, tries) in [(500, 1), (503, 3), (401, 1)] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(VENDOR_TEXT))
            .mount(&server)
            .await;
        let p = vonage(&server.uri());
        assert_eq!(p.send(&sms("123456")).await.unwrap_err(), down, "HTTP {status}");
        assert_eq!(server.received_requests().await.unwrap().len(), tries, "HTTP {status}");
        if status == 401 {
            assert!(p.readiness().await.unwrap_err().contains("credentials"));
        }
    }
    // Slow: unavailable within the deadline, and never repeated (it may have been sent).
    server.reset().await;
    Mock::given(method("POST")).respond_with(answer("0").set_delay(Duration::from_secs(5))).mount(&server).await;
    let started = Instant::now();
    assert_eq!(vonage(&server.uri()).send(&sms("123456")).await.unwrap_err(), down);
    assert!(started.elapsed() < Duration::from_millis(1_500), "{:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // Dropped after reading the request: may have been sent, so not repeated either.
    let fake = RawFake::start(|_| Action::Drop).await;
    let cfg = config(&fake.url, json!({ "api_secret": "fake-secret-1" }));
    let p = Vonage::new("vonage", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap();
    assert_eq!(p.send(&sms("123456")).await.unwrap_err(), down);
    assert_eq!(fake.requests(), 1);
    // Nobody listening: nothing was sent, so it is repeated, then unavailable.
    let p = vonage(&closed_port_url());
    assert_eq!(p.send(&sms("123456")).await.unwrap_err(), down);
}

#[tokio::test]
async fn the_breaker_opens_after_platform_failures() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("5")).mount(&server).await;
    let p = vonage(&server.uri());
    for _ in 0..3 {
        p.send(&sms("123456")).await.unwrap_err();
    }
    let err = p.send(&sms("123456")).await.unwrap_err();
    assert_eq!(err, ProviderError::Unavailable { retry_after: Some(Duration::from_secs(30)) });
    assert_eq!(server.received_requests().await.unwrap().len(), 3, "an open breaker calls nobody");
    assert!(p.readiness().await.unwrap_err().contains("breaker"));
}

#[tokio::test]
async fn rejections_about_one_number_do_not_open_the_breaker() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("3")).mount(&server).await;
    let p = vonage(&server.uri());
    for _ in 0..5 {
        assert_eq!(p.send(&sms("123456")).await.unwrap_err(), ProviderError::InvalidNumber);
    }
    assert!(p.readiness().await.is_ok());
}
