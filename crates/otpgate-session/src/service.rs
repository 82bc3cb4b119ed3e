//! The session flow the server calls: issue a session for an approved phone, refresh (rotating
//! the refresh token, revoking the chain on reuse), revoke, and the `/v1/me` operations. Nothing a
//! client sends besides its tokens influences what is issued: the user and the phone come from the
//! store and the approved verification, never from the request.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use otpgate_core::session::{
    NewRefreshToken, PublicKeyMaterial, PublishedKey, RotateOutcome, Rotation, SessionStore, TokenFamily, User, UserId,
};
use otpgate_core::verification::random_base62;
use otpgate_core::{Approved, Channel, Clock, CodeDigest, CodeHasher, OtpError, StoreError, Timestamp};
use tracing::{info, warn};

use crate::keys::{KeyRing, public_jwk, rsa_jwk, rsa_public_components};

mod bound;
use crate::verify::{AccessClaims, VerifyError, VerifyingKeys, verify_access_token};
pub use bound::{BoundRefresh, PreparedRefresh, RefreshBinding};

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
    /// How long after a refresh the spent token, presented again, gets the same new session
    /// instead of revoking the chain (a lost answer, two tabs, a retrying page). Default 10 s;
    /// zero: every repeat revokes.
    pub refresh_reuse_grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            issuer: "otpgate".into(),
            audience: "otpgate".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            refresh_reuse_grace: Duration::from_secs(10),
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

/// What an approval yields: the user (`created` on their first approval) and a session. Only
/// [`SessionService::issue_for_approved`] builds one, so holding one means a check approved this
/// user's phone just now (an OpenID Connect login session starts from it).
#[derive(Debug)]
pub struct Issued {
    user: User,
    created: bool,
    channel: Channel,
    session: Session,
}

impl Issued {
    pub fn user(&self) -> &User {
        &self.user
    }

