//! The Ed25519 keys that sign the JSON API's access tokens (EdDSA).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, Header};

use super::file::KeyFileEntry;
use super::{KeyError, json_part};
use crate::verify::AccessClaims;

/// One Ed25519 key pair with its key id (the RFC 7638 thumbprint of its public JWK).
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    created_at: u64,
    pkcs8: Vec<u8>,
    public: [u8; 32],
    /// Parsed once: `jsonwebtoken::encode` parses the PKCS#8 key (and so derives the public
    /// key, a scalar multiplication as costly as the signature) for every token it signs.
    pair: Arc<Ed25519KeyPair>,
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
        let mut key = SigningKey { kid: String::new(), created_at, pkcs8: der.to_vec(), public, pair: Arc::new(pair) };
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

    /// A compact JWS, byte for byte what `jsonwebtoken::encode` makes (base64url of the JSON
    /// header and claims, and of the Ed25519 signature over both), with the parsed key pair.
    pub(super) fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let header = json_part(&header)?;
        let claims = json_part(claims)?;
        let mut token = format!("{header}.{claims}");
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    pub(super) fn to_file(&self) -> KeyFileEntry {
        KeyFileEntry {
            kid: self.kid.clone(),
            created_at: self.created_at,
            private_key: URL_SAFE_NO_PAD.encode(&self.pkcs8),
        }
    }

    pub(super) fn from_file(entry: &KeyFileEntry) -> Result<Self, KeyError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_what_jsonwebtoken_encodes() {
        let key = SigningKey::generate().unwrap();
        let claims = AccessClaims {
            iss: "https://otpgate.example".into(),
            aud: "app".into(),
            sub: "usr_1".into(),
            iat: 1_800_000_000,
            nbf: 1_800_000_000,
            exp: 1_800_000_900,
            jti: "j1".into(),
            phone_number: "+14155550100".into(),
            phone_number_verified: true,
            amr: vec!["sms".into()],
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        let expected =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&key.pkcs8)).unwrap();
        // Ed25519 signatures are deterministic: the same key and message give the same token.
        assert_eq!(key.sign(&claims).unwrap(), expected);
    }
}
