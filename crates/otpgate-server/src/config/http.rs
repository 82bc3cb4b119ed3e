//! `[http]`: request and connection limits, client addresses behind proxies, CORS, the admin
//! listener.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::client_ip::TrustedProxies;
use crate::cors::Origin;
use crate::routes::web::PageApiBase;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Whole-request deadline, in seconds.
    pub request_timeout_secs: u64,
    /// Proxies (IP addresses or CIDR ranges) whose `client_ip_header` is believed; the client
    /// is the right-most address in it not in this list. Empty: the socket peer is the client
    /// and forwarding headers are ignored.
    pub trusted_proxies: TrustedProxies,
    /// The one header the trusted proxies write the client's address into:
    /// `x-forwarded-for`, `forwarded` (RFC 7239) or `x-real-ip`. Every other forwarding header
    /// is ignored (a client can send any of them through a proxy that does not manage it).
    pub client_ip_header: crate::client_ip::ClientIpHeader,
    /// Leading bits of an IPv6 address that name one client, for per-IP limits and connection
    /// caps (32–128; a /64 is one LAN).
    #[serde(with = "ipv6_prefix")]
    pub ipv6_prefix_len: otpgate_core::Ipv6Prefix,
    /// Longest a client may take to send a request's headers, counted from the moment the
    /// connection opens (or finishes its TLS handshake) or the previous answer was sent (1–60).
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) in bytes, 8192–1048576; larger ones get
    /// `431` and the connection is closed.
    pub max_header_bytes: usize,
    /// A connection with no request in flight and no bytes moving is closed after this many
    /// seconds (1–300).
    pub keep_alive_timeout_secs: u64,
    /// Open connections (TLS handshakes included) at once; past it a new connection is closed
    /// as soon as it is accepted.
    pub max_connections: usize,
    /// Open connections per client address (an IPv4 address or an IPv6 `ipv6_prefix_len`
    /// network) at once; past it a new one is closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Where `/metrics` and the detailed `/readyz` are served (`"127.0.0.1:9090"`); when set,
    /// the public listener answers `/metrics` with 404 and `/readyz` with its status only.
    /// Unset: `127.0.0.1:9090` in production, nothing in development (all on `listen`).
    #[serde(deserialize_with = "super::socket_addr::option")]
    pub admin_listen: Option<SocketAddr>,
    /// Origins (`https://app.example.com`) whose pages may call the API (CORS). Empty: no CORS.
    pub cors_allowed_origins: Vec<Origin>,
    /// Where the sign-in page served at `/` sends its API calls; unset: this server. Its origin
    /// is added to the page's CSP `connect-src` (and must allow the page's origin by CORS).
    pub page_api_base: Option<PageApiBase>,
}

/// `http.ipv6_prefix_len` as a number, checked into core's type here at the edge (core has no
/// serde: parsing configuration is the server's job).
mod ipv6_prefix {
    use otpgate_core::Ipv6Prefix;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv6Prefix, D::Error> {
        Ipv6Prefix::new(u8::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(prefix: &Ipv6Prefix, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(prefix.bits())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit_bytes: 4096,
            request_timeout_secs: 10,
            trusted_proxies: TrustedProxies::default(),
            client_ip_header: crate::client_ip::ClientIpHeader::default(),
            ipv6_prefix_len: otpgate_core::Ipv6Prefix::DEFAULT,
            header_read_timeout_secs: 5,
            max_header_bytes: 16 * 1024,
            keep_alive_timeout_secs: 5,
            max_connections: 4096,
            max_connections_per_ip: 64,
            cors_allowed_origins: Vec::new(),
            page_api_base: None,
            admin_listen: None,
        }
    }
}
