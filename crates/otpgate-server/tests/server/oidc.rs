//! OpenID Connect over HTTP against the real application: discovery, the authorization endpoint
//! (page errors versus redirect errors), the login through the sign-in page's check with its
//! CSRF token and cookie, single sign-on, the token endpoint with PKCE, ID tokens verified
//! against the published JWKS, UserInfo, refresh, revocation, logout, per-client limits, and the
//! negative cases of issue 17.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use otpgate_oidc::{ClientConfig, ClientKind, OidcConfig};
use otpgate_server::Config;
use serde_json::{Value, json};

/// The issuer as configured (the tests talk to the bound port; nothing dereferences it).
const ISSUER: &str = "http://127.0.0.1:9";
const WEB_REDIRECT: &str = "http://127.0.0.1:3000/callback";
const SRV_REDIRECT: &str = "http://localhost:4000/cb";
const SECRET: &str = "s3cr3t-0123456789-abcdefghijklmnop";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PHONE: &str = "+14155550177";

fn client(id: &str, kind: ClientKind, redirect: &str) -> ClientConfig {
    ClientConfig {
        id: id.into(),
        name: format!("The {id} app"),
        kind,
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:3000/".into()],
        secret: (kind == ClientKind::Confidential).then(|| SECRET.to_owned().into()),
        secret_file: None,
    }
}

fn with_oidc(c: &mut Config) {
    no_limits(c);
    c.oidc = Some(OidcConfig {
        issuer: ISSUER.into(),
        login_session_hours: 12,
        client_requests_per_minute: 1200,
        clients: vec![
            client("web", ClientKind::Public, WEB_REDIRECT),
            client("srv", ClientKind::Confidential, SRV_REDIRECT),
        ],
    });
}

async fn oidc_app() -> TestApp {
    spawn_with(with_oidc, Default::default()).await
}

/// A client that never follows redirects (each answer is looked at).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn authorize_query(client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid phone offline_access"),
        ("state", "st ate/~?&=1"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A cookie's value from `Set-Cookie` headers.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.to_owned())
}

