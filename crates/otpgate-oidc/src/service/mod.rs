//! [`OidcService`]: the provider's operations over the store, the session machinery and the
//! settings. The HTTP server maps each endpoint to one call and the answer back to HTTP; nothing
//! here knows HTTP.
//!
//! A grant is what one code exchange produced: an access token, an ID token and (with
//! `offline_access`) a family of refresh tokens. Its id (`gid`) is in every access token of the
//! grant and in its refresh tokens, and the code remembers it and the family's first refresh
//! token, so a second use of the code revokes all of it: the family in the session store, and
//! the grant id (until its last access token has expired) for UserInfo.
//!
//! Refresh tokens are the session machinery's, bound to the client and the grant
//! (`RefreshBinding`): `ort_{gid}.{phone}.{auth_time}.{32 random}`. The grant's facts a refresh
//! needs (whether `phone` was granted, when the user authenticated) travel in the token's
//! prefix, which the stored digest covers: altering them makes the token unknown.
//!
//! The endpoints beyond authorization and login sessions live beside this file: `tokens` (the
//! token endpoint), `userinfo`, `revocation` and `logout`.

use std::sync::Arc;
use std::time::Duration;

use otpgate_core::oidc::{AuthorizationCode, LoginSession, OidcStore};
use otpgate_core::verification::random_base62;
use otpgate_core::{CodeDigest, CodeHasher, Timestamp};
use otpgate_session::{Issued, RefreshBinding, SessionService};

use crate::authorize::{ActiveLogin, AuthorizationRequest, AuthorizeError, Decision};
use crate::config::{CODE_TTL, Client, OidcSettings};
use crate::discovery::ProviderMetadata;
use crate::errors::OidcError;
use crate::events::{Event, client_label, record};
use crate::params::Params;
mod logout;
mod revocation;
mod tokens;
mod userinfo;

/// How long a spent code is kept after its expiry, to recognise (and punish) a replay.
pub const SPENT_CODE_KEPT: Duration = Duration::from_secs(10 * 60);

const CODE_PREFIX: &str = "oc_";
const LOGIN_PREFIX: &str = "ls_";
const REFRESH_PREFIX: &str = "ort_";
/// 32 base62 characters: 190 bits.
const SECRET_LEN: usize = 32;
/// Grant ids and access-token ids: 22 base62 characters, 131 bits.
const ID_LEN: usize = 22;
/// Longest JWT we even parse (ours are about 1 KiB).
const MAX_JWT_LEN: usize = 8 * 1024;
/// Revoked ids are kept this long past the expiry of the tokens that name them (one clock, but
/// tokens signed in the same second as a revocation are covered too).
const REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// What the browser sees after logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The login session (if any) is ended. Redirect here (the registered post-logout URI with
    /// `state`), or show a "signed out" page when `None`.
    SignedOut { redirect: Option<String> },
    /// Nothing proves the request comes from the app the user signed in to (no `id_token_hint`,
    /// or one of another user): ask the user to confirm (a page whose form, with a CSRF token,
    /// sends the same parameters back with `confirmed = true`).
    Confirm { client_name: Option<String> },
}

pub struct OidcService {
    settings: Arc<OidcSettings>,
    sessions: Arc<SessionService>,
    store: Arc<dyn OidcStore>,
    hasher: CodeHasher,
}

/// What a refresh token carries besides its random part (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct GrantRef {
    gid: String,
    phone: bool,
    /// Unix seconds.
    auth_time: u64,
}

impl GrantRef {
    fn prefix(&self) -> String {
        format!("{REFRESH_PREFIX}{}.{}.{}.", self.gid, u8::from(self.phone), self.auth_time)
    }

