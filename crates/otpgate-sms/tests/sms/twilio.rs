//! Twilio Messaging's WhatsApp channel (the Twilio suites of before routes stay in
//! `tests/twilio_*.rs`): a content template to `whatsapp:` addresses, and WhatsApp's
//! "no WhatsApp behind this number" answers as `undeliverable`.

use otpgate_core::{Channel, ProviderError, SmsProvider};
use otpgate_sms::{TwilioConfig, TwilioMessaging, http};
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const MESSAGES: &str = "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"; // fake test SID
const FAKE_HX: &str = "HX00000000000000000000000000000000"; // fake test SID

fn messaging(base: &str, whatsapp: bool) -> TwilioMessaging {
    let mut m = json!({ "from": "+15005550006", "base_url": base });
    if whatsapp {
        m["whatsapp_content_sid"] = json!(FAKE_HX);
        m["whatsapp_from"] = json!("+14155238886");
    }
    let cfg: TwilioConfig = serde_json::from_value(merged(
        json!({ "account_sid": "AC00000000000000000000000000000000", "auth_token": "fake-token", "messaging": m }),
        limits(),
    ))
    .unwrap();
    TwilioMessaging::named("twilio", &cfg, http::build_client(&cfg.http).unwrap(), clock()).unwrap()
}

#[tokio::test]
async fn whatsapp_goes_as_a_content_template_to_whatsapp_addresses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(body_string_contains("To=whatsapp%3A%2B14155550100"))
        .and(body_string_contains("From=whatsapp%3A%2B14155238886"))
        .and(body_string_contains(format!("ContentSid={FAKE_HX}")))
        .and(body_string_contains("ContentVariables=%7B%221%22%3A%22123456%22%7D"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "MMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" })))
        .expect(1)
        .mount(&server)
        .await;
    let p = messaging(&server.uri(), true);
    assert_eq!(p.name(), "twilio", "the configured name labels it");
    assert!(p.supports(Channel::Whatsapp) && !p.supports(Channel::Call));
    p.send(&msg("+14155550100", Channel::Whatsapp, "123456")).await.unwrap();
    let body = String::from_utf8(server.received_requests().await.unwrap()[0].body.clone()).unwrap();
    assert!(!body.contains("Body="), "a template carries the text: {body}");
}

#[tokio::test]
async fn without_a_template_there_is_no_whatsapp() {
    let p = messaging("http://127.0.0.1:9", false);
    assert!(p.supports(Channel::Sms) && !p.supports(Channel::Whatsapp));
    assert_eq!(
        p.send(&msg("+14155550100", Channel::Whatsapp, "123456")).await.unwrap_err(),
        ProviderError::Unavailable { retry_after: None }
    );
}

#[tokio::test]
async fn no_whatsapp_behind_the_number_is_undeliverable() {
    let server = MockServer::start().await;
    for code in [63003, 63024] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(400)
                    .set_body_json(json!({ "code": code, "message": VENDOR_TEXT, "status": 400 })),
            )
            .mount(&server)
            .await;
        let err =
            messaging(&server.uri(), true).send(&msg("+14155550100", Channel::Whatsapp, "123456")).await.unwrap_err();
        assert_eq!(err, ProviderError::Undeliverable, "{code}");
    }
}

#[test]
fn whatsapp_settings_are_checked() {
    let cfg = |m: serde_json::Value| -> TwilioConfig {
        serde_json::from_value(
            json!({ "account_sid": "AC00000000000000000000000000000000", "auth_token": "t", "messaging": m }),
        )
        .unwrap()
    };
    assert!(cfg(json!({ "from": "+15005550006", "whatsapp_content_sid": "HXnope" })).validate().is_err());
    assert!(cfg(json!({ "from": "+15005550006", "whatsapp_content_sid": FAKE_HX })).validate().is_err(), "no sender");
    assert!(cfg(json!({ "from": "+15005550006", "whatsapp_from": "+14155238886" })).validate().is_err(), "no template");
    cfg(json!({ "from": "+15005550006", "whatsapp_content_sid": FAKE_HX, "whatsapp_from": "+14155238886" }))
        .validate()
        .unwrap();
}
