//! Offline verification of otpgate access tokens, for otpgate itself and for any Rust service
//! that trusts it. Only EdDSA (Ed25519) signatures by a key of the given set, looked up by the
//! token's `kid`, are accepted; `iss`, `aud`, `exp` and `nbf` must all be present and right.
//!
//! Time is the caller's: jsonwebtoken's own `exp`/`nbf` checks read the system clock, so they are
//! switched off and done here against `now` instead (both claims required, `nbf` included — it is
//! the check jsonwebtoken leaves off by default). That keeps tests on a moved clock honest.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// The claims of an otpgate access token (the README's "Sessions"; the fields below are all of them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id (`usr_…`).
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    /// E.164.
    pub phone_number: String,
    pub phone_number_verified: bool,
    /// How the phone was verified: `["sms"]`, `["whatsapp"]` or `["call"]`.
    pub amr: Vec<String>,
}

impl fmt::Debug for AccessClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The phone number is PII; keep it out of logs that print claims.
        f.debug_struct("AccessClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("sub", &self.sub)
            .field("iat", &self.iat)
            .field("nbf", &self.nbf)
            .field("exp", &self.exp)
            .field("jti", &self.jti)
            .field("phone_number", &"<redacted>")
            .field("amr", &self.amr)
            .finish()
    }
}

/// Why a token was refused. Every variant means "401 unauthorized" to a client; the detail is
/// for logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a well-formed access token")]
    Malformed,
    #[error("the token is not signed with EdDSA")]
    WrongAlgorithm,
    #[error("the token's key id is not in the key set")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
}

/// Public keys to verify with, by key id. Build it from otpgate's JWKS
/// (`GET /.well-known/jwks.json`); only Ed25519 keys are kept, everything else is ignored.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    keys: Vec<(String, DecodingKey)>,
}

impl VerifyingKeys {
    /// Keeps each key that is an Ed25519 OKP with a `kid`, not marked for another algorithm or
    /// for encryption. Keys of other kinds (RSA, EC, HMAC secrets) are dropped, so a JWKS can never
    /// turn an HMAC secret into a verifying key.
    pub fn from_jwks(set: &JwkSet) -> Self {
        let mut out = VerifyingKeys::default();
        for jwk in &set.keys {
            let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else { continue };
            let Some(kid) = &jwk.common.key_id else { continue };
            if okp.curve != EllipticCurve::Ed25519
                || jwk.common.key_algorithm.is_some_and(|a| a != KeyAlgorithm::EdDSA)
                || jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_ed_components(&okp.x) else { continue };
            if key.try_get_as_bytes().map(<[u8]>::len) != Ok(32) {
                continue;
            }
            out.keys.push((kid.clone(), key));
        }
        out
    }

    /// Parses a JWKS document (the body of `/.well-known/jwks.json`).
    pub fn from_jwks_json(json: &str) -> Result<Self, serde_json::Error> {
        Ok(Self::from_jwks(&serde_json::from_str(json)?))
    }

    /// Adds a raw 32-byte Ed25519 public key.
    pub fn insert_ed25519(&mut self, kid: impl Into<String>, public_key: &[u8; 32]) {
        self.keys.push((kid.into(), DecodingKey::from_ed_der(public_key)));
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKeys").field("kids", &self.kids().collect::<Vec<_>>()).finish()
    }
}

