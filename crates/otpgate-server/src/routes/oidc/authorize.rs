//! The authorization endpoint: a code, an error for the client, or the sign-in page.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpgate_oidc::{AuthorizationRequest, AuthorizeError, AuthorizeErrorCode, Decision, OidcError, Params};

use super::cookies::{cookie, header_value};
use super::pages::{escape, message_page};
use super::{Inner, LOGIN_PATH, OidcState};
use crate::error::ApiError;

/// The parameters of a GET (query) or a POST (form body), and their raw form.
pub(super) fn params_of(method: &Method, query: Option<String>, body: &Bytes) -> (Params, String) {
    let raw =
        if method == Method::POST { String::from_utf8_lossy(body).into_owned() } else { query.unwrap_or_default() };
    (Params::parse(raw.as_bytes()), raw)
}

pub(super) fn redirect(location: &str, status: StatusCode) -> Response {
    let mut response = status.into_response();
    response.headers_mut().insert(header::LOCATION, header_value(location));
    // The redirect carries a code or an error for the client: no referrer, no cache.
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn redirect_status(method: &Method) -> StatusCode {
    if method == Method::POST { StatusCode::SEE_OTHER } else { StatusCode::FOUND }
}

fn server_error_code(e: &OidcError) -> AuthorizeErrorCode {
    match e {
        OidcError::Unavailable(_) => AuthorizeErrorCode::TemporarilyUnavailable,
        OidcError::Internal(_) => AuthorizeErrorCode::ServerError,
    }
}

pub(super) async fn authorize(
    State(s): State<OidcState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (params, raw) = params_of(&method, query, &body);
    let request = match s.oidc.authorize(&params) {
        Ok(request) => request,
        Err(AuthorizeError::Page(e)) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &format!("The app that sent you here made a mistake: {e}. Go back to the app and try again."),
            );
        }
        Err(AuthorizeError::Redirect(e)) => return redirect(&e.location(), redirect_status(&method)),
    };
    let login = match s.oidc.login_session(cookie(&headers, s.cookies.login)).await {
        Ok(login) => login,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the login session");
            let error = request.error(server_error_code(&e), "the sign-in service is unavailable; try again");
            return redirect(&error.location(), redirect_status(&method));
        }
    };
    match s.oidc.decide(&request, login.as_ref()) {
        Decision::Refuse(e) => redirect(&e.location(), redirect_status(&method)),
        Decision::Issue => {
            let Some(login) = login else { return ApiError::internal().into_response() };
            match s.oidc.issue_code(&request, &login).await {
                Ok(location) => redirect(&location, redirect_status(&method)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot issue an authorization code");
                    let error = request.error(server_error_code(&e), "the sign-in service is unavailable; try again");
                    redirect(&error.location(), redirect_status(&method))
                }
            }
        }
        Decision::Login => s.login_page(&request, &raw, &headers),
    }
}

impl Inner {
    /// The sign-in page for `request`, its raw parameters in a `<meta>` for the page to send back.
    fn login_page(&self, request: &AuthorizationRequest, raw: &str, headers: &HeaderMap) -> Response {
        let (csrf, new) = self.csrf_cookie(headers);
        let client = self.oidc.settings().client(&request.client_id).map(|c| c.name().to_owned()).unwrap_or_default();
        let hint = request.login_hint.as_ref().map(|p| p.e164().to_owned()).unwrap_or_default();
        let metas = format!(
            "<meta name=\"otpgate-oidc-login\" content=\"{LOGIN_PATH}\">\n\
             <meta name=\"otpgate-oidc-request\" content=\"{}\">\n\
             <meta name=\"otpgate-oidc-csrf\" content=\"{}\">\n\
             <meta name=\"otpgate-oidc-client\" content=\"{}\">\n\
             <meta name=\"otpgate-login-hint\" content=\"{}\">\n<title>",
            escape(raw),
            self.csrf_token(&csrf),
            escape(&client),
            escape(&hint)
        );
        let mut html = self.page.replacen("<title>", &metas, 1);
        if let Some(lang) = request.ui_locales.first() {
            html = html.replacen("<html lang=\"en\">", &format!("<html lang=\"{}\">", escape(lang)), 1);
        }
        let mut response = html.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        h.insert(header::CONTENT_SECURITY_POLICY, self.page_csp.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if new {
            h.append(header::SET_COOKIE, self.cookies.set_csrf(&csrf));
        }
        response
    }
}
