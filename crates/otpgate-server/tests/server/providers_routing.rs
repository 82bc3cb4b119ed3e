//! The server with named providers and routes per country, against fake vendors (wiremock):
//! the route of each country, failover only when a provider is unavailable, the old
//! `[provider]` table as one route, delivery receipts believed only when signed, readiness per
//! provider, configuration errors that name their key, and `sms test --provider`.

use crate::common::*;
use base64::Engine;
use otpgate_server::Config;
use otpgate_server::config::ProviderKind;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INDIA: &str = "+919876543210";
const US: &str = "+14155550123";
const PLAN: &str = "fakeplan0001";
const SINCH_BATCHES: &str = "/xms/v1/fakeplan0001/batches";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; // the specification's test key
const VONAGE_SIG_SECRET: &str = "fake-vonage-signature-secret";

/// Short limits so the failure paths finish fast.
fn limits() -> Value {
    json!({
        "http": { "connect_timeout_ms": 200, "request_timeout_ms": 400 },
        "retry": { "max_retries": 1, "min_delay_ms": 10, "max_delay_ms": 20, "deadline_ms": 800 },
        "breaker": { "failure_threshold": 5, "open_secs": 30 }
    })
}

fn with_limits(mut v: Value) -> Value {
    v.as_object_mut().unwrap().extend(limits().as_object().unwrap().clone());
    v
}

fn vonage(base: &str) -> Value {
    with_limits(
        json!({ "kind": "vonage", "api_key": "abcd1234", "api_secret": "fake-secret-1", "from": "Acme", "base_url": format!("{base}/sms") }),
    )
}

fn sinch(base: &str) -> Value {
    with_limits(
        json!({ "kind": "sinch", "service_plan_id": PLAN, "api_token": "fake-sinch-token", "from": "Acme", "base_url": base }),
    )
}

fn vonage_answer(status: &str) -> ResponseTemplate {
    let part = if status == "0" {
        json!({ "to": "919876543210", "message-id": "0A0000000123ABCD1", "status": "0" })
    } else {
        json!({ "status": status, "error-text": "vendor words" })
    };
    ResponseTemplate::new(200).set_body_json(json!({ "message-count": "1", "messages": [part] }))
}

fn sinch_created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": "01FC66621XXXXX119Z8PMV1QPQ", "to": ["14155550123"], "from": "Acme", "canceled": false,
        "body": "…", "type": "mt_text", "created_at": "2026-11-24T10:00:00Z"
    }))
}

/// Sets `[providers]` and `[[routing]]` as a TOML file would.
fn route(c: &mut Config, providers: Value, routing: Value) {
    c.providers = serde_json::from_value(providers).expect("provider tables");
    c.routing = serde_json::from_value(routing).expect("routing tables");
}

/// The code in the last message a fake received (Vonage's `text` form field, Sinch's `body`).
async fn last_code(server: &MockServer) -> String {
    let requests = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&requests.last().expect("a request").body).into_owned();
    // "123456 is your …" (Sinch's JSON) or "123456+is+your+…" (Vonage's form).
    let at = body.find(" is your").or_else(|| body.find("+is+your")).unwrap_or_else(|| panic!("no text in {body}"));
    let code = body[..at].chars().rev().take(6).collect::<String>().chars().rev().collect::<String>();
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "no code in {body}");
    code
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// The value of the first `/metrics` line with `name` and every label in `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> Option<f64> {
    let text = app.get("/metrics").await.text;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn each_country_goes_by_its_route_and_approvals_are_counted_per_provider() {
    let (v, s) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST")).and(path("/sms/json")).respond_with(vonage_answer("0")).mount(&v).await;
    Mock::given(method("POST")).and(path(SINCH_BATCHES)).respond_with(sinch_created()).mount(&s).await;
    let (vb, sb) = (v.uri(), s.uri());
    let app = spawn_with(
        move |c| {
            route(
                c,
                json!({ "vonage-in": vonage(&vb), "sinch-all": sinch(&sb) }),
                json!([
                    { "countries": ["IN", "BD"], "providers": ["vonage-in", "sinch-all"] },
                    { "countries": ["*"], "providers": ["sinch-all"] }
                ]),
            )
        },
        Default::default(),
    )
    .await;

    assert_eq!(app.send(INDIA).await.status, 201);
    assert_eq!((calls(&v).await, calls(&s).await), (1, 0), "India goes by Vonage");
    let form = String::from_utf8_lossy(&v.received_requests().await.unwrap()[0].body).into_owned();
    assert!(form.contains("to=919876543210"), "{form}");
    let code = last_code(&v).await;
    assert_eq!(app.check(INDIA, &code).await.status, 200);

    assert_eq!(app.send(US).await.status, 201);
    assert_eq!((calls(&v).await, calls(&s).await), (1, 1), "the rest of the world goes by Sinch");
    assert_eq!(app.check(US, &last_code(&s).await).await.status, 200);

    for name in ["otpgate_sends_total", "otpgate_approvals_total"] {
        let vonage_in = metric(&app, name, &["provider=\"vonage-in\"", "country=\"IN\""]).await;
        let sinch_us = metric(&app, name, &["provider=\"sinch-all\"", "country=\"US\""]).await;
        assert_eq!((vonage_in, sinch_us), (Some(1.0), Some(1.0)), "{name}");
    }
}

