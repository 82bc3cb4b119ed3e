//! `[regions]`: which countries and kinds of number may receive codes, and the region code and
//! number-kind types that `default_region`, `regions.*` and `bot_check.required_for` are parsed
//! into when the configuration is loaded.

use std::fmt;
use std::str::FromStr;

use otpgate_core::{NumberKind, Region, RegionPolicy};
use serde::{Deserialize, Serialize};

/// Which countries and kinds of number may receive codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionsConfig {
    /// When set, only numbers of these countries (ISO 3166 alpha-2, e.g. `["US", "CA"]`).
    pub allow: Option<Vec<RegionCode>>,
    /// Never numbers of these countries.
    pub deny: Vec<RegionCode>,
    /// Number kinds that are refused: by default those that are never a person's phone.
    pub refused_kinds: Vec<NumberKindName>,
}

impl Default for RegionsConfig {
    fn default() -> Self {
        let kinds = RegionPolicy::default().refused_kinds;
        RegionsConfig { allow: None, deny: Vec::new(), refused_kinds: kinds.into_iter().map(NumberKindName).collect() }
    }
}

impl RegionsConfig {
    /// The core's region policy.
    pub(super) fn policy(&self) -> RegionPolicy {
        let codes = |list: &[RegionCode]| list.iter().map(RegionCode::to_string).collect();
        RegionPolicy {
            allow: self.allow.as_deref().map(codes),
            deny: codes(&self.deny),
            refused_kinds: self.refused_kinds.iter().map(|k| k.0).collect(),
        }
    }
}

/// A region code (`US`, `GB`) that the numbering plan knows; anything else (`XX`, `us`, `001`)
/// is refused when the configuration is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(Region);

impl RegionCode {
    pub fn region(self) -> Region {
        self.0
    }
}

impl FromStr for RegionCode {
    type Err = String;

    fn from_str(code: &str) -> Result<RegionCode, String> {
        otpgate_core::parse_region(code)
            .map(RegionCode)
            .ok_or_else(|| format!("`{code}` is not a known region code (like US or GB)"))
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = String;

    fn try_from(code: String) -> Result<RegionCode, String> {
        code.parse()
    }
}

impl From<RegionCode> for String {
    fn from(code: RegionCode) -> String {
        code.to_string()
    }
}

/// A number kind by its name in the configuration (`premium_rate`, `toll_free`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NumberKindName(pub NumberKind);

impl FromStr for NumberKindName {
    type Err = String;

    fn from_str(name: &str) -> Result<NumberKindName, String> {
        NumberKind::from_name(name).map(NumberKindName).ok_or_else(|| {
            let known: Vec<&str> = NumberKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("`{name}` is not one of {}", known.join(", "))
        })
    }
}

impl TryFrom<String> for NumberKindName {
    type Error = String;

    fn try_from(name: String) -> Result<NumberKindName, String> {
        name.parse()
    }
}

impl From<NumberKindName> for String {
    fn from(kind: NumberKindName) -> String {
        kind.0.as_str().to_owned()
    }
}

/// One entry of `bot_check.required_for`: `*` (every send) or a region code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RequiredIn {
    Everywhere,
    Region(RegionCode),
}

impl FromStr for RequiredIn {
    type Err = String;

    fn from_str(entry: &str) -> Result<RequiredIn, String> {
        if entry == "*" {
            return Ok(RequiredIn::Everywhere);
        }
        entry.parse().map(RequiredIn::Region).map_err(|_| format!("`{entry}` is not `*` or a region code"))
    }
}

impl TryFrom<String> for RequiredIn {
    type Error = String;

    fn try_from(entry: String) -> Result<RequiredIn, String> {
        entry.parse()
    }
}

impl From<RequiredIn> for String {
    fn from(entry: RequiredIn) -> String {
        match entry {
            RequiredIn::Everywhere => "*".to_owned(),
            RequiredIn::Region(code) => code.to_string(),
        }
    }
}
