//! `[regions]`: which countries and kinds of number may receive codes.

use serde::{Deserialize, Serialize};

/// Which countries and kinds of number may receive codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionsConfig {
    /// When set, only numbers of these countries (ISO 3166 alpha-2, e.g. `["US", "CA"]`).
    pub allow: Option<Vec<String>>,
    /// Never numbers of these countries.
    pub deny: Vec<String>,
    /// Number kinds that are refused: by default those that are never a person's phone.
    pub refused_kinds: Vec<String>,
}

impl Default for RegionsConfig {
    fn default() -> Self {
        let kinds = otpgate_core::RegionPolicy::default().refused_kinds;
        RegionsConfig {
            allow: None,
            deny: Vec::new(),
            refused_kinds: kinds.iter().map(|k| k.as_str().to_owned()).collect(),
        }
    }
}
