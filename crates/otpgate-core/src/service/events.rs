//! The security events of the send and check flows.

use std::net::IpAddr;
use std::time::Duration;

use tracing::warn;

use crate::limits::LimitScope;

pub(super) fn security_event_limit(
    scope: LimitScope,
    masked: &str,
    country: &str,
    client_ip: Option<IpAddr>,
    retry_after: Duration,
) {
    metrics::counter!("otpgate_limit_hits_total", "scope" => scope.as_str()).increment(1);
    warn!(
        event = "otp.limit",
        outcome = "rate_limited",
        scope = scope.as_str(),
        phone = %masked,
        country = %country,
        client_ip = %ip_field(client_ip),
        retry_after_ms = retry_after.as_millis() as u64,
    );
}

/// The client's address in a security event (the resolved client, never a proxy), `-` when
/// unknown.
pub(super) fn ip_field(client_ip: Option<IpAddr>) -> impl std::fmt::Display {
    struct Field(Option<IpAddr>);
    impl std::fmt::Display for Field {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0 {
                Some(ip) => write!(f, "{ip}"),
                None => f.write_str("-"),
            }
        }
    }
    Field(client_ip)
}
