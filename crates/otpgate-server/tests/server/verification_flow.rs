//! The verification API end to end over HTTP: the happy paths, every error row this build
//! produces, resend rules, restart, and what must never leave the server.

use std::time::Duration;

use crate::common::*;
use otpgate_core::ProviderError;
use otpgate_server::Overrides;
use serde_json::json;

const PHONE: &str = "+14155550100";

#[tokio::test]
async fn test_number_flow_with_fixed_code() {
    let app = spawn_app().await;
    let sent = app.send("+15005550006").await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    let body = sent.json();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["phone"], "+1******0006");
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["resend_in"], 30);
    assert_eq!(body["attempts_left"], 5);
    assert!(body["id"].as_str().unwrap().starts_with("vf_"));
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    // Test numbers never reach a provider: nothing in the inbox.
    let inbox = app.get("/dev/inbox?phone=%2B15005550006").await;
    assert_eq!(inbox.json()["messages"].as_array().unwrap().len(), 0);

    let ok = app.check("+15005550006", "123456").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["status"], "approved");
    let again = app.check("+15005550006", "123456").await;
    assert_eq!((again.status, again.error_code().as_str()), (404, "verification_not_found"));
}

#[tokio::test]
async fn demo_inbox_flow_any_format_is_one_number() {
    let app = spawn_app().await;
    let sent = app.send("+1 (415) 555-0100").await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    let code = app.inbox_code(PHONE).await;
    assert_eq!(code.len(), 6);
    let text = app.get("/dev/inbox").await.json()["messages"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains(&code) && text.contains("otpgate"), "{text}");
    let ok = app.check("0014155550100", &code).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn message_follows_the_locale_and_carries_the_webotp_line() {
    let app = spawn_with(
        |c| {
            c.app_name = "Acme".into();
            c.webotp_domain = Some("acme.example".parse().unwrap());
            c.messages.insert("pt-BR".into(), "Seu código {app}: {code} (vale {minutes} min)".into());
        },
        Default::default(),
    )
    .await;
    let r = app.post_json("/v1/verifications", &json!({ "phone": PHONE, "locale": "pt-BR" })).await;
    assert_eq!(r.status, 201);
    let inbox = app.get("/dev/inbox").await.json();
    let text = inbox["messages"][0]["text"].as_str().unwrap().to_owned();
    let code = inbox["messages"][0]["code"].as_str().unwrap().to_owned();
    assert_eq!(text, format!("Seu código Acme: {code} (vale 2 min)\n\n@acme.example #{code}"));

    app.advance(Duration::from_secs(30));
    app.post_json("/v1/verifications", &json!({ "phone": PHONE, "locale": "fr-CA" })).await;
    let text = app.get("/dev/inbox").await.json()["messages"][0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("est votre code de vérification Acme"), "{text}");
}

#[tokio::test]
async fn national_format_only_with_default_region() {
    let without = spawn_app().await;
    let r = without.send("(415) 555-0100").await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "invalid_phone"));
    assert_eq!(r.json()["error"]["field"], "phone");

    let with = spawn_with(|c| c.default_region = Some("US".parse().unwrap()), Default::default()).await;
    assert_eq!(with.send("(415) 555-0100").await.status, 201);
    let code = with.inbox_code(PHONE).await;
    assert_eq!(with.check(PHONE, &code).await.status, 200);
}

#[tokio::test]
async fn code_never_appears_in_send_response() {
    let app = spawn_app().await;
    let sent = app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    assert!(!sent.text.contains(&code));
    for (name, value) in &sent.headers {
        assert!(!value.to_str().unwrap_or("").contains(&code), "header {name}");
    }
}

