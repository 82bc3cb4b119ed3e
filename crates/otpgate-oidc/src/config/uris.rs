//! The issuer and the redirect URIs: which are allowed.
//!
//! Redirect URIs (and post-logout redirect URIs) are compared as exact strings, so they are
//! validated to be in the one form a URL parser gives back (`https://app.example.com/`, not
//! `HTTPS://App.Example.com`): what is registered is exactly what is matched and redirected to.
//! Allowed are:
//! - `https` URLs, for every client;
//! - `http` on a loopback address (`127.0.0.1`, `[::1]`, `localhost`) in development, and in
//!   production for public clients on `127.0.0.1` or `[::1]` (native apps listening on the
//!   loopback interface, RFC 8252 §7.3; `localhost` is refused there, RFC 8252 §8.3). The port is
//!   part of the exact match (RFC 8252's "any port" is not supported: register each one);
//! - private-use schemes for public clients (native apps, RFC 8252 §7.1): a reverse domain name
//!   with at least one dot, `com.example.app:/callback` (flutter_appauth, AppAuth).
//!
//! Never: fragments (RFC 6749 §3.1.2), user info, wildcards, or any other scheme.

use std::net::IpAddr;

use url::{Host, Url};

use super::{ClientKind, ConfigError, Deployment, bad};

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// The parse of `raw`, if `raw` is already in the form the parser gives back.
fn parse_canonical(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not an absolute URL ({e})"))?;
    if url.as_str() != raw {
        return Err(format!("write `{raw}` as `{}` (it is matched exactly, character for character)", url.as_str()));
    }
    Ok(url)
}

pub(super) fn validate_issuer(raw: &str, deployment: Deployment) -> Result<(), ConfigError> {
    let key = "oidc.issuer";
    // A bare origin is written without the slash a parser would add (`https://login.example.com`).
    let url = Url::parse(raw).map_err(|e| bad(key, format!("`{raw}` is not an absolute URL ({e})")))?;
    if url.as_str() != raw && url.as_str() != format!("{raw}/") {
        return Err(bad(key, format!("write `{raw}` as `{}` (clients compare it exactly)", url.as_str())));
    }
    if url.query().is_some() || url.fragment().is_some() || raw.contains('?') || raw.contains('#') {
        return Err(bad(key, "must have no query and no fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(key, "must not contain user info"));
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(host)) if is_loopback(&host) && deployment == Deployment::Development => Ok(()),
        ("http", _) => Err(bad(key, "must use https (http only for a loopback address in development)")),
        _ => Err(bad(key, "must be an https URL")),
    }
}

/// One redirect or post-logout redirect URI of a client of `kind` (see the module docs).
pub fn validate_redirect_uri(raw: &str, kind: ClientKind, deployment: Deployment) -> Result<(), String> {
    if raw.contains('*') {
        return Err("wildcards are not supported: list every redirect URI exactly".into());
    }
    if raw.contains('#') {
        return Err("must not contain a fragment (RFC 6749 §3.1.2)".into());
    }
    let url = parse_canonical(raw)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user info".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host().ok_or("an http URI needs a host")?;
            let ip_loopback = matches!(host, Host::Ipv4(_) | Host::Ipv6(_)) && is_loopback(&host);
            match deployment {
                Deployment::Development if is_loopback(&host) => Ok(()),
                Deployment::Production if ip_loopback && kind == ClientKind::Public => Ok(()),
                Deployment::Production if ip_loopback => {
                    Err("http on a loopback address is only for public (native) clients in production".into())
                }
                _ => Err("http only on a loopback address (127.0.0.1 or [::1]; localhost in development)".into()),
            }
        }
        scheme if scheme.contains('.') => match kind {
            ClientKind::Public => Ok(()),
            ClientKind::Confidential => {
                Err("private-use schemes are for native apps, which are public clients (RFC 8252 §8.4)".into())
            }
        },
        scheme => Err(format!(
            "scheme `{scheme}` is not allowed: use https, http on loopback, or a native app's reverse-domain scheme \
             like `com.example.app:/callback` (RFC 8252 §7.1)"
        )),
    }
}