fn meta(html: &str, name: &str) -> String {
    let start = html.find(&format!("<meta name=\"{name}\" content=\"")).unwrap_or_else(|| panic!("no {name}: {html}"));
    let rest = &html[start + name.len() + 23..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&").replace("&quot;", "\"")
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

struct Browser {
    http: reqwest::Client,
    /// `name=value` pairs we hold for otpgate.
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser { http: browser(), cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, reply: &Reply) {
        for v in reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> Reply {
        let req = self.http.get(app.url(path)).header("cookie", self.cookie_header());
        let reply = app.request(req).await;
        self.keep(&reply);
        reply
    }

    async fn authorize(&mut self, app: &TestApp, query: &str) -> Reply {
        self.get(app, &format!("/oidc/authorize?{query}")).await
    }

    /// The sign-in page's steps: send through the JSON API, then the check at the login
    /// endpoint with the page's CSRF token. Answers the login reply.
    async fn sign_in_on_page(&mut self, app: &TestApp, page: &Reply, phone: &str) -> Reply {
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(app.send(phone).await.status, 201);
        let code = app.inbox_code(phone).await;
        let body = json!({
            "phone": phone,
            "code": code,
            "authorization": meta(&page.text, "otpgate-oidc-request"),
            "csrf_token": meta(&page.text, "otpgate-oidc-csrf"),
        });
        let req = self
            .http
            .post(app.url("/oidc/login"))
            .header("content-type", "application/json")
            .header("cookie", self.cookie_header())
            .header("origin", "http://127.0.0.1:9")
            .body(body.to_string());
        let reply = app.request(req).await;
        self.keep(&reply);
        reply
    }
}

async fn token(app: &TestApp, auth: Option<String>, form: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req = app.client.post(app.url("/oidc/token")).header("content-type", "application/x-www-form-urlencoded");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    app.request(req.body(body)).await
}

async fn exchange(app: &TestApp, code: &str) -> Reply {
    token(
        app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", "web"),
        ],
    )
    .await
}

async fn userinfo(app: &TestApp, access_token: &str) -> Reply {
    app.request(app.client.get(app.url("/oidc/userinfo")).bearer_auth(access_token)).await
}

/// A phone of its own per login (resend cooldowns are the JSON API's business, not these tests').
fn fresh_phone() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(200);
    format!("+1415555{:04}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// A full login for the web client: the browser (with its login cookie) and the code.
async fn login_for_code(app: &TestApp) -> (Browser, String) {
    let mut b = Browser::new();
    let page = b.authorize(app, &authorize_query("web", WEB_REDIRECT, &[])).await;
    let login = b.sign_in_on_page(app, &page, &fresh_phone()).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let to = login.json()["redirect_to"].as_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{WEB_REDIRECT}?")), "{to}");
    let q = query_of(&to);
    (b, q["code"].clone())
}

async fn verify_id_token(app: &TestApp, id_token: &str) -> Value {
    let jwks: JwkSet = serde_json::from_str(&app.get("/.well-known/jwks.json").await.text).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the ID token's key is in the JWKS");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["web"]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the ID token verifies against the published JWKS")
        .claims
}

#[tokio::test]
async fn discovery_names_the_endpoints_and_the_jwks_carries_both_algorithms() {
    let app = oidc_app().await;
    let d = app.get("/.well-known/openid-configuration").await;
    assert_eq!(d.status, 200);
    let d = d.json();
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["authorization_endpoint"], format!("{ISSUER}/oidc/authorize"));
    assert_eq!(d["token_endpoint"], format!("{ISSUER}/oidc/token"));
    assert_eq!(d["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let kty: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert!(kty.contains(&"RSA") && kty.contains(&"OKP"), "{jwks}");
}

#[tokio::test]
async fn without_the_section_no_route_is_mounted() {
    let app = spawn_app().await;
    assert_eq!(app.get("/.well-known/openid-configuration").await.status, 404);
    assert_eq!(app.get("/oidc/authorize").await.status, 404);
}

#[tokio::test]
async fn the_whole_flow_state_nonce_id_token_userinfo_refresh() {
    let app = oidc_app().await;
    let mut b = Browser::new();
    let page = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("login_hint", PHONE)])).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(meta(&page.text, "otpgate-login-hint"), PHONE, "login_hint prefills the page");
    assert_eq!(meta(&page.text, "otpgate-oidc-client"), "The web app");
    let csrf = set_cookie(&page, "otpgate_csrf").expect("a CSRF cookie");
    assert!(csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"), "{csrf}");

    let login = b.sign_in_on_page(&app, &page, PHONE).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let cookie = set_cookie(&login, "otpgate_login").expect("the login cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "http on loopback in development: {cookie}");
    let redirect = login.json()["redirect_to"].as_str().unwrap().to_owned();
    let q = query_of(&redirect);
    assert_eq!(q["state"], "st ate/~?&=1", "state is echoed exactly");
    assert_eq!(q["iss"], ISSUER);

    let tokens = exchange(&app, &q["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.header("cache-control").as_deref(), Some("no-store"));
    let tokens = tokens.json();
    let claims = verify_id_token(&app, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj", "the nonce is in the ID token");
    assert_eq!(claims["amr"], json!(["sms"]));
    assert_eq!(claims["phone_number"], PHONE);
    assert_eq!(claims["phone_number_verified"], true);
    assert!(claims["at_hash"].is_string() && claims["auth_time"].is_u64());

    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json()["sub"], claims["sub"]);
    assert_eq!(info.json()["phone_number"], PHONE);
    let post = app
        .request(
            app.client
                .post(app.url("/oidc/userinfo"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("access_token={}", tokens["access_token"].as_str().unwrap())),
        )
        .await;
    assert_eq!(post.status, 200, "userinfo by POST: {}", post.text);

    // The same user as the JSON API's.
    app.advance(Duration::from_secs(120));
    assert_eq!(app.send(PHONE).await.status, 201);
    let api = app.check(PHONE, &app.inbox_code(PHONE).await).await;
    assert_eq!(api.json()["user"]["id"], claims["sub"], "sub is the JSON API's user id");
    let refreshed = token(
        &app,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let refreshed = refreshed.json();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"], "refresh tokens rotate");
    let again = verify_id_token(&app, refreshed["id_token"].as_str().unwrap()).await;
    assert_eq!(again["sub"], claims["sub"]);

    // Single sign-on: the next authorization skips the phone; prompt=login does not.
    let sso = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("state", "two")])).await;
    assert_eq!(sso.status, 302, "{}", sso.text);
    let location = sso.header("location").unwrap();
    assert!(location.starts_with(WEB_REDIRECT) && query_of(&location)["state"] == "two", "{location}");
    let again = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("prompt", "login")])).await;
    assert_eq!(again.status, 200, "prompt=login shows the page");
}

