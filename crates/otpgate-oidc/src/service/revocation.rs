//! Token revocation (RFC 7009).

use otpgate_core::Timestamp;

use crate::errors::TokenFailure;
use crate::events::{Event, client_label, record};
use crate::params::Params;
use crate::token::{TokenError, authenticate_client};

use super::{GrantRef, OidcService, REVOCATION_MARGIN};

impl OidcService {
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

    pub(super) async fn revoke_inner(&self, authorization: Option<&str>, params: &Params) -> Result<(), TokenFailure> {
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
}
