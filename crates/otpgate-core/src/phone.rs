//! `PhoneNumber`: a validated, dialable number in E.164 form. It is the only way a phone number
//! enters the domain, so every limit, store and log line sees the same normalised string for
//! `+1 (415) 555-0100`, `+14155550100` and `0014155550100`.

use std::fmt;

use rlibphonenumber::{PhoneNumberFormat, PhoneNumberType};

pub use rlibphonenumber::Region;

/// Why an input is not a phone number we accept. Never shown verbatim to users; the server
/// answers `invalid_phone` for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("empty phone number")]
    Empty,
    #[error("phone number too long")]
    TooLong,
    #[error("phone number contains a character outside digits, spaces, ( ) - . and a leading +")]
    ForbiddenCharacter,
    #[error("phone number has no country code and no default region is configured")]
    NoCountryCode,
    #[error("phone number could not be parsed")]
    Unparseable,
    #[error("phone number is not a valid, dialable number")]
    NotValid,
}

/// A region code (`US`, `GB`) that the numbering-plan metadata knows; `None` for anything else
/// (`XX`, `us`, `001`).
pub fn parse_region(code: &str) -> Option<Region> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let region = Region::from_code(code).ok()?;
    rlibphonenumber::PHONE_NUMBER_UTIL.get_country_code_for_region(region).map(|_| region)
}

/// What kind of line a number is, as far as the numbering plan tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberKind {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    /// A number of a non-geographic calling code (region `001`): satellite (+881, +870),
    /// international networks (+882, +883), global freephone and premium rate (+800, +979), …
    /// Whatever line type the numbering plan gives them, they belong to no country, and they
    /// are classic destinations of international revenue-share fraud.
    NonGeographic,
    Unknown,
}

impl NumberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::Mobile => "mobile",
            NumberKind::FixedLine => "fixed_line",
            NumberKind::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberKind::TollFree => "toll_free",
            NumberKind::PremiumRate => "premium_rate",
            NumberKind::SharedCost => "shared_cost",
            NumberKind::Voip => "voip",
            NumberKind::PersonalNumber => "personal_number",
            NumberKind::Pager => "pager",
            NumberKind::Uan => "uan",
            NumberKind::Voicemail => "voicemail",
            NumberKind::NonGeographic => "non_geographic",
            NumberKind::Unknown => "unknown",
        }
    }

    pub const ALL: [NumberKind; 13] = [
        NumberKind::Mobile,
        NumberKind::FixedLine,
        NumberKind::FixedLineOrMobile,
        NumberKind::TollFree,
        NumberKind::PremiumRate,
        NumberKind::SharedCost,
        NumberKind::Voip,
        NumberKind::PersonalNumber,
        NumberKind::Pager,
        NumberKind::Uan,
        NumberKind::Voicemail,
        NumberKind::NonGeographic,
        NumberKind::Unknown,
    ];

    pub fn from_name(name: &str) -> Option<NumberKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn from_lib(t: PhoneNumberType) -> Self {
        match t {
            PhoneNumberType::Mobile => NumberKind::Mobile,
            PhoneNumberType::FixedLine => NumberKind::FixedLine,
            PhoneNumberType::FixedLineOrMobile => NumberKind::FixedLineOrMobile,
            PhoneNumberType::TollFree => NumberKind::TollFree,
            PhoneNumberType::PremiumRate => NumberKind::PremiumRate,
            PhoneNumberType::SharedCost => NumberKind::SharedCost,
            PhoneNumberType::VoIP => NumberKind::Voip,
            PhoneNumberType::PersonalNumber => NumberKind::PersonalNumber,
            PhoneNumberType::Pager => NumberKind::Pager,
            PhoneNumberType::UAN => NumberKind::Uan,
            PhoneNumberType::VoiceMail => NumberKind::Voicemail,
            PhoneNumberType::Unknown => NumberKind::Unknown,
        }
    }
}

/// A validated phone number. Holds only derived, normalised data; the raw input is dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    country_code: u16,
    region: Option<String>,
    kind: NumberKind,
}

