//! Phone parsing on arbitrary bytes: never panics; accepts only the allow-list (ASCII digits,
//! space, `( ) - .`, a leading `+`); what it accepts is E.164 and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::{PhoneNumber, parse_region};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    for region in [None, parse_region("US"), parse_region("DE")] {
        let Ok(phone) = PhoneNumber::parse(input, region) else { continue };
        assert!(
            input.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-' | '.' | '+')),
            "accepted a character outside the allow-list"
        );
        let e164 = phone.e164();
        assert!(e164.len() <= 16 && e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(PhoneNumber::from_e164(e164).expect("E.164 parses back").e164(), e164);
    }
});
