//! Property tests for the request decoder (`extract::parse`, behind every JSON body): arbitrary
//! bytes and arbitrary JSON never panic and fail only as `invalid_request`, naming at most a
//! known field and never echoing what was sent; well-formed requests decode to what was sent.

use otpgate_api::{CheckVerificationRequest, ErrorCode, RefreshTokenRequest, SendVerificationRequest};
use otpgate_server::error::ApiError;
use otpgate_server::extract::parse;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Planted in junk: must never come back in an error message.
const MARKER: &str = "Zq7marker";

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const KNOWN_FIELDS: [&str; 5] = ["phone", "code", "channel", "locale", "refresh_token"];

fn assert_clean_refusal(e: &ApiError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
    prop_assert!(e.field.is_none_or(|f| KNOWN_FIELDS.contains(&f)), "field {:?}", e.field);
    prop_assert!(!e.message.contains(MARKER), "echoed: {}", e.message);
    prop_assert!(e.message.len() < 120 && e.message.is_ascii(), "message: {}", e.message);
    Ok(())
}

/// Runs every request type over `bytes`; each either decodes or refuses cleanly.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = parse::<SendVerificationRequest>(bytes) {
        assert_clean_refusal(&e)?;
    }
    if let Err(e) = parse::<CheckVerificationRequest>(bytes) {
        assert_clean_refusal(&e)?;
    }
    if let Err(e) = parse::<RefreshTokenRequest>(bytes) {
        assert_clean_refusal(&e)?;
    }
    Ok(())
}

/// Any JSON value, strings and keys often carrying the marker.
fn json_value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![any::<String>(), Just(MARKER.to_owned()), "[a-z]{0,8}".prop_map(|s| format!("{s}{MARKER}"))];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((text.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Objects shaped like requests: known keys with any values, sometimes one more key.
fn request_like() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("phone".to_owned()),
        Just("code".to_owned()),
        Just("channel".to_owned()),
        Just("locale".to_owned()),
        Just("bot_token".to_owned()),
        Just("refresh_token".to_owned()),
        Just(format!("x{MARKER}")),
    ];
    proptest::collection::vec((key, json_value()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn arbitrary_json_is_refused_cleanly(value in json_value()) {
        decode_all(value.to_string().as_bytes())?;
    }

    #[test]
    fn request_shaped_junk_is_refused_cleanly(value in request_like(), trailing in prop_oneof![Just(""), Just(" "), Just("x"), Just("{}"), Just("\u{0}")]) {
        let mut body = value.to_string().into_bytes();
        body.extend_from_slice(trailing.as_bytes());
        decode_all(&body)?;
        if !trailing.trim().is_empty() {
            prop_assert!(parse::<CheckVerificationRequest>(&body).is_err(), "data after the value is refused");
        }
    }

    #[test]
    fn well_formed_requests_decode_to_what_was_sent(phone in any::<String>(), code in any::<String>(), pad in "[ \t\r\n]{0,3}") {
        let body = format!("{pad}{}{pad}", json!({ "phone": phone, "code": code }));
        let r = parse::<CheckVerificationRequest>(body.as_bytes()).expect("well-formed");
        prop_assert_eq!(r.phone, phone);
        prop_assert_eq!(r.code, code);
    }

    #[test]
    fn only_an_object_is_a_request(value in json_value(), phone in "[+0-9]{1,16}", code in "[0-9]{6}", pad in "[ \t\r\n]{0,3}") {
        // Serde reads a struct from an array of its field values: `["+1…","123456"]` decoded.
        let shaped = [json!([phone, code]), json!([phone]), json!([code])];
        for value in shaped.iter().chain(std::iter::once(&value)).filter(|v| !v.is_object()) {
            let body = format!("{pad}{value}");
            prop_assert!(parse::<SendVerificationRequest>(body.as_bytes()).is_err(), "{}", body);
            prop_assert!(parse::<CheckVerificationRequest>(body.as_bytes()).is_err(), "{}", body);
            prop_assert!(parse::<RefreshTokenRequest>(body.as_bytes()).is_err(), "{}", body);
        }
    }

    #[test]
    fn a_duplicate_or_unknown_field_is_refused(phone in "[+0-9]{1,16}", code in "[0-9]{6}", extra in "[a-z_]{1,12}") {
        let dup = format!(r#"{{"phone":"{phone}","code":"{code}","code":"{code}"}}"#);
        let e = parse::<CheckVerificationRequest>(dup.as_bytes()).unwrap_err();
        prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
        if extra != "phone" && extra != "code" {
            let unknown = format!(r#"{{"phone":"{phone}","code":"{code}","{extra}":1}}"#);
            let e = parse::<CheckVerificationRequest>(unknown.as_bytes()).unwrap_err();
            prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
            prop_assert_eq!(e.message, "The request has a field this endpoint does not accept.");
        }
    }
}
