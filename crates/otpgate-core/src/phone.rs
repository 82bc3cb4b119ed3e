//! `PhoneNumber`: a validated, dialable number in E.164 form. It is the only way a phone number
//! enters the domain, so every limit, store and log line sees the same normalised string for
//! `+1 (415) 555-0100`, `+14155550100` and `0014155550100`.

use std::fmt;

use rlibphonenumber::errors::{InternalError, unwrap_internal_infallible};
use rlibphonenumber::interfaces::AsOriginal;
use rlibphonenumber::{PhoneNumberType, get_national_significant_number_owned};

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
        // `+` and the input's digits, in one buffer: the library reads this international
        // form, and the digits after the `+` are the national form.
        let mut plus_digits = String::with_capacity(trimmed.len() + 1);
        plus_digits.push('+');
        plus_digits.extend(trimmed.chars().filter(char::is_ascii_digit));
        if plus_digits.len() == 1 {
            return Err(PhoneError::Unparseable);
        }
        // `00` is the international prefix almost everywhere, and no national number starts
        // with it, so reading it as `+` is safe even without a default region.
        let parsed = if saw_plus {
            rlibphonenumber::PhoneNumber::parse(&plus_digits, None)
        } else if plus_digits[1..].starts_with("00") {
            plus_digits.replace_range(1..3, "");
            rlibphonenumber::PhoneNumber::parse(&plus_digits, None)
        } else if let Some(region) = default_region {
            rlibphonenumber::PhoneNumber::parse(&plus_digits[1..], Some(region))
        } else {
            return Err(PhoneError::NoCountryCode);
        }
        .map_err(|_| PhoneError::Unparseable)?;
        Self::from_parsed(&parsed)
    }

    /// Validity, E.164 form, region and kind of a parsed number, finding the region and the
    /// number type once each. The library's `is_valid()`, `get_region_code()` and `get_type()`
    /// each look the region up again (for +1 that walks the NANPA regions' patterns), and
    /// `is_valid()` and `get_type()` each match the number type's patterns: three region
    /// lookups and two type matches per number, where one of each gives the same answers.
    /// The steps below are those of the library's `is_valid_number` (a region, then
    /// `is_valid_number_for_region` on it: a type other than unknown in that region's
    /// metadata) and `get_number_type` (the type in the same region's metadata), with the
    /// region and the type shared. The differential test below compares it with the library's
    /// own calls over every region's example numbers, near misses of them and random inputs.
    fn from_parsed(parsed: &rlibphonenumber::PhoneNumber) -> Result<Self, PhoneError> {
        // The library's wrapper over its internal util; `AsOriginal` (public) gives the
        // internal one, whose region lookup steps and type matching are public methods but not
        // exported on the wrapper. Its regex errors mean broken built-in metadata, on which
        // the wrapper panics: so does `unwrap_internal_infallible`. Should a new version of
        // the library rename these methods, this stops compiling; should it change what they
        // do, the differential test fails (its reference uses only the wrapper's calls).
        let util = rlibphonenumber::PHONE_NUMBER_UTIL.as_original();
        let calling_code = parsed.country_code;
        // The national significant number, with an Italian leading zero's zeros: what the
        // region lookup, the type matching and the E.164 formatter all use.
        let national = get_national_significant_number_owned(parsed);
        let (region, found_type) = Self::region_for_number(parsed, &national).ok_or(PhoneError::NotValid)?;
        let number_type = match found_type {
            Some(number_type) => number_type,
            None => {
                // `is_valid_number_for_region`: the region's metadata (a non-geographic code's
                // own for `001`), of the same calling code.
                let metadata = util
                    .get_metadata_for_region_or_calling_code(calling_code, region)
                    .filter(|metadata| !(region == Region::World && calling_code != metadata.original.country_code()))
                    .ok_or(PhoneError::NotValid)?;
                unwrap_internal_infallible(util.get_number_type_helper(&national, metadata))
            }
        };
        if number_type == PhoneNumberType::Unknown {
            return Err(PhoneError::NotValid);
        }
        // Calling codes have one to three digits. Refused before the length check below, not
        // after it as before: both refusals are `NotValid`, so the order changes no answer.
        let country_code = u16::try_from(calling_code).map_err(|_| PhoneError::NotValid)?;
        // E.164 is `+`, the calling code and the national significant number: the library's
        // E.164 formatter writes exactly these three (no formatting pattern, no extension).
        let mut e164 = String::with_capacity(1 + 3 + national.len());
        e164.push('+');
        push_decimal(&mut e164, country_code);
        e164.push_str(&national);
        // The numbering-plan metadata allows some national numbers (German ones) longer than
        // E.164's 15 digits; no provider can send to those, and our form must stay E.164.
        if e164.len() > MAX_E164_LEN {
            return Err(PhoneError::NotValid);
        }
        // `Region::World` is the metadata's "region" `001` of non-geographic calling codes
        // (+800, +870, +881, …).
        let kind = if region == Region::World { NumberKind::NonGeographic } else { NumberKind::from_lib(number_type) };
        Ok(PhoneNumber { e164, country_code, region: Some(String::from(&*region.as_region_str())), kind })
    }

    /// The library's `get_region_for_number`, step by step, keeping the number type it finds
    /// on the way. A calling code of one region (or `001`) is that region, unchecked. For a
    /// code shared by several (+1's NANPA, +7, +44, …) it is the first region, in the
    /// metadata's order, whose leading digits start the number or whose metadata gives the
    /// number a type other than unknown; in the second case that type is the number's type
    /// too (`get_number_type` matches the same number against the same region's metadata), so
    /// it comes back with the region instead of being matched again.
    fn region_for_number(
        parsed: &rlibphonenumber::PhoneNumber,
        national: &str,
    ) -> Option<(Region, Option<PhoneNumberType>)> {
        let util = rlibphonenumber::PHONE_NUMBER_UTIL.as_original();
        let mut regions = util.get_regions_for_country_calling_code(parsed.country_code)?;
        if regions.len() <= 1 {
            return regions.next().map(|region| (region, None));
        }
        for region in regions {
            // The library gives up (no region) where a listed region has no metadata.
            let metadata = util.get_metadata_for_region(region)?;
            let leading_digits =
                unwrap_internal_infallible(metadata.leading_digits().anchor_start().map_err(InternalError::from));
            if leading_digits.is_some_and(|pattern| pattern.is_match(national)) {
                return Some((region, None));
            }
            let number_type = unwrap_internal_infallible(util.get_number_type_helper(national, metadata));
            if number_type != PhoneNumberType::Unknown {
                return Some((region, Some(number_type)));
            }
        }
        None
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

/// Writes `n` in decimal, as `Display` does, without the formatting machinery.
fn push_decimal(out: &mut String, n: u16) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
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

    /// `PhoneNumber::parse` before it shared the region and the type (the library's
    /// `is_valid()`, `format_as(E164)`, `get_region_code()` and `get_type()`), its code kept as
    /// it was, as the reference of the differential test.
    fn parse_reference(input: &str, default_region: Option<Region>) -> Result<PhoneNumber, PhoneError> {
        use rlibphonenumber::PhoneNumberFormat;
        const NON_GEOGRAPHIC_REGION: &str = "001";
        let trimmed = input.trim_matches(' ');
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.len() > MAX_INPUT_LEN {
            return Err(PhoneError::TooLong);
        }
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

    /// SplitMix64: a seeded, dependency-free generator, so the random part of the corpus is
    /// the same on every run.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn digits(&mut self, len: usize) -> String {
            (0..len).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
        }
    }

    const LIB_TYPES: [PhoneNumberType; 11] = [
        PhoneNumberType::FixedLine,
        PhoneNumberType::Mobile,
        PhoneNumberType::FixedLineOrMobile,
        PhoneNumberType::TollFree,
        PhoneNumberType::PremiumRate,
        PhoneNumberType::SharedCost,
        PhoneNumberType::VoIP,
        PhoneNumberType::PersonalNumber,
        PhoneNumberType::Pager,
        PhoneNumberType::UAN,
        PhoneNumberType::VoiceMail,
    ];

    /// Near misses of a number (calling code, national number), in international forms: three
    /// other last digits, three other first digits, the last digit dropped, a digit appended, a
    /// zero put in front; and the number itself with `00` and with punctuation.
    fn variants(rng: &mut SplitMix, calling_code: i32, national: &str, out: &mut Vec<String>) {
        let (head, last) = national.split_at(national.len().saturating_sub(1));
        for _ in 0..3 {
            let d = rng.digits(1);
            out.push(format!("+{calling_code}{head}{d}"));
            if let Some(rest) = national.get(1..) {
                out.push(format!("+{calling_code}{d}{rest}"));
            }
        }
        out.push(format!("+{calling_code}{head}"));
        out.push(format!("+{calling_code}{national}{}", rng.digits(1)));
        out.push(format!("+{calling_code}0{national}"));
        out.push(format!("00{calling_code}{national}"));
        out.push(format!("+{calling_code} ({head}) {last}"));
    }

    /// The corpus: (input, default region).
    fn corpus() -> Vec<(String, Option<Region>)> {
        let util = &*rlibphonenumber::PHONE_NUMBER_UTIL;
        let us = Region::from_code("US").ok();
        let gb = Region::from_code("GB").ok();
        let mut rng = SplitMix(0x6f74_7067_6174_6519);
        let mut out: Vec<(String, Option<Region>)> = Vec::new();
        let mut international = Vec::new();
        // Every region's example number of every type, in international, `00` and national
        // forms (with its own region, and with US and GB as a wrong default), and near misses.
        for region in util.get_supported_regions() {
            for t in LIB_TYPES {
                let Ok(example) = util.get_example_number_for_type_and_region(region, t) else {
                    continue;
                };
                let national = get_national_significant_number_owned(&example);
                variants(&mut rng, example.country_code, &national, &mut international);
                for default in [Some(region), us, gb, None] {
                    out.push((national.clone(), default));
                }
                out.push((format!("0{national}"), Some(region)));
                out.push((format!("+{}{national}", example.country_code), Some(region)));
            }
        }
        // The non-geographic calling codes' example numbers.
        for code in util.get_supported_global_network_calling_codes() {
            if let Ok(example) = util.get_example_number_for_non_geo_entity(code) {
                variants(&mut rng, code, &get_national_significant_number_owned(&example), &mut international);
            }
        }
        out.extend(international.into_iter().map(|i| (i, None)));
        // Inputs without digits or with little more than a prefix.
        for input in ["", " ", "+", "+ ", "()", "-.-", "( ) .", "0", "00", "000", "+0", "+00", "+1", " 00 1 ", "++1"] {
            for default in [None, us] {
                out.push((input.to_owned(), default));
            }
        }
        // Random digit strings of 1–17 digits: `+`, `00` and national (with a random default
        // region, or none).
        let regions: Vec<Region> = util.get_supported_regions().collect();
        for _ in 0..10_000 {
            let digits = {
                let len = 1 + rng.below(17);
                rng.digits(len)
            };
            let default = match rng.below(4) {
                0 => None,
                1 => us,
                _ => Some(regions[rng.below(regions.len())]),
            };
            let mut input = match rng.below(3) {
                0 => format!("+{digits}"),
                1 => format!("00{digits}"),
                _ => digits,
            };
            // Every fourth with punctuation, spaces around, or a character the allow-list
            // refuses, at random places.
            if rng.below(4) == 0 {
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(input.len() + 1);
                    let c = [' ', '(', ')', '-', '.', ' ', '+', 'x', '/'][rng.below(9)];
                    input.insert(at, c);
                }
            }
            out.push((input, default));
        }
        out
    }

    #[test]
    fn parse_gives_the_answers_of_the_library_calls_it_replaces() {
        let corpus = corpus();
        let mut valid = 0;
        let mut kinds = std::collections::BTreeSet::new();
        let mut errors = std::collections::BTreeSet::new();
        for (input, default) in &corpus {
            let new = PhoneNumber::parse(input, *default);
            let reference = parse_reference(input, *default);
            match (&new, &reference) {
                (Ok(a), Ok(b)) => {
                    // `PartialEq` compares all four fields; spelled out so a failure shows them
                    // (`Debug` masks the number).
                    assert_eq!(
                        (a.e164(), a.country_code(), a.region(), a.kind()),
                        (b.e164(), b.country_code(), b.region(), b.kind()),
                        "{input:?} with {default:?}"
                    );
                    assert_eq!(a, b);
                    valid += 1;
                    kinds.insert(a.kind());
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a, b, "{input:?} with {default:?}");
                    errors.insert(format!("{a:?}"));
                }
                _ => panic!("{input:?} with {default:?}: {new:?} but the reference says {reference:?}"),
            }
        }
        // The corpus reaches what it is meant to: many valid numbers of most kinds, and the
        // errors after the allow-list.
        assert!(corpus.len() > 30_000, "{}", corpus.len());
        assert!(valid > 10_000, "{valid} valid of {}", corpus.len());
        assert!(kinds.len() >= 10, "{kinds:?}");
        for error in ["NotValid", "Unparseable", "NoCountryCode", "ForbiddenCharacter"] {
            assert!(errors.contains(error), "{errors:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_number() {
        let p = PhoneNumber::parse("+14155550100", None).unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("4155550100"), "{dbg}");
        assert!(dbg.contains("+1******0100"), "{dbg}");
    }
}
