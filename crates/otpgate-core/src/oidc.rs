//! OpenID Connect state as the store keeps it — a store capability of its own, beside the
//! verification, session and limit traits: authorization codes (single use, kept a while after
//! use to recognise a replay), login sessions (the browser's sign-in at otpgate, behind a
//! cookie), and revoked token ids (grants and access tokens that must stop working before they
//! expire). The protocol lives in `otpgate-oidc`; its contract suite (`otpgate_oidc::contract`)
//! runs on every backend.
//!
//! Secrets are never stored: codes and login-session cookies are kept under a keyed digest
//! (`CodeHasher::digest_parts`), like verification codes and refresh tokens. The records hold
//! opaque ids (user, grant), no phone number: erasing a user leaves nothing here that names them,
//! and a record whose user is gone is refused where it is used.

use async_trait::async_trait;

use crate::session::UserId;
use crate::{Channel, CodeDigest, StoreError, Timestamp};

/// What an authorization code stands for; everything the code exchange checks is bound here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub client_id: String,
    /// Exactly as the authorization request gave it (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE `S256` challenge: base64url(SHA-256(verifier)), 43 characters.
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// The granted scopes, space separated (`openid` always among them).
    pub scope: String,
    pub user_id: UserId,
    /// How the phone was verified (the ID token's `amr`).
    pub channel: Channel,
    /// When the user verified their phone (the ID token's `auth_time`).
    pub auth_time: Timestamp,
    /// Usable until then (at most a minute after it was issued).
    pub expires_at: Timestamp,
}

/// What the first use of a code produced, recorded atomically with spending it, so that a second
/// use can revoke it. (No `PartialEq`: digests compare in constant time, `CodeDigest::ct_eq`.)
#[derive(Debug, Clone)]
pub struct CodeExchange {
    /// The grant the tokens belong to (in every access token; revoked as a token id).
    pub grant_id: String,
    /// The digest of the first refresh token of the grant's family, if one was issued: revoking
    /// the family by it ends every refresh token descended from it.
    pub first_refresh: Option<CodeDigest>,
}

#[derive(Debug, Clone)]
pub enum ConsumeOutcome {
    /// The code was unspent and unexpired: it is spent now, by this call and no other, and the
    /// exchange is recorded with it.
    Consumed(AuthorizationCode),
    /// The code had been spent already: what its first use recorded.
    Replayed(CodeExchange),
    /// Unknown, or expired unspent.
    Invalid,
}

/// A browser's sign-in at otpgate (single sign-on for later authorizations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    pub user_id: UserId,
    pub channel: Channel,
    /// When the phone was verified.
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    /// Stores a new code under `digest`, kept until `keep_until` (after its `expires_at`: a spent
    /// code must still be recognised when it comes back).
    async fn create_code(
        &self,
        digest: &CodeDigest,
        code: &AuthorizationCode,
        keep_until: Timestamp,
    ) -> Result<(), StoreError>;

    /// The code stored under `digest`, spent or not, while it is kept (its fields never change:
    /// this read needs no lock). The exchange reads it first to prepare what it records when it
    /// consumes the code.
    async fn code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError>;

    /// Atomically: if the code under `digest` is unspent and `now < expires_at`, spend it, record
    /// `exchange` with it and answer `Consumed`; if it was spent, answer `Replayed` with what its
    /// first use recorded (any number of times, until it is no longer kept); otherwise `Invalid`.
    /// Of concurrent calls with one code, exactly one answers `Consumed`.
    async fn consume_code(
        &self,
        digest: &CodeDigest,
        exchange: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError>;

    /// Records that tokens naming `id` (a grant id or an access token's `jti`) are revoked, until
    /// `until` (when the last of them expires). Revoking again keeps the later `until`.
    async fn revoke_token_id(&self, id: &str, until: Timestamp, now: Timestamp) -> Result<(), StoreError>;

    /// Whether any of `ids` is revoked at `now`.
    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError>;

    /// Stores a login session under `digest` (of its cookie), until its `expires_at`.
    async fn create_login_session(&self, digest: &CodeDigest, session: &LoginSession) -> Result<(), StoreError>;

    /// The login session under `digest`, if it exists and `now < expires_at`.
    async fn login_session(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError>;

    /// Ends the login session under `digest`; answers whether there was one.
    async fn end_login_session(&self, digest: &CodeDigest) -> Result<bool, StoreError>;

    /// Deletes codes past their `keep_until`, login sessions past their expiry and revocations
    /// past their `until`; answers how many records went. Idempotent and safe with several
    /// instances sweeping at once. The default deletes nothing: for backends whose keys expire
    /// on their own (Redis TTLs).
    async fn purge_oidc(&self, _now: Timestamp) -> Result<u64, StoreError> {
        Ok(0)
    }
}
