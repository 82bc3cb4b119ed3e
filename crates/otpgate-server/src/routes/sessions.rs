//! Sessions: refresh, revoke, the signed-in user, and the public keys that verify access tokens.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpgate_api::{ErrorBody, MeView, RefreshResponse, RefreshTokenRequest, SessionView};
use otpgate_core::OtpError;
use otpgate_session::Session;

use super::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::time_fmt::rfc3339;

pub fn session_view(s: Session) -> SessionView {
    SessionView {
        access_token: s.access_token,
        token_type: s.token_type.to_owned(),
        expires_in: s.expires_in,
        refresh_token: s.refresh_token,
        refresh_expires_in: s.refresh_expires_in,
    }
}

/// The sessions service, or 404 when sessions are disabled.
fn sessions(state: &AppState) -> Result<&otpgate_session::SessionService, ApiError> {
    state.sessions.as_deref().ok_or_else(|| ApiError::new(otpgate_api::ErrorCode::NotFound, "Not found."))
}

/// `Authorization: Bearer <token>`; anything else is `unauthorized`.
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Ok(BearerToken(token.trim().to_owned()))
            }
            _ => Err(ApiError::from(OtpError::Unauthorized)),
        }
    }
}

/// Trade a refresh token for a new session. Each refresh token works once: presented again within
/// the reuse grace (`sessions.refresh_reuse_grace_secs`, 10 s) it gets the same new session, later
/// it revokes its whole chain.
#[utoipa::path(
    post,
    path = "/v1/sessions/refresh",
    tag = "sessions",
    request_body = RefreshTokenRequest,
    responses(
        (status = 200, description = "A new session", body = RefreshResponse),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 503, description = "service_unavailable", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshTokenRequest>,
) -> Result<Json<RefreshResponse>, ApiError> {
    let session = sessions(&state)?.refresh(&req.refresh_token).await.map_err(OtpError::from)?;
    Ok(Json(RefreshResponse { session: session_view(session) }))
}

/// Revoke a refresh token (sign out). Unknown tokens also answer 204.
#[utoipa::path(
    post,
    path = "/v1/sessions/revoke",
    tag = "sessions",
    request_body = RefreshTokenRequest,
    responses(
        (status = 204, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 503, description = "service_unavailable", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshTokenRequest>,
) -> Result<StatusCode, ApiError> {
    sessions(&state)?.revoke(&req.refresh_token).await.map_err(OtpError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = MeView),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub async fn me(State(state): State<AppState>, BearerToken(token): BearerToken) -> Result<Json<MeView>, ApiError> {
    let user = sessions(&state)?.me(&token).await.map_err(OtpError::from)?;
    Ok(Json(MeView { id: user.id.to_string(), phone: user.phone, created_at: rfc3339(user.created_at) }))
}

/// Erase the signed-in user: the user, their refresh tokens and pending verifications. Their
/// access tokens stop working at once.
#[utoipa::path(
    delete,
    path = "/v1/me",
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub async fn delete_me(State(state): State<AppState>, BearerToken(token): BearerToken) -> Result<StatusCode, ApiError> {
    sessions(&state)?.delete_me(&token).await.map_err(OtpError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Public keys (Ed25519, one `kid` each) that verify access tokens offline: this instance's, and
/// those of every instance sharing its store.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "sessions",
    responses((status = 200, description = "JSON Web Key Set"))
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let set = sessions(&state)?.current_jwks().await;
    let mut response = Json(set).into_response();
    // Short enough that a rotation reaches verifiers well within an access token's lifetime.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}
