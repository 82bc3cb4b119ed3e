//! The HMAC key for codes: from configuration (required in production), or in development
//! generated once and kept in a file beside the database so restarts keep codes valid. The file
//! is separate from the database on purpose: a dump of the data alone must not carry the key.
//! Every instance sharing a hot store must use the same key: `check_shared` refuses to start
//! otherwise (see `otpgate_core::shared_key`).

use std::io::Write;
use std::path::{Path, PathBuf};

use otpgate_core::shared_key::{self, KeyCheck};
use otpgate_core::{Clock, CodeHasher, SystemClock, Timestamp};
use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError};
use crate::stores::{OpenError, Stores};

/// The development key file: configured, or `<database file>.hmac-key`.
pub fn dev_key_path(config: &Config) -> PathBuf {
    match &config.secrets.dev_hmac_key_file {
        Some(path) => path.clone(),
        None => config.beside_database(".hmac-key"),
    }
}

pub fn hmac_key(config: &Config) -> Result<Vec<u8>, ConfigError> {
    if let Some(key) = &config.secrets.hmac_key {
        return Ok(key.expose_secret().as_bytes().to_vec());
    }
    if config.is_production() {
        return Err(ConfigError::key("secrets.hmac_key", "is required in production"));
    }
    load_or_create(&dev_key_path(config))
}

/// Refuses to start when the hot store was first used with another HMAC key; records this
/// key's fingerprint when the store holds none.
pub async fn check_shared(
    config: &Config,
    stores: &Stores,
    hasher: &CodeHasher,
    now: Timestamp,
) -> Result<(), OpenError> {
    match shared_key::check(&*stores.limits, hasher, now).await? {
        KeyCheck::Recorded => {
            tracing::info!(fingerprint = %shared_key::fingerprint(hasher), "recorded the HMAC key's fingerprint in the hot store");
            Ok(())
        }
        KeyCheck::Matches => Ok(()),
        KeyCheck::Differs { recorded } => Err(OpenError::Config(ConfigError::key(
            "secrets.hmac_key",
            format!(
                "the hot store {} is used with another HMAC key \
             (fingerprint {recorded}, this instance's is {}). Every instance sharing a store needs the \
             same `secrets.hmac_key` (in development, point `secrets.dev_hmac_key_file` at one shared \
             file). If the key was changed on purpose: stop every instance, then run \
             `otpgate secrets adopt-hmac-key` once (pending codes, sessions and limits of the old key are lost).",
                config.store.hot.redacted(),
                shared_key::fingerprint(hasher),
            ),
        ))),
    }
}

/// `otpgate secrets adopt-hmac-key`: records the configured key as the one the hot store is used
/// with, replacing another. Answers the fingerprint replaced, if any.
pub async fn adopt(config: &Config) -> Result<Option<String>, OpenError> {
    let hasher = CodeHasher::new(&hmac_key(config)?).map_err(|e| ConfigError::key("secrets.hmac_key", e))?;
    let stores = crate::stores::open(config).await?;
    Ok(shared_key::adopt(&*stores.limits, &hasher, SystemClock.now()).await?)
}

fn load_or_create(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let fail = |what: &str, e: std::io::Error| ConfigError::other(format!("{what} {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = decode_hex(text.trim()).ok_or_else(|| {
                ConfigError::other(format!("{} is not a hex key; delete it to generate a new one", path.display()))
            })?;
            if key.len() < otpgate_core::code::MIN_KEY_LEN {
                return Err(ConfigError::other(format!("{} holds a key shorter than 32 bytes", path.display())));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            otpgate_core::code::os_random(&mut key);
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    file.write_all(hex.as_bytes()).map_err(|e| fail("cannot write", e))?;
                    tracing::info!(path = %path.display(), "generated a development HMAC key");
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
                Err(e) => Err(fail("cannot create", e)),
            }
        }
        Err(e) => Err(fail("cannot read", e)),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not hex").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
