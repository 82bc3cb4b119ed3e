//! `[secrets]`: the HMAC key of codes (printed only as `<redacted>`).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Key for the HMAC of codes, at least 32 bytes. Required in production.
    #[serde(serialize_with = "redact")]
    pub hmac_key: Option<SecretString>,
    /// Development only: where the generated HMAC key is kept between restarts.
    pub dev_hmac_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .field("dev_hmac_key_file", &self.dev_hmac_key_file)
            .finish()
    }
}

pub(super) fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}
