//! `[tls]`: built-in HTTPS (see `crate::tls`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, bad};

/// `[tls]`: built-in HTTPS. Both files or neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first). Set with `key_file` to serve HTTPS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate.
    pub key_file: Option<PathBuf>,
    /// How often the two files are looked at for a renewed certificate (1–3600 s); SIGHUP
    /// reloads at once.
    pub reload_interval_secs: u64,
    /// Longest a client may take to finish its TLS handshake (1–60 s); past it the connection
    /// is closed.
    pub handshake_timeout_secs: u64,
    /// TLS handshakes in progress per client address (an IPv4 address or an IPv6
    /// `http.ipv6_prefix_len` network); past it a new connection from there is closed at once.
    /// Trusted proxies are exempt.
    pub max_handshakes_per_ip: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            reload_interval_secs: 5,
            handshake_timeout_secs: 3,
            max_handshakes_per_ip: 16,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files when HTTPS is configured.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err(bad("tls.key_file", "is required with `tls.cert_file`")),
            (None, Some(_)) => return Err(bad("tls.cert_file", "is required with `tls.key_file`")),
            _ => {}
        }
        if !(1..=3600).contains(&self.reload_interval_secs) {
            return Err(bad("tls.reload_interval_secs", "must be between 1 and 3600"));
        }
        if !(1..=60).contains(&self.handshake_timeout_secs) {
            return Err(bad("tls.handshake_timeout_secs", "must be between 1 and 60"));
        }
        if self.max_handshakes_per_ip == 0 {
            return Err(bad("tls.max_handshakes_per_ip", "must be positive"));
        }
        Ok(())
    }
}
