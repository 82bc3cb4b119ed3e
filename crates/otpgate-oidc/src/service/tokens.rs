//! The token endpoint: code exchange (with PKCE, and a replayed code revoking its grant),
//! refresh of a bound refresh token, and the tokens of a grant.

use otpgate_core::oidc::{CodeExchange, ConsumeOutcome};
use otpgate_core::session::User;
use otpgate_core::verification::random_base62;
use otpgate_core::{Channel, CodeDigest, Timestamp};
use otpgate_session::BoundRefresh;

use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, ID_TOKEN_TYP, IdTokenClaims, amr, at_hash};
use crate::config::Client;
use crate::errors::{OidcError, TokenFailure};
use crate::events::{Event, client_label, record};
use crate::params::Params;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::scope::Scope;
use crate::token::{TokenError, TokenErrorCode, TokenRequest, TokenResponse, authenticate_client};

use super::{CODE_PREFIX, GrantRef, ID_LEN, OidcService, REVOCATION_MARGIN, has_shape, secs};

impl OidcService {
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

    pub(super) async fn token_inner(
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

    pub(super) async fn exchange_code(
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

    pub(super) async fn refresh(
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
    pub(super) async fn tokens(
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
    pub(super) async fn revoke_grant(
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
    pub(super) fn revocation_until(&self, now: Timestamp) -> Timestamp {
        now.plus(self.sessions.config().access_ttl + REVOCATION_MARGIN)
    }
}