    /// Whether this approval created the user (their phone's first).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The channel the approved code was sent on.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The user, whether they were created, and the session, for an answer to be built from.
    pub fn into_parts(self) -> (User, bool, Session) {
        (self.user, self.created, self.session)
    }
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

/// What spending a refresh token came to (`SessionService::spend`).
enum Spent {
    /// Rotated now, or a repeat within the grace (then `at` is the first rotation's time and
    /// `refresh_token` its successor).
    Rotated {
        user: User,
        channel: Channel,
        refresh_token: String,
        at: Timestamp,
    },
    /// Presented after it was spent, past the grace: its family is revoked now.
    Reused,
    Invalid,
}

/// Bound into every sealed successor, so a sealed value means nothing anywhere else.
const SEAL_AAD: &[u8] = b"otpgate-refresh-successor-v1";

/// `rt_` and 32 base62 characters: 190 random bits.
const REFRESH_PREFIX: &str = "rt_";
const REFRESH_RANDOM_LEN: usize = 32;

pub struct SessionService {
    store: Arc<dyn SessionStore>,
    keys: RwLock<Arc<KeyRing>>,
    hasher: CodeHasher,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    /// The signing keys shared through the store (see `SharedKeys`).
    shared: SharedKeys,
}

/// The public keys instances publish in the durable store: which of ours was published last and
/// when, and the others' as last read (only those whose MAC checks out).
#[derive(Default)]
struct SharedKeys {
    published: Mutex<Option<(String, Timestamp)>>,
    cache: RwLock<Vec<PublishedKey>>,
}

/// How often the current key's publication is renewed while it signs (the service's clock).
const REPUBLISH_EVERY: Duration = Duration::from_secs(60);

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
        SessionService {
            store,
            keys: RwLock::new(Arc::new(keys)),
            hasher,
            clock,
            config,
            shared: SharedKeys::default(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The public keys: this instance's ring (current first), then every key the instances sharing
    /// the store published and that is still valid, as last read (see `current_jwks`).
    pub fn jwks(&self) -> JwkSet {
        let mut set = self.keys().jwks();
        for key in self.shared_keys() {
            if set.find(&key.kid).is_some() {
                continue;
            }
            match &key.public_key {
                PublicKeyMaterial::Ed25519(public) => set.keys.push(public_jwk(&key.kid, public)),
                PublicKeyMaterial::Rsa(der) => {
                    if let Some((n, e)) = rsa_public_components(der) {
                        set.keys.push(rsa_jwk(&key.kid, &n, &e));
                    }
                }
            }
        }
        set
    }

    /// The body of `GET /.well-known/jwks.json`: `jwks` after reading the published keys again,
    /// so a key another instance published before signing its first token is listed as soon as
    /// that token exists. (One small read per request, as the user lookup of every authenticated
    /// request; verifiers cache the JWKS, `Cache-Control: max-age=300`.)
    pub async fn current_jwks(&self) -> JwkSet {
        self.read_shared_keys().await;
        self.jwks()
    }

    /// The keys `jwks` lists, to verify with.
    pub fn verifying_keys(&self) -> VerifyingKeys {
        let ring = self.keys();
        let mut keys = ring.verifying_keys();
        for key in self.shared_keys() {
            if let PublicKeyMaterial::Ed25519(public) = &key.public_key
                && !keys.kids().any(|kid| kid == key.kid)
            {
                keys.insert_ed25519(key.kid.clone(), public);
            }
        }
        keys
    }

    /// Swaps in a reloaded key ring (after `otpgate keys rotate`); tokens signed by a key still in
    /// the new ring, or published by another instance, stay valid. The new current key is
    /// published before it signs anything (`publish_keys`, or at the latest the next signing).
    pub fn replace_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        *self.shared.published.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Publishes this instance's signing keys in the store, so every instance sharing it lists
    /// and accepts them: the current key until the tokens it may sign by the next renewal have
    /// expired, the previous one until the tokens it signed before the current key existed have.
    /// The same for the RSA keys (RS256 OpenID Connect tokens, which live no longer than access
    /// tokens).
    pub async fn publish_keys(&self) -> Result<(), SessionError> {
        let (ring, now) = (self.keys(), self.clock.now());
        let current = ring.current();
        let margin = self.config.access_ttl + REPUBLISH_EVERY * 2;
        let retired_until = |successor_created_at: u64| {
            let retired_at = Timestamp(i64::try_from(successor_created_at).unwrap_or(i64::MAX / 1000) * 1000);
            Some(retired_at.plus(margin)).filter(|until| *until > now)
        };
        let mut keys = vec![(current.kid(), PublicKeyMaterial::Ed25519(*current.public_key()), now.plus(margin))];
        if let Some(previous) = ring.previous()
            && let Some(until) = retired_until(current.created_at())
        {
            keys.push((previous.kid(), PublicKeyMaterial::Ed25519(*previous.public_key()), until));
        }
        if let Some(rsa) = ring.rsa_current() {
            keys.push((rsa.kid(), PublicKeyMaterial::Rsa(rsa.public_der().to_vec()), now.plus(margin)));
            if let Some(previous) = ring.rsa_previous()
                && let Some(until) = retired_until(rsa.created_at())
            {
                keys.push((previous.kid(), PublicKeyMaterial::Rsa(previous.public_der().to_vec()), until));
            }
        }
        for (kid, public_key, until) in keys {
            self.store.publish_signing_key(&self.published_key(kid, public_key, until), now).await?;
        }
        *self.shared.published.lock().unwrap_or_else(|e| e.into_inner()) = Some((current.kid().to_owned(), now));
        self.read_shared_keys().await;
        Ok(())
    }

    /// Publishes the current key unless that was done within `REPUBLISH_EVERY`: called before
    /// signing, so no token is out before the other instances can learn its key.
    async fn ensure_published(&self, now: Timestamp) -> Result<(), SessionError> {
        let due = {
            let published = self.shared.published.lock().unwrap_or_else(|e| e.into_inner());
            match &*published {
                Some((kid, at)) => kid != self.keys().current().kid() || now >= at.plus(REPUBLISH_EVERY),
                None => true,
            }
        };
        if due { self.publish_keys().await } else { Ok(()) }
    }

    fn published_key(&self, kid: &str, public_key: PublicKeyMaterial, valid_until: Timestamp) -> PublishedKey {
        let mac = self.published_key_mac(kid, public_key.as_bytes(), valid_until);
        PublishedKey { kid: kid.to_owned(), public_key, valid_until, mac }
    }

    /// Over the stored bytes: for an Ed25519 key the same 32 bytes as before RSA keys existed.
    fn published_key_mac(&self, kid: &str, public_key: &[u8], valid_until: Timestamp) -> CodeDigest {
        let until = valid_until.0.to_be_bytes();
        self.hasher.digest_parts(&[b"otpgate-signing-key-v1", kid.as_bytes(), public_key, &until])
    }

    /// The published keys as last read, still valid now.
    fn shared_keys(&self) -> Vec<PublishedKey> {
        let now = self.clock.now();
        let cache = self.shared.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.iter().filter(|k| k.valid_until > now).cloned().collect()
    }

    /// Reads the published keys again. Keeps only keys whose MAC checks out (a key written into
    /// the store by anyone without the HMAC key is ignored). A store that cannot be read leaves
    /// the last read in place (logged).
    async fn read_shared_keys(&self) {
        match self.store.published_signing_keys(self.clock.now()).await {
            Ok(keys) => {
                let authentic = |k: &PublishedKey| {
                    k.mac.ct_eq(&self.published_key_mac(&k.kid, k.public_key.as_bytes(), k.valid_until))
                };
                let (good, forged): (Vec<_>, Vec<_>) = keys.into_iter().partition(authentic);
                if !forged.is_empty() {
                    warn!(
                        event = "session.signing_keys",
                        outcome = "ignored",
                        count = forged.len(),
                        "published signing keys with a bad MAC were ignored"
                    );
                }
                *self.shared.cache.write().unwrap_or_else(|e| e.into_inner()) = good;
            }
            Err(e) => warn!(error = %e, "cannot read the published signing keys"),
        }
    }

    fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// After an approved check: finds or creates the approved phone's user and starts a session.
    /// Takes the approval itself (which only a check builds, and which cannot be copied), so
    /// nothing can be issued for a phone no check approved, and one approval is one session.
    pub async fn issue_for_approved(&self, approved: Approved) -> Result<Issued, SessionError> {
        let (phone, channel) = (approved.phone(), approved.channel());
        let now = self.clock.now();
        self.ensure_published(now).await?;
        let (refresh_token, first) = self.new_refresh_token(TokenFamily::generate(), channel, now);
        let (user, created) = self.store.sign_in(phone, UserId::generate(), &first, now).await?;
        let session = self.session_for(&user, channel, refresh_token, now)?;
        Ok(Issued { user, created, channel, session })
    }

    /// Spends `refresh_token` for a new session. The same token presented again within the reuse
    /// grace gets the same session again (the same tokens, while its successor is unspent); past
    /// the grace, a token that was spent already revokes its whole chain (someone else holds a
    /// copy) and, like any bad token, answers `Unauthorized`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, SessionError> {
        let presented = self.refresh_digest(refresh_token).ok_or(SessionError::Unauthorized)?;
        let now = self.clock.now();
        self.ensure_published(now).await?;
        // The family and channel are the presented token's; these are placeholders.
        let next = self.new_refresh_token(TokenFamily::generate(), Channel::Sms, now);
        match self.spend(refresh_token, &presented, next, now).await? {
            Spent::Rotated { user, channel, refresh_token, at } => self.session_for(&user, channel, refresh_token, at),
            Spent::Reused | Spent::Invalid => Err(SessionError::Unauthorized),
        }
    }

    /// Spends `token` (whose digest is `presented`) for `next`, with the reuse grace: the one
    /// rotation the JSON API's refresh and the bound (OpenID Connect) refresh share.
    async fn spend(
        &self,
        token: &str,
        presented: &CodeDigest,
        (next_token, next): (String, NewRefreshToken),
        now: Timestamp,
    ) -> Result<Spent, SessionError> {
        let rotation = Rotation {
            next,
            sealed_next: self.seal(token, &next_token)?,
            reuse_grace: self.config.refresh_reuse_grace,
        };
        Ok(match self.store.rotate_refresh_token(presented, &rotation, now).await? {
            RotateOutcome::Rotated { user, channel } => {
                Spent::Rotated { user, channel, refresh_token: next_token, at: now }
            }
            RotateOutcome::Repeated { user, channel, rotated_at, sealed_next } => {
                let refresh_token = self.open(token, &sealed_next)?;
                info!(
                    event = "session.refresh_repeat",
                    outcome = "same_session",
                    "a refresh was repeated within the grace"
                );
                Spent::Rotated { user, channel, refresh_token, at: rotated_at }
            }
            RotateOutcome::Reused => {
                warn!(
                    event = "session.refresh_reuse",
                    outcome = "chain_revoked",
                    "a spent refresh token was presented"
                );
                Spent::Reused
            }
            RotateOutcome::Invalid => Spent::Invalid,
        })
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
        let claims = match self.verify(access_token) {
            // Signed by a key another instance published since the last read: read again.
            Err(VerifyError::UnknownKey) => {
                self.read_shared_keys().await;
                self.verify(access_token)
            }
            verified => verified,
        }
        .map_err(|_| SessionError::Unauthorized)?;
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

    /// The key that seals a spent token's successor: derived from the spent token itself (and the
    /// HMAC key), so the store alone, or the HMAC key with a copy of the store, cannot open it —
    /// only whoever presents the spent token again. Another label than the stored digest's.
    fn seal_key(&self, spent: &str) -> Result<RandomizedNonceKey, SessionError> {
        let key = self.hasher.digest_parts(&[b"otpgate-refresh-seal-v1", spent.as_bytes()]);
        RandomizedNonceKey::new(&AES_256_GCM, key.as_bytes()).map_err(|_| SessionError::Internal("AEAD key".into()))
    }

    /// `successor` sealed under `spent` (AES-256-GCM, random nonce): the nonce, then the ciphertext
    /// and tag.
    fn seal(&self, spent: &str, successor: &str) -> Result<Vec<u8>, SessionError> {
        let mut in_out = successor.as_bytes().to_vec();
        let nonce = self
            .seal_key(spent)?
            .seal_in_place_append_tag(Aad::from(SEAL_AAD), &mut in_out)
            .map_err(|_| SessionError::Internal("cannot seal a refresh token".into()))?;
        let mut sealed = nonce.as_ref().to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// The successor `sealed` under `spent` (see `seal`).
    fn open(&self, spent: &str, sealed: &[u8]) -> Result<String, SessionError> {
        let corrupt = || SessionError::Internal("a sealed refresh token does not open".into());
        if sealed.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut in_out = ciphertext.to_vec();
        let plain =
            self.seal_key(spent)?.open_in_place(nonce, Aad::from(SEAL_AAD), &mut in_out).map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }

    /// A unique, opaque token id: 128 bits of a keyed digest of the refresh token, base64url.
    fn jti(&self, refresh_token: &str) -> String {
        let digest = self.hasher.digest_parts(&[b"otpgate-jti-v1", refresh_token.as_bytes()]);
        URL_SAFE_NO_PAD.encode(&digest.as_bytes()[..16])
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
            // Derived from the refresh token issued with it, so a repeated refresh signs the very
            // same claims: Ed25519 is deterministic, so it is the very same access token.
            jti: self.jti(&refresh_token),
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
