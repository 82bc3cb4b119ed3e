//! The login and CSRF cookies, and the double-submit token bound to the CSRF cookie.

use axum::http::{HeaderMap, HeaderValue, header};
use otpgate_core::verification::random_base62;
use otpgate_oidc::OidcSettings;
use subtle::ConstantTimeEq;

use super::Inner;

const CSRF_PREFIX: &str = "cs_";
const CSRF_LABEL: &[u8] = b"otpgate-oidc-csrf-v1";

/// Cookie names and attributes for this issuer.
pub(super) struct Cookies {
    pub(super) login: &'static str,
    csrf: &'static str,
    /// `; Secure` under https.
    secure: &'static str,
    login_max_age: u64,
}

impl Cookies {
    pub(super) fn new(settings: &OidcSettings) -> Cookies {
        let https = settings.issuer().starts_with("https://");
        // `__Host-`: only set by this exact origin over https, with Path=/ and no Domain.
        Cookies {
            login: if https { "__Host-otpgate_login" } else { "otpgate_login" },
            csrf: if https { "__Host-otpgate_csrf" } else { "otpgate_csrf" },
            secure: if https { "; Secure" } else { "" },
            login_max_age: settings.login_session_ttl().as_secs(),
        }
    }

    pub(super) fn set_login(&self, value: &str) -> HeaderValue {
        header_value(&format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.login, self.login_max_age, self.secure
        ))
    }

    pub(super) fn clear_login(&self) -> HeaderValue {
        header_value(&format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}", self.login, self.secure))
    }

    pub(super) fn set_csrf(&self, value: &str) -> HeaderValue {
        header_value(&format!("{}={value}; Path=/; HttpOnly; SameSite=Strict{}", self.csrf, self.secure))
    }
}

pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request, if any (the first one).
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

impl Inner {
    /// The CSRF cookie of the request if it has our shape, or a new one (to set).
    pub(super) fn csrf_cookie(&self, headers: &HeaderMap) -> (String, bool) {
        match cookie(headers, self.cookies.csrf).filter(|c| {
            c.strip_prefix(CSRF_PREFIX).is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        }) {
            Some(existing) => (existing.to_owned(), false),
            None => (format!("{CSRF_PREFIX}{}", random_base62(32)), true),
        }
    }

    /// The token a form or the page sends back: an HMAC of the CSRF cookie under the server key.
    pub(super) fn csrf_token(&self, cookie: &str) -> String {
        self.hasher
            .digest_parts(&[CSRF_LABEL, cookie.as_bytes()])
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A state-changing request from a browser: same origin, and its token matches its cookie.
    pub(super) fn csrf_ok(&self, headers: &HeaderMap, token: &str) -> bool {
        let origin_ok = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).is_none_or(|o| o == self.origin);
        let site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none");
        let Some(cookie) = cookie(headers, self.cookies.csrf) else { return false };
        let expected = self.csrf_token(cookie);
        origin_ok && site_ok && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
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
}