    /// The prefix fields of a token of our shape; the random part is checked by the session
    /// service against the binding.
    fn parse(token: &str) -> Option<GrantRef> {
        let mut parts = token.strip_prefix(REFRESH_PREFIX)?.splitn(4, '.');
        let (gid, phone, auth_time, _random) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let phone = match phone {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let valid_gid = gid.len() == ID_LEN && gid.bytes().all(|b| b.is_ascii_alphanumeric());
        let valid_time = (1..=12).contains(&auth_time.len()) && auth_time.bytes().all(|b| b.is_ascii_digit());
        if !(valid_gid && valid_time) {
            return None;
        }
        Some(GrantRef { gid: gid.to_owned(), phone, auth_time: auth_time.parse().ok()? })
    }

    fn binding(&self, client: &Client) -> RefreshBinding {
        RefreshBinding::new(self.prefix(), client.id().as_bytes().to_vec())
    }
}

fn secs(t: Timestamp) -> u64 {
    (t.0.max(0) / 1000) as u64
}

fn has_shape(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The token of an `Authorization: Bearer …` header value, if it is one.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl OidcService {
    /// `hasher` is the server's HMAC key (codes and login-session cookies are stored only as
    /// digests under it, with labels of their own).
    pub fn new(
        settings: OidcSettings,
        sessions: Arc<SessionService>,
        store: Arc<dyn OidcStore>,
        hasher: CodeHasher,
    ) -> Self {
        OidcService { settings: Arc::new(settings), sessions, store, hasher }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The body of `/.well-known/openid-configuration`.
    pub fn metadata(&self) -> ProviderMetadata {
        ProviderMetadata::new(&self.settings)
    }

    /// For start-up: OpenID Connect signs with the key ring's RSA key, which must be there.
    pub fn check_keys(&self) -> Result<(), OidcError> {
        if self.sessions.can_sign_rs256() {
            Ok(())
        } else {
            Err(OidcError::Internal("the signing key file has no RSA key (needed for OpenID Connect)".into()))
        }
    }

    // ---- authorization endpoint

    /// Checks an authorization request (see `authorize`); refusals are logged and counted.
    pub fn authorize(&self, params: &Params) -> Result<AuthorizationRequest, AuthorizeError> {
        let request = AuthorizationRequest::parse(&self.settings, params);
        if let Err(e) = &request {
            let client = client_label(&self.settings, params.get("client_id").ok().flatten());
            let outcome = match e {
                AuthorizeError::Page(page) => page.as_str(),
                AuthorizeError::Redirect(redirect) => redirect.error.as_str(),
            };
            record(Event::Authorize, outcome, &client, None, true);
        }
        request
    }

    /// What to do with a valid request given the browser's login session (see
    /// `AuthorizationRequest::decide`); a `login_required` refusal is logged and counted.
    pub fn decide(&self, request: &AuthorizationRequest, login: Option<&ActiveLogin>) -> Decision {
        let decision = request.decide(login, self.sessions.now());
        match &decision {
            Decision::Refuse(e) => record(Event::Authorize, e.error.as_str(), &request.client_id, None, true),
            Decision::Login => record(Event::Authorize, "login", &request.client_id, None, false),
            Decision::Issue => {}
        }
        decision
    }

    /// Issues a code for `request` and `login` (after `Decision::Issue`, or after the phone
    /// sign-in ran and started `login`). Answers the `Location` to redirect to.
    pub async fn issue_code(&self, request: &AuthorizationRequest, login: &ActiveLogin) -> Result<String, OidcError> {
        let now = self.sessions.now();
        let code = format!("{CODE_PREFIX}{}", random_base62(SECRET_LEN));
        let record_ = AuthorizationCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.as_str().to_owned(),
            nonce: request.nonce.clone(),
            scope: request.scope.to_scope_string(),
            user_id: login.user.id.clone(),
            channel: login.channel,
            auth_time: login.auth_time,
            expires_at: now.plus(CODE_TTL),
        };
        let keep_until = record_.expires_at.plus(SPENT_CODE_KEPT);
        self.store.create_code(&self.digest(b"otpgate-oidc-code-v1", &code), &record_, keep_until).await?;
        record(Event::Authorize, "code_issued", &request.client_id, Some(login.user.id.as_str()), false);
        Ok(request.success_location(&code))
    }

    // ---- login sessions

    /// Starts a login session for the user a check just approved (`issued`, which only an
    /// approval yields: no login session for a phone nobody verified). Answers the cookie value
    /// (a secret: `ls_` and 32 base62 characters; only its digest is stored).
    pub async fn start_login_session(&self, issued: &Issued) -> Result<(String, ActiveLogin), OidcError> {
        let (user, channel) = (issued.user(), issued.channel());
        let now = self.sessions.now();
        let cookie = format!("{LOGIN_PREFIX}{}", random_base62(SECRET_LEN));
        let session = LoginSession {
            user_id: user.id.clone(),
            channel,
            auth_time: now,
            expires_at: now.plus(self.settings.login_session_ttl()),
        };
        self.store.create_login_session(&self.digest(b"otpgate-oidc-login-v1", &cookie), &session).await?;
        Ok((cookie, ActiveLogin { user: user.clone(), channel, auth_time: now }))
    }

    /// The login session behind the cookie, if it is live and its user still exists (a session
    /// of an erased user is ended here).
    pub async fn login_session(&self, cookie: Option<&str>) -> Result<Option<ActiveLogin>, OidcError> {
        let Some(cookie) = cookie.filter(|c| has_shape(c, LOGIN_PREFIX)) else { return Ok(None) };
        let digest = self.digest(b"otpgate-oidc-login-v1", cookie);
        let Some(session) = self.store.login_session(&digest, self.sessions.now()).await? else { return Ok(None) };
        match self.sessions.find_user(&session.user_id).await? {
            Some(user) => Ok(Some(ActiveLogin { user, channel: session.channel, auth_time: session.auth_time })),
            None => {
                self.store.end_login_session(&digest).await?;
                Ok(None)
            }
        }
    }

    /// Ends the login session behind the cookie; answers whether there was one.
    pub async fn end_login_session(&self, cookie: &str) -> Result<bool, OidcError> {
        if !has_shape(cookie, LOGIN_PREFIX) {
            return Ok(false);
        }
        Ok(self.store.end_login_session(&self.digest(b"otpgate-oidc-login-v1", cookie)).await?)
    }

    // ---- housekeeping

    /// Deletes spent and expired codes, ended login sessions and spent revocations.
    pub async fn purge_expired(&self) -> Result<u64, OidcError> {
        Ok(self.store.purge_oidc(self.sessions.now()).await?)
    }

    fn digest(&self, label: &[u8], secret: &str) -> CodeDigest {
        self.hasher.digest_parts(&[label, secret.as_bytes()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_refs_round_trip_through_the_refresh_prefix() {
        let grant = GrantRef { gid: "a".repeat(ID_LEN), phone: true, auth_time: 1_790_000_000 };
        let token = format!("{}{}", grant.prefix(), "r".repeat(SECRET_LEN));
        assert_eq!(token, format!("ort_{}.1.1790000000.{}", "a".repeat(22), "r".repeat(32)));
        assert_eq!(GrantRef::parse(&token), Some(grant));
        for bad in [
            "",
            "rt_abc",
            &format!("ort_{}.1.1790000000", "a".repeat(22)),
            &format!("ort_{}.2.1790000000.x", "a".repeat(22)),
            &format!("ort_{}.1.1790000000.x", "a".repeat(21)),
            &format!("ort_{}.1.-1.x", "a".repeat(22)),
            &format!("ort_{}.1.1234567890123.x", "a".repeat(22)),
            &format!("ort_{}!.1.1.x", "a".repeat(21)),
        ] {
            assert_eq!(GrantRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_taken_from_the_header_value() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
