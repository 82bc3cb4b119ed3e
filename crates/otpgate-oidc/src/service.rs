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

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::session::{User, UserId};
use otpgate_core::verification::random_base62;
use otpgate_core::{Channel, CodeDigest, CodeHasher, Timestamp};
use otpgate_session::{BoundRefresh, Issued, RefreshBinding, SessionService};
use serde::de::DeserializeOwned;

use crate::authorize::{ActiveLogin, AuthorizationRequest, AuthorizeError, Decision, with_query};
use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, ID_TOKEN_TYP, IdTokenClaims, UserinfoClaims, amr, at_hash};
use crate::config::{CODE_TTL, Client, OidcSettings};
use crate::discovery::ProviderMetadata;
use crate::errors::{BearerError, LogoutError, LogoutFailure, OidcError, TokenFailure, UserinfoFailure};
use crate::events::{Event, client_label, record};
use crate::params::Params;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::scope::Scope;
use crate::token::{TokenError, TokenErrorCode, TokenRequest, TokenResponse, authenticate_client};

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

    // ---- token endpoint

    /// `POST /oidc/token`: `authorization` is the `Authorization` header's value, if any.
    pub async fn token(&self, authorization: Option<&str>, params: &Params) -> Result<TokenResponse, TokenFailure> {
        let event = match params.get("grant_type") {
            Ok(Some("refresh_token")) => Event::Refresh,
            _ => Event::Token,
        };
        let result = self.token_inner(authorization, params, event).await;
        if let Err(TokenFailure::Refused(e)) = &result {
            let claimed = params
                .get("client_id")
                .ok()
                .flatten()
                .map(str::to_owned)
                .or_else(|| authorization.and_then(crate::token::parse_basic).map(|(id, _)| id));
            record(event, e.code.as_str(), &client_label(&self.settings, claimed.as_deref()), None, true);
        }
        result
    }

    async fn token_inner(
        &self,
        authorization: Option<&str>,
        params: &Params,
        event: Event,
    ) -> Result<TokenResponse, TokenFailure> {
        let (client, _) = authenticate_client(&self.settings, authorization, params)?;
        let response = match TokenRequest::parse(params)? {
            TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
                self.exchange_code(client, &code, &redirect_uri, &code_verifier).await?
            }
            TokenRequest::RefreshToken { refresh_token, scope } => self.refresh(client, &refresh_token, scope).await?,
        };
        record(event, "issued", client.id(), None, false);
        Ok(response)
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
        verifier: &CodeVerifier,
    ) -> Result<TokenResponse, TokenFailure> {
        let unknown = || TokenError::invalid_grant("the code is unknown, expired or used");
        if !has_shape(code, CODE_PREFIX) {
            return Err(unknown().into());
        }
        let digest = self.digest(b"otpgate-oidc-code-v1", code);
        let now = self.sessions.now();
        // The code's fields never change: read them to prepare the grant the exchange records.
        let Some(peeked) = self.store.code(&digest, now).await? else { return Err(unknown().into()) };
        let scope = Scope::from_request(&peeked.scope);
        let grant = GrantRef { gid: random_base62(ID_LEN), phone: scope.phone, auth_time: secs(peeked.auth_time) };
        let binding = grant.binding(client);
        let refresh = scope.offline_access.then(|| self.sessions.prepare_refresh(&binding, peeked.channel));
        let exchange =
            CodeExchange { grant_id: grant.gid.clone(), first_refresh: refresh.as_ref().map(|r| r.digest()) };
        let stored = match self.store.consume_code(&digest, &exchange, now).await? {
            ConsumeOutcome::Consumed(stored) => stored,
            ConsumeOutcome::Replayed(first) => {
                self.revoke_grant(&first.grant_id, first.first_refresh.as_ref(), now).await?;
                record(Event::Replay, "grant_revoked", client.id(), None, true);
                return Err(TokenError::invalid_grant("the code was used already; what it issued is revoked").into());
            }
            ConsumeOutcome::Invalid => return Err(unknown().into()),
        };
        if stored != peeked {
            return Err(OidcError::Internal("an authorization code changed after it was stored".into()).into());
        }
        // The code is spent from here on, whatever follows: a code presented wrongly is gone.
        if stored.client_id != client.id() {
            return Err(TokenError::invalid_grant("the code was issued to another client").into());
        }
        if stored.redirect_uri != redirect_uri {
            return Err(TokenError::invalid_grant("redirect_uri is not the authorization request's").into());
        }
        let challenge = CodeChallenge::parse(&stored.code_challenge)
            .ok_or_else(|| OidcError::Internal("a stored code challenge does not parse".into()))?;
        if !challenge.is_met_by(verifier) {
            return Err(TokenError::invalid_grant("the code_verifier does not match the code_challenge").into());
        }
        let gone = || TokenError::invalid_grant("the user no longer exists");
        let user = self.sessions.find_user(&stored.user_id).await?.ok_or_else(gone)?;
        if let Some(refresh) = &refresh
            && !self.sessions.store_refresh_for(&user, refresh).await?
        {
            return Err(gone().into());
        }
        // A replay of the code while this exchange ran has revoked the grant id, and maybe found
        // no refresh token to revoke yet: then nothing issued here may live.
        if self.store.any_revoked(&[&grant.gid], now).await? {
            if let Some(refresh) = &refresh {
                self.sessions.revoke_family_of(&refresh.digest()).await?;
            }
            return Err(TokenError::invalid_grant("the code was used twice").into());
        }
        let refresh_token = refresh.map(|r| r.token().to_owned());
        Ok(self.tokens(client, &user, stored.channel, scope, &grant, stored.nonce, refresh_token, now).await?)
    }

    async fn refresh(
        &self,
        client: &Client,
        token: &str,
        requested: Option<Scope>,
    ) -> Result<TokenResponse, TokenFailure> {
        let invalid = || TokenError::invalid_grant("the refresh token is invalid, expired or revoked");
        let Some(grant) = GrantRef::parse(token) else { return Err(invalid().into()) };
        let granted = Scope { openid: true, phone: grant.phone, offline_access: true };
        let scope = match requested {
            Some(asked) if !granted.contains(&asked) => {
                return Err(
                    TokenError::new(TokenErrorCode::InvalidScope, "the scope asks for more than was granted").into()
                );
            }
            Some(asked) => asked,
            None => granted,
        };
        let binding = grant.binding(client);
        match self.sessions.rotate_bound(token, &binding).await? {
            BoundRefresh::Rotated { user, channel, refresh_token, at } => {
                if self.store.any_revoked(&[&grant.gid], self.sessions.now()).await? {
                    self.sessions.revoke_bound(&refresh_token, &binding).await?;
                    return Err(invalid().into());
                }
                Ok(self.tokens(client, &user, channel, scope, &grant, None, Some(refresh_token), at).await?)
            }
            BoundRefresh::Reused => {
                // Someone else holds a copy: the family is revoked; the grant's access tokens too.
                let now = self.sessions.now();
                self.store.revoke_token_id(&grant.gid, self.revocation_until(now), now).await?;
                record(Event::Refresh, "reused", client.id(), None, true);
                Err(TokenError::invalid_grant("the refresh token was used already; its grant is revoked").into())
            }
            BoundRefresh::Invalid => Err(invalid().into()),
        }
    }

    /// The access token, the ID token (with `openid`) and the answer.
    #[allow(clippy::too_many_arguments)]
    async fn tokens(
        &self,
        client: &Client,
        user: &User,
        channel: Channel,
        scope: Scope,
        grant: &GrantRef,
        nonce: Option<String>,
        refresh_token: Option<String>,
        now: Timestamp,
    ) -> Result<TokenResponse, OidcError> {
        let ttl = self.sessions.config().access_ttl.as_secs();
        let iat = secs(now);
        let access = AccessTokenClaims {
            iss: self.settings.issuer().to_owned(),
            sub: user.id.as_str().to_owned(),
            aud: client.id().to_owned(),
            client_id: client.id().to_owned(),
            scope: scope.to_scope_string(),
            iat,
            exp: iat + ttl,
            auth_time: grant.auth_time,
            jti: random_base62(ID_LEN),
            gid: grant.gid.clone(),
        };
        let access_token = self.sessions.sign_rs256(ACCESS_TOKEN_TYP, &access).await?;
        let id_token = if scope.openid {
            let claims = IdTokenClaims {
                iss: self.settings.issuer().to_owned(),
                sub: user.id.as_str().to_owned(),
                aud: client.id().to_owned(),
                exp: iat + ttl,
                iat,
                auth_time: grant.auth_time,
                nonce,
                amr: vec![amr(channel).to_owned()],
                at_hash: Some(at_hash(&access_token)),
                phone_number: scope.phone.then(|| user.phone.clone()),
                phone_number_verified: scope.phone.then_some(true),
            };
            Some(self.sessions.sign_rs256(ID_TOKEN_TYP, &claims).await?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            id_token,
            scope: scope.to_scope_string(),
        })
    }

    /// Revokes what a grant issued: its refresh-token family (by its first token) and its
    /// access tokens (the grant id, until the last of them expired).
    async fn revoke_grant(
        &self,
        gid: &str,
        first_refresh: Option<&CodeDigest>,
        now: Timestamp,
    ) -> Result<(), OidcError> {
        self.store.revoke_token_id(gid, self.revocation_until(now), now).await?;
        if let Some(first) = first_refresh {
            self.sessions.revoke_family_of(first).await?;
        }
        Ok(())
    }

    /// Every access token signed until `now` has expired by then.
    fn revocation_until(&self, now: Timestamp) -> Timestamp {
        now.plus(self.sessions.config().access_ttl + REVOCATION_MARGIN)
    }

    // ---- UserInfo

    /// `GET` or `POST /oidc/userinfo` with the access token (from `Authorization: Bearer`, see
    /// `bearer_token`, or the form field `access_token`, RFC 6750 §2.2).
    pub async fn userinfo(&self, access_token: Option<&str>) -> Result<UserinfoClaims, UserinfoFailure> {
        let token = access_token.ok_or(BearerError::Missing)?;
        let claims = self.verify_access_token(token, true).await.ok_or(BearerError::InvalidToken)?;
        if self.store.any_revoked(&[&claims.gid, &claims.jti], self.sessions.now()).await? {
            return Err(BearerError::InvalidToken.into());
        }
        let scope = Scope::parse_strict(&claims.scope).ok_or(BearerError::InvalidToken)?;
        if !scope.openid {
            return Err(BearerError::InsufficientScope.into());
        }
        let id = UserId::parse(&claims.sub).ok_or(BearerError::InvalidToken)?;
        let user = self.sessions.find_user(&id).await?.ok_or(BearerError::InvalidToken)?;
        Ok(UserinfoClaims {
            sub: user.id.as_str().to_owned(),
            phone_number: scope.phone.then(|| user.phone.clone()),
            phone_number_verified: scope.phone.then_some(true),
        })
    }

    /// An access token of ours (RS256, `typ: at+jwt`, our issuer, for a configured client).
    async fn verify_access_token(&self, token: &str, check_exp: bool) -> Option<AccessTokenClaims> {
        let claims: AccessTokenClaims = self.verify_jwt(token, ACCESS_TOKEN_TYP).await?;
        let live = !check_exp || self.sessions.now() < Timestamp((claims.exp as i64).saturating_mul(1000));
        (live && claims.client_id == claims.aud && self.settings.client(&claims.aud).is_some()).then_some(claims)
    }

    /// Signature (RS256 by one of our keys, found by `kid`), `typ` and `iss`; no time checks
    /// (the callers decide: an expired ID token is still a fine logout hint).
    async fn verify_jwt<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Option<T> {
        if token.len() > MAX_JWT_LEN {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(typ) || t.eq_ignore_ascii_case(&format!("application/{typ}")));
        if header.alg != Algorithm::RS256 || !typ_ok {
            return None;
        }
        let key = self.sessions.rs256_key(&header.kid?).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.settings.issuer()]);
        validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        jsonwebtoken::decode::<T>(token, &key, &validation).ok().map(|data| data.claims)
    }

    // ---- revocation (RFC 7009)

    /// `POST /oidc/revoke`: 200 whatever the token was (RFC 7009 §2.2), once the client is
    /// authenticated. A refresh token revokes its grant (its family and its access tokens); an
    /// access token revokes itself. Tokens of other clients are left alone, silently.
    pub async fn revoke(&self, authorization: Option<&str>, params: &Params) -> Result<(), TokenFailure> {
        let result = self.revoke_inner(authorization, params).await;
        if let Err(TokenFailure::Refused(e)) = &result {
            let client = client_label(&self.settings, params.get("client_id").ok().flatten());
            record(Event::Revoke, e.code.as_str(), &client, None, true);
        }
        result
    }

    async fn revoke_inner(&self, authorization: Option<&str>, params: &Params) -> Result<(), TokenFailure> {
        let (client, _) = authenticate_client(&self.settings, authorization, params)?;
        let token = params.get("token")?.ok_or_else(|| TokenError::invalid_request("token is missing"))?;
        // `token_type_hint` may be anything: both kinds are tried (RFC 7009 §2.1 lets the server
        // ignore the hint).
        params.get("token_type_hint")?;
        let now = self.sessions.now();
        let outcome = if let Some(grant) = GrantRef::parse(token) {
            if self.sessions.revoke_bound(token, &grant.binding(client)).await? {
                self.store.revoke_token_id(&grant.gid, self.revocation_until(now), now).await?;
                "refresh_token_revoked"
            } else {
                "unknown_token"
            }
        } else {
            match self.verify_access_token(token, false).await {
                Some(claims) if claims.client_id == client.id() => {
                    let until = Timestamp((claims.exp as i64).saturating_mul(1000)).plus(REVOCATION_MARGIN);
                    self.store.revoke_token_id(&claims.jti, until, now).await?;
                    "access_token_revoked"
                }
                _ => "unknown_token",
            }
        };
        record(Event::Revoke, outcome, client.id(), None, false);
        Ok(())
    }

    // ---- RP-initiated logout

    /// `GET` or `POST /oidc/logout` (OpenID Connect RP-Initiated Logout 1.0) with the browser's
    /// login cookie. `confirmed`: the user confirmed on otpgate's page (see
    /// `LogoutOutcome::Confirm`).
    pub async fn logout(
        &self,
        params: &Params,
        cookie: Option<&str>,
        confirmed: bool,
    ) -> Result<LogoutOutcome, LogoutFailure> {
        let mut client = None;
        let result = self.logout_inner(params, cookie, confirmed, &mut client).await;
        let client = client_label(&self.settings, client.as_deref().or(params.get("client_id").ok().flatten()));
        match &result {
            Ok(LogoutOutcome::SignedOut { .. }) => record(Event::Logout, "signed_out", &client, None, false),
            Ok(LogoutOutcome::Confirm { .. }) => record(Event::Logout, "confirm", &client, None, false),
            Err(LogoutFailure::Refused(e)) => record(Event::Logout, e.as_str(), &client, None, true),
            Err(LogoutFailure::Server(_)) => {}
        }
        result
    }

    async fn logout_inner(
        &self,
        params: &Params,
        cookie: Option<&str>,
        confirmed: bool,
        client_id_seen: &mut Option<String>,
    ) -> Result<LogoutOutcome, LogoutFailure> {
        let hint = match params.get("id_token_hint").map_err(LogoutError::from)? {
            Some(token) => {
                let claims: IdTokenClaims =
                    self.verify_jwt(token, ID_TOKEN_TYP).await.ok_or(LogoutError::InvalidIdTokenHint)?;
                Some(claims)
            }
            None => None,
        };
        let client_id = params.get("client_id").map_err(LogoutError::from)?;
        let client = match (hint.as_ref().map(|h| h.aud.as_str()), client_id) {
            (Some(hinted), Some(named)) if hinted != named => return Err(LogoutError::ClientMismatch.into()),
            (Some(id), _) | (None, Some(id)) => Some(self.settings.client(id).ok_or(LogoutError::UnknownClient)?),
            (None, None) => None,
        };
        *client_id_seen = client.map(|c| c.id().to_owned());
        let state = params.get("state").map_err(LogoutError::from)?;
        if state.is_some_and(|s| !s.bytes().all(|b| (0x20..=0x7e).contains(&b))) {
            return Err(LogoutError::BadParameter("state must be visible ASCII".into()).into());
        }
        let redirect = match params.get("post_logout_redirect_uri").map_err(LogoutError::from)? {
            None => None,
            Some(uri) => {
                let client = client.ok_or(LogoutError::RedirectWithoutClient)?;
                if !client.has_post_logout_redirect_uri(uri) {
                    return Err(LogoutError::UnregisteredPostLogoutRedirectUri.into());
                }
                Some(match state {
                    Some(state) => with_query(uri, &[("state", state)]),
                    None => uri.to_owned(),
                })
            }
        };
        let login = self.login_session(cookie).await?;
        // The hint proves the request comes from an app this user signed in to.
        let proven = hint.as_ref().is_some_and(|h| login.as_ref().is_none_or(|l| l.user.id.as_str() == h.sub));
        if !proven && !confirmed {
            return Ok(LogoutOutcome::Confirm { client_name: client.map(|c| c.name().to_owned()) });
        }
        if let Some(cookie) = cookie {
            self.end_login_session(cookie).await?;
        }
        Ok(LogoutOutcome::SignedOut { redirect })
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
