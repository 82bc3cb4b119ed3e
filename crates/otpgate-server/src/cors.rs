//! CORS for the origins in `http.cors_allowed_origins`, so the sign-in page (or an app) hosted on
//! another origin can call the API. No origins (the default): no CORS headers at all.
//!
//! Never `*`, never credentials (the API takes bearer tokens, not cookies); methods GET, POST,
//! DELETE; request headers Content-Type, Authorization, Idempotency-Key; exposed headers
//! Retry-After, X-Request-Id, Idempotent-Replayed; preflights cached for `PREFLIGHT_MAX_AGE`.
//! A request from an origin not on the list gets no `Access-Control-*` header at all.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Checks one configured origin: `scheme://host[:port]` exactly as a browser sends it in
/// `Origin` (lower case, no path, no trailing slash, no default port, no wildcard).
pub fn check_origin(origin: &str) -> Result<(), String> {
    let complain = |why: &str| Err(format!("`{origin}` is not an origin like https://app.example.com: {why}"));
    if origin.contains('*') {
        return complain("wildcards are not allowed; list each origin");
    }
    let Some((scheme, rest)) = origin.split_once("://") else { return complain("no scheme") };
    if scheme != "http" && scheme != "https" {
        return complain("the scheme must be http or https (lower case)");
    }
    if rest.contains(['/', '?', '#', '@']) {
        return complain("no path, trailing slash, query or user info");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else { return complain("unclosed IPv6 address") };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return complain("bad IPv6 address");
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return complain("bad port"),
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty()
        || !rest.starts_with('[')
            && !host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return complain("bad host (lower-case letters, digits, dots and hyphens)");
    }
    if let Some(port) = port {
        let number: u16 = match port.parse() {
            Ok(n) if n > 0 && !port.starts_with('0') => n,
            _ => return complain("bad port"),
        };
        if (scheme, number) == ("http", 80) || (scheme, number) == ("https", 443) {
            return complain("omit the default port (browsers do)");
        }
    }
    Ok(())
}

/// An origin checked by [`check_origin`] when the configuration was loaded
/// (`http.cors_allowed_origins`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(origin: &str) -> Result<Origin, String> {
        check_origin(origin)?;
        Ok(Origin(origin.to_owned()))
    }
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(origin: String) -> Result<Origin, String> {
        check_origin(&origin)?;
        Ok(Origin(origin))
    }
}

impl From<Origin> for String {
    fn from(origin: Origin) -> String {
        origin.0
    }
}

/// The configured CORS, or nothing. Cheap to clone.
#[derive(Clone)]
pub struct Cors(Option<Arc<(CorsLayer, Vec<HeaderValue>)>>);

impl Cors {
    /// Empty `origins`: no CORS.
    pub fn new(origins: &[Origin]) -> Cors {
        if origins.is_empty() {
            return Cors(None);
        }
        let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.as_str()).ok()).collect();
        let layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed.clone()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("idempotency-key")])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static(crate::request_id::HEADER),
                HeaderName::from_static(crate::idempotency::REPLAYED_HEADER),
            ])
            .max_age(PREFLIGHT_MAX_AGE);
        Cors(Some(Arc::new((layer, allowed))))
    }
}

impl Cors {
    /// Whether any origin is configured: without one the middleware passes every request through
    /// untouched, so the router leaves it out.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }
}

/// tower-http's `CorsLayer` around the rest of the app, plus one rule it lacks: an answer to an
/// origin that is not allowed carries no `Access-Control-*` header at all (the layer would still
/// describe methods and headers to it).
pub async fn middleware(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let Some(cors) = cors.0 else { return next.run(req).await };
    let (layer, allowed) = &*cors;
    let stranger = req.headers().get(header::ORIGIN).is_some_and(|o| !allowed.contains(o));
    let mut response = match layer.layer(next).oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if stranger {
        let names: Vec<HeaderName> =
            response.headers().keys().filter(|n| n.as_str().starts_with("access-control-")).cloned().collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{Origin, check_origin};

    #[test]
    fn origins() {
        for ok in ["https://app.example.com", "http://localhost:3000", "http://127.0.0.1:8081", "https://[::1]:8443"] {
            assert_eq!(check_origin(ok), Ok(()), "{ok}");
        }
        for bad in [
            "*",
            "https://*.example.com",
            "app.example.com",
            "ftp://x.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "HTTPS://app.example.com",
            "https://app.example.com:443",
            "http://app.example.com:80",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://user@app.example.com",
            "https://",
            "https://a..b",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
        assert_eq!("https://app.example.com".parse::<Origin>().unwrap().as_str(), "https://app.example.com");
    }
}
