//! Property tests for phone parsing: arbitrary input never panics, and nothing outside the
//! allow-list (ASCII digits, space, `( ) - .`, a leading `+`) is ever accepted: no letters, no
//! non-ASCII digits, no invisible characters. What is accepted is canonical E.164.

use otpgate_core::{PhoneError, PhoneNumber, Region, parse_region};
use proptest::prelude::*;

fn regions() -> impl Strategy<Value = Option<Region>> {
    prop_oneof![
        Just(None),
        Just(parse_region("US")),
        Just(parse_region("GB")),
        Just(parse_region("DE")),
        Just(parse_region("IN")),
    ]
}

fn allowed(b: char) -> bool {
    b.is_ascii_digit() || matches!(b, ' ' | '(' | ')' | '-' | '.' | '+')
}

/// Strings that look like phone numbers: digits with the usual formatting, often valid.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\+?[0-9]{1,17}",
        "\\+[1-9][0-9]{0,2} ?\\(?[0-9]{2,4}\\)?[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}",
        "00[1-9][0-9]{6,14}",
        "\\+1415555[0-9]{4}",
        "\\+447[0-9]{9}",
        "[ ()+.0-9-]{0,70}",
    ]
}

/// A character the allow-list must refuse: letters, other ASCII, non-ASCII digits, invisible.
fn forbidden_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('A', 'Z'),
        prop::sample::select(vec![
            '#',
            '*',
            ',',
            ';',
            '/',
            'x',
            '\t',
            '\n',
            '\0',
            '\u{7f}',
            '_',
            '=',
            '%',
            '&',
            '\'',
            '"',
            '\u{a0}',
            '\u{200b}',
            '\u{200e}',
            '\u{202e}',
            '\u{2060}',
            '\u{feff}',
            '\u{ff10}',
            '\u{ff11}',
            '\u{ff0b}',
            '\u{0660}',
            '\u{0661}',
            '\u{06f1}',
            '\u{0966}',
            '\u{2212}',
            '\u{2013}',
            '\u{00b2}',
            '\u{1d7ce}',
        ]),
        any::<char>().prop_filter("not allowed", |c| !allowed(*c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_strings(input in any::<String>(), region in regions()) {
        let _ = PhoneNumber::parse(&input, region);
        let _ = PhoneNumber::from_e164(&input);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96), region in regions()) {
        let _ = PhoneNumber::parse(&String::from_utf8_lossy(&bytes), region);
    }

    #[test]
    fn accepts_only_the_allow_list(input in any::<String>(), region in regions()) {
        if PhoneNumber::parse(&input, region).is_ok() {
            prop_assert!(input.chars().all(allowed), "accepted {input:?}");
        }
    }

    #[test]
    fn one_forbidden_character_anywhere_is_refused(
        number in phone_like(),
        bad in forbidden_char(),
        at in any::<prop::sample::Index>(),
        region in regions(),
    ) {
        let mut chars: Vec<char> = number.chars().collect();
        let at = at.index(chars.len() + 1);
        chars.insert(at, bad);
        let input: String = chars.into_iter().collect();
        let r = PhoneNumber::parse(&input, region);
        // A space-like character at an end may be trimmed; everything else must be refused.
        prop_assert!(r.is_err(), "accepted {input:?}");
        if input.trim_matches(' ').len() <= 64 && !input.trim_matches(' ').is_empty() {
            prop_assert_eq!(r.unwrap_err(), PhoneError::ForbiddenCharacter, "{:?}", input);
        }
    }

    #[test]
    fn accepted_numbers_are_canonical_e164(input in phone_like(), region in regions()) {
        if let Ok(p) = PhoneNumber::parse(&input, region) {
            let e164 = p.e164();
            prop_assert!(e164.starts_with('+'));
            prop_assert!((2..=16).contains(&e164.len()), "{e164}");
            prop_assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()), "{e164}");
            prop_assert!(!e164[1..].starts_with('0'), "{e164}");
            // Normalisation is idempotent: the stored form parses back to itself.
            let again = PhoneNumber::from_e164(e164).expect("E.164 parses back");
            prop_assert_eq!(again.e164(), e164);
            prop_assert_eq!(again.country_code(), p.country_code());
            // The masked form hides the middle digits.
            prop_assert!(!p.masked().contains(&e164[1..e164.len() - 4]) || e164.len() <= 8);
        }
    }
}
