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
//! OpenID Connect adds an RSA key (RS256, the algorithm every OpenID Connect library verifies):
//! `"rsa_current"` and `"rsa_previous"`, entries of the same shape with a PKCS#8 RSA key. Both are
//! optional, so files written before them stay valid and a ring without OpenID Connect writes
//! exactly the old format. An RSA key is added on purpose (`KeyRing::add_rsa`, or
//! `load_or_generate_with_rsa` in development), never by a plain rotation; once there, it
//! rotates with the Ed25519 key (the previous RSA key keeps verifying, like the Ed25519 one).
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

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
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
    /// RS256 was asked of a ring without an RSA key (see `KeyRing::add_rsa`).
    #[error("the key ring has no RSA key; add one (`otpgate keys rotate` keeps it once there)")]
    NoRsaKey,
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

/// Smallest RSA modulus we sign with or accept in a key file: 2048 bits (RFC 7518 §3.3).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// One RSA key pair for RS256 (OpenID Connect's ID and access tokens), with its key id (the
/// RFC 7638 thumbprint of its public JWK).
///
/// It signs with aws-lc-rs directly: jsonwebtoken's RSA signer takes only PKCS#1 DER (which
/// aws-lc-rs cannot write, so the key file would need a hand-written DER converter) and parses the
/// key again for every token. The JWS is the compact form of RFC 7515 §7.1 over jsonwebtoken's
/// `Header`; the tests verify every token with jsonwebtoken against the published JWK.
#[derive(Clone)]
pub struct RsaSigningKey {
    kid: String,
    created_at: u64,
    pkcs8: Vec<u8>,
    pair: aws_lc_rs::rsa::KeyPair,
    /// PKCS#1 `RSAPublicKey` DER: what instances publish in the store.
    public_der: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaSigningKey {
    /// A fresh 2048-bit key (a few hundred milliseconds).
    pub fn generate() -> Result<Self, KeyError> {
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Self::from_pkcs8(pkcs8.as_ref(), None, created_at)
    }

    /// From a PKCS#8 DER RSA private key of at least 2048 bits; `kid` defaults to the thumbprint.
    pub fn from_pkcs8(der: &[u8], kid: Option<String>, created_at: u64) -> Result<Self, KeyError> {
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid(format!("RSA key: {e}")))?;
        if pair.public_modulus_len() < MIN_RSA_MODULUS_BYTES {
            return Err(KeyError::Invalid("RSA key: shorter than 2048 bits".into()));
        }
        let public = pair.public_key();
        let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(public);
        let mut key = RsaSigningKey {
            kid: String::new(),
            created_at,
            pkcs8: der.to_vec(),
            public_der: public.as_ref().to_vec(),
            n: components.n,
            e: components.e,
            pair,
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

    /// The public key as PKCS#1 `RSAPublicKey` DER.
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The public half as a JWK (`kty: RSA`, `alg: RS256`, `use: sig`).
    pub fn jwk(&self) -> Jwk {
        rsa_jwk(&self.kid, &self.n, &self.e)
    }

    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_raw_components(&self.n, &self.e)
    }

    /// A compact JWS (RS256) of `claims`; the header carries `typ` and this key's `kid`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let header = serde_json::to_vec(&header).map_err(|e| KeyError::Sign(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError::Sign("RSA signing failed".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
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

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigningKey").field("kid", &self.kid).field("private_key", &"<redacted>").finish()
    }
}

/// An RSA public key as a JWK (`kty: RSA`, `alg: RS256`, `use: sig`) from its modulus and exponent.
pub fn rsa_jwk(kid: &str, n: &[u8], e: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::RS256),
            key_id: (!kid.is_empty()).then(|| kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
        }),
    }
}

/// Modulus and exponent of a PKCS#1 `RSAPublicKey` DER (as published in the store), if it is an
/// RSA key of at least 2048 bits.
pub fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let public = aws_lc_rs::rsa::PublicKey::from_der(der).ok()?;
    let components = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&public);
    (components.n.len() >= MIN_RSA_MODULUS_BYTES).then_some((components.n, components.e))
}

/// The current key (signs) and the previous one (verifies only, until it is rotated out); the
/// same for the optional RSA key.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
    rsa_current: Option<RsaSigningKey>,
    rsa_previous: Option<RsaSigningKey>,
}

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
struct KeyFileEntry {
    kid: String,
    created_at: u64,
    private_key: String,
}

impl KeyRing {
    pub fn new(current: SigningKey, previous: Option<SigningKey>) -> Self {
        KeyRing { current, previous, rsa_current: None, rsa_previous: None }
    }

