//! PKCE (RFC 7636), `S256` only: the client sends `code_challenge = base64url(SHA-256(verifier))`
//! with the authorization request and the verifier with the code; `plain` is refused (OAuth 2.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An `S256` code challenge: 43 base64url characters (the encoding of a SHA-256 digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse(s: &str) -> Option<Self> {
        // 43 characters of base64url without padding decode to exactly 32 bytes only if the last
        // character carries no stray bits; decoding checks that.
        (s.len() == 43 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|d| d.len() == 32)).then(|| CodeChallenge(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` hashes to this challenge (constant time).
    pub fn is_met_by(&self, verifier: &CodeVerifier) -> bool {
        s256(verifier.0.as_str()).as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// A code verifier: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~` (RFC 7636 §4.1).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(s: &str) -> Option<Self> {
        ((43..=128).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')))
        .then(|| CodeVerifier(s.to_owned()))
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

/// `BASE64URL-ENCODE(SHA256(ASCII(verifier)))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_appendix_b_vector() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        let challenge = CodeChallenge::parse(CHALLENGE).unwrap();
        assert!(challenge.is_met_by(&CodeVerifier::parse(VERIFIER).unwrap()));
    }

    #[test]
    fn a_wrong_verifier_does_not_meet_the_challenge() {
        let challenge = CodeChallenge::parse(CHALLENGE).unwrap();
        let mut wrong = VERIFIER.to_owned();
        wrong.replace_range(0..1, "e");
        assert!(!challenge.is_met_by(&CodeVerifier::parse(&wrong).unwrap()));
        // `plain`: the challenge itself as the verifier does not pass S256.
        assert!(!challenge.is_met_by(&CodeVerifier::parse(CHALLENGE).unwrap()));
    }

    #[test]
    fn only_well_formed_challenges_and_verifiers_parse() {
        for bad in ["", "short", &CHALLENGE[..42], &format!("{CHALLENGE}A"), &format!("{}=", &CHALLENGE[..42])] {
            assert!(CodeChallenge::parse(bad).is_none(), "{bad:?}");
        }
        // Base64url with padding or the standard alphabet is not base64url.
        assert!(CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM").is_none());
        for bad in
            ["", &"a".repeat(42), &"a".repeat(129), &format!("{}!", "a".repeat(43)), &format!("{} ", "a".repeat(43))]
        {
            assert!(CodeVerifier::parse(bad).is_none(), "{bad:?}");
        }
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_some());
        assert!(CodeVerifier::parse(&"~._-".repeat(32)).is_some());
        assert!(!format!("{:?}", CodeVerifier::parse(VERIFIER).unwrap()).contains(VERIFIER));
    }
}
