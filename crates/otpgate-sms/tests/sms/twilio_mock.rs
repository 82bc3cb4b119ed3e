//! Every request the Twilio providers make, validated by the Prism mock built from Twilio's own
//! OpenAPI specs (`shared/tools/twilio-mock`): paths, form encoding, field names, Basic auth.
//! Prism answers 422 to a request that breaks the spec, which the providers would report as
//! `Unavailable`, so a plain success here means the request was valid.
//!
//! Ignored unless asked for (`cargo test -- --include-ignored`); then they need the mock running
//! and these pointing at it (a test asked to run without its variables fails):
//!   OTPGATE_TEST_TWILIO_MOCK_VERIFY_URL=http://127.0.0.1:4010
//!   OTPGATE_TEST_TWILIO_MOCK_API_URL=http://127.0.0.1:4011
//! e.g. `twilio-mock start 4010 4011`, run the tests, `twilio-mock stop`.

use std::sync::Arc;

use otpgate_core::provider::ProviderCheck;
use otpgate_core::{Channel, Code, ManualClock, OutgoingCode, PhoneNumber, SmsProvider};
use otpgate_sms::{TwilioConfig, TwilioMessaging, TwilioVerify, http};
use otpgate_test_support::service;
use serde_json::json;

const FAKE_AC: &str = "AC00000000000000000000000000000000"; // fake test SID
const FAKE_VA: &str = "VA00000000000000000000000000000000"; // fake test SID
const FAKE_MG: &str = "MG00000000000000000000000000000000"; // fake test SID

/// The mock's URLs (Verify, Messaging); fails the test when they are not set.
fn mock_urls() -> (String, String) {
    (service("OTPGATE_TEST_TWILIO_MOCK_VERIFY_URL"), service("OTPGATE_TEST_TWILIO_MOCK_API_URL"))
}

fn config(verify_url: &str, api_url: &str, messaging: serde_json::Value) -> TwilioConfig {
    let mut messaging = messaging;
    messaging["base_url"] = json!(api_url);
    serde_json::from_value(json!({
        "account_sid": FAKE_AC,
        "auth_token": "fake-mock-token",
        "verify": { "service_sid": FAKE_VA, "channels": ["sms", "whatsapp", "call"], "base_url": verify_url },
        "messaging": messaging,
    }))
    .unwrap()
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

#[tokio::test]
#[ignore = "needs the Twilio Prism mocks: set OTPGATE_TEST_TWILIO_MOCK_VERIFY_URL and OTPGATE_TEST_TWILIO_MOCK_API_URL"]
async fn verify_requests_match_twilios_spec() {
    let (verify_url, api_url) = mock_urls();
    let cfg = config(&verify_url, &api_url, json!({ "from": "+15005550006" }));
    let p =
        TwilioVerify::new(&cfg, http::build_client(&cfg.http).unwrap(), Arc::new(ManualClock::starting_now())).unwrap();
    for channel in Channel::ALL {
        let receipt = p.send(&msg(channel)).await.unwrap_or_else(|e| panic!("start via {channel:?}: {e:?}"));
        let sid = receipt.provider_ref.expect("a VerificationSid");
        let m = msg(channel);
        let outcome = p.check(&sid, &m.to, &m.code).await.expect("check accepted by the spec");
        assert!(matches!(outcome, ProviderCheck::Approved | ProviderCheck::Wrong | ProviderCheck::NotFound));
        p.cancel(&sid).await.expect("cancel accepted by the spec");
    }
}

#[tokio::test]
#[ignore = "needs the Twilio Prism mocks: set OTPGATE_TEST_TWILIO_MOCK_VERIFY_URL and OTPGATE_TEST_TWILIO_MOCK_API_URL"]
async fn messaging_requests_match_twilios_spec() {
    let (verify_url, api_url) = mock_urls();
    for messaging in [
        json!({ "from": "+15005550006", "status_callback_url": "https://otp.example.com/v1/sms/status" }),
        json!({ "messaging_service_sid": FAKE_MG }),
    ] {
        let cfg = config(&verify_url, &api_url, messaging);
        let p =
            TwilioMessaging::new(&cfg, http::build_client(&cfg.http).unwrap(), Arc::new(ManualClock::starting_now()))
                .unwrap();
        let receipt = p.send(&msg(Channel::Sms)).await.unwrap_or_else(|e| panic!("send: {e:?}"));
        assert!(receipt.provider_ref.is_some_and(|sid| sid.starts_with("SM") || sid.starts_with("MM")));
    }
}