#[tokio::test]
async fn unavailable_fails_over_and_readyz_says_why_but_a_rejected_number_is_not_tried_elsewhere() {
    let (v, s) = (MockServer::start().await, MockServer::start().await);
    // Vonage: out of credit (status 9) first, then "invalid number" (status 3).
    Mock::given(method("POST")).respond_with(vonage_answer("9")).up_to_n_times(1).with_priority(1).mount(&v).await;
    Mock::given(method("POST")).respond_with(vonage_answer("3")).mount(&v).await;
    Mock::given(method("POST")).and(path(SINCH_BATCHES)).respond_with(sinch_created()).mount(&s).await;
    let (vb, sb) = (v.uri(), s.uri());
    let app = spawn_with(
        move |c| {
            route(
                c,
                json!({ "vonage": vonage(&vb), "sinch": sinch(&sb) }),
                json!([{ "countries": ["*"], "providers": ["vonage", "sinch"] }]),
            )
        },
        Default::default(),
    )
    .await;

    let sent = app.send(INDIA).await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    assert_eq!((calls(&v).await, calls(&s).await), (1, 1), "Vonage out of credit: Sinch sent");
    assert_eq!(app.check(INDIA, &last_code(&s).await).await.status, 200, "the code Sinch sent is the one");

    // Still ready (Sinch carries the route), and the reason for Vonage is named.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let providers = ready.json()["providers"].clone();
    assert_eq!(providers[0]["name"], "sinch");
    assert_eq!(providers[0]["status"], "ready");
    assert_eq!(providers[1]["name"], "vonage");
    assert_eq!(providers[1]["status"], "not_ready");
    let why = providers[1]["reason"].as_str().unwrap();
    assert!(why.contains("out of credit") && why.contains("status 9"), "{why}");

    let refused = app.send(US).await;
    assert_eq!((refused.status, refused.error_code()), (422, "invalid_phone".to_owned()), "{}", refused.text);
    assert_eq!((calls(&v).await, calls(&s).await), (2, 1), "a rejected number is not sent elsewhere");
}

#[tokio::test]
async fn readyz_is_not_ready_when_a_route_has_no_provider_left_and_says_why() {
    let v = MockServer::start().await;
    Mock::given(method("POST")).respond_with(vonage_answer("4")).mount(&v).await;
    let vb = v.uri();
    let app = spawn_with(
        move |c| route(c, json!({ "vonage": vonage(&vb) }), json!([{ "countries": ["*"], "providers": ["vonage"] }])),
        Default::default(),
    )
    .await;
    assert_eq!(app.get("/readyz").await.status, 200, "nothing known against it before a send");
    let sent = app.send(US).await;
    assert_eq!((sent.status, sent.error_code()), (503, "provider_unavailable".to_owned()), "{}", sent.text);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let reasons = ready.json()["reasons"].to_string();
    assert!(reasons.contains("vonage") && reasons.contains("credentials") && reasons.contains("status 4"), "{reasons}");
    assert!(!reasons.contains("fake-secret-1"));
}