/// Longest input we look at; E.164 is at most 15 digits, so 64 characters leave room for
/// generous formatting and nothing more.
const MAX_INPUT_LEN: usize = 64;

/// The numbering-plan metadata's "region" of non-geographic calling codes (+800, +870, +881, …).
const NON_GEOGRAPHIC_REGION: &str = "001";

/// `+` and at most 15 digits (ITU-T E.164).
const MAX_E164_LEN: usize = 16;

impl PhoneNumber {
    /// Parses user input. `default_region` enables national formats (`(415) 555-0100` with `US`);
    /// without it, only international forms (`+…` or the `00` international prefix) are accepted.
    pub fn parse(input: &str, default_region: Option<Region>) -> Result<Self, PhoneError> {
        let trimmed = input.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.len() > MAX_INPUT_LEN {
            return Err(PhoneError::TooLong);
        }
        // The allow-list runs before libphonenumber, which would happily turn letters into
        // digits (vanity numbers), read extensions, or accept full-width digits.
        let mut saw_plus = false;
        for (i, b) in trimmed.bytes().enumerate() {
            match b {
                b'0'..=b'9' | b' ' | b'(' | b')' | b'-' | b'.' => {}
                b'+' if i == 0 => saw_plus = true,
                _ => return Err(PhoneError::ForbiddenCharacter),
            }
        }
        let digits: String = trimmed.bytes().filter(u8::is_ascii_digit).map(char::from).collect();
        if digits.is_empty() {
            return Err(PhoneError::Unparseable);
        }
        // `00` is the international prefix almost everywhere, and no national number starts
        // with it, so reading it as `+` is safe even without a default region.
        let international = if saw_plus {
            Some(format!("+{digits}"))
        } else {
            digits.strip_prefix("00").map(|rest| format!("+{rest}"))
        };
        let parsed = match (international, default_region) {
            (Some(intl), _) => rlibphonenumber::PhoneNumber::parse(&intl, None),
            (None, Some(region)) => rlibphonenumber::PhoneNumber::parse(&digits, Some(region)),
            (None, None) => return Err(PhoneError::NoCountryCode),
        }
        .map_err(|_| PhoneError::Unparseable)?;
        if !parsed.is_valid() {
            return Err(PhoneError::NotValid);
        }
        let e164 = parsed.format_as(PhoneNumberFormat::E164).into_owned();
        // The numbering-plan metadata allows some national numbers (German ones) longer than
        // E.164's 15 digits; no provider can send to those, and our form must stay E.164.
        if e164.len() > MAX_E164_LEN {
            return Err(PhoneError::NotValid);
        }
        let country_code = u16::try_from(parsed.country_code).map_err(|_| PhoneError::NotValid)?;
        let region = parsed.get_region_code().map(|r| r.to_string());
        let kind = if region.as_deref() == Some(NON_GEOGRAPHIC_REGION) {
            NumberKind::NonGeographic
        } else {
            NumberKind::from_lib(parsed.get_type())
        };
        Ok(PhoneNumber { e164, country_code, region, kind })
    }

    /// Rebuilds a number from its stored E.164 form (already validated when it was stored).
    pub fn from_e164(e164: &str) -> Result<Self, PhoneError> {
        if !e164.starts_with('+') {
            return Err(PhoneError::NotValid);
        }
        Self::parse(e164, None)
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// ISO 3166-1 alpha-2 region (`US`, `GB`), when the number belongs to one.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn kind(&self) -> NumberKind {
        self.kind
    }

    pub fn masked(&self) -> String {
        crate::mask::mask_phone(self)
    }

    /// The number without its last four digits: numbers bought in blocks share it, so a
    /// limit on it catches sequential sweeps.
    pub fn prefix(&self) -> &str {
        &self.e164[..self.e164.len().saturating_sub(4)]
    }
}

