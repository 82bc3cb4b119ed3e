//! Users and refresh tokens as the domain sees them, and the `SessionStore` trait the stores
//! implement. A user is keyed by an E.164 phone number and named by a stable opaque id
//! (`usr_…`); a phone that is erased and signs in again gets a new id, so an id is never reused.
//! Refresh tokens exist here only as keyed digests (`CodeHasher::digest_parts`) grouped in
//! families: each sign-in starts a family, each refresh spends one token and adds the next to
//! the same family, and presenting a spent token revokes the whole family (theft detection) —
//! unless it comes back within the reuse grace after its rotation while its successor is still
//! unspent: then the rotation is answered again (a lost answer, two tabs, a retrying page). For
//! that, a rotation keeps its successor token sealed under a key that only the spent token gives
//! (see `otpgate-session`), until the grace ends or the family rotates again.
//! Signing keys are not stored here: they live in a key file (see `otpgate-session`). Their public
//! halves are: every instance publishes the keys it signs with ([`PublishedKey`]), so instances
//! sharing a durable store serve one JWKS and accept each other's tokens, whatever key files
//! they were given.

use std::fmt;

use async_trait::async_trait;

use crate::verification::random_base62;
use crate::{Channel, CodeDigest, PhoneNumber, StoreError, Timestamp};

/// Opaque public user id: `usr_` and 20 base62 characters (119 bits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub const PREFIX: &'static str = "usr_";

    pub fn generate() -> Self {
        UserId(format!("{}{}", Self::PREFIX, random_base62(20)))
    }

    /// Accepts only the shape we generate, so junk (e.g. a forged `sub`) never reaches a query.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        (rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| UserId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Groups the refresh tokens that descend from one sign-in: `rf_` and 22 base62 characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TokenFamily(String);

impl TokenFamily {
    pub fn generate() -> Self {
        TokenFamily(format!("rf_{}", random_base62(22)))
    }

    /// For stores reading their own rows back.
    pub fn from_stored(s: String) -> Self {
        TokenFamily(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// E.164.
    pub phone: String,
    pub created_at: Timestamp,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The phone is PII: masked wherever a `User` gets logged (only the first digit of the
        // country code stays; parsing here just to keep two more digits is not worth it).
        f.debug_struct("User")
            .field("id", &self.id)
            .field("phone", &crate::mask::mask_e164(&self.phone, 1))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A refresh token to store: only its keyed digest, never the token.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub digest: CodeDigest,
    pub family: TokenFamily,
    /// How the phone was verified at sign-in; refreshed access tokens keep it in `amr`.
    pub channel: Channel,
    pub expires_at: Timestamp,
}

/// A refresh, as the store carries it out.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The token that replaces the presented one (its family and channel are the presented one's).
    pub next: NewRefreshToken,
    /// `next`'s token, sealed under a key only the presented token gives: kept with the spent
    /// token for `reuse_grace`, so a repeat within it gets `next` back.
    pub sealed_next: Vec<u8>,
    /// How long after this rotation a repeat of the presented token is answered with it again
    /// instead of revoking the family; zero: never.
    pub reuse_grace: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was live; it is spent now, and the next one is stored in its family.
    Rotated { user: User, channel: Channel },
    /// The presented token was spent by a rotation within the reuse grace, and the token that
    /// rotation stored is still unspent: nothing changed; this is that rotation again.
    Repeated { user: User, channel: Channel, rotated_at: Timestamp, sealed_next: Vec<u8> },
    /// The presented token had been spent already (past the grace): its whole family is revoked now.
    Reused,
    /// Unknown, expired or revoked, or its user is gone, or spent within the grace by a rotation
    /// whose successor is no longer live. Nothing changed.
    Invalid,
}

/// The public half of a signing key as the store keeps it: raw bytes whose length tells the kind
/// apart (an Ed25519 key is 32 bytes; an RSA key's DER never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyMaterial {
    /// The 32-byte Ed25519 public key (EdDSA access tokens).
    Ed25519([u8; 32]),
    /// A PKCS#1 `RSAPublicKey` in DER (RS256 OpenID Connect tokens). Checked by whoever uses it:
    /// the domain has no crypto.
    Rsa(Vec<u8>),
}

impl PublicKeyMaterial {
    /// Longest RSA key DER we take from the store (an 8192-bit key is about 1 KiB).
    const MAX_RSA_DER: usize = 2048;

    /// The bytes to store (and to MAC: for Ed25519 the same 32 bytes as before RSA keys existed,
    /// so rows published by older instances still check out).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            PublicKeyMaterial::Ed25519(key) => key,
            PublicKeyMaterial::Rsa(der) => der,
        }
    }

    /// From stored bytes; `None` for anything that is neither shape (a corrupt row).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            32 => bytes.try_into().ok().map(PublicKeyMaterial::Ed25519),
            // A DER SEQUENCE, bigger than any Ed25519 key.
            33..=Self::MAX_RSA_DER if bytes[0] == 0x30 => Some(PublicKeyMaterial::Rsa(bytes.to_vec())),
            _ => None,
        }
    }
}

