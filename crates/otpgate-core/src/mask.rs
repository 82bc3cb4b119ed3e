//! Masking of phone numbers for logs, metrics and responses: the country code and the last four
//! digits stay, everything between becomes `*` (`+14155550100` -> `+1******0100`).

/// Masks an E.164 string. Anything that is not `+` followed by digits is masked whole, so a
/// malformed input can never leak through this function.
pub fn mask_e164(e164: &str, country_code_len: usize) -> String {
    let digits = e164.strip_prefix('+').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() <= 4 {
        return "*****".to_owned();
    }
    let cc_len = country_code_len.min(digits.len() - 4);
    let (cc, rest) = digits.split_at(cc_len);
    let (middle, last4) = rest.split_at(rest.len() - 4);
    format!("+{cc}{}{last4}", "*".repeat(middle.len()))
}

/// Masks a phone number the domain has already validated.
pub fn mask_phone(phone: &crate::PhoneNumber) -> String {
    mask_e164(phone.e164(), phone.country_code().to_string().len())
}

/// Fewest digits in a run of free text that is masked as a possible phone number: the shortest
/// dialable numbers with their country code have about 7; error codes (`21211`) and small
/// counts stay readable.
const MIN_NUMBER_DIGITS: usize = 7;

/// Masks every run of digits in free text that could be a phone number, for text we do not
/// control (a provider's error message, which can quote the `To` number back) before it is
/// logged. A run is digits with an optional leading `+` or `(`, and single separators (space,
/// `-`, `.`, `(`, `)`) between digits; it is masked when it holds at least 7 digits. A run
/// that is a valid number is masked like every other logged number (`+1******0100`); anything
/// else keeps its separators and only its last four digits. Digits glued to letters (inside
/// an identifier such as a SID) are left alone. Errs towards masking: a date or a long id may
/// be masked too, a number never slips through.
pub fn mask_numbers_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let glued = i > 0 && chars[i - 1].is_alphanumeric();
        let opens = (c == '+' || c == '(') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if glued && c.is_ascii_digit() {
            // Part of an identifier: copy the whole word.
            while i < chars.len() && chars[i].is_alphanumeric() {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_digit() || (opens && !glued)) {
            out.push(c);
            i += 1;
            continue;
        }
        let end = number_run_end(&chars, i);
        let run: String = chars[i..end].iter().collect();
        out.push_str(&mask_run(&run));
        i = end;
    }
    out
}

/// Where the phone-number-like run starting at `start` ends (exclusive).
fn number_run_end(chars: &[char], start: usize) -> usize {
    let is_sep = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    let mut end = start + 1;
    loop {
        match chars.get(end) {
            Some(c) if c.is_ascii_digit() => end += 1,
            // Up to two separators (`) `) count only when a digit follows them.
            Some(c) if is_sep(*c) => {
                let mut next = end + 1;
                if chars.get(next).is_some_and(|c| is_sep(*c)) {
                    next += 1;
                }
                if chars.get(next).is_some_and(char::is_ascii_digit) {
                    end = next;
                } else {
                    // A closing parenthesis right after digits belongs to the run.
                    if *c == ')' && chars[start..end].contains(&'(') {
                        end += 1;
                    }
                    return end;
                }
            }
            _ => return end,
        }
    }
}

fn mask_run(run: &str) -> String {
    let digits: String = run.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < MIN_NUMBER_DIGITS {
        return run.to_owned();
    }
    if run.starts_with('+')
        && let Ok(phone) = crate::PhoneNumber::parse(run, None)
    {
        return mask_phone(&phone);
    }
    let mut keep = 4;
    let mut masked: Vec<char> = run
        .chars()
        .rev()
        .map(|c| match c {
            d if d.is_ascii_digit() && keep > 0 => {
                keep -= 1;
                d
            }
            d if d.is_ascii_digit() => '*',
            other => other,
        })
        .collect();
    masked.reverse();
    masked.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_provider_text_are_masked() {
        let twilio = "The 'To' number +15005550001 is not a valid phone number.";
        assert_eq!(mask_numbers_in_text(twilio), "The 'To' number +1******0001 is not a valid phone number.");
        for (text, hidden) in [
            ("To (+14155550100) and From (+15005550006)", ["4155550100", "5005550006"]),
            ("call 4155550100 or 415 555 0199", ["4155550100", "415 555"]),
            ("dial (415) 555-0100, or 0044 20 7183 8750", ["(415) 555", "0044 20 7183"]),
            ("+44 20 7183 8750;+1.415.555.0100", ["20 7183", "415.555"]),
        ] {
            let masked = mask_numbers_in_text(text);
            for h in hidden {
                assert!(!masked.contains(h), "{h} in {masked}");
            }
            assert!(masked.matches('*').count() >= 2 * hidden.len(), "{masked}");
        }
        assert_eq!(mask_numbers_in_text("+44 20 7183 8750"), "+44******8750");
        assert_eq!(mask_numbers_in_text("(415) 555-0100"), "(***) ***-0100");
    }

    #[test]
    fn other_text_is_left_alone() {
        for text in [
            "Error 21211: see https://www.twilio.com/docs/errors/21211",
            "retry after 3600 seconds, 20 attempts",
            "VerificationSid VEaaaa1234567890abcd1234567890abcd not found",
            "version 1.2.3, 404 Not Found",
            "",
            "ünïcödé 😀 text",
        ] {
            assert_eq!(mask_numbers_in_text(text), text);
        }
    }

    #[test]
    fn a_long_run_is_masked_whole_but_its_tail() {
        assert_eq!(mask_numbers_in_text("id 123456789012345678901"), "id *****************8901");
    }

    #[test]
    fn keeps_country_code_and_last_four() {
        assert_eq!(mask_e164("+14155550100", 1), "+1******0100");
        assert_eq!(mask_e164("+442071838750", 2), "+44******8750");
    }

    #[test]
    fn malformed_input_is_masked_whole() {
        assert_eq!(mask_e164("14155550100", 1), "*****");
        assert_eq!(mask_e164("+1415abc0100", 1), "*****");
        assert_eq!(mask_e164("+123", 1), "*****");
    }
}
