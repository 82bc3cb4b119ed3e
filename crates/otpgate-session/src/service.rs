//! The session flow the server calls: issue a session for an approved phone, refresh (rotating
//! the refresh token, revoking the chain on reuse), revoke, and the `/v1/me` operations. Nothing a
//! client sends besides its tokens influences what is issued: the user and the phone come from the
//! store and the approved verification, never from the request.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use otpgate_core::session::{NewRefreshToken, RotateOutcome, SessionStore, TokenFamily, User, UserId};
use otpgate_core::verification::random_base62;
use otpgate_core::{Channel, Clock, CodeDigest, CodeHasher, OtpError, PhoneNumber, StoreError, Timestamp};
use tracing::warn;

use crate::keys::KeyRing;
use crate::verify::{AccessClaims, VerifyError, VerifyingKeys, verify_access_token};

/// Session settings; the server fills them from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `iss` of access tokens: the server's public base URL is a good choice. Default `otpgate`.
    pub issuer: String,
    /// `aud` of access tokens: the app(s) that accept them. Default `otpgate`.
    pub audience: String,
    /// Default 15 minutes.
    pub access_ttl: Duration,
    /// Default 30 days; each refresh starts a new period.
    pub refresh_ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            issuer: "otpgate".into(),
            audience: "otpgate".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// The `session` object of the API.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds.
    pub refresh_expires_in: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish()
    }
}

/// What a successful check yields: the user (`created` on their first approval) and a session.
#[derive(Debug, Clone)]
pub struct Issued {
    pub user: User,
    pub created: bool,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Missing, malformed, expired, revoked or reused token, or its user is gone.
    #[error("unauthorized")]
    Unauthorized,
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// A bug (or a broken signing key). Logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => SessionError::StoreUnavailable(msg),
            StoreError::Internal(msg) => SessionError::Internal(msg),
        }
    }
}

impl From<SessionError> for OtpError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Unauthorized => OtpError::Unauthorized,
            SessionError::StoreUnavailable(msg) => OtpError::StoreUnavailable(msg),
            SessionError::Internal(msg) => OtpError::Internal(msg),
        }
    }
}

/// `rt_` and 32 base62 characters: 190 random bits.
const REFRESH_PREFIX: &str = "rt_";
const REFRESH_RANDOM_LEN: usize = 32;

pub struct SessionService {
    store: Arc<dyn SessionStore>,
    keys: RwLock<Arc<KeyRing>>,
    hasher: CodeHasher,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
}

