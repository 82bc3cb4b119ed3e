//! What OpenID Connect (the `otpgate-oidc` crate) needs from the session machinery: refresh
//! tokens bound to a context (one client's grant), spent with the same rotation, reuse detection
//! and reuse grace as the JSON API's; RS256 signing with the ring's RSA key (published first, as
//! for EdDSA); the RSA keys to verify with; and the user lookup.
//!
//! A bound token is `prefix` and 32 base62 characters, stored like every refresh token only as a
//! keyed digest, but under its own label and over the binding's context: the JSON API's
//! `refresh` never accepts one (other prefix, other digest), and a token presented under another
//! context (another client) digests to something no row holds.

use jsonwebtoken::DecodingKey;
use otpgate_core::session::{NewRefreshToken, TokenFamily, User, UserId};
use otpgate_core::verification::random_base62;
use otpgate_core::{Channel, CodeDigest, PhoneNumber, Timestamp};
use serde::Serialize;
use tracing::warn;

use super::{REFRESH_RANDOM_LEN, SessionError, SessionService, Spent};
use crate::keys::rsa_public_components;

/// Where a bound refresh token is valid; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshBinding {
    prefix: String,
    context: Vec<u8>,
}

impl RefreshBinding {
    /// `prefix` starts every token (it may carry what the token stands for: it is covered by the
    /// digest, so it cannot be altered); `context` is bound into the digest without being part of
    /// the token (the client the token was issued to).
    pub fn new(prefix: impl Into<String>, context: impl Into<Vec<u8>>) -> Self {
        RefreshBinding { prefix: prefix.into(), context: context.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A bound refresh token made but not stored yet: its digest can be recorded elsewhere first (an
/// authorization code remembers the first token of the family it produced).
#[derive(Clone)]
pub struct PreparedRefresh {
    token: String,
    record: NewRefreshToken,
}

impl PreparedRefresh {
    /// The token to hand out.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The keyed digest the store keeps: revoking by it revokes the token's whole family.
    pub fn digest(&self) -> CodeDigest {
        self.record.digest
    }
}

impl std::fmt::Debug for PreparedRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreparedRefresh(<redacted>)")
    }
}

/// What presenting a bound refresh token came to.
#[derive(Debug)]
pub enum BoundRefresh {
    /// Spent for `refresh_token`, the next one of the family (or, for a repeat within the reuse
    /// grace, the successor the first presentation got, and `at` that rotation's time).
    Rotated { user: User, channel: Channel, refresh_token: String, at: Timestamp },
    /// It had been spent already, past the grace: its whole family is revoked now.
    Reused,
    /// Unknown, expired, revoked, of another binding, or its user is gone.
    Invalid,
}

impl SessionService {
    /// The service's clock, read now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn find_user(&self, id: &UserId) -> Result<Option<User>, SessionError> {
        Ok(self.store.find_user(id).await?)
    }

    /// A new bound refresh token, the first of a new family, valid for `refresh_ttl` from now.
    pub fn prepare_refresh(&self, binding: &RefreshBinding, channel: Channel) -> PreparedRefresh {
        let (token, record) = self.new_bound_token(binding, TokenFamily::generate(), channel, self.clock.now());
        PreparedRefresh { token, record }
    }

    /// Stores `prepared` as the first token of its family, for `user`. Answers false (and stores
    /// nothing usable) when the user is gone: the store's sign-in finds users by phone, so if
    /// `user` was erased meanwhile it would have made a new one — that one is erased again.
    pub async fn store_refresh_for(&self, user: &User, prepared: &PreparedRefresh) -> Result<bool, SessionError> {
        let phone = PhoneNumber::parse(&user.phone, None)
            .map_err(|_| SessionError::Internal("a stored user's phone does not parse".into()))?;
        let now = self.clock.now();
        let (stored_for, created) = self.store.sign_in(&phone, UserId::generate(), &prepared.record, now).await?;
        if stored_for.id == user.id {
            return Ok(true);
        }
        self.store.revoke_refresh_family(&prepared.record.digest, now).await?;
        if created {
            self.store.delete_user(&stored_for.id).await?;
        }
        Ok(false)
    }

    /// The digest a bound token is stored under; `None` for anything not of the binding's shape.
    pub fn bound_digest(&self, binding: &RefreshBinding, token: &str) -> Option<CodeDigest> {
        let random = token.strip_prefix(binding.prefix.as_str())?;
        (random.len() == REFRESH_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| self.hasher.digest_parts(&[b"otpgate-bound-refresh-v1", &binding.context, token.as_bytes()]))
    }

    /// Spends a bound token for the next one of its family (same binding), with the JSON API's
    /// rotation: reuse grace, and reuse past it revokes the family.
    pub async fn rotate_bound(&self, token: &str, binding: &RefreshBinding) -> Result<BoundRefresh, SessionError> {
        let Some(presented) = self.bound_digest(binding, token) else { return Ok(BoundRefresh::Invalid) };
        let now = self.clock.now();
        // The family and channel are the presented token's; these are placeholders.
        let next = self.new_bound_token(binding, TokenFamily::generate(), Channel::Sms, now);
        Ok(match self.spend(token, &presented, next, now).await? {
            Spent::Rotated { user, channel, refresh_token, at } => {
                BoundRefresh::Rotated { user, channel, refresh_token, at }
            }
            Spent::Reused => BoundRefresh::Reused,
            Spent::Invalid => BoundRefresh::Invalid,
        })
    }

    /// Revokes the family of a bound token; tokens of another shape or binding are no error.
    /// Answers whether a family with live tokens was revoked.
    pub async fn revoke_bound(&self, token: &str, binding: &RefreshBinding) -> Result<bool, SessionError> {
        match self.bound_digest(binding, token) {
            Some(digest) => self.revoke_family_of(&digest).await,
            None => Ok(false),
        }
    }

    /// Revokes the family of the token stored under `digest` (spent or not).
    pub async fn revoke_family_of(&self, digest: &CodeDigest) -> Result<bool, SessionError> {
        Ok(self.store.revoke_refresh_family(digest, self.clock.now()).await?)
    }

    /// Whether the ring can sign RS256 (has an RSA key).
    pub fn can_sign_rs256(&self) -> bool {
        self.keys().rsa_current().is_some()
    }

    /// Signs `claims` as an RS256 JWS with the ring's current RSA key, published first so that
    /// every instance sharing the store lists it before the token exists.
    pub async fn sign_rs256<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, SessionError> {
        self.ensure_published(self.clock.now()).await?;
        self.keys().sign_rs256(typ, claims).map_err(|e| SessionError::Internal(e.to_string()))
    }

    /// The RSA public key `kid` names: one of this ring's, or one another instance published (read
    /// again from the store when it is not known yet). `None` for unknown and non-RSA keys.
    pub async fn rs256_key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.known_rs256_key(kid) {
            return Some(key);
        }
        self.read_shared_keys().await;
        self.known_rs256_key(kid)
    }

    fn known_rs256_key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.keys().rsa_keys().find(|k| k.kid() == kid) {
            return Some(key.decoding_key());
        }
        let shared = self.shared_keys().into_iter().find(|k| k.kid == kid)?;
        match &shared.public_key {
            otpgate_core::PublicKeyMaterial::Rsa(der) => match rsa_public_components(der) {
                Some((n, e)) => Some(DecodingKey::from_rsa_raw_components(&n, &e)),
                None => {
                    warn!(kid, "a published RSA key does not parse; ignored");
                    None
                }
            },
            otpgate_core::PublicKeyMaterial::Ed25519(_) => None,
        }
    }

    fn new_bound_token(
        &self,
        binding: &RefreshBinding,
        family: TokenFamily,
        channel: Channel,
        now: Timestamp,
    ) -> (String, NewRefreshToken) {
        let token = format!("{}{}", binding.prefix, random_base62(REFRESH_RANDOM_LEN));
        let digest = self.bound_digest(binding, &token).expect("a token of the binding's own shape");
        (token, NewRefreshToken { digest, family, channel, expires_at: now.plus(self.config.refresh_ttl) })
    }
}