/// Longest token we even try to parse; ours are about 600 bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies an otpgate access token and returns its claims.
///
/// Accepts only EdDSA tokens whose `kid` is in `keys`, whose `iss` and `aud` equal `issuer` and
/// `audience`, with `nbf <= now < exp` (no leeway: both clocks are otpgate's when otpgate calls
/// it; see [`verify_access_token_with_leeway`] for services on other machines) and
/// `phone_number_verified: true`. `alg: none`, HMAC algorithms (including HS256 "signed" with the
/// public key), unknown keys and tampered payloads are all refused.
///
/// # Protecting an axum route
///
/// This crate does not depend on axum; this is what a service that does would write. Fetch the
/// JWKS at start (and again on an unknown `kid`, to follow key rotations), then use an extractor:
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
///
/// use axum::extract::{FromRef, FromRequestParts};
/// use axum::http::{StatusCode, header::AUTHORIZATION, request::Parts};
/// use axum::{Router, routing::get};
/// use otpgate_session::{AccessClaims, VerifyingKeys, verify_access_token};
///
/// #[derive(Clone)]
/// struct Auth {
///     keys: Arc<VerifyingKeys>, // VerifyingKeys::from_jwks_json(&body_of_jwks_json)?
///     issuer: String,
///     audience: String,
/// }
///
/// /// A verified caller; handlers that take it are protected.
/// struct User(AccessClaims);
///
/// impl<S: Send + Sync> FromRequestParts<S> for User
/// where
///     Auth: FromRef<S>,
/// {
///     type Rejection = StatusCode;
///
///     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, StatusCode> {
///         let auth = Auth::from_ref(state);
///         let token = parts
///             .headers
///             .get(AUTHORIZATION)
///             .and_then(|v| v.to_str().ok())
///             .and_then(|v| v.strip_prefix("Bearer "))
///             .ok_or(StatusCode::UNAUTHORIZED)?;
///         verify_access_token(token, &auth.keys, &auth.issuer, &auth.audience, SystemTime::now())
///             .map(User)
///             .map_err(|_| StatusCode::UNAUTHORIZED)
///     }
/// }
///
/// async fn profile(User(claims): User) -> String {
///     format!("hello {}", claims.sub)
/// }
///
/// let jwks = r#"{"keys":[]}"#; // fetched from https://otpgate.example/.well-known/jwks.json
/// let auth = Auth {
///     keys: Arc::new(VerifyingKeys::from_jwks_json(jwks).unwrap()),
///     issuer: "https://otpgate.example".into(),
///     audience: "my-app".into(),
/// };
/// let app: Router = Router::new().route("/profile", get(profile)).with_state(auth);
/// ```
///
/// A token stays valid offline until its `exp` (15 minutes by default) even if the user is
/// erased in the meantime; otpgate's own `/v1/me` also checks that the user still exists.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "server")] {
/// use std::time::SystemTime;
/// use otpgate_session::{KeyRing, VerifyError, verify_access_token};
///
/// let ring = KeyRing::generate().unwrap();
/// let keys = ring.verifying_keys(); // or VerifyingKeys::from_jwks_json(jwks_body)
/// let result = verify_access_token("not.a.token", &keys, "https://auth.example", "my-app", SystemTime::now());
/// assert_eq!(result.unwrap_err(), VerifyError::Malformed);
/// # }
/// ```
pub fn verify_access_token(
    token: &str,
    keys: &VerifyingKeys,
    issuer: &str,
    audience: &str,
    now: SystemTime,
) -> Result<AccessClaims, VerifyError> {
    verify_access_token_with_leeway(token, keys, issuer, audience, now, Duration::ZERO)
}

/// [`verify_access_token`] with `leeway` of clock skew allowed on `exp` and `nbf` (a few seconds
/// for a service whose clock is not otpgate's).
pub fn verify_access_token_with_leeway(
    token: &str,
    keys: &VerifyingKeys,
    issuer: &str,
    audience: &str,
    now: SystemTime,
    leeway: Duration,
) -> Result<AccessClaims, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    // `alg: none` and unknown algorithms fail here: jsonwebtoken's `Algorithm` has no such variant.
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(VerifyError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    // Checked below against the caller's `now` (jsonwebtoken would read the system clock).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;

    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::InvalidAlgorithm => VerifyError::WrongAlgorithm,
        _ => VerifyError::Malformed,
    })?;
    let claims = data.claims;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let leeway = leeway.as_secs();
    if now >= claims.exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if claims.nbf > now.saturating_add(leeway) {
        return Err(VerifyError::NotYetValid);
    }
    if !claims.phone_number_verified {
        return Err(VerifyError::Malformed);
    }
    Ok(claims)
}
