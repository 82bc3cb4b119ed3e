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

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::verification::random_base62;
use otpgate_core::{Clock, CodeHasher, OtpError, PhoneNumber, RateLimiter};
use otpgate_oidc::discovery::USERINFO_PATH;
use otpgate_oidc::discovery::{AUTHORIZATION_PATH, DISCOVERY_PATH, END_SESSION_PATH, REVOCATION_PATH, TOKEN_PATH};
use otpgate_oidc::{
    AuthorizationRequest, AuthorizeError, AuthorizeErrorCode, Decision, LogoutFailure, LogoutOutcome, OidcError,
    OidcService, OidcSettings, Params, TokenFailure, UserinfoFailure, bearer_token,
};
use otpgate_session::SessionService;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::client_ip::ClientIp;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Where the sign-in page posts its check when it signs in for a client.
pub const LOGIN_PATH: &str = "/oidc/login";

const CSRF_PREFIX: &str = "cs_";
const CSRF_LABEL: &[u8] = b"otpgate-oidc-csrf-v1";

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

/// Cookie names and attributes for this issuer.
struct Cookies {
    login: &'static str,
    csrf: &'static str,
    /// `; Secure` under https.
    secure: &'static str,
    login_max_age: u64,
}

impl Cookies {
    fn new(settings: &OidcSettings) -> Cookies {
        let https = settings.issuer().starts_with("https://");
        // `__Host-`: only set by this exact origin over https, with Path=/ and no Domain.
        Cookies {
            login: if https { "__Host-otpgate_login" } else { "otpgate_login" },
            csrf: if https { "__Host-otpgate_csrf" } else { "otpgate_csrf" },
            secure: if https { "; Secure" } else { "" },
            login_max_age: settings.login_session_ttl().as_secs(),
        }
    }

    fn set_login(&self, value: &str) -> HeaderValue {
        header_value(&format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.login, self.login_max_age, self.secure
        ))
    }

    fn clear_login(&self) -> HeaderValue {
        header_value(&format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}", self.login, self.secure))
    }

    fn set_csrf(&self, value: &str) -> HeaderValue {
        header_value(&format!("{}={value}; Path=/; HttpOnly; SameSite=Strict{}", self.csrf, self.secure))
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request, if any (the first one).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
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
        .route(AUTHORIZATION_PATH, get(authorize).post(authorize))
        .route(LOGIN_PATH, post(login))
        .route(TOKEN_PATH, post(token))
        .route(USERINFO_PATH, get(userinfo).post(userinfo))
        .route(REVOCATION_PATH, post(revoke))
        .route(END_SESSION_PATH, get(logout).post(logout))
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

// ---- authorization endpoint

/// The parameters of a GET (query) or a POST (form body), and their raw form.
fn params_of(method: &Method, query: Option<String>, body: &Bytes) -> (Params, String) {
    let raw =
        if method == Method::POST { String::from_utf8_lossy(body).into_owned() } else { query.unwrap_or_default() };
    (Params::parse(raw.as_bytes()), raw)
}

fn redirect(location: &str, status: StatusCode) -> Response {
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

async fn authorize(
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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&#39;")
}

impl Inner {
    /// The CSRF cookie of the request if it has our shape, or a new one (to set).
    fn csrf_cookie(&self, headers: &HeaderMap) -> (String, bool) {
        match cookie(headers, self.cookies.csrf).filter(|c| {
            c.strip_prefix(CSRF_PREFIX).is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        }) {
            Some(existing) => (existing.to_owned(), false),
            None => (format!("{CSRF_PREFIX}{}", random_base62(32)), true),
        }
    }

    /// The token a form or the page sends back: an HMAC of the CSRF cookie under the server key.
    fn csrf_token(&self, cookie: &str) -> String {
        self.hasher
            .digest_parts(&[CSRF_LABEL, cookie.as_bytes()])
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A state-changing request from a browser: same origin, and its token matches its cookie.
    fn csrf_ok(&self, headers: &HeaderMap, token: &str) -> bool {
        let origin_ok = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).is_none_or(|o| o == self.origin);
        let site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none");
        let Some(cookie) = cookie(headers, self.cookies.csrf) else { return false };
        let expected = self.csrf_token(cookie);
        origin_ok && site_ok && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }

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

const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/app.css\">\n</head>\n\
         <body>\n<main class=\"card\">\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// otpgate's own page for what cannot go back to a client.
fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    page_response(status, shell(title, &format!("<p class=\"lead\" id=\"message\">{}</p>", escape(message))))
}

// ---- the login (the sign-in page's check)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
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

async fn login(
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

// ---- token, revocation, userinfo

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

async fn token(State(s): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let params = Params::parse(&body);
    if let Some(response) = limited(&s, &headers, &params).await {
        return response;
    }
    match s.oidc.token(authorization(&headers), &params).await {
        Ok(tokens) => no_store(axum::Json(tokens).into_response()),
        Err(e) => token_failure(e),
    }
}

async fn revoke(State(s): State<OidcState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let params = Params::parse(&body);
    if let Some(response) = limited(&s, &headers, &params).await {
        return response;
    }
    match s.oidc.revoke(authorization(&headers), &params).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => token_failure(e),
    }
}

async fn userinfo(State(s): State<OidcState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
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

// ---- logout

async fn logout(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; otpgate_login=ls_x; xotpgate_login=no"));
        assert_eq!(cookie(&headers, "otpgate_login"), Some("ls_x"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn origins_of_issuers() {
        assert_eq!(origin_of("https://login.example.com"), "https://login.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080/base/"), "http://127.0.0.1:8080");
    }

    #[test]
    fn attributes_follow_the_issuer_scheme() {
        let settings = |issuer: &str| {
            otpgate_oidc::OidcConfig {
                issuer: issuer.into(),
                login_session_hours: 12,
                client_requests_per_minute: 1200,
                clients: vec![otpgate_oidc::ClientConfig {
                    id: "web".into(),
                    name: "Web".into(),
                    kind: otpgate_oidc::ClientKind::Public,
                    redirect_uris: vec!["http://127.0.0.1:3000/cb".into()],
                    post_logout_redirect_uris: vec![],
                    secret: None,
                    secret_file: None,
                }],
            }
            .validate(otpgate_oidc::Deployment::Development)
            .unwrap()
        };
        let https = Cookies::new(&settings("https://login.example.com"));
        let login = https.set_login("ls_abc");
        assert_eq!(
            login.to_str().unwrap(),
            "__Host-otpgate_login=ls_abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(https.set_csrf("cs_x").to_str().unwrap().contains("SameSite=Strict; Secure"));
        let http = Cookies::new(&settings("http://127.0.0.1:8080"));
        assert_eq!(
            http.set_login("ls_abc").to_str().unwrap(),
            "otpgate_login=ls_abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn page_text_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;");
    }
}
