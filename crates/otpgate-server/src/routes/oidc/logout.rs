//! RP-initiated logout, and its confirmation page.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use otpgate_oidc::discovery::END_SESSION_PATH;
use otpgate_oidc::{LogoutFailure, LogoutOutcome, Params};

use super::authorize::{params_of, redirect};
use super::cookies::cookie;
use super::pages::{escape, message_page, page_response, shell};
use super::{Inner, OidcState};

pub(super) async fn logout(
    State(s): State<OidcState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let (params, _) = params_of(&method, query, &body);
    // Confirmed only by our own page's form: a POST with its CSRF token.
    let confirmed = method == Method::POST
        && params.get("confirmed").ok().flatten() == Some("1")
        && params.get("csrf_token").ok().flatten().is_some_and(|t| s.csrf_ok(&headers, t));
    let login = cookie(&headers, s.cookies.login);
    match s.oidc.logout(&params, login, confirmed).await {
        Ok(LogoutOutcome::SignedOut { redirect: target }) => {
            let mut response = match target {
                Some(target) => redirect(&target, StatusCode::SEE_OTHER),
                None => message_page(StatusCode::OK, "You're signed out", "You can close this window."),
            };
            response.headers_mut().append(header::SET_COOKIE, s.cookies.clear_login());
            response
        }
        Ok(LogoutOutcome::Confirm { client_name }) => s.logout_confirm(&params, &headers, client_name.as_deref()),
        Err(LogoutFailure::Refused(e)) => message_page(
            StatusCode::BAD_REQUEST,
            "This sign-out link is not valid",
            &format!("The app that sent you here made a mistake: {e}."),
        ),
        Err(LogoutFailure::Server(e)) => {
            tracing::error!(error = %e, "logout failed");
            message_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again", "We could not sign you out just now.")
        }
    }
}

/// The parameters a logout confirmation sends back.
const LOGOUT_PARAMS: [&str; 5] = ["id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales"];

impl Inner {
    fn logout_confirm(&self, params: &Params, headers: &HeaderMap, client: Option<&str>) -> Response {
        let (csrf, new) = self.csrf_cookie(headers);
        let mut fields = String::new();
        for name in LOGOUT_PARAMS {
            if let Ok(Some(value)) = params.get(name) {
                fields.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n", escape(value)));
            }
        }
        let lead = match client {
            Some(name) => format!("{} asks to sign you out of otpgate.", escape(name)),
            None => "Do you want to sign out?".to_owned(),
        };
        let body = format!(
            "<p class=\"lead\">{lead}</p>\n<form method=\"post\" action=\"{END_SESSION_PATH}\">\n{fields}\
             <input type=\"hidden\" name=\"confirmed\" value=\"1\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\n\
             <button type=\"submit\" id=\"confirm-logout\" class=\"btn btn-primary\">Sign out</button>\n</form>",
            self.csrf_token(&csrf)
        );
        let mut response = page_response(StatusCode::OK, shell("Sign out?", &body));
        if new {
            response.headers_mut().append(header::SET_COOKIE, self.cookies.set_csrf(&csrf));
        }
        response
    }
}
