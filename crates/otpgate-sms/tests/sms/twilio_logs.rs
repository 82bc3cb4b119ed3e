//! Twilio's own code and text go to the log (for the operator), with the phone masked, also
//! where Twilio's text quotes the number back. The test reads its own logs
//! (`otpgate_test_support::logs`).

use std::sync::Arc;

use otpgate_core::{Channel, Clock, Code, ManualClock, OutgoingCode, PhoneNumber, ProviderError, SmsProvider};
use otpgate_sms::{TwilioConfig, TwilioMessaging, http};
use otpgate_test_support::logs;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Twilio's 21211 text quotes the `To` number back.
const TWILIO_TEXT: &str = "The 'To' number +14155550100 is not a valid phone number.";
const LOGGED_TEXT: &str = "The 'To' number +1******0100 is not a valid phone number.";

#[tokio::test]
async fn twilios_code_and_text_reach_the_log_with_the_phone_masked() {
    let logs = logs::capture(|writer| {
        tracing_subscriber::fmt().with_ansi(false).with_writer(writer).with_max_level(tracing::Level::INFO).finish()
    });

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "message": TWILIO_TEXT, "more_info": "https://www.twilio.com/docs/errors/21211?To=14155550100", "status": 400
        })))
        .mount(&server)
        .await;
    let cfg: TwilioConfig = serde_json::from_value(json!({
        "account_sid": "AC00000000000000000000000000000000", // fake test SID
        "auth_token": "fake-token",
        "messaging": { "from": "+15005550006", "base_url": server.uri() },
    }))
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_now());
    let provider = TwilioMessaging::new(&cfg, http::build_client(&cfg.http).unwrap(), clock).unwrap();
    let msg = OutgoingCode {
        to: PhoneNumber::parse("+14155550100", None).unwrap(),
        code: Code::parse("123456", 6).unwrap(),
        channel: Channel::Sms,
        locale: None,
        text: "123456 is your code".into(),
        verification_id: None,
        expires_at: None,
    };
    let err = provider.send(&msg).await.unwrap_err();
    assert_eq!(err, ProviderError::InvalidNumber);
    assert!(!err.to_string().contains(TWILIO_TEXT));
    let log = logs.text();
    assert!(log.contains("21211") && log.contains(LOGGED_TEXT), "Twilio's text, its number masked: {log}");
    assert!(log.contains("+1******0100"), "{log}");
    assert!(!log.contains("4155550100"), "the full number must not be logged: {log}");
}
