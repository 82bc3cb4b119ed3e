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

#[cfg(test)]
mod tests {
    use super::*;

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