const FAKE_VA: &str = "VA00000000000000000000000000000000"; // fake test SID

fn twilio(base: &str) -> otpgate_sms::TwilioConfig {
    serde_json::from_value(with_limits(json!({
        "account_sid": "AC00000000000000000000000000000000", // fake test SID
        "auth_token": "fake-auth-token-for-tests",
        "verify": { "service_sid": FAKE_VA, "base_url": base },
        "messaging": { "from": "+15005550006", "base_url": base },
    })))
    .unwrap()
}

#[tokio::test]
async fn the_provider_table_still_works_as_one_route_with_its_failover_list() {
    let t = MockServer::start().await;
    // Verify is down; Messaging sends.
    Mock::given(method("POST"))
        .and(path(format!("/v2/Services/{FAKE_VA}/Verifications")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({ "code": 20500, "message": "x" })))
        .mount(&t)
        .await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({ "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "status": "queued" })),
        )
        .mount(&t)
        .await;
    let tb = t.uri();
    let app = spawn_with(
        move |c| {
            c.provider.failover = vec![ProviderKind::TwilioVerify, ProviderKind::TwilioMessaging];
            c.provider.twilio = Some(twilio(&tb));
        },
        Default::default(),
    )
    .await;
    let sent = app.send(US).await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    let requests = t.received_requests().await.unwrap();
    let messages = requests.iter().filter(|r| r.url.path().ends_with("/Messages.json")).collect::<Vec<_>>();
    assert_eq!(messages.len(), 1);
    let body = String::from_utf8_lossy(&messages[0].body).into_owned();
    let code: String = body.split("Body=").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    // The recorder is the process's: other tests' legacy Twilio approvals count under the same
    // labels, so this one is measured as the difference it makes.
    let legacy = ["provider=\"twilio-messaging\"", "country=\"US\""];
    let approvals_before = metric(&app, "otpgate_approvals_total", &legacy).await.unwrap_or(0.0);
    assert_eq!(app.check(US, &code).await.status, 200, "the code Messaging sent is checked here");
    let providers = app.get("/readyz").await.json()["providers"].clone();
    assert_eq!(providers.as_array().unwrap().len(), 2);
    assert_eq!(
        (providers[0]["name"].as_str(), providers[1]["name"].as_str()),
        (Some("twilio-messaging"), Some("twilio-verify"))
    );
    let approvals_after = metric(&app, "otpgate_approvals_total", &legacy).await.unwrap_or(0.0);
    assert!(approvals_after >= approvals_before + 1.0, "the legacy kinds keep their names as provider labels");
    // The `[provider]` table is one route for every country.
    let routes = app.config.effective_routes().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (routes[0].country.as_str(), routes[0].providers.clone()),
        ("*", vec!["twilio-verify".to_owned(), "twilio-messaging".to_owned()])
    );
}

