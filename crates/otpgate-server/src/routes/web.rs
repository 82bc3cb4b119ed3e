//! The sign-in page, embedded in the binary (no CDN, no build step), served with a strict CSP,
//! and the JavaScript client it is built on (`clients/js/otpgate.js`, the npm package `otpgate`),
//! served beside it as `/otpgate.js` for the page and for other pages of the deployment to import.
//! `index.html` is served with its `<meta>` configuration filled in from the server's: the code
//! length, and the API base when the page is to call another origin (which the CSP then allows).

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const APP_JS: &str = include_str!("../../../../web/app.js");
const APP_CSS: &str = include_str!("../../../../web/app.css");
const CLIENT_JS: &str = include_str!("../../../../clients/js/otpgate.js");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

const API_BASE_META: &str = r#"<meta name="otpgate-api-base" content="">"#;
const CODE_LENGTH_META: &str = r#"<meta name="otpgate-code-length" content="6">"#;

/// `index.html` as this configuration serves it.
pub struct IndexPage {
    html: String,
    csp: HeaderValue,
}

impl IndexPage {
    /// `api_base` is `http.page_api_base`.
    pub fn new(code_length: usize, api_base: Option<&PageApiBase>) -> IndexPage {
        let mut html = INDEX_HTML
            .replace(CODE_LENGTH_META, &format!(r#"<meta name="otpgate-code-length" content="{code_length}">"#));
        let mut csp = CSP.to_owned();
        if let Some(base) = api_base.map(PageApiBase::as_str) {
            html =
                html.replace(API_BASE_META, &format!(r#"<meta name="otpgate-api-base" content="{}">"#, escape(base)));
            if let Ok(origin) = check_api_base(base) {
                csp = csp.replace("connect-src 'self'", &format!("connect-src 'self' {origin}"));
            }
        }
        let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CSP));
        IndexPage { html, csp }
    }

    fn response(&self) -> Response {
        let mut response = page(INDEX_HTML, "text/html; charset=utf-8");
        *response.body_mut() = self.html.clone().into();
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        response
    }

    pub fn route<S: Clone + Send + Sync + 'static>(self) -> MethodRouter<S> {
        let page = Arc::new(self);
        get(move || {
            let page = page.clone();
            async move { page.response() }
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `http.page_api_base`, checked by [`check_api_base`] when the configuration was loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PageApiBase(String);

impl PageApiBase {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PageApiBase {
    type Err = String;

    fn from_str(base: &str) -> Result<PageApiBase, String> {
        check_api_base(base)?;
        Ok(PageApiBase(base.to_owned()))
    }
}

impl TryFrom<String> for PageApiBase {
    type Error = String;

    fn try_from(base: String) -> Result<PageApiBase, String> {
        base.parse()
    }
}

impl From<PageApiBase> for String {
    fn from(base: PageApiBase) -> String {
        base.0
    }
}

/// Checks `http.page_api_base`: an origin (see `cors::check_origin`) optionally followed by a
/// path; answers the origin, which is what the CSP names.
pub fn check_api_base(base: &str) -> Result<&str, String> {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let (origin, path) = base[after_scheme..].find('/').map_or((base, ""), |i| base.split_at(after_scheme + i));
    crate::cors::check_origin(origin)?;
    if path.chars().any(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '*' | '"' | '<' | '>' | '\\' | ';' | ','))
    {
        return Err(format!("`{base}`: the path must be plain (no query, fragment or special characters)"));
    }
    Ok(origin)
}

pub async fn app_js() -> Response {
    page(APP_JS, "text/javascript; charset=utf-8")
}

pub async fn client_js() -> Response {
    page(CLIENT_JS, "text/javascript; charset=utf-8")
}

pub async fn app_css() -> Response {
    page(APP_CSS, "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_still_has_its_meta_tags() {
        assert!(INDEX_HTML.contains(API_BASE_META) && INDEX_HTML.contains(CODE_LENGTH_META));
    }

    #[test]
    fn the_page_is_configured() {
        let page = IndexPage::new(8, Some(&"https://api.example.com/otp".parse().unwrap()));
        assert!(page.html.contains(r#"<meta name="otpgate-code-length" content="8">"#));
        assert!(page.html.contains(r#"<meta name="otpgate-api-base" content="https://api.example.com/otp">"#));
        let csp = page.csp.to_str().unwrap();
        assert!(csp.contains("connect-src 'self' https://api.example.com;"), "{csp}");
        let plain = IndexPage::new(6, None);
        assert_eq!(plain.html, INDEX_HTML);
        assert_eq!(plain.csp.to_str().unwrap(), CSP);
    }

    #[test]
    fn api_bases() {
        assert_eq!(check_api_base("https://api.example.com"), Ok("https://api.example.com"));
        assert_eq!(check_api_base("http://localhost:8080/otp/"), Ok("http://localhost:8080"));
        for bad in ["https://api.example.com/a?b", "https://*.example.com", "api.example.com", "https://x/a b"] {
            assert!(check_api_base(bad).is_err(), "{bad}");
            assert!(bad.parse::<PageApiBase>().is_err(), "{bad}");
        }
    }
}
