//! OpenID Connect at the HTTP edge, mounted only when `[oidc]` is set. Each endpoint maps the
//! request to one call of `otpgate_oidc::OidcService` and its answer back to HTTP; the protocol
//! (what is valid, what a code binds, what a replay revokes) lives in that crate.
//!
//! | path                                  | method     |                                          |
//! |---------------------------------------|------------|------------------------------------------|
//! | `/.well-known/openid-configuration`   | GET        | discovery                                |
//! | `/.well-known/jwks.json`              | GET        | (the sessions' route: EdDSA and RS256)   |
//! | `/oidc/authorize`                     | GET, POST  | a code, an error, or the sign-in page    |
//! | `/oidc/login`                         | POST JSON  | the sign-in page's check, for a code     |
//! | `/oidc/token`                         | POST form  | codes and refresh tokens for tokens      |
//! | `/oidc/userinfo`                      | GET, POST  | the user's claims                        |
//! | `/oidc/revoke`                        | POST form  | RFC 7009                                 |
//! | `/oidc/logout`                        | GET, POST  | RP-initiated logout                      |
//!
//! **The login** is the sign-in page (`web/`), served at `/oidc/authorize` with the request in a
//! `<meta>`: the page sends the code through the JSON API (`POST /v1/verifications`, every limit
//! and the bot check as always) and posts the check to `/oidc/login` instead of
//! `/v1/verifications/check`, which runs the same `VerificationService::check` (limits,
//! tripwire), starts the login session (the cookie) and answers where to go: the client's
//! redirect URI with the code.
//!
//! **Cookies** are first-party, `HttpOnly`, `Path=/`, `Secure` and `__Host-` prefixed when the
//! issuer is https (http is only allowed on loopback in development): the login session
//! (`SameSite=Lax`, so the client's top-level redirect to `/oidc/authorize` carries it) and a
//! CSRF cookie (`SameSite=Strict`).
//!
//! **CSRF**: every state-changing step a browser takes here (the login, the confirmed logout)
//! carries a token that is an HMAC of the CSRF cookie (double submit, bound by the server's key),
//! and is refused when `Origin` (or `Sec-Fetch-Site`) says another site sent it. The logout
//! without confirmation ends a session only with an `id_token_hint` of that session's user
//! (the specification's GET); anything else asks the user first.
//!
//! **Limits**: the token and revocation endpoints and the login take from a per-client bucket
//! (`oidc.client_requests_per_minute`) before doing anything; the login's check takes from
//! every limit of the JSON API's check, being the same call.

mod authorize;
mod cookies;
mod login;
mod logout;
mod pages;
mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::{Clock, CodeHasher, RateLimiter};
use otpgate_oidc::OidcService;
use otpgate_oidc::discovery::USERINFO_PATH;
use otpgate_oidc::discovery::{AUTHORIZATION_PATH, DISCOVERY_PATH, END_SESSION_PATH, REVOCATION_PATH, TOKEN_PATH};
use otpgate_session::SessionService;

use self::cookies::Cookies;
use super::AppState;
use crate::config::{Config, ConfigError};

/// Where the sign-in page posts its check when it signs in for a client.
pub const LOGIN_PATH: &str = "/oidc/login";

/// Everything the OpenID Connect routes use. Cheap to clone.
#[derive(Clone)]
struct OidcState(Arc<Inner>);

struct Inner {
    oidc: Arc<OidcService>,
    app: AppState,
    sessions: Arc<SessionService>,
    limits: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    hasher: CodeHasher,
    cookies: Cookies,
    /// The sign-in page's HTML with its assets at absolute paths (it is served below /oidc/).
    page: String,
    page_csp: HeaderValue,
    /// `scheme://host[:port]` of the issuer: what `Origin` must be on state-changing requests.
    origin: String,
    client_rate: Option<Rate>,
}

impl std::ops::Deref for OidcState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Builds the OpenID Connect routes (with their own state), or `None` without `[oidc]`.
pub fn build(
    config: &Config,
    stores: &crate::stores::Stores,
    hasher: &CodeHasher,
    clock: &Arc<dyn Clock>,
    sessions: Option<&Arc<SessionService>>,
    app: AppState,
) -> Result<Option<Router>, ConfigError> {
    let Some(settings) = crate::config::oidc_settings(config)? else { return Ok(None) };
    let sessions = sessions.ok_or_else(|| ConfigError::key("oidc", "needs sessions enabled"))?.clone();
    let cookies = Cookies::new(&settings);
    let origin = origin_of(settings.issuer());
    let client_rate = match settings.client_requests_per_minute() {
        0 => None,
        n => Some(Rate::new(n, Duration::from_secs(60))),
    };
    let oidc = Arc::new(OidcService::new(settings, sessions.clone(), stores.oidc.clone(), hasher.clone()));
    oidc.check_keys().map_err(|e| {
        ConfigError::key(
            "oidc",
            format!("{e}; run `otpgate keys rotate` with [oidc] configured to add one to `sessions.keys_file`"),
        )
    })?;
    let index = super::web::IndexPage::new(config.codes.length, None);
    let page = index
        .html()
        .replace(r#"href="app.css""#, r#"href="/app.css""#)
        .replace(r#"href="otpgate.js""#, r#"href="/otpgate.js""#)
        .replace(r#"src="app.js""#, r#"src="/app.js""#);
    let state = OidcState(Arc::new(Inner {
        oidc,
        app,
        sessions,
        limits: stores.limits.clone(),
        clock: clock.clone(),
        hasher: hasher.clone(),
        cookies,
        page,
        page_csp: index.csp().clone(),
        origin,
        client_rate,
    }));
    Ok(Some(router(state)))
}

fn router(state: OidcState) -> Router {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route(AUTHORIZATION_PATH, get(authorize::authorize).post(authorize::authorize))
        .route(LOGIN_PATH, post(login::login))
        .route(TOKEN_PATH, post(token::token))
        .route(USERINFO_PATH, get(token::userinfo).post(token::userinfo))
        .route(REVOCATION_PATH, post(token::revoke))
        .route(END_SESSION_PATH, get(logout::logout).post(logout::logout))
        .with_state(state)
}

/// `https://login.example.com/base` → `https://login.example.com`.
fn origin_of(issuer: &str) -> String {
    match url::Url::parse(issuer) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => issuer.to_owned(),
    }
}

// ---- discovery

async fn discovery(State(s): State<OidcState>) -> Response {
    let mut response = axum::Json(s.oidc.metadata()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

impl Inner {
    /// Takes one request from `client`'s bucket; `Err(retry_after)` when it is empty. A store
    /// that cannot answer lets the request through: the operation itself then fails or not.
    async fn take(&self, client: &str) -> Result<(), Duration> {
        let Some(rate) = self.client_rate else { return Ok(()) };
        let client = if self.oidc.settings().client(client).is_some() { client } else { "unknown" };
        let rule = LimitRule::new(LimitScope::OidcClient, format!("oidc:client:{client}"), rate);
        match self.limits.acquire(&[rule], self.clock.now()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(denied)) => {
                metrics::counter!("otpgate_rate_limited_total", "scope" => LimitScope::OidcClient.as_str())
                    .increment(1);
                tracing::warn!(event = "oidc.rate_limited", client, "a client's OpenID Connect requests were limited");
                Err(denied.retry_after)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take from the client's limit; letting the request through");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_issuers() {
        assert_eq!(origin_of("https://login.example.com"), "https://login.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080/base/"), "http://127.0.0.1:8080");
    }
}
