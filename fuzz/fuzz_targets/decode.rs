//! The JSON request decoder behind every body: never panics, and refuses only as
//! `invalid_request`, naming at most a known field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_api::{CheckVerificationRequest, ErrorCode, RefreshTokenRequest, SendVerificationRequest};
use otpgate_server::error::ApiError;
use otpgate_server::extract::parse;

fn clean(e: ApiError) {
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.field.is_none_or(|f| ["phone", "code", "channel", "locale", "refresh_token"].contains(&f)));
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse::<SendVerificationRequest>(data) {
        clean(e);
    }
    if let Err(e) = parse::<CheckVerificationRequest>(data) {
        clean(e);
    }
    if let Err(e) = parse::<RefreshTokenRequest>(data) {
        clean(e);
    }
});
