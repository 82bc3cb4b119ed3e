//! The login: the sign-in page's check, which starts the login session and issues a code.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use otpgate_core::limits::LimitScope;
use otpgate_core::{OtpError, PhoneNumber};
use otpgate_oidc::{AuthorizeError, OidcError, Params};
use serde::{Deserialize, Serialize};

use super::OidcState;
use super::cookies::cookie;
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::extract::ApiJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    phone: String,
    code: String,
    /// The authorization request's parameters, as the page got them.
    authorization: String,
    csrf_token: String,
}

#[derive(Serialize)]
struct LoginResponse {
    status: &'static str,
    /// Where the page sends the browser: the client's redirect URI with the code (or an error).
    redirect_to: String,
}

fn login_refused(message: &str) -> ApiError {
    ApiError::invalid_request(message.to_owned())
}

pub(super) async fn login(
    State(s): State<OidcState>,
    headers: HeaderMap,
    ClientIp(client_ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    if !s.csrf_ok(&headers, &req.csrf_token) {
        tracing::warn!(
            event = "oidc.login",
            outcome = "csrf_refused",
            "a sign-in without a valid CSRF token was refused"
        );
        return Err(
            login_refused("This sign-in form has expired. Go back to the app and sign in again.").field("csrf_token")
        );
    }
    let request = match s.oidc.authorize(&Params::parse(req.authorization.as_bytes())) {
        Ok(request) => request,
        Err(AuthorizeError::Page(e)) => return Err(login_refused(&format!("The sign-in request is not valid: {e}."))),
        Err(AuthorizeError::Redirect(e)) => {
            return Ok(axum::Json(LoginResponse { status: "refused", redirect_to: e.location() }).into_response());
        }
    };
    if let Err(retry_after) = s.take(&request.client_id).await {
        return Err(ApiError::from(OtpError::RateLimited { retry_after, scope: LimitScope::OidcClient }));
    }
    let phone =
        PhoneNumber::parse(&req.phone, s.app.default_region).map_err(|e| ApiError::from(OtpError::InvalidPhone(e)))?;
    // The JSON API's check, exactly: its limits, its tripwire, its lockout.
    let approved = s.app.service.check(&phone, &req.code, client_ip).await?;
    let issued = s.sessions.issue_for_approved(approved).await.map_err(OtpError::from)?;
    // The page gets no API session: the one the sign-in started is not handed out.
    s.sessions.revoke(&issued.session().refresh_token).await.map_err(OtpError::from)?;
    if let Some(old) = cookie(&headers, s.cookies.login) {
        s.oidc.end_login_session(old).await.map_err(server_error)?;
    }
    let (login_cookie, login) = s.oidc.start_login_session(&issued).await.map_err(server_error)?;
    let location = s.oidc.issue_code(&request, &login).await.map_err(server_error)?;
    let mut response = axum::Json(LoginResponse { status: "approved", redirect_to: location }).into_response();
    response.headers_mut().append(header::SET_COOKIE, s.cookies.set_login(&login_cookie));
    Ok(response)
}

fn server_error(e: OidcError) -> ApiError {
    match e {
        OidcError::Unavailable(msg) => ApiError::from(OtpError::StoreUnavailable(msg)),
        OidcError::Internal(msg) => {
            tracing::error!(error = %msg, "OpenID Connect internal error");
            ApiError::internal()
        }
    }
}
