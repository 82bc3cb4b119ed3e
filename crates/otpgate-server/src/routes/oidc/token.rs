//! The token, revocation and userinfo endpoints.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpgate_oidc::{OidcError, Params, TokenFailure, UserinfoFailure, bearer_token};

use super::OidcState;
use super::cookies::header_value;

/// Token-endpoint answers are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    no_store((status, axum::Json(body)).into_response())
}

fn token_failure(e: TokenFailure) -> Response {
    match e {
        TokenFailure::Refused(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = no_store((status, axum::Json(e.body())).into_response());
            if let Some(challenge) = e.www_authenticate() {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header_value(&challenge));
            }
            response
        }
        TokenFailure::Server(e) => server_failure(&e),
    }
}

fn server_failure(e: &OidcError) -> Response {
    match e {
        OidcError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "OpenID Connect: store unavailable");
            let mut r = oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        OidcError::Internal(msg) => {
            tracing::error!(error = %msg, "OpenID Connect internal error");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "something went wrong on our side")
        }
    }
}

/// The client a token or revocation request names (Basic or `client_id`), for its limit.
fn claimed_client(headers: &HeaderMap, params: &Params) -> String {
    let basic = authorization(headers).and_then(otpgate_oidc::token::parse_basic).map(|(id, _)| id);
    basic.or_else(|| params.get("client_id").ok().flatten().map(str::to_owned)).unwrap_or_default()
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

async fn limited(s: &OidcState, headers: &HeaderMap, params: &Params) -> Option<Response> {
    let retry_after = s.take(&claimed_client(headers, params)).await.err()?;
    let mut response = oauth_error(StatusCode::TOO_MANY_REQUESTS, "slow_down", "too many requests from this client");
    let secs = retry_after.as_secs().max(1);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(response)
}

/// The form body of a client's request, once the client is within its rate limit: what the
/// token and revocation endpoints both start with (RFC 6749 §3.2 and RFC 7009 §2.1 take forms).
async fn form_within_limit(s: &OidcState, headers: &HeaderMap, body: &Bytes) -> Result<Params, Response> {
    if !is_form(headers) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body);
    match limited(s, headers, &params).await {
        Some(response) => Err(response),
        None => Ok(params),
    }
}

pub(super) async fn token(State(s): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_within_limit(&s, &headers, &body).await {
        Ok(params) => params,
        Err(refusal) => return refusal,
    };
    match s.oidc.token(authorization(&headers), &params).await {
        Ok(tokens) => no_store(axum::Json(tokens).into_response()),
        Err(e) => token_failure(e),
    }
}

pub(super) async fn revoke(State(s): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_within_limit(&s, &headers, &body).await {
        Ok(params) => params,
        Err(refusal) => return refusal,
    };
    match s.oidc.revoke(authorization(&headers), &params).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => token_failure(e),
    }
}

pub(super) async fn userinfo(State(s): State<OidcState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = authorization(&headers).and_then(bearer_token).map(str::to_owned);
    // RFC 6750 §2.2: a POST may carry it as a form field instead (never both).
    let from_form = if method == Method::POST && is_form(&headers) {
        Params::parse(&body).get("access_token").ok().flatten().map(str::to_owned)
    } else {
        None
    };
    let token = match (from_header, from_form) {
        (Some(_), Some(_)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "send the access token once");
        }
        (a, b) => a.or(b),
    };
    match s.oidc.userinfo(token.as_deref()).await {
        Ok(claims) => no_store(axum::Json(claims).into_response()),
        Err(UserinfoFailure::Refused(e)) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let mut response = no_store(status.into_response());
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header_value(&e.www_authenticate()));
            response
        }
        Err(UserinfoFailure::Server(e)) => server_failure(&e),
    }
}