/// `Debug` masks the number, so a stray `{:?}` in a log line cannot leak it.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneNumber")
            .field("masked", &self.masked())
            .field("region", &self.region)
            .field("kind", &self.kind)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_longer_than_e164_are_refused() {
        // Found by the property tests: valid in the German plan, but 16 digits.
        let de = parse_region("DE");
        assert_eq!(PhoneNumber::parse("50200000000000", de).unwrap_err(), PhoneError::NotValid);
        assert_eq!(PhoneNumber::parse("+4950200000000000", None).unwrap_err(), PhoneError::NotValid);
    }

    fn e164(input: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(input, None).map(|p| p.e164().to_owned())
    }

    #[test]
    fn formatting_variants_are_one_number() {
        for input in ["+14155550100", "+1 (415) 555-0100", "0014155550100", " +1.415.555.0100 "] {
            assert_eq!(e164(input).as_deref(), Ok("+14155550100"), "{input}");
        }
    }

    #[test]
    fn national_format_needs_a_default_region() {
        assert_eq!(e164("(415) 555-0100"), Err(PhoneError::NoCountryCode));
        let us = Region::from_code("US").unwrap();
        let p = PhoneNumber::parse("(415) 555-0100", Some(us)).unwrap();
        assert_eq!(p.e164(), "+14155550100");
        assert_eq!(p.region(), Some("US"));
    }

    #[test]
    fn default_region_does_not_mangle_international_numbers() {
        // phonenumber 0.3 mangles this with a default region (its issue #30).
        let us = Region::from_code("US").unwrap();
        let p = PhoneNumber::parse("+33142764978", Some(us)).unwrap();
        assert_eq!(p.e164(), "+33142764978");
        assert_eq!(p.region(), Some("FR"));
    }

    #[test]
    fn letters_extensions_and_unicode_are_refused() {
        for input in [
            "+3367a829916",
            "+1-800-FLOWERS",
            "+14155550100 ext 12",
            "+14155550100;ext=1",
            "+１４１５５５５０１００",
            "+1415555\u{200b}0100",
            "+1415555\n0100",
            "++14155550100",
            "1+4155550100",
        ] {
            assert_eq!(e164(input), Err(PhoneError::ForbiddenCharacter), "{input:?}");
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        assert_eq!(e164(""), Err(PhoneError::Empty));
        assert!(e164("+1").is_err());
        assert!(e164("+999123456789").is_err());
        assert_eq!(e164("+1415555010"), Err(PhoneError::NotValid));
        assert_eq!(e164(&format!("+{}", "1".repeat(70))), Err(PhoneError::TooLong));
    }

    #[test]
    fn regions_must_be_known() {
        assert!(parse_region("US").is_some());
        assert!(parse_region("GB").is_some());
        for bad in ["XX", "us", "USA", "", "001", "ÜS"] {
            assert!(parse_region(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn kind_and_prefix() {
        let gb = PhoneNumber::parse("+447400123456", None).unwrap();
        assert_eq!(gb.kind(), NumberKind::Mobile);
        assert_eq!(gb.prefix(), "+44740012");
        let premium = PhoneNumber::parse("+19002345678", None).unwrap();
        assert_eq!(premium.kind(), NumberKind::PremiumRate);
        let toll_free = PhoneNumber::parse("+18002345678", None).unwrap();
        assert_eq!(toll_free.kind(), NumberKind::TollFree);
    }

    #[test]
    fn non_geographic_numbers_are_their_own_kind() {
        // Example numbers of the numbering plan; the library calls most of them mobile.
        for number in
            ["+881612345678", "+870301234567", "+8823421234", "+883510012345", "+80012345678", "+979123456789"]
        {
            let p = PhoneNumber::parse(number, None).unwrap();
            assert_eq!(p.kind(), NumberKind::NonGeographic, "{number}");
            assert_eq!(p.region(), Some("001"), "{number}");
        }
        assert_eq!(PhoneNumber::parse("+447400123456", None).unwrap().kind(), NumberKind::Mobile);
    }

    #[test]
    fn debug_never_prints_the_number() {
        let p = PhoneNumber::parse("+14155550100", None).unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("4155550100"), "{dbg}");
        assert!(dbg.contains("+1******0100"), "{dbg}");
    }
}
