//! otpgate's sessions. After a verified phone, otpgate issues a short-lived access token (a JWT
//! signed with Ed25519, `kid` in the header) that any service verifies offline against the JWKS,
//! and a long-lived refresh token (`rt_…`, stored only as a keyed HMAC) that rotates on every use.
//!
//! - [`verify`]: [`verify_access_token`] for otpgate and for other Rust services (with
//!   `default-features = false` this is all the crate contains).
//! - `keys` (feature `server`): [`KeyRing`], the current and previous signing keys (Ed25519, and
//!   RSA for OpenID Connect's RS256), the JWKS, and the key file.
//! - `service` (feature `server`): [`SessionService`], what the HTTP server calls, and what the
//!   OpenID Connect crate builds on (bound refresh tokens, RS256 signing).

pub mod verify;

#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod service;

pub use jsonwebtoken::jwk::JwkSet;
pub use verify::{AccessClaims, VerifyError, VerifyingKeys, verify_access_token, verify_access_token_with_leeway};

#[cfg(feature = "server")]
pub use keys::{KeyError, KeyRing, RsaSigningKey, SigningKey};
#[cfg(feature = "server")]
pub use service::{
    BoundRefresh, Issued, PreparedRefresh, RefreshBinding, Session, SessionConfig, SessionError, SessionService,
};