#[tokio::test]
async fn resend_keeps_id_and_attempts_and_doubles_the_cooldown() {
    let app = spawn_app().await;
    let first = app.send(PHONE).await.json();
    let first_code = app.inbox_code(PHONE).await;
    let wrong = app.check(PHONE, "000000").await;
    assert_eq!(wrong.json()["error"]["attempts_left"], 4);

    let early = app.send(PHONE).await;
    assert_eq!((early.status, early.error_code().as_str()), (429, "rate_limited"));
    assert_eq!(early.header("retry-after").as_deref(), Some("30"));
    assert_eq!(early.json()["error"]["retry_after"], 30);

    app.advance(Duration::from_secs(30));
    let resent = app.send(PHONE).await;
    assert_eq!(resent.status, 200, "a resend answers 200: {}", resent.text);
    let resent = resent.json();
    assert_eq!(resent["id"], first["id"]);
    assert_eq!(resent["attempts_left"], 4, "a resend never resets attempts");
    assert_eq!(resent["resend_in"], 60, "the cooldown doubles");
    let new_code = app.inbox_code(PHONE).await;
    if new_code != first_code {
        assert_eq!(app.check(PHONE, &first_code).await.error_code(), "invalid_code", "the old code is dead");
    }
    assert_eq!(app.check(PHONE, &new_code).await.status, 200);
}

/// The phone's send count lives outside its verifications: the wait doubles across an expired
/// verification and across a cancel (both used to start it over at 30 s), up to an hour, and is
/// forgotten only after an hour of quiet past the last wait.
#[tokio::test]
async fn the_resend_cooldown_doubles_across_expiry_and_cancel() {
    let app = spawn_with(no_limits, Overrides::default()).await;
    let send = |expected_status: u16, expected_wait: u64| {
        let app = &app;
        async move {
            let r = app.send(PHONE).await;
            assert_eq!(r.status, expected_status, "{}", r.text);
            assert_eq!(r.json()["resend_in"], expected_wait, "{}", r.text);
            r.json()["id"].as_str().unwrap().to_owned()
        }
    };
    let first = send(201, 30).await;
    app.advance(Duration::from_secs(30));
    assert_eq!(send(200, 60).await, first, "a resend of the live verification");
    app.advance(Duration::from_secs(60));
    send(200, 120).await;
    // The third send renewed the code's 120 s: it expires just as this wait ends.
    app.advance(Duration::from_secs(120));
    assert_eq!(app.check(PHONE, "000000").await.error_code(), "verification_not_found", "expired");
    let after_expiry = send(201, 240).await;
    assert_ne!(after_expiry, first, "a new verification, and still the doubled wait");

    // A cancel lifts nothing: the wait of the last send still runs, and the next one doubles.
    let del = app.request(app.client.delete(app.url(&format!("/v1/verifications/{after_expiry}")))).await;
    assert_eq!(del.status, 204);
    let early = app.send(PHONE).await;
    assert_eq!((early.status, early.error_code().as_str()), (429, "rate_limited"), "{}", early.text);
    assert_eq!(early.header("retry-after").as_deref(), Some("240"));
    app.advance(Duration::from_secs(240));
    send(201, 480).await;

    for (waited, next) in [(480, 960), (960, 1920), (1920, 3600), (3600, 3600)] {
        app.advance(Duration::from_secs(waited));
        send(201, next).await;
    }
    // An hour of quiet after the last wait ended: the count is forgotten.
    app.advance(Duration::from_secs(3600 + 3600));
    send(201, 30).await;
}

#[tokio::test]
async fn per_phone_send_limit_answers_429_with_retry_after_and_resets() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    // No resend cooldown, so the per-phone limit is what stops us.
    let app = spawn_with(|c| c.codes.resend_cooldown_secs = 0, with_provider(provider.clone())).await;
    for _ in 0..3 {
        let sent = app.send(PHONE).await;
        assert_eq!(sent.status, 201, "{}", sent.text);
        let id = sent.json()["id"].as_str().unwrap().to_owned();
        let del = app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
        assert_eq!(del.status, 204);
    }
    let limited = app.send(PHONE).await;
    assert_eq!((limited.status, limited.error_code().as_str()), (429, "rate_limited"));
    assert_eq!(limited.header("retry-after").as_deref(), Some("20"));
    assert_eq!(provider.calls(), 3, "the refused send never reached the provider");
    // Another phone is not affected.
    assert_eq!(app.send("+14155550101").await.status, 201);
    app.advance(Duration::from_secs(20));
    assert_eq!(app.send(PHONE).await.status, 201, "the limit resets when the clock moves past it");
}

#[tokio::test]
async fn code_expires_after_ttl() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    app.advance(Duration::from_secs(120));
    let r = app.check(PHONE, &code).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "verification_not_found"));
}

