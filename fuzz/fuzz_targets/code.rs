//! `Code::parse` accepts exactly `^[0-9]{N}$`: the first byte picks N (4–10), the rest is the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::Code;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let len = 4 + usize::from(first % 7);
    let Ok(input) = std::str::from_utf8(rest) else { return };
    let expected = input.len() == len && input.bytes().all(|b| b.is_ascii_digit());
    let parsed = Code::parse(input, len);
    assert_eq!(parsed.is_some(), expected);
    if let Some(code) = parsed {
        assert_eq!(code.expose(), input);
    }
});
