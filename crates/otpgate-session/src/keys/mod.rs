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
//!
//! `ed25519` and `rsa`: the two kinds of signing key; `file`: the key file.

use std::path::PathBuf;

use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;

use crate::verify::{AccessClaims, VerifyingKeys};

mod ed25519;
mod file;
mod rsa;

pub use ed25519::{SigningKey, public_jwk};
pub use rsa::{RsaSigningKey, rsa_jwk, rsa_public_components};

/// One part of a compact JWS: the base64url of `value`'s JSON (the header, or the claims).
fn json_part<T: Serialize>(value: &T) -> Result<String, KeyError> {
    use base64::Engine;
    serde_json::to_vec(value)
        .map(|json| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| KeyError::Sign(e.to_string()))
}

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

/// The current key (signs) and the previous one (verifies only, until it is rotated out); the
/// same for the optional RSA key.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Option<SigningKey>,
    rsa_current: Option<RsaSigningKey>,
    rsa_previous: Option<RsaSigningKey>,
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
            keys.insert_ed25519(key.kid().to_owned(), key.public_key());
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
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::ThumbprintHash;
    use jsonwebtoken::{Algorithm, DecodingKey};

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