#[tokio::test]
async fn five_wrong_codes_kill_the_verification_and_the_right_one_is_refused() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in [4, 3, 2, 1] {
        let r = app.check(PHONE, wrong).await;
        assert_eq!((r.status, r.error_code().as_str()), (422, "invalid_code"));
        assert_eq!(r.json()["error"]["attempts_left"], left);
        assert_eq!(r.json()["error"]["field"], "code");
    }
    let fifth = app.check(PHONE, wrong).await;
    assert_eq!((fifth.status, fifth.error_code().as_str()), (429, "too_many_attempts"));
    let right = app.check(PHONE, &code).await;
    assert_eq!((right.status, right.error_code().as_str()), (429, "too_many_attempts"));
}

#[tokio::test]
async fn code_length_is_configurable() {
    let app = spawn_with(|c| c.codes.length = 8, Default::default()).await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    assert_eq!(code.len(), 8);
    assert_eq!(app.check(PHONE, &code[..6]).await.error_code(), "invalid_request");
    assert_eq!(app.check(PHONE, &code).await.status, 200);
}

#[tokio::test]
async fn cancel_answers_204_for_anything_and_ends_the_verification() {
    let app = spawn_app().await;
    let id = app.send(PHONE).await.json()["id"].as_str().unwrap().to_owned();
    let code = app.inbox_code(PHONE).await;
    for path in
        [format!("/v1/verifications/{id}"), format!("/v1/verifications/{id}"), "/v1/verifications/vf_nope".into()]
    {
        let r = app.request(app.client.delete(app.url(&path))).await;
        assert_eq!(r.status, 204, "{path}");
        assert!(r.text.is_empty());
    }
    assert_eq!(app.check(PHONE, &code).await.error_code(), "verification_not_found");
}

