//! What the tokens say: the ID token (OpenID Connect Core §2, §3.1.3.6), the access token (a JWT
//! per RFC 9068: `typ: at+jwt`, `client_id`, `scope`), and the UserInfo answer (Core §5.3).
//!
//! Both tokens are signed RS256 with the key ring's RSA key: RS256 is the algorithm every
//! OpenID Connect library verifies (Core §15.1 makes it mandatory to implement), and RFC 9068
//! §2.1 asks resource servers that take JWT access tokens to support it too, so an app's own API
//! can verify its access tokens with any JOSE library against the same JWKS. (The JSON API's
//! access tokens stay EdDSA; the two never verify as each other: other `alg`, `typ`, `aud`.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use otpgate_core::Channel;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `typ` of ID tokens and of access tokens (RFC 9068 §2.1).
pub const ID_TOKEN_TYP: &str = "JWT";
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

pub const CLAIMS_SUPPORTED: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "at_hash",
    "phone_number",
    "phone_number_verified",
];

/// The authentication method (RFC 8176) a verification channel stands for: `sms` for a code by
/// text message, `tel` for one read out in a call, `otp` for one sent over WhatsApp (RFC 8176 has
/// no value of its own for it).
pub fn amr(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "sms",
        Channel::Call => "tel",
        Channel::Whatsapp => "otp",
    }
}

/// `at_hash` (Core §3.1.3.6): the left half of the SHA-256 of the access token's ASCII, base64url
/// (SHA-256 because the ID token is RS256).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user id (`usr_…`), the same as the JSON API's.
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    /// When the phone was verified (kept through refreshes, Core §12.2).
    pub auth_time: u64,
    /// The authorization request's, in the ID token of the code exchange only (Core §12.2: a
    /// refreshed ID token SHOULD NOT carry one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// With the `phone` scope: E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}

impl std::fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("auth_time", &self.auth_time)
            .field("phone_number", &self.phone_number.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// An OpenID Connect access token's claims (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client id: the token is for the app's own use (its UserInfo calls, its API).
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: u64,
    pub exp: u64,
    pub auth_time: u64,
    pub jti: String,
    /// The grant the token belongs to: revoked when the code it came from is replayed or its
    /// refresh token is revoked.
    pub gid: String,
}

/// The UserInfo answer (Core §5.3.2).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct UserinfoClaims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
}

impl std::fmt::Debug for UserinfoClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserinfoClaims").field("sub", &self.sub).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of OpenID Connect Core Appendix A.3 (an RS256 ID token with `at_hash`), and a
    /// second vector from a public test suite; both checked with Python's hashlib.
    #[test]
    fn at_hash_matches_known_vectors() {
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash("ya29.OwHWAP05yaZvR92b67pAxfX5xHH5KNxA1mhh-zInoQ5vhK-Vuib1-Hqj"), "-EsTxDmUFRxSI0H_ZpbHiw");
    }

    #[test]
    fn amr_values_are_rfc_8176() {
        assert_eq!(amr(Channel::Sms), "sms");
        assert_eq!(amr(Channel::Call), "tel");
        assert_eq!(amr(Channel::Whatsapp), "otp");
    }

    #[test]
    fn absent_optional_claims_are_left_out_and_phones_stay_out_of_debug() {
        let claims = IdTokenClaims {
            iss: "https://login.example.com".into(),
            sub: "usr_x".into(),
            aud: "web".into(),
            exp: 2,
            iat: 1,
            auth_time: 1,
            nonce: None,
            amr: vec!["sms".into()],
            at_hash: None,
            phone_number: Some("+14155550100".into()),
            phone_number_verified: Some(true),
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("nonce").is_none() && json.get("at_hash").is_none());
        assert!(!format!("{claims:?}").contains("4155550100"));
    }
}