    /// A ring with one fresh Ed25519 key (no RSA key: see `add_rsa`).
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::new(SigningKey::generate()?, None))
    }

    /// A ring with a fresh Ed25519 key and a fresh RSA key.
    pub fn generate_with_rsa() -> Result<Self, KeyError> {
        let mut ring = Self::generate()?;
        ring.add_rsa()?;
        Ok(ring)
    }

    /// Adds a fresh RSA key if the ring has none; answers whether it added one.
    pub fn add_rsa(&mut self) -> Result<bool, KeyError> {
        if self.rsa_current.is_some() {
            return Ok(false);
        }
        self.rsa_current = Some(RsaSigningKey::generate()?);
        Ok(true)
    }

    /// The RSA key that signs RS256 tokens, if the ring has one.
    pub fn rsa_current(&self) -> Option<&RsaSigningKey> {
        self.rsa_current.as_ref()
    }

    pub fn rsa_previous(&self) -> Option<&RsaSigningKey> {
        self.rsa_previous.as_ref()
    }

    /// Signs `claims` as an RS256 JWS with the current RSA key (`typ` in the header: `JWT` for ID
    /// tokens, `at+jwt` for access tokens, RFC 9068).
    pub fn sign_rs256<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        self.rsa_current.as_ref().ok_or(KeyError::NoRsaKey)?.sign(typ, claims)
    }

    /// The RSA keys, current first.
    pub fn rsa_keys(&self) -> impl Iterator<Item = &RsaSigningKey> {
        self.rsa_current.iter().chain(self.rsa_previous.as_ref())
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn previous(&self) -> Option<&SigningKey> {
        self.previous.as_ref()
    }

    /// A new current key; the old current one becomes the previous (still verifies), and the
    /// old previous one is dropped.
    /// The same for the RSA key if there is one (a ring without one stays without).
    pub fn rotate(&mut self) -> Result<(), KeyError> {
        let next = SigningKey::generate()?;
        let next_rsa = self.rsa_current.as_ref().map(|_| RsaSigningKey::generate()).transpose()?;
        self.previous = Some(std::mem::replace(&mut self.current, next));
        if let Some(next_rsa) = next_rsa {
            self.rsa_previous = self.rsa_current.replace(next_rsa);
        }
        Ok(())
    }

    /// The public keys for `GET /.well-known/jwks.json`: the Ed25519 keys, current first, then
    /// the RSA keys, current first.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys().map(SigningKey::jwk).chain(self.rsa_keys().map(RsaSigningKey::jwk)).collect() }
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

    /// One RSA key generation per test binary run where it can be shared (a few hundred ms each).
    fn ring_with_rsa() -> KeyRing {
        static RING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
    }

    #[test]
    fn a_ring_without_rsa_keeps_the_old_file_format() {
        let ring = KeyRing::generate().unwrap();
        let json: serde_json::Value = serde_json::from_str(&ring.to_json()).unwrap();
        let mut fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, ["current", "previous", "version"], "older binaries read what we write");
        assert!(ring.rsa_current().is_none());
        assert_eq!(ring.jwks().keys.len(), 1);
        assert!(matches!(ring.sign_rs256("JWT", &serde_json::json!({})), Err(KeyError::NoRsaKey)));
    }

    #[test]
    fn an_old_key_file_without_rsa_still_loads_and_gets_one_added() {
        let old = KeyRing::generate().unwrap();
        let file = old.to_json();
        let mut ring = KeyRing::from_json(&file).unwrap();
        assert!(ring.rsa_current().is_none());
        assert!(ring.add_rsa().unwrap());
        assert!(!ring.add_rsa().unwrap(), "only once");
        let back = KeyRing::from_json(&ring.to_json()).unwrap();
        assert_eq!(back.current().kid(), old.current().kid(), "the Ed25519 key is kept");
        assert_eq!(back.rsa_current().unwrap().kid(), ring.rsa_current().unwrap().kid());
        assert_eq!(back.rsa_current().unwrap().public_der(), ring.rsa_current().unwrap().public_der());
    }

    #[test]
    fn rs256_tokens_verify_with_jsonwebtoken_against_the_published_jwk() {
        let ring = ring_with_rsa();
        let claims = serde_json::json!({ "sub": "usr_x", "aud": "web", "exp": 4_000_000_000u64 });
        let token = ring.sign_rs256("at+jwt", &claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.unwrap();
        assert_eq!(kid, ring.rsa_current().unwrap().kid());
        // An independent path: the JWKS as JSON, its key parsed by jsonwebtoken.
        let jwks: JwkSet = serde_json::from_str(&serde_json::to_string(&ring.jwks()).unwrap()).unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["web"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims, claims);
        // A tampered payload fails.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"usr_y","aud":"web","exp":4000000000}"#);
        parts[1] = &forged;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&parts.join("."), &key, &validation).is_err());
    }

    #[test]
    fn jwks_lists_rsa_keys_public_only_after_the_ed25519_ones() {
        let ring = ring_with_rsa();
        let json = serde_json::to_value(ring.jwks()).unwrap();
        assert_eq!(json["keys"][0]["kty"], "OKP", "the EdDSA key stays first");
        let rsa = &json["keys"][1];
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["use"], "sig");
        assert_eq!(rsa["kid"], ring.rsa_current().unwrap().kid());
        assert_eq!(rsa["e"], "AQAB");
        assert_eq!(URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap().len(), 256, "2048 bits");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(rsa.get(private).is_none(), "no private part {private}");
        }
        let kid = ring.rsa_current().unwrap().kid().to_owned();
        let thumbprint = ring.rsa_current().unwrap().jwk().thumbprint(ThumbprintHash::SHA256).unwrap();
        assert_eq!(kid, thumbprint, "the kid is the RFC 7638 thumbprint");
    }

    #[test]
    fn rotation_rotates_the_rsa_key_and_keeps_the_previous_one_verifying() {
        let mut ring = ring_with_rsa();
        let first = ring.rsa_current().unwrap().kid().to_owned();
        let old_token = ring.sign_rs256("JWT", &serde_json::json!({"exp": 4_000_000_000u64})).unwrap();
        ring.rotate().unwrap();
        let second = ring.rsa_current().unwrap().kid().to_owned();
        assert_ne!(first, second);
        assert_eq!(ring.rsa_previous().unwrap().kid(), first);
        let back = KeyRing::from_json(&ring.to_json()).unwrap();
        assert_eq!(back.rsa_previous().unwrap().kid(), first, "the file keeps the previous RSA key");
        // A token signed before the rotation still verifies against the new JWKS.
        let jwks = back.jwks();
        let key = DecodingKey::from_jwk(jwks.find(&first).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&old_token, &key, &validation).is_ok());
        ring.rotate().unwrap();
        assert!(ring.jwks().find(&first).is_none(), "the oldest RSA key is rotated out");
        assert_eq!(ring.jwks().keys.len(), 4);
    }

    #[test]
    fn bad_rsa_entries_are_refused() {
        let ring = ring_with_rsa();
        let mut json: serde_json::Value = serde_json::from_str(&ring.to_json()).unwrap();
        // An Ed25519 key where an RSA key belongs.
        let mut ed_as_rsa = json.clone();
        ed_as_rsa["rsa_current"] = json["current"].clone();
        ed_as_rsa["rsa_current"]["kid"] = "other".into();
        assert!(KeyRing::from_json(&ed_as_rsa.to_string()).is_err());
        // The same kid twice.
        let mut same_kid = json.clone();
        same_kid["rsa_current"]["kid"] = json["current"]["kid"].clone();
        assert!(KeyRing::from_json(&same_kid.to_string()).is_err());
        // A previous RSA key without a current one.
        json["rsa_previous"] = json["rsa_current"].clone();
        json["rsa_current"] = serde_json::Value::Null;
        assert!(KeyRing::from_json(&json.to_string()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn development_adds_an_rsa_key_to_an_existing_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.json");
        let (plain, _) = KeyRing::load_or_generate(&path).unwrap();
        let (ring, written) = KeyRing::load_or_generate_with_rsa(&path).unwrap();
        assert!(written);
        assert_eq!(ring.current().kid(), plain.current().kid());
        let rsa = ring.rsa_current().unwrap().kid().to_owned();
        let (again, written) = KeyRing::load_or_generate_with_rsa(&path).unwrap();
        assert!(!written);
        assert_eq!(again.rsa_current().unwrap().kid(), rsa, "persisted, not regenerated");
        let (same, added) = KeyRing::add_rsa_to_file(&path).unwrap();
        assert!(!added);
        assert_eq!(same.rsa_current().unwrap().kid(), rsa);
        let rotated = KeyRing::rotate_file(&path).unwrap();
        assert_eq!(rotated.rsa_previous().unwrap().kid(), rsa, "`otpgate keys rotate` rotates it");
    }

    #[cfg(unix)]
    #[test]
    fn rotating_with_rsa_adds_the_key_once_then_rotates_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.json");
        let (plain, _) = KeyRing::load_or_generate(&path).unwrap();
        let first = KeyRing::rotate_file_with_rsa(&path).unwrap();
        assert_eq!(first.previous().unwrap().kid(), plain.current().kid(), "the Ed25519 key rotated as usual");
        let rsa = first.rsa_current().expect("an RSA key was added").kid().to_owned();
        assert!(first.rsa_previous().is_none());
        let second = KeyRing::rotate_file_with_rsa(&path).unwrap();
        assert_eq!(second.rsa_previous().unwrap().kid(), rsa, "then it rotates, keeping the previous one");
        assert_eq!(KeyRing::load(&path).unwrap().rsa_current().unwrap().kid(), second.rsa_current().unwrap().kid());
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
