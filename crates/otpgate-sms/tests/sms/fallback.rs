//! The channel fallback through the real verification service and a real store: a WhatsApp
//! send that Twilio reports undeliverable goes out by SMS at once with the same code; exactly
//! one code is valid, and the answer says SMS was used and by whom.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use otpgate_core::{
    Channel, Clock, CodeHasher, ManualClock, OtpError, PhoneNumber, Policy, SendRequest, ServiceSettings,
    VerificationService,
};
use otpgate_sms::router::{self, ProviderConfig, RouteConfig};
use otpgate_store::SqliteStore;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

async fn service(
    provider: Arc<dyn otpgate_core::SmsProvider>,
    clock: Arc<dyn Clock>,
) -> (VerificationService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("otp.db")).await.unwrap());
    let settings = ServiceSettings {
        policy: Policy::default(),
        test_numbers: HashMap::new(),
        app_name: "Acme".into(),
        webotp_domain: None,
        templates: Default::default(),
        bot_check: None,
    };
    let hasher = CodeHasher::new(&[7u8; 32]).unwrap();
    (VerificationService::new(store.clone(), store, provider, clock, hasher, settings), dir)
}

/// Remembers the labels of every counter touched (the thread's local recorder; tokio's test
/// runtime runs the whole test on this thread).
#[derive(Default)]
struct Labels(std::sync::Mutex<Vec<(String, LabelSet)>>);

type LabelSet = Vec<(String, String)>;

impl Labels {
    fn of(&self, name: &str) -> Vec<LabelSet> {
        self.0.lock().unwrap().iter().filter(|(n, _)| n == name).map(|(_, l)| l.clone()).collect()
    }
}

impl metrics::Recorder for Labels {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
        self.0.lock().unwrap().push((key.name().to_owned(), labels));
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Digits after `marker` in a form body (URL-encoded).
fn code_after(body: &str, marker: &str) -> String {
    let at = body.find(marker).unwrap_or_else(|| panic!("{marker} in {body}")) + marker.len();
    body[at..].chars().take_while(char::is_ascii_digit).collect()
}

#[tokio::test]
async fn undeliverable_whatsapp_goes_out_by_sms_with_the_same_single_code() {
    let server = MockServer::start().await;
    // WhatsApp: "no WhatsApp behind this number" (63003). SMS: accepted.
    Mock::given(method("POST"))
        .and(body_string_contains("ContentSid="))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({ "code": 63003, "message": VENDOR_TEXT, "status": 400 })),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Body="))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" })))
        .expect(1)
        .mount(&server)
        .await;
    let providers: BTreeMap<String, ProviderConfig> = serde_json::from_value(json!({
        "twilio": merged(json!({
            "kind": "twilio-messaging", "account_sid": "AC00000000000000000000000000000000", "auth_token": "fake-token",
            "messaging": {
                "from": "+15005550006", "base_url": server.uri(),
                "whatsapp_content_sid": "HX00000000000000000000000000000000", "whatsapp_from": "+14155238886"
            }
        }), limits())
    }))
    .unwrap();
    let routes = [RouteConfig {
        countries: vec!["*".into()],
        providers: vec!["twilio".into()],
        fallback_channel: Some("sms".into()),
    }];
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_now());
    let built = router::build(&providers, &routes, clock.clone()).unwrap();
    let (service, _dir) = service(built.router, clock).await;
    let phone = PhoneNumber::parse("+14155550100", None).unwrap();
    let labels = Labels::default();
    let _recording = metrics::set_default_local_recorder(&labels);
    let sent = service
        .send(SendRequest {
            phone: phone.clone(),
            channel: Channel::Whatsapp,
            locale: None,
            client_ip: None,
            bot_token: None,
        })
        .await
        .unwrap();
    assert_eq!(sent.verification.channel, Channel::Sms, "the answer names the channel used");
    // Counted under the provider that sent and the channel used, by country.
    let sends = labels.of("otpgate_sends_total");
    assert_eq!(sends.len(), 1, "{sends:?}");
    for want in [("provider", "twilio"), ("channel", "sms"), ("country", "US"), ("outcome", "created")] {
        assert!(sends[0].contains(&(want.0.to_owned(), want.1.to_owned())), "{want:?} in {sends:?}");
    }
    assert_eq!(labels.of("otpgate_channel_fallbacks_total").len(), 1);

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    let bodies: Vec<String> = reqs.iter().map(|r| String::from_utf8(r.body.clone()).unwrap()).collect();
    let whatsapp_code = code_after(&bodies[0], "ContentVariables=%7B%221%22%3A%22");
    let sms_code = code_after(&bodies[1], "Body=");
    assert_eq!(whatsapp_code.len(), 6);
    assert_eq!(whatsapp_code, sms_code, "the same code on both channels");

    // Exactly one code is valid: any other is wrong, and this one approves once.
    let other = if sms_code == "000000" { "000001" } else { "000000" };
    assert!(matches!(service.check(&phone, other, None).await, Err(OtpError::InvalidCode { .. })));
    let approved = service.check(&phone, &sms_code, None).await.unwrap();
    assert_eq!(approved.verification().provider_ref.as_deref(), Some("twilio:SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert_eq!(router::sender_of(approved.verification().provider_ref.as_deref().unwrap()), Some("twilio"));
    assert!(matches!(service.check(&phone, &sms_code, None).await, Err(OtpError::VerificationNotFound)));
}

#[tokio::test]
async fn a_whatsapp_request_where_the_route_cannot_fall_back_is_refused_before_any_send() {
    let providers: BTreeMap<String, ProviderConfig> =
        serde_json::from_value(json!({ "dev": { "kind": "demo" } })).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_now());
    // The demo provider "sends" everything; a route with only an SMS webhook cannot do WhatsApp.
    let mut providers = providers;
    providers.insert(
        "gw".into(),
        serde_json::from_value(json!({ "kind": "webhook", "url": "http://127.0.0.1:9/otp", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }))
            .unwrap(),
    );
    let routes = [
        RouteConfig { countries: vec!["IN".into()], providers: vec!["gw".into()], fallback_channel: None },
        RouteConfig { countries: vec!["*".into()], providers: vec!["dev".into()], fallback_channel: None },
    ];
    let built = router::build(&providers, &routes, clock.clone()).unwrap();
    let inbox = built.inbox.clone().unwrap();
    let (service, _dir) = service(built.router, clock).await;
    let send = |to: &str| SendRequest {
        phone: PhoneNumber::parse(to, None).unwrap(),
        channel: Channel::Whatsapp,
        locale: None,
        client_ip: None,
        bot_token: None,
    };
    let err = service.send(send("+919876543210")).await.unwrap_err();
    assert!(matches!(err, OtpError::InvalidRequest { field: Some("channel"), .. }), "{err:?}");
    let sent = service.send(send("+14155550100")).await.unwrap();
    assert_eq!(sent.verification.channel, Channel::Whatsapp);
    assert_eq!(inbox.messages(None).len(), 1);
}
