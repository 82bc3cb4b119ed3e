//! RP-initiated logout.

use crate::authorize::with_query;
use crate::claims::{ID_TOKEN_TYP, IdTokenClaims};
use crate::errors::{LogoutError, LogoutFailure};
use crate::events::{Event, client_label, record};
use crate::params::Params;

use super::{LogoutOutcome, OidcService};

impl OidcService {
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

    pub(super) async fn logout_inner(
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
}
