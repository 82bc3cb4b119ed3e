//! Who a per-client limit counts. An IPv4 address is one client; an IPv6 client is its network
//! prefix (a /64 by default), because anyone given a /64 — a home router, a cloud VM — can pick
//! any of its 2^64 addresses for each request. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
//! what a dual-stack socket reports for an IPv4 peer) is the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How many leading bits of an IPv6 address name one client (32–128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(u8);

impl TryFrom<u8> for Ipv6Prefix {
    type Error = String;

    fn try_from(len: u8) -> Result<Self, String> {
        Ipv6Prefix::new(len)
    }
}

impl From<Ipv6Prefix> for u8 {
    fn from(prefix: Ipv6Prefix) -> u8 {
        prefix.0
    }
}

impl Ipv6Prefix {
    /// A /64: one LAN, the smallest block providers hand out.
    pub const DEFAULT: Ipv6Prefix = Ipv6Prefix(64);
    /// Shorter than a /32 (a whole provider's allocation) would put unrelated networks in one
    /// bucket; a value that short is a mistake, not a policy.
    pub const RANGE: std::ops::RangeInclusive<u8> = 32..=128;

    pub fn new(len: u8) -> Result<Ipv6Prefix, String> {
        if Self::RANGE.contains(&len) {
            Ok(Ipv6Prefix(len))
        } else {
            Err(format!("must be between {} and {}, not {len}", Self::RANGE.start(), Self::RANGE.end()))
        }
    }

    pub fn bits(self) -> u8 {
        self.0
    }
}

impl Default for Ipv6Prefix {
    fn default() -> Self {
        Ipv6Prefix::DEFAULT
    }
}

/// One client for per-client limits: an IPv4 address or an IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(Ipv4Addr),
    /// The network address (host bits zero) and its prefix length.
    V6(Ipv6Addr, u8),
}

impl ClientKey {
    pub fn new(ip: IpAddr, prefix: Ipv6Prefix) -> ClientKey {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => {
                let len = u32::from(prefix.bits());
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                ClientKey::V6(Ipv6Addr::from(u128::from(v6) & mask), prefix.bits())
            }
        }
    }
}

/// `203.0.113.7`, `2001:db8:1:2::/64`: stable, so it can name a limit bucket.
impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(v4) => write!(f, "{v4}"),
            ClientKey::V6(net, len) => write!(f, "{net}/{len}"),
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) as the IPv4 address it is; anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> ClientKey {
        ClientKey::new(ip.parse().unwrap(), Ipv6Prefix::DEFAULT)
    }

    #[test]
    fn one_slash_64_is_one_client_and_two_are_two() {
        let one: std::collections::HashSet<_> = (1..=15).map(|i| key(&format!("2001:db8:1:2::{i:x}"))).collect();
        assert_eq!(one.len(), 1);
        assert_eq!(one.iter().next().unwrap().to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_and_mapped_ipv4_are_one_client_each_address() {
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn the_prefix_length_is_configurable_and_bounded() {
        let ip: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(ClientKey::new(ip, Ipv6Prefix::new(48).unwrap()).to_string(), "2001:db8:1::/48");
        assert_eq!(ClientKey::new(ip, Ipv6Prefix::new(128).unwrap()).to_string(), "2001:db8:1:2:3:4:5:6/128");
        assert_eq!(ClientKey::new(ip, Ipv6Prefix::new(56).unwrap()).to_string(), "2001:db8:1::/56");
        for bad in [0, 8, 31, 129] {
            assert!(Ipv6Prefix::new(bad).is_err(), "{bad}");
        }
    }
}
