//! `[sessions]`: access and refresh tokens issued on approval.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Issue a session (access + refresh token) on every approved check.
    pub enabled: bool,
    /// `iss` of access tokens; the public base URL of this server is a good value.
    pub issuer: String,
    /// `aud` of access tokens: the app(s) that accept them.
    pub audience: String,
    /// Access-token lifetime in seconds.
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (each refresh starts a new period).
    pub refresh_ttl_secs: u64,
    /// Seconds after a refresh during which the spent refresh token, presented again, gets the
    /// same new session instead of revoking the chain (0–60; 0: never).
    pub refresh_reuse_grace_secs: u64,
    /// The signing-key file (JSON, current + previous Ed25519 keys). Required in production
    /// (create it with `otpgate keys rotate`); in development it defaults to
    /// `<database file>.signing-keys.json` and is generated when missing. A running server
    /// reloads it within seconds after `otpgate keys rotate`.
    pub keys_file: Option<PathBuf>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            enabled: true,
            issuer: "otpgate".into(),
            audience: "otpgate".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 10,
            keys_file: None,
        }
    }
}