#[tokio::test]
async fn transport_errors_follow_the_table() {
    let app = spawn_app().await;
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("/v1/verifications", "text/plain", br#"{"phone":"+14155550100"}"#.to_vec(), 415, "unsupported_media_type"),
        (
            "/v1/verifications",
            "application/json; charset=latin1",
            br#"{"phone":"+14155550100"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("/v1/verifications", "application/json", b"{\"phone\":".to_vec(), 400, "invalid_request"),
        ("/v1/verifications", "application/json", br#"{"phone":14155550100}"#.to_vec(), 400, "invalid_request"),
        (
            "/v1/verifications",
            "application/json",
            br#"{"phone":"+14155550100","verified":true}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications",
            "application/json",
            br#"{"phone":"+14155550100","phone":"+14155550101"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        ("/v1/verifications", "application/json", br#"{}"#.to_vec(), 400, "invalid_request"),
        ("/v1/verifications", "application/json", br#"{"phone":"+14155550100"} []"#.to_vec(), 400, "invalid_request"),
        ("/v1/verifications", "application/json", b"{\"phone\":\"+1415\xff5550100\"}".to_vec(), 400, "invalid_request"),
        (
            "/v1/verifications",
            "application/json",
            br#"{"phone":"+14155550100","channel":"fax"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications",
            "application/json",
            br#"{"phone":"+14155550100","locale":"en_US<script>"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications",
            "application/json",
            format!(r#"{{"phone":"{}"}}"#, "1".repeat(5000)).into_bytes(),
            413,
            "payload_too_large",
        ),
        ("/v1/verifications", "application/json", br#"{"phone":"+1415555O100"}"#.to_vec(), 422, "invalid_phone"),
        (
            "/v1/verifications",
            "application/json",
            "{\"phone\":\"+\u{ff11}4155550100\"}".as_bytes().to_vec(),
            422,
            "invalid_phone",
        ),
        (
            "/v1/verifications/check",
            "application/json",
            br#"{"phone":"+14155550100","code":123456}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications/check",
            "application/json",
            br#"{"phone":"+14155550100","code":"+12345"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications/check",
            "application/json",
            "{\"phone\":\"+14155550100\",\"code\":\"\u{0661}\u{0662}\u{0663}\u{0664}\u{0665}\u{0666}\"}"
                .as_bytes()
                .to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/verifications/check",
            "application/json",
            br#"{"phone":"+14155550100","code":"123456"}"#.to_vec(),
            404,
            "verification_not_found",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let r = app.post_raw(path, content_type, body.clone()).await;
        assert_eq!((r.status, r.error_code().as_str()), (status, code), "{path} {}", String::from_utf8_lossy(&body));
        let error = &r.json()["error"];
        assert!(!error["message"].as_str().unwrap().is_empty());
        assert_eq!(error["request_id"].as_str(), r.header("x-request-id").as_deref(), "request id in body and header");
        assert!(!r.text.contains("123456"), "never echo a code: {}", r.text);
    }
}

#[tokio::test]
async fn every_json_body_that_is_not_an_object_is_invalid_request() {
    // `POST /v1/sessions/revoke` with `["rt_…"]` answered 204: serde read the array as the struct.
    let app = spawn_app().await;
    let session = {
        app.send("+15005550006").await;
        app.check("+15005550006", "123456").await.json()["session"].clone()
    };
    let token = session["refresh_token"].as_str().unwrap().to_owned();
    let bodies = [
        json!([token]),
        json!(["+15005550006", "123456"]),
        json!(["+15005550006"]),
        json!([]),
        json!(token),
        json!(42),
        json!(true),
        serde_json::Value::Null,
        json!([{ "refresh_token": token }]),
    ];
    for path in ["/v1/verifications", "/v1/verifications/check", "/v1/sessions/refresh", "/v1/sessions/revoke"] {
        for body in &bodies {
            let r = app.post_json(path, body).await;
            assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_request"), "{path} {body}: {}", r.text);
        }
    }
    // Nothing above took effect: the refresh token still works.
    let r = app.post_json("/v1/sessions/refresh", &json!({ "refresh_token": token })).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let r = app.get("/v1/nope").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = app.get("/v1/verifications").await;
    assert_eq!((r.status, r.error_code().as_str()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn provider_errors_map_to_the_table_and_leave_nothing_usable() {
    let provider = FakeProvider::new(FakeBehaviour::Fail(ProviderError::Unavailable { retry_after: None }));
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let r = app.send(PHONE).await;
    assert_eq!((r.status, r.error_code().as_str()), (503, "provider_unavailable"));
    assert_eq!(r.header("retry-after").as_deref(), Some("30"));
    // Nothing usable was left: a check finds no verification, and no cooldown blocks a retry.
    assert_eq!(app.check(PHONE, "123456").await.error_code(), "verification_not_found");
    let again = app.send(PHONE).await;
    assert_eq!(again.error_code(), "provider_unavailable", "the failed send started no cooldown: {}", again.text);

    for (error, status, code) in [
        (ProviderError::Undeliverable, 422, "undeliverable"),
        (ProviderError::UnsupportedRegion, 422, "unsupported_region"),
        (ProviderError::InvalidNumber, 422, "invalid_phone"),
        (ProviderError::RateLimited { retry_after: Some(Duration::from_secs(7)) }, 429, "rate_limited"),
    ] {
        provider.set(FakeBehaviour::Fail(error));
        app.advance(Duration::from_secs(60));
        let r = app.send(PHONE).await;
        assert_eq!((r.status, r.error_code().as_str()), (status, code), "{}", r.text);
    }
    provider.set(FakeBehaviour::Deliver);
    app.advance(Duration::from_secs(60));
    assert_eq!(app.send(PHONE).await.status, 201, "a retry after a failed send goes through at once");
    let code = provider.last_code();
    assert_eq!(app.check(PHONE, &code).await.status, 200);
}

#[tokio::test]
async fn unsupported_channel_is_invalid_request() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let r = app.post_json("/v1/verifications", &json!({"phone": PHONE, "channel": "call"})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_request"));
    assert_eq!(r.json()["error"]["field"], "channel");
    assert_eq!(provider.calls(), 0);
    let r =
        app.post_json("/v1/verifications", &json!({"phone": PHONE, "channel": "whatsapp", "locale": "pt-BR"})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["channel"], "whatsapp");
}

#[tokio::test]
async fn a_panic_is_an_opaque_500() {
    let provider = FakeProvider::new(FakeBehaviour::Panic);
    let app = spawn_with(|_| {}, with_provider(provider)).await;
    let r = app.send(PHONE).await;
    assert_eq!((r.status, r.error_code().as_str()), (500, "internal"));
    assert!(!r.text.contains("panicked"), "{}", r.text);
    assert!(r.json()["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty() && id != "-"));
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let r = app.request(app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc_1")).await;
    assert_eq!(r.header("x-request-id").as_deref(), Some("trace-abc_1"));
    let r = app.request(app.client.get(app.url("/healthz")).header("x-request-id", "bad id\twith junk")).await;
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 26);
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status, 200);
    let ready = app.get("/readyz").await;
    assert_eq!((ready.status, ready.json()["status"].as_str()), (200, Some("ready")));
    let doc = app.get("/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/v1/verifications", "/v1/verifications/check", "/v1/verifications/{id}", "/healthz", "/readyz"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // The document describes this deployment's code length and the idempotency key's syntax.
    let code = &doc["components"]["schemas"]["CheckVerificationRequest"]["properties"]["code"];
    assert_eq!(code["pattern"], "^[0-9]{6}$");
    let eight = spawn_with(|c| c.codes.length = 8, Default::default()).await;
    let doc = eight.get("/openapi.json").await.json();
    assert_eq!(doc["components"]["schemas"]["CheckVerificationRequest"]["properties"]["code"]["pattern"], "^[0-9]{8}$");
    let key = doc["paths"]["/v1/verifications"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap()["schema"]
        .clone();
    assert_eq!((key["minLength"].as_u64(), key["maxLength"].as_u64()), (Some(1), Some(255)), "{key}");
}

#[tokio::test]
async fn sign_in_page_is_served_with_security_headers() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(page.text.contains("one-time-code"));
    assert!(page.text.contains(r#"<script type="module" src="app.js">"#), "the page is an ES module");
    let app_js = app.get("/app.js").await;
    assert_eq!(app_js.status, 200);
    assert!(app_js.text.contains("from './otpgate.js'"), "the page imports the client served beside it");
    // The JavaScript client (npm package `otpgate`), served beside the page with the same headers.
    let client = app.get("/otpgate.js").await;
    assert_eq!(client.status, 200);
    assert!(client.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(client.header("content-security-policy").is_some_and(|csp| csp.contains("script-src 'self'")));
    assert!(client.text.contains("export class OtpgateClient"));
}

#[tokio::test]
async fn restart_between_send_and_check_still_approves() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let code = app.inbox_code(PHONE).await;
    assert_eq!(app.check(PHONE, "000000").await.json()["error"]["attempts_left"], 4);
    let app = app.restart().await;
    // The attempt count survived too.
    let wrong = if code == "111111" { "222222" } else { "111111" };
    assert_eq!(app.check(PHONE, wrong).await.json()["error"]["attempts_left"], 3);
    assert_eq!(app.check(PHONE, &code).await.status, 200);
}

#[tokio::test]
async fn limits_survive_a_restart() {
    let app = spawn_app().await;
    app.send(PHONE).await;
    let app = app.restart().await;
    let r = app.send(PHONE).await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
}

#[tokio::test]
async fn database_holds_no_plaintext_code() {
    let app = spawn_app().await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let phone = format!("+1415555{:04}", 200 + i);
        assert_eq!(app.send(&phone).await.status, 201);
        codes.push(app.inbox_code(&phone).await);
    }
    app.send("+15005550006").await;
    codes.push("123456".into());
    let mut dump = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", app.db_path().display());
        if let Ok(bytes) = std::fs::read(&path) {
            dump.extend(bytes);
        }
    }
    assert!(dump.len() > 1000, "read the database files");
    let dump = String::from_utf8_lossy(&dump);
    assert!(dump.contains("+14155550200"), "the dump is readable (sanity)");
    for code in codes {
        assert!(!dump.contains(&code), "plaintext code {code} found in the database");
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let provider = FakeProvider::new(FakeBehaviour::Delay(Duration::from_millis(400)));
    let mut app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let client = app.client.clone();
    let url = app.url("/v1/verifications");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(format!(r#"{{"phone":"{PHONE}"}}"#))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop().await;
    let resp = in_flight.await.unwrap().expect("the in-flight request got an answer");
    assert_eq!(resp.status(), 201);
    assert_eq!(provider.calls(), 1);
}
