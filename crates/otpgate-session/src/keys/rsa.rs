//! The RSA keys that sign OpenID Connect's tokens (RS256, the algorithm every OpenID Connect
//! library verifies).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, KeyAlgorithm, PublicKeyUse, RSAKeyParameters, RSAKeyType,
    ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Serialize;

use super::file::KeyFileEntry;
use super::{KeyError, json_part};

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
        let signing_input = format!("{}.{}", json_part(&header)?, json_part(claims)?);
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