impl SessionService {
    /// `hasher` keys the refresh-token digests; it may be the one that hashes codes (the inputs
    /// are domain-separated).
    pub fn new(
        store: Arc<dyn SessionStore>,
        keys: KeyRing,
        hasher: CodeHasher,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
    ) -> Self {
        SessionService { store, keys: RwLock::new(Arc::new(keys)), hasher, clock, config }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The body of `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        self.keys().jwks()
    }

    pub fn verifying_keys(&self) -> VerifyingKeys {
        self.keys().verifying_keys()
    }

    /// Swaps in a reloaded key ring (after `otpgate keys rotate`); tokens signed by a key still in
    /// the new ring stay valid.
    pub fn replace_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After an approved check: finds or creates the phone's user and starts a session.
    pub async fn issue_for_approved(&self, phone: &PhoneNumber, channel: Channel) -> Result<Issued, SessionError> {
        let now = self.clock.now();
        let (refresh_token, first) = self.new_refresh_token(TokenFamily::generate(), channel, now);
        let (user, created) = self.store.sign_in(phone, UserId::generate(), &first, now).await?;
        let session = self.session_for(&user, channel, refresh_token, now)?;
        Ok(Issued { user, created, session })
    }

    /// Spends `refresh_token` for a new session. A token that was spent already revokes its whole
    /// chain (someone else holds a copy) and, like any bad token, answers `Unauthorized`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, SessionError> {
        let presented = self.refresh_digest(refresh_token).ok_or(SessionError::Unauthorized)?;
        let now = self.clock.now();
        // The family and channel are the presented token's; these are placeholders.
        let (next_token, next) = self.new_refresh_token(TokenFamily::generate(), Channel::Sms, now);
        match self.store.rotate_refresh_token(&presented, &next, now).await? {
            RotateOutcome::Rotated { user, channel } => self.session_for(&user, channel, next_token, now),
            RotateOutcome::Reused => {
                warn!(
                    event = "session.refresh_reuse",
                    outcome = "chain_revoked",
                    "a spent refresh token was presented"
                );
                Err(SessionError::Unauthorized)
            }
            RotateOutcome::Invalid => Err(SessionError::Unauthorized),
        }
    }

    /// Revokes the chain `refresh_token` belongs to. Unknown or malformed tokens are not an error
    /// (there is nothing to learn from revoking).
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), SessionError> {
        if let Some(presented) = self.refresh_digest(refresh_token) {
            self.store.revoke_refresh_family(&presented, self.clock.now()).await?;
        }
        Ok(())
    }

    /// Verifies an access token and that its user still exists (so erased users are locked out at
    /// once, not when their token expires).
    pub async fn authenticate(&self, access_token: &str) -> Result<(AccessClaims, User), SessionError> {
        let claims = self.verify(access_token).map_err(|_| SessionError::Unauthorized)?;
        let id = UserId::parse(&claims.sub).ok_or(SessionError::Unauthorized)?;
        let user = self.store.find_user(&id).await?.ok_or(SessionError::Unauthorized)?;
        if user.phone != claims.phone_number {
            return Err(SessionError::Unauthorized);
        }
        Ok((claims, user))
    }

    /// `GET /v1/me`.
    pub async fn me(&self, access_token: &str) -> Result<User, SessionError> {
        Ok(self.authenticate(access_token).await?.1)
    }

    /// `DELETE /v1/me`: erases the user, their refresh tokens and their phone's verifications.
    pub async fn delete_me(&self, access_token: &str) -> Result<(), SessionError> {
        let (_, user) = self.authenticate(access_token).await?;
        self.store.delete_user(&user.id).await?;
        Ok(())
    }

    /// Housekeeping: deletes expired refresh tokens.
    pub async fn purge_expired(&self) -> Result<u64, SessionError> {
        Ok(self.store.purge_expired_refresh_tokens(self.clock.now()).await?)
    }

    /// Signature, issuer, audience and time only (no store lookup).
    pub fn verify(&self, access_token: &str) -> Result<AccessClaims, VerifyError> {
        let now = UNIX_EPOCH + Duration::from_millis(self.clock.now().0.max(0) as u64);
        verify_access_token(access_token, &self.verifying_keys(), &self.config.issuer, &self.config.audience, now)
    }

    fn new_refresh_token(&self, family: TokenFamily, channel: Channel, now: Timestamp) -> (String, NewRefreshToken) {
        let token = format!("{REFRESH_PREFIX}{}", random_base62(REFRESH_RANDOM_LEN));
        let digest = self.digest(&token);
        (token, NewRefreshToken { digest, family, channel, expires_at: now.plus(self.config.refresh_ttl) })
    }

    /// `None` for anything that is not the shape we issue, so junk never reaches the store.
    fn refresh_digest(&self, token: &str) -> Option<CodeDigest> {
        let random = token.strip_prefix(REFRESH_PREFIX)?;
        (random.len() == REFRESH_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| self.digest(token))
    }

    fn digest(&self, token: &str) -> CodeDigest {
        self.hasher.digest_parts(&[b"otpgate-refresh-v1", token.as_bytes()])
    }

    fn session_for(
        &self,
        user: &User,
        channel: Channel,
        refresh_token: String,
        now: Timestamp,
    ) -> Result<Session, SessionError> {
        let iat = (now.0.max(0) / 1000) as u64;
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user.id.as_str().to_owned(),
            iat,
            nbf: iat,
            exp: iat + self.config.access_ttl.as_secs(),
            jti: random_base62(22),
            phone_number: user.phone.clone(),
            phone_number_verified: true,
            amr: vec![channel.as_str().to_owned()],
        };
        let access_token = self.keys().sign(&claims).map_err(|e| SessionError::Internal(e.to_string()))?;
        Ok(Session {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_ttl.as_secs(),
            refresh_token,
            refresh_expires_in: self.config.refresh_ttl.as_secs(),
        })
    }
}
