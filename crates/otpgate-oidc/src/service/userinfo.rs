//! The UserInfo endpoint, and verifying the access tokens and other JWTs this provider signed.

use jsonwebtoken::{Algorithm, Validation};
use otpgate_core::Timestamp;
use otpgate_core::session::UserId;
use serde::de::DeserializeOwned;

use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, UserinfoClaims};
use crate::errors::{BearerError, UserinfoFailure};
use crate::scope::Scope;

use super::{MAX_JWT_LEN, OidcService};

impl OidcService {
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
    pub(super) async fn verify_access_token(&self, token: &str, check_exp: bool) -> Option<AccessTokenClaims> {
        let claims: AccessTokenClaims = self.verify_jwt(token, ACCESS_TOKEN_TYP).await?;
        let live = !check_exp || self.sessions.now() < Timestamp((claims.exp as i64).saturating_mul(1000));
        (live && claims.client_id == claims.aud && self.settings.client(&claims.aud).is_some()).then_some(claims)
    }

    /// Signature (RS256 by one of our keys, found by `kid`), `typ` and `iss`; no time checks
    /// (the callers decide: an expired ID token is still a fine logout hint).
    pub(super) async fn verify_jwt<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Option<T> {
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
}
