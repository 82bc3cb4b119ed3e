//! CORS for configured origins, and the page's configuration (code length, API base, CSP).

use crate::common::*;
use otpgate_server::Config;
use serde_json::json;

const APP: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> Reply {
    app.request(
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/verifications"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,idempotency-key"),
    )
    .await
}

fn cors_headers(r: &Reply) -> Vec<String> {
    r.headers.keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn an_allowed_origin_gets_the_cors_headers() {
    let app = spawn_with(
        |c| c.http.cors_allowed_origins = vec![APP.parse().unwrap(), "http://localhost:3000".parse().unwrap()],
        Default::default(),
    )
    .await;
    let r = preflight(&app, APP).await;
    assert!(r.status < 300, "{} {}", r.status, r.text);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some(APP));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r.header("access-control-allow-headers").unwrap().to_ascii_lowercase();
    for h in ["content-type", "authorization", "idempotency-key"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), None, "never credentials");

    // The actual request: the origin is allowed and the useful headers are readable.
    let r = app
        .request(
            app.client
                .post(app.url("/v1/verifications"))
                .header("origin", APP)
                .header("content-type", "application/json")
                .body(json!({ "phone": "+14155550190" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("access-control-allow-origin").as_deref(), Some(APP));
    let exposed = r.header("access-control-expose-headers").unwrap().to_ascii_lowercase();
    assert!(exposed.contains("retry-after") && exposed.contains("x-request-id"), "{exposed}");
    assert!(r.header("vary").unwrap_or_default().to_ascii_lowercase().contains("origin"));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let app = spawn_with(|c| c.http.cors_allowed_origins = vec![APP.parse().unwrap()], Default::default()).await;
    for origin in ["https://evil.example.com", "https://app.example.com.evil.net", "null", "http://app.example.com"] {
        let r = preflight(&app, origin).await;
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origin}");
        let r = app.request(app.client.get(app.url("/healthz")).header("origin", origin)).await;
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origin}");
    }
}

#[tokio::test]
async fn without_configured_origins_there_is_no_cors() {
    let app = spawn_app().await;
    let r = preflight(&app, APP).await;
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    assert_eq!(r.status, 405);
}

#[test]
fn bad_origins_stop_the_start() {
    let load = |key: &str, value: &str| {
        Config::load_from(None, &[(key.to_owned(), value.to_owned())]).unwrap_err().to_string()
    };
    for bad in
        ["*", "https://app.example.com/", "https://app.example.com/login", "app.example.com", "https://*.example.com"]
    {
        let e = load("OTPGATE_HTTP__CORS_ALLOWED_ORIGINS", &format!("[\"{bad}\"]"));
        assert!(e.contains("http.cors_allowed_origins"), "{bad}: {e}");
    }
    let e = load("OTPGATE_HTTP__PAGE_API_BASE", "https://api.example.com/?x");
    assert!(e.contains("http.page_api_base"), "{e}");
}

#[tokio::test]
async fn the_page_gets_the_code_length_and_the_api_base() {
    let app = spawn_with(
        |c| {
            c.codes.length = 8;
            c.http.page_api_base = Some("https://verify.example.com".parse().unwrap());
        },
        Default::default(),
    )
    .await;
    let r = app.get("/").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains(r#"<meta name="otpgate-code-length" content="8">"#));
    assert!(r.text.contains(r#"<meta name="otpgate-api-base" content="https://verify.example.com">"#));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("connect-src 'self' https://verify.example.com;"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");

    let plain = spawn_app().await.get("/").await;
    assert!(plain.text.contains(r#"<meta name="otpgate-code-length" content="6">"#));
    assert!(plain.header("content-security-policy").unwrap().contains("connect-src 'self';"));
}