#[tokio::test]
async fn unregistered_or_altered_redirect_uris_never_redirect() {
    let app = oidc_app().await;
    let mut b = Browser::new();
    for redirect in [
        "https://evil.example.com/callback",
        "http://127.0.0.1:3000/callback/",
        "http://127.0.0.1:3000/callback?x=1",
        "http://127.0.0.1:3001/callback",
    ] {
        let r = b.authorize(&app, &authorize_query("web", redirect, &[])).await;
        assert_eq!(r.status, 400, "{redirect}");
        assert!(r.header("location").is_none(), "{redirect}: no redirect");
        assert!(r.text.contains("not registered"), "{}", r.text);
        assert!(r.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    }
    let r = b.authorize(&app, &authorize_query("nobody", WEB_REDIRECT, &[])).await;
    assert_eq!((r.status, r.header("location")), (400, None), "unknown client: the page");
    // Other errors go back to the (registered) redirect URI, with the state.
    let r = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("code_challenge", "")])).await;
    assert_eq!(r.status, 302);
    let q = query_of(&r.header("location").unwrap());
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("invalid_request", "st ate/~?&=1"));
}

#[tokio::test]
async fn prompt_none_without_a_login_session_is_login_required() {
    let app = oidc_app().await;
    let r = Browser::new().authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("prompt", "none")])).await;
    assert_eq!(r.status, 302);
    let q = query_of(&r.header("location").unwrap());
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st ate/~?&=1");
}

#[tokio::test]
async fn a_missing_or_wrong_pkce_verifier_is_refused() {
    let app = oidc_app().await;
    let (_, code) = login_for_code(&app).await;
    let missing = token(
        &app,
        None,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_REDIRECT), ("client_id", "web")],
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert_eq!(missing.json()["error"], "invalid_request");

    let (_, code) = login_for_code(&app).await;
    let wrong = token(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_REDIRECT),
            ("code_verifier", &"x".repeat(43)),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    assert_eq!(exchange(&app, &code).await.json()["error"], "invalid_grant", "a code presented wrongly is spent");
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = oidc_app().await;
    let (_, code) = login_for_code(&app).await;
    let first = exchange(&app, &code).await.json();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status, 200);

    let replay = exchange(&app, &code).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let after = userinfo(&app, access).await;
    assert_eq!(after.status, 401, "the access token of the replayed code stops working");
    assert!(after.header("www-authenticate").unwrap().contains("invalid_token"));
    let refresh = token(
        &app,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(refresh.json()["error"], "invalid_grant", "and so does its refresh token");
    let metrics = app.get("/metrics").await.text;
    assert!(metrics.contains("otpgate_oidc_events_total{event=\"oidc.replay\""), "replays are counted");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = oidc_app().await;
    let (_, code) = login_for_code(&app).await;
    app.advance(Duration::from_secs(61));
    let r = exchange(&app, &code).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_confidential_client_with_a_wrong_secret_gets_401_with_a_challenge() {
    let app = oidc_app().await;
    let mut b = Browser::new();
    let page = b.authorize(&app, &authorize_query("srv", SRV_REDIRECT, &[])).await;
    let login = b.sign_in_on_page(&app, &page, PHONE).await;
    let code = query_of(login.json()["redirect_to"].as_str().unwrap())["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", SRV_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let basic = |secret: &str| Some(format!("Basic {}", STANDARD.encode(format!("srv:{secret}"))));
    let wrong = token(&app, basic("not-the-secret-0123456789-abcdefghij"), &form).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(wrong.json()["error"], "invalid_client");
    assert!(wrong.header("www-authenticate").unwrap().starts_with("Basic"), "{:?}", wrong.header("www-authenticate"));
    assert_eq!(wrong.header("cache-control").as_deref(), Some("no-store"));
    let right = token(&app, basic(SECRET), &form).await;
    assert_eq!(right.status, 200, "a wrong secret does not spend the code: {}", right.text);
}

#[tokio::test]
async fn the_login_refuses_requests_without_the_pages_csrf_token() {
    let app = oidc_app().await;
    let mut b = Browser::new();
    let page = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[])).await;
    assert_eq!(app.send(PHONE).await.status, 201);
    let code = app.inbox_code(PHONE).await;
    let attempt = |token: String, cookie: String, origin: &'static str| {
        let body = json!({
            "phone": PHONE,
            "code": code,
            "authorization": meta(&page.text, "otpgate-oidc-request"),
            "csrf_token": token,
        });
        app.client
            .post(app.url("/oidc/login"))
            .header("content-type", "application/json")
            .header("cookie", cookie)
            .header("origin", origin)
            .body(body.to_string())
    };
    let token_ = meta(&page.text, "otpgate-oidc-csrf");
    let cookie = b.cookie_header();
    for (req, why) in [
        (attempt("0".repeat(64), cookie.clone(), ISSUER), "a wrong token"),
        (attempt(token_.clone(), String::new(), ISSUER), "no CSRF cookie"),
        (attempt(token_.clone(), cookie.clone(), "https://evil.example.com"), "another origin"),
    ] {
        let r = app.request(req).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
        assert_eq!(r.json()["error"]["field"], "csrf_token", "{why}");
        assert!(set_cookie(&r, "otpgate_login").is_none(), "{why}: no login session");
    }
    // The code was not even checked: the right request still signs in.
    let r = app.request(attempt(token_, cookie, ISSUER)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn logout_with_the_id_token_hint_ends_the_login_session() {
    let app = oidc_app().await;
    let (mut b, code) = login_for_code(&app).await;
    let tokens = exchange(&app, &code).await.json();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens["id_token"].as_str().unwrap())
        .append_pair("post_logout_redirect_uri", "http://127.0.0.1:3000/")
        .append_pair("state", "bye")
        .finish();
    let r = b.get(&app, &format!("/oidc/logout?{query}")).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some("http://127.0.0.1:3000/?state=bye"));
    assert!(set_cookie(&r, "otpgate_login").unwrap().contains("Max-Age=0"));
    let after = b.authorize(&app, &authorize_query("web", WEB_REDIRECT, &[("prompt", "none")])).await;
    assert_eq!(query_of(&after.header("location").unwrap())["error"], "login_required");

    // Without a hint the user confirms on a page whose form carries a CSRF token.
    let (mut b, _) = login_for_code(&app).await;
    let confirm = b.get(&app, "/oidc/logout").await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.text.contains("name=\"csrf_token\""), "{}", confirm.text);
    let forged = app
        .request(
            b.http
                .post(app.url("/oidc/logout"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", b.cookie_header())
                .body("confirmed=1&csrf_token=00"),
        )
        .await;
    assert_eq!(forged.status, 200, "a forged confirmation asks again");
    assert!(set_cookie(&forged, "otpgate_login").is_none());
}

#[tokio::test]
async fn each_client_has_its_own_request_budget() {
    let app = spawn_with(
        |c| {
            with_oidc(c);
            c.oidc.as_mut().unwrap().client_requests_per_minute = 2;
        },
        Default::default(),
    )
    .await;
    let bad = [("grant_type", "refresh_token"), ("refresh_token", "ort_x"), ("client_id", "web")];
    assert_eq!(token(&app, None, &bad).await.status, 400);
    assert_eq!(token(&app, None, &bad).await.status, 400);
    let limited = token(&app, None, &bad).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.header("retry-after").is_some());
    let other = [("grant_type", "refresh_token"), ("refresh_token", "ort_x"), ("client_id", "srv")];
    assert_eq!(token(&app, None, &other).await.status, 401, "another client is not limited by it");
}