/// An app whose Vonage, Sinch and webhook providers take delivery receipts (their sends are
/// never called here).
async fn receipts_app() -> TestApp {
    let unused = "http://127.0.0.1:9";
    spawn_with(
        move |c| {
            let mut v = vonage(unused);
            v["signature_secret"] = json!(VONAGE_SIG_SECRET);
            v["signature_method"] = json!("sha256");
            v.as_object_mut().unwrap().remove("api_secret");
            let mut s = sinch(unused);
            s["callback_url"] = json!("https://otp.example.com/v1/providers/sinch-rx/receipts");
            s["callback_username"] = json!("sinch");
            s["callback_password"] = json!("fake-callback-password");
            route(
                c,
                json!({
                    "vonage-rx": v,
                    "vonage-open": vonage(unused),
                    "sinch-rx": s,
                    "gw": { "kind": "webhook", "url": format!("{unused}/otp"), "secret": WHSEC },
                    "dev": { "kind": "demo" },
                }),
                json!([{ "countries": ["*"], "providers": ["dev", "vonage-rx", "vonage-open", "sinch-rx", "gw"] }]),
            )
        },
        Default::default(),
    )
    .await
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn vonage_receipt(status: &str, msisdn: &str) -> Vec<(String, String)> {
    [
        ("msisdn", msisdn),
        ("to", "Acme"),
        ("messageId", "0A0000000123ABCD1"),
        ("status", status),
        ("err-code", "0"),
        ("api-key", "abcd1234"),
        ("message-timestamp", "2026-11-24 10:00:00"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain([("timestamp".to_owned(), now_secs().to_string()), ("nonce".to_owned(), "n-1".to_owned())])
    .collect()
}

fn form(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

#[tokio::test]
async fn vonage_receipts_count_only_when_their_signature_verifies() {
    let app = receipts_app().await;
    let secret = secrecy::SecretString::from(VONAGE_SIG_SECRET);
    let method = otpgate_sms::vonage::SignatureMethod::Sha256;
    let mut signed = vonage_receipt("delivered", "919876543210");
    signed.push(("sig".into(), otpgate_sms::vonage::sign(&signed, &secret, method)));

    // POST as a form, GET as a query, POST as JSON: the three ways Vonage's dashboard offers.
    let path = "/v1/providers/vonage-rx/receipts";
    let r = app.post_raw(path, "application/x-www-form-urlencoded", form(&signed)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get(&format!("{path}?{}", form(&signed))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let as_json: serde_json::Map<String, Value> = signed.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let r = app.post_json(path, &Value::Object(as_json)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let delivered = ["provider=\"vonage-rx\"", "country=\"IN\"", "status=\"delivered\""];
    assert_eq!(metric(&app, "otpgate_sms_delivery_total", &delivered).await, Some(3.0));

    // Altered after signing, unsigned, or stale: 401, counted nowhere.
    let mut altered = signed.clone();
    altered.iter_mut().find(|(k, _)| k == "status").unwrap().1 = "failed".into();
    let unsigned: Vec<_> = signed.iter().filter(|(k, _)| k != "sig").cloned().collect();
    let mut stale = vonage_receipt("failed", "919876543210");
    stale.iter_mut().find(|(k, _)| k == "timestamp").unwrap().1 = (now_secs() - 3600).to_string();
    stale.push(("sig".into(), otpgate_sms::vonage::sign(&stale, &secret, method)));
    for bad in [altered, unsigned, stale] {
        let r = app.post_raw(path, "application/x-www-form-urlencoded", form(&bad)).await;
        assert_eq!((r.status, r.error_code()), (401, "unauthorized".to_owned()), "{}", r.text);
    }
    let failed = ["provider=\"vonage-rx\"", "status=\"failed\""];
    assert_eq!(metric(&app, "otpgate_sms_delivery_total", &failed).await, None);
    assert_eq!(metric(&app, "otpgate_sms_receipts_refused_total", &["provider=\"vonage-rx\""]).await, Some(3.0));

    // Without a signature secret Vonage cannot sign: receipts are taken as they come.
    let open = vonage_receipt("expired", "14155550123");
    let r = app.post_raw("/v1/providers/vonage-open/receipts", "application/x-www-form-urlencoded", form(&open)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let undelivered = ["provider=\"vonage-open\"", "country=\"US\"", "status=\"undelivered\""];
    assert_eq!(metric(&app, "otpgate_sms_delivery_total", &undelivered).await, Some(1.0));

    // Not a receipt; a provider without receipts; no such provider.
    let r = app.post_raw("/v1/providers/vonage-open/receipts", "application/x-www-form-urlencoded", "hello=1").await;
    assert_eq!((r.status, r.error_code()), (400, "invalid_request".to_owned()), "{}", r.text);
    assert_eq!(app.post_raw("/v1/providers/dev/receipts", "application/json", "{}").await.status, 404);
    assert_eq!(app.post_raw("/v1/providers/nobody/receipts", "application/json", "{}").await.status, 404);
}

#[tokio::test]
async fn sinch_reports_need_the_provisioned_basic_credentials() {
    let app = receipts_app().await;
    let report = json!({
        "type": "recipient_delivery_report_sms", "batch_id": "01FC66621XXXXX119Z8PMV1QPQ",
        "recipient": "919876543210", "status": "Delivered", "code": 0, "at": "2026-11-24T10:00:01Z"
    });
    let post = |auth: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/v1/providers/sinch-rx/receipts"))
            .header("content-type", "application/json")
            .body(report.to_string());
        if let Some(auth) = auth {
            req = req.header("authorization", auth.to_owned());
        }
        app.request(req)
    };
    let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
    assert_eq!(post(Some(&basic("sinch:fake-callback-password"))).await.status, 204);
    for bad in [None, Some(basic("sinch:wrong")), Some("Bearer fake-sinch-token".to_owned())] {
        let r = post(bad.as_deref()).await;
        assert_eq!((r.status, r.error_code()), (401, "unauthorized".to_owned()), "{}", r.text);
    }
    let delivered = ["provider=\"sinch-rx\"", "country=\"IN\"", "status=\"delivered\""];
    assert_eq!(metric(&app, "otpgate_sms_delivery_total", &delivered).await, Some(1.0));
}

#[tokio::test]
async fn webhook_status_callbacks_are_standard_webhooks_signed_with_the_secret() {
    let app = receipts_app().await;
    let key = otpgate_sms::webhook::secret_key(&WHSEC.into()).unwrap();
    let body =
        json!({ "type": "otp.status", "message_id": "msg_abc123", "to": US, "status": "failed", "error_code": 30 })
            .to_string();
    let post = |id: &str, ts: i64, sig: String| {
        app.request(
            app.client
                .post(app.url("/v1/providers/gw/receipts"))
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.clone()),
        )
    };
    let now = now_secs();
    let good = otpgate_sms::webhook::signature(&key, "evt_1", now, body.as_bytes());
    assert_eq!(post("evt_1", now, format!("v1,c29tZXRoaW5nIGVsc2U= {good}")).await.status, 204);
    for (id, ts, sig) in [
        ("evt_2", now, good.clone()), // another id
        ("evt_1", now - 3600, otpgate_sms::webhook::signature(&key, "evt_1", now - 3600, body.as_bytes())), // stale
        ("evt_1", now, otpgate_sms::webhook::signature(&[9u8; 32], "evt_1", now, body.as_bytes())), // another key
    ] {
        let r = post(id, ts, sig).await;
        assert_eq!((r.status, r.error_code()), (401, "unauthorized".to_owned()), "{}", r.text);
    }
    let failed = ["provider=\"gw\"", "country=\"US\"", "status=\"failed\""];
    assert_eq!(metric(&app, "otpgate_sms_delivery_total", &failed).await, Some(1.0));
}

fn load(toml: &str) -> Result<Config, otpgate_server::config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpgate.toml");
    std::fs::write(&file, toml).unwrap();
    Config::load_from(Some(&file), &[])
}

const TWO: &str = r#"
[providers.vonage]
kind = "vonage"
api_key = "abcd1234"
api_secret = "fake-secret"
from = "Acme"
[providers.sinch]
kind = "sinch"
service_plan_id = "fakeplan0001"
api_token = "fake-token"
from = "Acme"
"#;

#[test]
fn routing_errors_name_their_key() {
    let key = |extra: &str| {
        let e = load(&format!("{TWO}{extra}")).unwrap_err();
        (e.config_key().map(str::to_owned), e.to_string())
    };
    let (k, why) = key("[[routing]]\ncountries = [\"IN\"]\nproviders = [\"twilio\"]\n");
    assert_eq!(k.as_deref(), Some("routing[0].providers"), "{why}");
    assert!(why.contains("twilio"), "{why}");
    let (k, why) = key("[[routing]]\ncountries = [\"IN\"]\nproviders = []\n");
    assert_eq!(k.as_deref(), Some("routing[0].providers"), "{why}");
    let (k, why) = key("[[routing]]\ncountries = [\"IN\"]\nproviders = [\"vonage\", \"vonage\"]\n");
    assert_eq!(k.as_deref(), Some("routing[0].providers"), "{why}");
    assert!(why.contains("twice"), "{why}");
    let (k, why) = key("[[routing]]\ncountries = [\"IN\", \"BD\"]\nproviders = [\"vonage\"]\n\
         [[routing]]\ncountries = [\"BD\"]\nproviders = [\"sinch\"]\n");
    assert_eq!(k.as_deref(), Some("routing[1].countries"), "{why}");
    assert!(why.contains("BD") && why.contains("routing[0]"), "{why}");
    let (k, why) = key("[[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\n\
         [[routing]]\ncountries = [\"IN\"]\nproviders = [\"sinch\"]\n");
    assert_eq!(k.as_deref(), Some("routing[1]"), "{why}");
    let (k, why) = key("[[routing]]\ncountries = []\nproviders = [\"vonage\"]\n");
    assert_eq!(k.as_deref(), Some("routing[0].countries"), "{why}");
    let (k, why) = key("");
    assert_eq!(k.as_deref(), Some("routing"), "{why}");
    let (k, why) = key("[provider]\nkind = \"demo\"\n[[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\n");
    assert_eq!(k.as_deref(), Some("provider"), "{why}");

    // Parsed at load: the message names the key and the value.
    for (bad, words) in [
        ("[[routing]]\ncountries = [\"XX\"]\nproviders = [\"vonage\"]\n", ["routing", "XX"]),
        ("[[routing]]\ncountries = [\"in\"]\nproviders = [\"vonage\"]\n", ["routing", "in"]),
        (
            "[[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\nfallback_channel = \"fax\"\n",
            ["fallback_channel", "fax"],
        ),
        ("[[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\nfallbak = \"sms\"\n", ["routing", "fallbak"]),
        ("[providers.Bad]\nkind = \"demo\"\n", ["providers", "Bad"]),
        ("[providers.pigeon]\nkind = \"carrier-pigeon\"\n", ["providers", "carrier-pigeon"]),
    ] {
        let e = load(&format!("{TWO}{bad}")).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{w:?} not in {e}");
        }
    }
    // A provider's own keys: checked with the provider named.
    let e = load(
        "[providers.v]\nkind = \"vonage\"\napi_key = \"abcd1234\"\nfrom = \"Acme\"\n\
         [[routing]]\ncountries = [\"*\"]\nproviders = [\"v\"]\n",
    )
    .unwrap_err();
    assert_eq!(e.config_key(), Some("providers.v"), "{e}");
    assert!(e.to_string().contains("api_secret"), "{e}");
}

#[test]
fn production_refuses_a_demo_provider_and_routes_show_per_country() {
    let prod = "environment = \"production\"\n[secrets]\nhmac_key = \"0123456789abcdef0123456789abcdef-prod\"\n\
                [sessions]\nenabled = false\n";
    let demo = "[providers.dev]\nkind = \"demo\"\n[[routing]]\ncountries = [\"*\"]\nproviders = [\"dev\"]\n";
    let e = load(&format!("{prod}{demo}")).unwrap_err();
    assert_eq!(e.config_key(), Some("providers.dev.kind"), "{e}");
    let c = load(demo).unwrap();
    assert!(c.demo_only(), "the default test number exists only with demo providers");
    assert_eq!(c.effective_test_numbers().unwrap().len(), 1);

    let c = load(&format!(
        "{TWO}[[routing]]\ncountries = [\"IN\", \"BD\"]\nproviders = [\"vonage\", \"sinch\"]\nfallback_channel = \"sms\"\n\
         [[routing]]\ncountries = [\"*\"]\nproviders = [\"sinch\"]\n"
    ))
    .unwrap();
    assert!(c.effective_test_numbers().unwrap().is_empty(), "no default test number with real providers");
    let routes = otpgate_server::provider::check(&c).unwrap();
    let shown: Vec<(String, Vec<String>, Option<&str>)> = routes
        .iter()
        .map(|r| (r.country.clone(), r.providers.clone(), r.fallback_channel.map(|c| c.as_str())))
        .collect();
    let p = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shown,
        [
            ("IN".to_owned(), p(&["vonage", "sinch"]), Some("sms")),
            ("BD".to_owned(), p(&["vonage", "sinch"]), Some("sms")),
            ("*".to_owned(), p(&["sinch"]), None),
        ]
    );
    // Rules that need the providers built: no provider of the route can send the fallback.
    let bad = load(&format!(
        "{TWO}[[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\nfallback_channel = \"whatsapp\"\n"
    ))
    .unwrap();
    let e = otpgate_server::provider::check(&bad).unwrap_err();
    assert_eq!(e.config_key(), Some("routing"), "{e}");
    assert!(e.to_string().contains("whatsapp"), "{e}");
}

#[tokio::test]
async fn sms_test_sends_through_the_named_provider() {
    let (v, s) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST")).respond_with(vonage_answer("0")).mount(&v).await;
    Mock::given(method("POST")).and(path(SINCH_BATCHES)).respond_with(sinch_created()).mount(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(&dir);
    route(
        &mut c,
        json!({ "vonage": vonage(&v.uri()), "sinch": sinch(&s.uri()) }),
        json!([{ "countries": ["*"], "providers": ["vonage", "sinch"] }]),
    );
    let out = otpgate_server::provider::send_test_message(&c, US, Some("sinch")).await.unwrap();
    assert!(out.contains("through sinch"), "{out}");
    assert_eq!((calls(&v).await, calls(&s).await), (0, 1), "the route would have picked Vonage");
    let out = otpgate_server::provider::send_test_message(&c, US, None).await.unwrap();
    assert!(out.contains("through vonage"), "{out}");
    let e = otpgate_server::provider::send_test_message(&c, US, Some("twilio")).await.unwrap_err();
    assert!(e.contains("no provider named `twilio`") && e.contains("sinch, vonage"), "{e}");
}

#[tokio::test]
async fn a_whatsapp_code_that_falls_back_to_sms_is_approved_as_sms() {
    let gw = MockServer::start().await;
    let undeliverable = ResponseTemplate::new(422).set_body_json(json!({ "error": { "kind": "undeliverable" } }));
    let whatsapp = json!({ "channel": "whatsapp" });
    Mock::given(body_partial_json(whatsapp)).respond_with(undeliverable).with_priority(1).mount(&gw).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&gw).await;
    let url = format!("{}/otp", gw.uri());
    let webhook = json!({ "kind": "webhook", "url": url, "secret": WHSEC, "channels": ["sms", "whatsapp"] });
    let routes = json!([{ "countries": ["*"], "providers": ["gw"], "fallback_channel": "sms" }]);
    let app = spawn_with(move |c| route(c, json!({ "gw": with_limits(webhook) }), routes), Default::default()).await;
    let whatsapp = json!({ "phone": US, "channel": "whatsapp" });
    let sent = app.post_json("/v1/verifications", &whatsapp).await;
    assert_eq!((sent.status, sent.json()["channel"].as_str()), (201, Some("sms")), "{}", sent.text);
    // A resend asks for WhatsApp again, falls back again, and says so again.
    let later = std::time::Duration::from_secs(31);
    app.advance(later);
    let resent = app.post_json("/v1/verifications", &whatsapp).await;
    assert_eq!((resent.status, resent.json()["channel"].as_str()), (200, Some("sms")), "{}", resent.text);
    let messages: Vec<Value> =
        gw.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let channels: Vec<&str> = messages.iter().map(|m| m["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["whatsapp", "sms", "whatsapp", "sms"]);
    assert_eq!(messages[2]["code"], messages[3]["code"], "the fallback sends the same code");

    let checked = app.check(US, messages[3]["code"].as_str().unwrap()).await;
    assert_eq!(checked.status, 200, "{}", checked.text);
    let jwks = otpgate_session::VerifyingKeys::from_jwks_json(&app.get("/.well-known/jwks.json").await.text).unwrap();
    let token = checked.json()["session"]["access_token"].as_str().unwrap().to_owned();
    let at = std::time::SystemTime::now() + later;
    let claims = otpgate_session::verify_access_token(&token, &jwks, "otpgate", "otpgate", at).unwrap();
    assert_eq!(claims.amr, ["sms"], "the session says the channel the code really went out on");
}
