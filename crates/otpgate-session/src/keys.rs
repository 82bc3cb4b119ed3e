//! Signing keys: a ring of the current Ed25519 key, which signs, and the previous one, which only
//! verifies, so a rotation logs nobody out (tokens signed before it stay valid until they expire).
//!
//! Keys live in a JSON key file, not in the store: the store is shared by all instances and backed
//! up with user data, while the private key should be a secret of its own (a mounted file or a
//! secret manager). In production the server loads the file (or the same JSON from a secret);
//! in development it generates one on first start and persists it with mode 0600. The format:
//!
//! ```json
//! { "version": 1,
//!   "current":  { "kid": "…", "created_at": 1790000000, "private_key": "<base64url PKCS#8 v2 DER>" },
//!   "previous": null }
//! ```
//!
//! Rotation (`otpgate keys rotate`) rewrites the file; a running server picks the ring up with
//! `SessionService::replace_keys`. Rotate at most once per access-token lifetime (15 min by
//! default): a second rotation drops the key that signed tokens still in flight from the file
//! (instances sharing a store still list it until its tokens expired, see below). Instances
//! sharing a durable store publish their public keys there before signing with them, and serve
//! and accept every published key: they verify each other's tokens whatever key files they
//! have, and in whatever order they load a rotated one.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::verify::{AccessClaims, VerifyingKeys};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate an Ed25519 key")]
    Generate,
    #[error("invalid key file: {0}")]
    Invalid(String),
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// One Ed25519 key pair with its key id (the RFC 7638 thumbprint of its public JWK).
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    created_at: u64,
    pkcs8: Vec<u8>,
    public: [u8; 32],
    encoding: EncodingKey,
}

impl SigningKey {
    pub fn generate() -> Result<Self, KeyError> {
        // The RNG argument is ignored by aws-lc-rs (it always uses its own CSPRNG).
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Self::from_pkcs8(pkcs8.as_ref(), None, created_at)
    }

    /// From a PKCS#8 DER Ed25519 private key; `kid` defaults to the key's thumbprint.
    pub fn from_pkcs8(der: &[u8], kid: Option<String>, created_at: u64) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid(format!("Ed25519 key: {e}")))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| KeyError::Invalid("Ed25519 public key is not 32 bytes".into()))?;
        let mut key = SigningKey {
            kid: String::new(),
            created_at,
            pkcs8: der.to_vec(),
            public,
            encoding: EncodingKey::from_ed_der(der),
        };
        key.kid = match kid {
            Some(kid) if !kid.is_empty() => kid,
            _ => key.jwk().thumbprint(ThumbprintHash::SHA256).map_err(|e| KeyError::Invalid(e.to_string()))?,
        };
        Ok(key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// The public half as a JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `use: sig`).
    pub fn jwk(&self) -> Jwk {
        public_jwk(&self.kid, &self.public)
    }

    fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError::Sign(e.to_string()))
    }

    fn to_file(&self) -> KeyFileEntry {
        KeyFileEntry {
            kid: self.kid.clone(),
            created_at: self.created_at,
            private_key: URL_SAFE_NO_PAD.encode(&self.pkcs8),
        }
    }

    fn from_file(entry: &KeyFileEntry) -> Result<Self, KeyError> {
        let der = URL_SAFE_NO_PAD
            .decode(entry.private_key.trim_end_matches('='))
            .map_err(|_| KeyError::Invalid("private_key is not base64url".into()))?;
        Self::from_pkcs8(&der, Some(entry.kid.clone()), entry.created_at)
    }
}

/// An Ed25519 public key as a JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `use: sig`).
pub fn public_jwk(kid: &str, public: &[u8; 32]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: (!kid.is_empty()).then(|| kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public),
        }),
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("private_key", &"<redacted>").finish()
    }
}

/// The current key (signs) and the previous one (verifies only, until it is rotated out).
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    current: KeyFileEntry,
    previous: Option<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileEntry {
    kid: String,
    created_at: u64,
    private_key: String,
}