/// The public half of a signing key, as an instance publishes it in the durable store.
#[derive(Debug, Clone)]
pub struct PublishedKey {
    pub kid: String,
    pub public_key: PublicKeyMaterial,
    /// Listed until then: past the expiry of every access token it signed.
    pub valid_until: Timestamp,
    /// A keyed digest (the HMAC key) over the three fields above, so that only an instance holding
    /// the key can add a key others believe: write access to the store alone is not enough.
    pub mac: CodeDigest,
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Atomically: finds the user of `phone` or creates it with `new_id`, and stores the first
    /// refresh token of a new family for that user. Answers the user and whether this call
    /// created it (true for exactly one of any number of concurrent first sign-ins).
    async fn sign_in(
        &self,
        phone: &PhoneNumber,
        new_id: UserId,
        first: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<(User, bool), StoreError>;

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// Atomically, serialised with every other write to the presented token's family: if
    /// `presented` is live (not spent, revoked or expired, and its user exists), spend it, store
    /// `rotation.next` (whose family and channel are ignored: it inherits both from the presented
    /// token) and keep `rotation.sealed_next` with the spent token until `rotation.reuse_grace` has
    /// passed (dropping any other sealed token of the family). If it was spent already: within
    /// that grace and while its successor is unspent, `Repeated` and nothing changes; within the
    /// grace otherwise, `Invalid`; past it, revoke its whole family. Of concurrent calls with one
    /// token, at most one answers `Rotated`.
    async fn rotate_refresh_token(
        &self,
        presented: &CodeDigest,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError>;

    /// Revokes the family of `presented`; unknown tokens are not an error. True if a family with
    /// live tokens was revoked.
    async fn revoke_refresh_family(&self, presented: &CodeDigest, now: Timestamp) -> Result<bool, StoreError>;

    /// Erases the user, all their refresh tokens and every verification of their phone. Answers
    /// the erased user, `None` if there was none.
    async fn delete_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// Deletes refresh tokens past their expiry (spent ones are kept until then, for reuse
    /// detection), and drops sealed successors whose reuse grace has passed. Answers how many
    /// tokens were deleted.
    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Publishes `key`: stored, or replacing the entry of its `kid` if that one is valid for less
    /// long. Entries past their `valid_until` are deleted.
    async fn publish_signing_key(&self, _key: &PublishedKey, _now: Timestamp) -> Result<(), StoreError> {
        Err(StoreError::Internal("this store does not support published signing keys".into()))
    }

    /// Every published key still valid at `now` (MACs unchecked: the caller checks them).
    async fn published_signing_keys(&self, _now: Timestamp) -> Result<Vec<PublishedKey>, StoreError> {
        Err(StoreError::Internal("this store does not support published signing keys".into()))
    }

    /// Export: the user of `phone` and their refresh tokens' metadata (never digests).
    async fn export_user_by_phone(
        &self,
        _phone: &PhoneNumber,
    ) -> Result<Option<crate::privacy::UserRecords>, StoreError> {
        Err(StoreError::Internal("this store does not support export".into()))
    }

    /// Erasure by phone (operators): as `delete_user` for the user of `phone`.
    async fn delete_user_by_phone(&self, _phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        Err(StoreError::Internal("this store does not support erasure by phone".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_parse_only_our_shape() {
        let id = UserId::generate();
        assert_eq!(UserId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.as_str().len(), 24);
        for bad in [
            "",
            "usr_",
            "usr_short",
            "vf_01234567890123456789",
            "usr_0123456789012345678!",
            "usr_012345678901234567890",
        ] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn public_key_material_round_trips_and_refuses_other_shapes() {
        let ed = PublicKeyMaterial::Ed25519([7; 32]);
        assert_eq!(PublicKeyMaterial::from_bytes(ed.as_bytes()), Some(ed));
        let mut der = vec![0x30, 0x82, 0x01, 0x0a];
        der.resize(270, 1);
        let rsa = PublicKeyMaterial::Rsa(der.clone());
        assert_eq!(PublicKeyMaterial::from_bytes(rsa.as_bytes()), Some(rsa));
        for bad in [&[][..], &[0x30; 31], &[0x31; 270], &vec![0x30; 4096]] {
            assert_eq!(PublicKeyMaterial::from_bytes(bad), None, "{} bytes", bad.len());
        }
    }

    #[test]
    fn user_debug_masks_the_phone() {
        let u = User { id: UserId::generate(), phone: "+14155550100".into(), created_at: Timestamp(0) };
        assert!(!format!("{u:?}").contains("4155550100"));
    }
}