#[tokio::test]
async fn access_tokens_are_jwts_with_client_id_and_scope() {
    let app = oidc_app().await;
    let (_, code) = login_for_code(&app).await;
    let tokens = exchange(&app, &code).await.json();
    let payload = tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "openid phone offline_access");
}

#[tokio::test]
async fn keys_rotate_keeps_rs256_tokens_working() {
    let app = oidc_app().await;
    let (_, code) = login_for_code(&app).await;
    let before = exchange(&app, &code).await.json();
    let old_kid = jsonwebtoken::decode_header(before["id_token"].as_str().unwrap()).unwrap().kid.unwrap();

    // What `otpgate keys rotate` does with [oidc] configured; the server reloads the file.
    let path = app.config.keys_file();
    otpgate_session::KeyRing::rotate_file_with_rsa(&path).unwrap();
    let new_kid = otpgate_session::KeyRing::load(&path).unwrap().rsa_current().unwrap().kid().to_owned();
    assert_ne!(new_kid, old_kid);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, code) = login_for_code(&app).await;
        let after = exchange(&app, &code).await.json();
        let kid = jsonwebtoken::decode_header(after["id_token"].as_str().unwrap()).unwrap().kid.unwrap();
        if kid == new_kid {
            verify_id_token(&app, after["id_token"].as_str().unwrap()).await;
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rotated RSA key never signed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Issued before the rotation: still verifiable against the JWKS, still accepted.
    verify_id_token(&app, before["id_token"].as_str().unwrap()).await;
    assert_eq!(userinfo(&app, before["access_token"].as_str().unwrap()).await.status, 200);
}