impl KeyRing {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        KeyRing { current, previous }
    }

    /// A ring with one fresh key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(KeyRing { current: SigningKey::generate()?, previous: None })
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn previous(&self) -> Option<&SigningKey> {
        self.previous.as_ref()
    }

    /// A new current key; the old current one becomes the previous (still verifies), and the
    /// old previous one is dropped.
    pub fn rotate(&mut self) -> Result<(), KeyError> {
        let next = SigningKey::generate()?;
        self.previous = Some(std::mem::replace(&mut self.current, next));
        Ok(())
    }

    /// The public keys, current first, for `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys().map(SigningKey::jwk).collect() }
    }

    pub fn verifying_keys(&self) -> VerifyingKeys {
        let mut keys = VerifyingKeys::default();
        for key in self.keys() {
            keys.insert_ed25519(key.kid.clone(), &key.public);
        }
        keys
    }

    /// Signs with the current key; the header carries its `kid`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        self.current.sign(claims)
    }

    fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }

    /// Parses the key file format (also usable for a key ring held in a secret).
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if file.version != 1 {
            return Err(KeyError::Invalid(format!("unsupported version {}", file.version)));
        }
        let current = SigningKey::from_file(&file.current)?;
        let previous = file.previous.as_ref().map(SigningKey::from_file).transpose()?;
        if previous.as_ref().is_some_and(|p| p.kid == current.kid) {
            return Err(KeyError::Invalid("current and previous keys have the same kid".into()));
        }
        Ok(KeyRing { current, previous })
    }

    /// The key file format. It holds private keys: treat the string as a secret.
    pub fn to_json(&self) -> String {
        let file = KeyFile {
            version: 1,
            current: self.current.to_file(),
            previous: self.previous.as_ref().map(SigningKey::to_file),
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

    /// `otpgate keys rotate`: loads the ring at `path`, rotates it and saves it back.
    pub fn rotate_file(path: &Path) -> Result<Self, KeyError> {
        let mut ring = Self::load(path)?;
        ring.rotate()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_round_trips_through_its_file_format() {
        let mut ring = KeyRing::generate().unwrap();
        ring.rotate().unwrap();
        let back = KeyRing::from_json(&ring.to_json()).unwrap();
        assert_eq!(back.current().kid(), ring.current().kid());
        assert_eq!(back.current().public_key(), ring.current().public_key());
        assert_eq!(back.previous().unwrap().kid(), ring.previous().unwrap().kid());
    }

    #[test]
    fn kids_are_thumbprints_and_differ_per_key() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 43, "base64url of a SHA-256");
    }

    #[test]
    fn rotation_keeps_one_previous_key() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.current().kid().to_owned();
        ring.rotate().unwrap();
        let second = ring.current().kid().to_owned();
        assert_eq!(ring.previous().unwrap().kid(), first);
        assert_eq!(ring.jwks().keys.len(), 2);
        ring.rotate().unwrap();
        assert_eq!(ring.previous().unwrap().kid(), second);
        assert!(ring.jwks().find(&first).is_none(), "the oldest key is rotated out");
    }

    #[test]
    fn jwks_has_only_public_okp_keys() {
        let ring = KeyRing::generate().unwrap();
        let json = serde_json::to_value(ring.jwks()).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], ring.current().kid());
        assert!(key.get("d").is_none(), "no private part");
        assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap(), ring.current().public_key());
    }

    #[test]
    fn bad_key_files_are_refused() {
        for bad in [
            "",
            "{}",
            r#"{"version":2,"current":{"kid":"a","created_at":0,"private_key":""},"previous":null}"#,
            r#"{"version":1,"current":{"kid":"a","created_at":0,"private_key":"AAAA"},"previous":null}"#,
            r#"{"version":1,"current":{"kid":"a","created_at":0,"private_key":"!!"},"previous":null}"#,
        ] {
            assert!(KeyRing::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn saved_key_files_are_private_and_reload() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("signing.json");
        let (ring, generated) = KeyRing::load_or_generate(&path).unwrap();
        assert!(generated);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, generated) = KeyRing::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(again.current().kid(), ring.current().kid());
        let rotated = KeyRing::rotate_file(&path).unwrap();
        assert_eq!(rotated.previous().unwrap().kid(), ring.current().kid());
        assert_eq!(KeyRing::load(&path).unwrap().current().kid(), rotated.current().kid());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
