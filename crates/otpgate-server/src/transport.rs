//! HTTPS everywhere: which requests count as HTTPS, HSTS on those, and refusing plain HTTP in
//! production.
//!
//! A request is HTTPS when otpgate terminated TLS itself (`[tls]`), or when it came from a
//! trusted proxy (`http.trusted_proxies`) whose `X-Forwarded-Proto` says `https` (every value of
//! it, so a client-written `https` followed by the proxy's `http` does not pass). HTTPS answers
//! carry `Strict-Transport-Security`.
//!
//! In production, plain HTTP is allowed only on a loopback or private listener (a TLS-terminating
//! sidecar or load balancer in front), or when every request comes through a trusted proxy: then
//! a request that did not arrive over HTTPS through one is refused (except the health probes,
//! which load balancers send directly). otpgate sets no cookies; should it ever, they must be
//! `Secure` (and `HttpOnly`, `SameSite`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use otpgate_api::ErrorCode;

use crate::client_ip::TrustedProxies;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;

/// One year, subdomains included (the preload list's minimum).
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Paths a load balancer probes directly; never refused for being plain HTTP.
const PROBES: &[&str] = &["/healthz", "/readyz"];

#[derive(Debug, Clone)]
pub struct Transport {
    /// otpgate terminates TLS: every request is HTTPS.
    tls: bool,
    proxies: TrustedProxies,
    /// Refuse requests that did not come over HTTPS through a trusted proxy.
    require_proxied_https: bool,
}

/// Loopback, private (RFC 1918, IPv6 unique-local) or link-local: not reachable from the internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// The production rule for plain HTTP (see the module docs); `Ok` when TLS is configured.
pub fn check_plain_http(config: &Config) -> Result<(), ConfigError> {
    if !config.is_production() || config.tls.files().is_some() {
        return Ok(());
    }
    let addr = config.listen;
    if is_internal(addr.ip()) || !config.http.trusted_proxies.is_empty() {
        return Ok(());
    }
    Err(ConfigError::key(
        "listen",
        format!(
            "production refuses plain HTTP on {addr}, which is not a loopback or private address; set \
             `tls.cert_file` and `tls.key_file`, or put a TLS-terminating proxy in front and list it in \
             `http.trusted_proxies`"
        ),
    ))
}

impl Transport {
    pub fn from_config(config: &Config) -> Transport {
        let tls = config.tls.files().is_some();
        let proxies = config.http.trusted_proxies.clone();
        let internal = is_internal(config.listen.ip());
        let require_proxied_https = config.is_production() && !tls && !internal && !proxies.is_empty();
        Transport { tls, proxies, require_proxied_https }
    }

    /// Whether the middleware can ever act: without TLS and without trusted proxies no request
    /// counts as HTTPS (no HSTS) and none is refused, so the router leaves it out.
    pub fn acts(&self) -> bool {
        self.tls || !self.proxies.is_empty() || self.require_proxied_https
    }

    /// Whether a request from `peer` with `headers` reached us over HTTPS.
    pub fn is_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        self.tls || peer.is_some_and(|ip| self.proxies.contains(ip) && forwarded_https(headers))
    }
}

/// `X-Forwarded-Proto` present and every value in it `https`.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let mut values = headers
        .get_all("x-forwarded-proto")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .peekable();
    values.peek().is_some() && values.all(|v| v.eq_ignore_ascii_case("https"))
}

pub async fn middleware(State(transport): State<Arc<Transport>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let https = transport.is_https(peer, req.headers());
    if !https && transport.require_proxied_https && !PROBES.contains(&req.uri().path()) {
        tracing::warn!(event = "http.plain_refused", "a request did not come over HTTPS through a trusted proxy");
        return ApiError::new(ErrorCode::InvalidRequest, "This server accepts HTTPS requests only.").into_response();
    }
    let mut response = next.run(req).await;
    if https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(production: bool, listen: &str, proxies: &[&str], tls: bool) -> Result<Transport, ConfigError> {
        let mut config = Config { listen: listen.parse().unwrap(), ..Config::default() };
        if production {
            config.environment = crate::Environment::Production;
        }
        config.http.trusted_proxies = crate::client_ip::TrustedProxies::parse(proxies).unwrap();
        if tls {
            config.tls.cert_file = Some("cert.pem".into());
            config.tls.key_file = Some("key.pem".into());
        }
        check_plain_http(&config)?;
        Ok(Transport::from_config(&config))
    }

    #[test]
    fn production_refuses_public_plain_http_only() {
        let e = transport(true, "0.0.0.0:8080", &[], false).unwrap_err().to_string();
        assert!(e.contains("`listen`") && e.contains("tls.cert_file"), "{e}");
        assert!(transport(true, "203.0.113.5:80", &[], false).is_err());
        assert!(transport(true, "[::]:8080", &[], false).is_err());
        for internal in ["127.0.0.1:8080", "10.1.2.3:8080", "192.168.0.2:80", "[::1]:8080", "[fd00::1]:80"] {
            assert!(transport(true, internal, &[], false).is_ok(), "{internal}");
        }
        assert!(transport(true, "0.0.0.0:443", &[], true).is_ok(), "TLS");
        let t = transport(true, "0.0.0.0:8080", &["10.0.0.0/8"], false).unwrap();
        assert!(t.require_proxied_https);
        assert!(transport(false, "0.0.0.0:8080", &[], false).is_ok(), "development");
    }

    #[test]
    fn https_is_tls_or_a_trusted_proxy_saying_https() {
        let t = transport(true, "0.0.0.0:8080", &["10.0.0.0/8"], false).unwrap();
        let proxy: IpAddr = "10.0.0.7".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-forwarded-proto", HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert!(t.is_https(Some(proxy), &headers(&["https"])));
        assert!(t.is_https(Some(proxy), &headers(&["HTTPS"])));
        assert!(!t.is_https(Some(proxy), &headers(&[])));
        assert!(!t.is_https(Some(proxy), &headers(&["http"])));
        assert!(!t.is_https(Some(proxy), &headers(&["https, http"])), "the proxy's own value says http");
        assert!(!t.is_https(Some(proxy), &headers(&["https", "http"])));
        assert!(!t.is_https(Some(stranger), &headers(&["https"])), "spoofed by a client");
        assert!(!t.is_https(None, &headers(&["https"])));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert!(t.is_https(Some(mapped), &headers(&["https"])));
        let tls = transport(true, "0.0.0.0:443", &[], true).unwrap();
        assert!(tls.is_https(Some(stranger), &headers(&[])));
        assert!(t.acts() && tls.acts());
        let plain = transport(false, "127.0.0.1:8080", &[], false).unwrap();
        assert!(!plain.acts(), "no TLS, no proxy: nothing is HTTPS and nothing is refused");
        assert!(!plain.is_https(Some(proxy), &headers(&["https"])));
    }
}
