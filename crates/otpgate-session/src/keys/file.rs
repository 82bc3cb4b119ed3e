//! The key file: its JSON format, and loading, saving and rotating a ring in a file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{KeyError, KeyRing, RsaSigningKey, SigningKey};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    current: KeyFileEntry,
    previous: Option<KeyFileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rsa_current: Option<KeyFileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rsa_previous: Option<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyFileEntry {
    pub(super) kid: String,
    pub(super) created_at: u64,
    pub(super) private_key: String,
}

impl KeyRing {
    /// Parses the key file format (also usable for a key ring held in a secret).
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if file.version != 1 {
            return Err(KeyError::Invalid(format!("unsupported version {}", file.version)));
        }
        let current = SigningKey::from_file(&file.current)?;
        let previous = file.previous.as_ref().map(SigningKey::from_file).transpose()?;
        let rsa_current = file.rsa_current.as_ref().map(RsaSigningKey::from_file).transpose()?;
        let rsa_previous = file.rsa_previous.as_ref().map(RsaSigningKey::from_file).transpose()?;
        if rsa_previous.is_some() && rsa_current.is_none() {
            return Err(KeyError::Invalid("rsa_previous without rsa_current".into()));
        }
        let kids: Vec<&str> = [Some(current.kid()), previous.as_ref().map(SigningKey::kid)]
            .into_iter()
            .chain([rsa_current.as_ref().map(RsaSigningKey::kid), rsa_previous.as_ref().map(RsaSigningKey::kid)])
            .flatten()
            .collect();
        if kids.iter().enumerate().any(|(i, kid)| kids[..i].contains(kid)) {
            return Err(KeyError::Invalid("two keys have the same kid".into()));
        }
        Ok(KeyRing { current, previous, rsa_current, rsa_previous })
    }

    /// The key file format. It holds private keys: treat the string as a secret.
    pub fn to_json(&self) -> String {
        let file = KeyFile {
            version: 1,
            current: self.current.to_file(),
            previous: self.previous.as_ref().map(SigningKey::to_file),
            rsa_current: self.rsa_current.as_ref().map(RsaSigningKey::to_file),
            rsa_previous: self.rsa_previous.as_ref().map(RsaSigningKey::to_file),
        };
        serde_json::to_string_pretty(&file).expect("a key file always serialises")
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        let json = std::fs::read_to_string(path).map_err(io)?;
        warn_if_readable_by_others(path);
        Self::from_json(&json)
    }

    /// Writes the ring to `path` atomically (a temporary file in the same directory, renamed over
    /// the old one), readable by the owner only. Creates missing parent directories.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let name = path.file_name().ok_or_else(|| io(std::io::Error::other("not a file path")))?;
        let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        // A leftover from a crash could carry looser permissions: never reuse it.
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut file = options.open(&tmp)?;
            file.write_all(self.to_json().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Development: loads the ring at `path`, or generates and saves one if there is no file.
    /// Answers whether it generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        match std::fs::metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Self::generate()?;
                ring.save(path)?;
                tracing::info!(path = %path.display(), kid = ring.current.kid(), "generated a new signing key");
                Ok((ring, true))
            }
            Err(source) => Err(KeyError::Io { path: path.to_owned(), source }),
        }
    }

    /// Development with OpenID Connect: as `load_or_generate`, and adds an RSA key to a ring
    /// without one (saving the file). Answers whether the file was written.
    pub fn load_or_generate_with_rsa(path: &Path) -> Result<(Self, bool), KeyError> {
        let (ring, generated) = Self::load_or_generate(path)?;
        let (ring, added) = Self::with_rsa_saved(ring, path)?;
        Ok((ring, generated || added))
    }

    /// Adds an RSA key to the ring at `path` if it has none (an operator's step before switching
    /// OpenID Connect on in production; the Ed25519 keys are kept as they are). Answers the ring
    /// and whether it added the key.
    pub fn add_rsa_to_file(path: &Path) -> Result<(Self, bool), KeyError> {
        Self::with_rsa_saved(Self::load(path)?, path)
    }

    fn with_rsa_saved(mut ring: Self, path: &Path) -> Result<(Self, bool), KeyError> {
        let added = ring.add_rsa()?;
        if added {
            ring.save(path)?;
            let kid = ring.rsa_current().map(RsaSigningKey::kid).unwrap_or_default();
            tracing::info!(path = %path.display(), kid, "added an RSA signing key (RS256, OpenID Connect)");
        }
        Ok((ring, added))
    }

    /// `otpgate keys rotate`: loads the ring at `path`, rotates it (the RSA key too, if it has
    /// one) and saves it back.
    pub fn rotate_file(path: &Path) -> Result<Self, KeyError> {
        let mut ring = Self::load(path)?;
        ring.rotate()?;
        ring.save(path)?;
        Ok(ring)
    }

    /// `otpgate keys rotate` with OpenID Connect configured: as `rotate_file`, and a ring without
    /// an RSA key gets one (so rotating is also how a production key file gains it).
    pub fn rotate_file_with_rsa(path: &Path) -> Result<Self, KeyError> {
        let mut ring = Self::load(path)?;
        ring.rotate()?;
        ring.add_rsa()?;
        ring.save(path)?;
        Ok(ring)
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the signing key file is readable by other users; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
