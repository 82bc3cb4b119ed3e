//! The client's IP address for limits and logs: the socket peer, unless the peer is a
//! configured trusted proxy; then the right-most address in the one forwarding header the
//! operator named (`http.client_ip_header`) that is not itself a trusted proxy.
//!
//! Only that one header is read. Proxies append to the header they manage (nginx, AWS ALB,
//! HAProxy, Envoy and Caddy to `X-Forwarded-For`) and pass every other header through as the
//! client wrote it, so a client-sent `Forwarded` behind an `X-Forwarded-For` proxy (or the other
//! way round) is the client talking, and believing it would give each request a fresh quota.
//! Within the header, everything to the left of the address our proxies wrote was written by
//! the client, and is never believed either.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use otpgate_core::client::canonical_ip;
use serde::{Deserialize, Serialize};

/// One `http.trusted_proxies` entry: an address (`192.0.2.7`, a /32 or /128) or a CIDR range
/// (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// The error names the bad entry.
    fn from_str(entry: &str) -> Result<Cidr, String> {
        let (addr, len) = match entry.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (entry, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("`{entry}` is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{entry}` has a bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, len })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(entry: String) -> Result<Cidr, String> {
        entry.parse()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.len == max { write!(f, "{}", self.addr) } else { write!(f, "{}/{}", self.addr, self.len) }
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical_ip(self.addr), canonical_ip(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

/// A list of addresses and CIDR ranges (`http.trusted_proxies`), parsed when the configuration
/// is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrustedProxies(Vec<Cidr>);

impl From<Vec<Cidr>> for TrustedProxies {
    fn from(nets: Vec<Cidr>) -> Self {
        TrustedProxies(nets)
    }
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries.iter().map(|e| e.as_ref().parse()).collect::<Result<Vec<Cidr>, _>>().map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

fn prefix_eq(net: &[u8], addr: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    let rest = len % 8;
    if net[..full] != addr[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[full] & mask == addr[full] & mask
    }
}

/// `http.client_ip_header`: the one header the operator's proxy writes the client into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx `$proxy_add_x_forwarded_for`, AWS ALB,
    /// HAProxy `option forwardfor`, Envoy, Caddy).
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
    #[serde(rename = "forwarded")]
    Forwarded,
    /// `X-Real-IP: client`, set (not appended) by the proxy.
    #[serde(rename = "x-real-ip")]
    XRealIp,
}

impl ClientIpHeader {
    pub fn name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XRealIp => "x-real-ip",
        }
    }

    /// The addresses in this header, in order of arrival (left = farthest from us); `None` for
    /// a hop that is not an address (`unknown`, `_hidden`, junk). Repeated header lines are one
    /// list, in order (RFC 9110 §5.3).
    fn hops(self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let mut hops = Vec::new();
        for line in headers.get_all(self.name()) {
            // Bytes, not `to_str`: junk a client put on the left of a line must not hide the
            // address the proxy appended on its right.
            let line = line.as_bytes();
            match self {
                ClientIpHeader::Forwarded => hops.extend(forwarded_elements(line)),
                ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => hops.extend(
                    line.split(|b| *b == b',')
                        .map(|hop| std::str::from_utf8(hop).ok().and_then(|h| parse_node(h.trim()))),
                ),
            }
        }
        hops
    }
}

/// The `for=` node of each element of a `Forwarded` value (RFC 7239 §4), quotes honoured; an
/// element without `for` is a hop we cannot read.
fn forwarded_elements(line: &[u8]) -> Vec<Option<IpAddr>> {
    let mut elements = Vec::new();
    let mut current: Option<Option<IpAddr>> = None;
    let mut pair = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    /// Reads one `name=value` pair; the first `for` of an element counts.
    fn finish_pair(pair: &mut Vec<u8>, current: &mut Option<Option<IpAddr>>) {
        if let Some(eq) = pair.iter().position(|b| *b == b'=') {
            let (name, value) = pair.split_at(eq);
            if name.trim_ascii().eq_ignore_ascii_case(b"for") && current.is_none() {
                let value = value[1..].trim_ascii();
                let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
                *current = Some(std::str::from_utf8(value).ok().and_then(parse_node));
            }
        }
        pair.clear();
    }
    for &b in line {
        if quoted {
            pair.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                quoted = true;
                pair.push(b);
            }
            b';' => finish_pair(&mut pair, &mut current),
            b',' => {
                finish_pair(&mut pair, &mut current);
                elements.push(current.take().flatten());
            }
            _ => pair.push(b),
        }
    }
    finish_pair(&mut pair, &mut current);
    if current.is_some() || !line.trim_ascii().is_empty() {
        elements.push(current.take().flatten());
    }
    elements
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`, and
/// the same with a zone id (`fe80::1%eth0`, `[fe80::1%25eth0]:4711`), which names the proxy's
/// interface, not the client, and is dropped.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let (host, port) = match node.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']')?,
        None => (node, ""),
    };
    if !(port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
        return None;
    }
    let addr = host.split_once('%').map_or(host, |(addr, _zone)| addr);
    addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Resolves a request's client address (see the module docs), built once from the
/// configuration.
#[derive(Debug, Clone, Default)]
pub struct ClientIpResolver {
    proxies: TrustedProxies,
    header: ClientIpHeader,
}

impl ClientIpResolver {
    pub fn new(proxies: TrustedProxies, header: ClientIpHeader) -> ClientIpResolver {
        ClientIpResolver { proxies, header }
    }

    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// The client address for a request that arrived from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical_ip(peer);
        if !self.proxies.contains(peer) {
            return peer;
        }
        // The right-most hop was written by the proxy nearest to us; walk left through the
        // proxies we trust to the first address that is not one of them.
        let mut nearest_trusted = peer;
        for hop in self.header.hops(headers).iter().rev() {
            match hop.map(canonical_ip) {
                Some(ip) if self.proxies.contains(ip) => nearest_trusted = ip,
                Some(ip) => return ip,
                // A hop we cannot read (`unknown`, `_hidden`, junk): stop at the last proxy we
                // trust rather than guess, which puts such requests in that proxy's bucket.
                None => return nearest_trusted,
            }
        }
        // No header, or every hop a trusted proxy: the request started inside (a health check).
        nearest_trusted
    }
}

/// The request's client address, resolved once per request by the request-id middleware
/// (which logs it); `None` only when the server was not started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn resolver(list: &[&str], header: ClientIpHeader) -> ClientIpResolver {
        ClientIpResolver::new(proxies(list), header)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const XFF: ClientIpHeader = ClientIpHeader::XForwardedFor;
    const FWD: ClientIpHeader = ClientIpHeader::Forwarded;
    const REAL: ClientIpHeader = ClientIpHeader::XRealIp;
    const PROXY: &str = "10.0.0.1";

    /// The client as seen through one trusted proxy (10.0.0.0/8) reading `header`.
    fn via_proxy(header: ClientIpHeader, pairs: &[(&str, &str)]) -> IpAddr {
        resolver(&["10.0.0.0/8"], header).client_ip(ip(PROXY), &headers(pairs))
    }

    #[test]
    fn cidr_matching() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "172.16.0.0/12"]);
        for yes in ["10.1.2.3", "192.0.2.7", "2001:db8::1", "172.31.255.255", "::ffff:10.0.0.1"] {
            assert!(p.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "172.32.0.0"] {
            assert!(!p.contains(ip(no)), "{no}");
        }
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8"), ("x-real-ip", "9.9.9.9")]);
        for header in [XFF, FWD, REAL] {
            assert_eq!(resolver(&["10.0.0.0/8"], header).client_ip(ip("203.0.113.9"), &h), ip("203.0.113.9"));
            assert_eq!(
                ClientIpResolver::new(TrustedProxies::default(), header).client_ip(ip("10.0.0.1"), &h),
                ip("10.0.0.1")
            );
        }
        let mapped = resolver(&[], XFF).client_ip(ip("::ffff:203.0.113.9"), &h);
        assert_eq!(mapped, ip("203.0.113.9"), "a mapped peer is its IPv4 address");
    }

    #[test]
    fn only_the_configured_header_is_read_whatever_else_is_sent_and_in_any_order() {
        let xff = ("x-forwarded-for", "198.51.100.4");
        let fwd = ("forwarded", "for=203.0.113.77");
        let real = ("x-real-ip", "192.0.2.55");
        for order in [[xff, fwd, real], [fwd, real, xff], [real, xff, fwd], [fwd, xff, real]] {
            assert_eq!(via_proxy(XFF, &order), ip("198.51.100.4"), "{order:?}");
            assert_eq!(via_proxy(FWD, &order), ip("203.0.113.77"), "{order:?}");
            assert_eq!(via_proxy(REAL, &order), ip("192.0.2.55"), "{order:?}");
        }
        // The issue's bypass: an XFF proxy passes the client's own `Forwarded` through.
        for n in 0..14 {
            let spoof = format!("for=203.0.113.{n}");
            assert_eq!(via_proxy(XFF, &[("forwarded", &spoof), xff]), ip("198.51.100.4"));
        }
        // The configured header is absent: the proxy itself is the client, not another header.
        assert_eq!(via_proxy(XFF, &[fwd, real]), ip(PROXY));
        assert_eq!(via_proxy(FWD, &[xff, real]), ip(PROXY));
        assert_eq!(via_proxy(REAL, &[xff, fwd]), ip(PROXY));
    }

    #[test]
    fn the_rightmost_address_that_is_not_a_trusted_proxy_wins() {
        // The client put spoofed hops first; the proxies appended the real peer and themselves.
        assert_eq!(via_proxy(XFF, &[("x-forwarded-for", "1.1.1.1, 198.51.100.4, 10.0.0.2")]), ip("198.51.100.4"));
        // More hops than proxies: everything left of the first untrusted hop is the client's.
        assert_eq!(
            via_proxy(XFF, &[("x-forwarded-for", "1.1.1.1, 2.2.2.2, 3.3.3.3, 198.51.100.4")]),
            ip("198.51.100.4")
        );
        let two_proxies = resolver(&["10.0.0.1", "10.0.0.2"], XFF);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.2")]);
        assert_eq!(two_proxies.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        // Every hop a trusted proxy: the left-most is as close to the client as we get.
        assert_eq!(via_proxy(XFF, &[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]), ip("10.0.0.3"));
        assert_eq!(via_proxy(XFF, &[]), ip(PROXY), "no header: a request from the proxy itself");
    }

    #[test]
    fn repeated_header_lines_are_one_list_in_order() {
        let h = [("x-forwarded-for", "1.1.1.1, 198.51.100.4"), ("x-forwarded-for", "10.0.0.2")];
        assert_eq!(via_proxy(XFF, &h), ip("198.51.100.4"));
        let h = [("x-forwarded-for", "203.0.113.1"), ("x-forwarded-for", "198.51.100.4")];
        assert_eq!(via_proxy(XFF, &h), ip("198.51.100.4"), "the later line is nearer to us");
        let h = [("forwarded", "for=203.0.113.1"), ("forwarded", "for=198.51.100.4;proto=https")];
        assert_eq!(via_proxy(FWD, &h), ip("198.51.100.4"));
        let h = [("x-real-ip", "203.0.113.1"), ("x-real-ip", "198.51.100.4")];
        assert_eq!(via_proxy(REAL, &h), ip("198.51.100.4"));
    }

    #[test]
    fn ports_brackets_and_zone_ids_are_read() {
        for (header, value, want) in [
            (XFF, "198.51.100.4:5000", "198.51.100.4"),
            (XFF, "2001:db8:cafe::17", "2001:db8:cafe::17"),
            (XFF, "[2001:db8:cafe::17]", "2001:db8:cafe::17"),
            (XFF, "[2001:db8:cafe::17]:4711", "2001:db8:cafe::17"),
            (XFF, "fe80::1%eth0", "fe80::1"),
            (XFF, "[fe80::1%25eth0]:4711", "fe80::1"),
            (XFF, "::ffff:198.51.100.4", "198.51.100.4"),
            (REAL, " 198.51.100.4 ", "198.51.100.4"),
            (FWD, r#"for="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            (FWD, r#"for="198.51.100.4:5000";proto=https;by=10.0.0.1"#, "198.51.100.4"),
            (FWD, "For=198.51.100.4", "198.51.100.4"),
            (FWD, r#"proto=https; for="[fe80::1%25eth0]""#, "fe80::1"),
            (FWD, r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https"#, "2001:db8:cafe::17"),
        ] {
            assert_eq!(via_proxy(header, &[(header.name(), value)]), ip(want), "{header:?}: {value}");
        }
    }

    #[test]
    fn unreadable_hops_are_never_believed() {
        // The hop where trust ends cannot be read: the request counts as the proxy's.
        for (header, value) in [
            (XFF, "1.1.1.1, junk"),
            (XFF, "1.1.1.1, unknown"),
            (XFF, "1.1.1.1, "),
            (XFF, "1.1.1.1, 198.51.100.4:99999"),
            (XFF, "1.1.1.1, [2001:db8::1"),
            (XFF, "1.1.1.1, 2001:db8::1]:80"),
            (XFF, "1.1.1.1, 198.51.100.4/24"),
            (FWD, "for=1.1.1.1, for=unknown"),
            (FWD, r#"for=1.1.1.1, for="_hidden""#),
            (FWD, "for=1.1.1.1, for=_gazonk"),
            (FWD, "for=1.1.1.1, proto=https"),
            (FWD, r#"for=1.1.1.1, for="[2001:db8::1]:junk""#),
            (REAL, "unknown"),
            (REAL, "1.1.1.1, junk"),
        ] {
            assert_eq!(via_proxy(header, &[(header.name(), value)]), ip(PROXY), "{header:?}: {value}");
        }
        // Behind two proxies, trust stops at the nearest one that wrote an unreadable hop.
        let two = resolver(&["10.0.0.0/8"], XFF);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, _hidden, 10.0.0.7")]);
        assert_eq!(two.client_ip(ip(PROXY), &h), ip("10.0.0.7"));
        // Junk the client put on the left never hides the hop the proxy appended.
        assert_eq!(via_proxy(XFF, &[("x-forwarded-for", "junk, [::, ;;, 198.51.100.4")]), ip("198.51.100.4"));
        assert_eq!(via_proxy(FWD, &[("forwarded", r#"for="a,b;c", for=198.51.100.4"#)]), ip("198.51.100.4"));
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.4").unwrap());
        assert_eq!(resolver(&["10.0.0.0/8"], XFF).client_ip(ip(PROXY), &h), ip("198.51.100.4"));
    }

    #[test]
    fn the_header_name_is_parsed_once_from_the_configuration() {
        for (text, want) in [("\"x-forwarded-for\"", XFF), ("\"forwarded\"", FWD), ("\"x-real-ip\"", REAL)] {
            assert_eq!(serde_json::from_str::<ClientIpHeader>(text).unwrap(), want);
        }
        assert!(serde_json::from_str::<ClientIpHeader>("\"X-Forwarded\"").is_err());
        assert_eq!(ClientIpHeader::default(), XFF);
    }
}
