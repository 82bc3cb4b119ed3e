//! Request ids: every request gets one (a sane `X-Request-Id` from a proxy is kept), it is echoed
//! in the `X-Request-Id` response header, put on the request's log span, and available to error
//! bodies through a task-local, so an error can always be quoted back to the operator.
//!
//! The client's address is resolved here too, once per request (`client_ip`): the span carries
//! it as `client_ip` next to the socket `peer`, and handlers read it through `ClientIp`.

use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use tracing::Instrument;

use crate::client_ip::{ClientIp, ClientIpResolver};

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The current request's id, or `-` outside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// 26 characters of Crockford base32: 48 bits of milliseconds then 80 random bits, so ids sort by time.
pub fn generate() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    // From the thread's CSPRNG (seeded from the OS), not a getrandom system call per request: an
    // id must be unique and unguessable enough to quote, not a secret.
    let random: [u8; 10] = rand::random();
    let mut value: u128 = (millis & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (72 - 8 * i);
    }
    (0..26).rev().map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize])).collect()
}

/// `METRICS` and `ACCESS_LOG` are both true in every server; a benchmark build turns one off
/// to measure it (`crate::layers`), chosen when the router is built.
pub async fn middleware<const METRICS: bool, const ACCESS_LOG: bool>(
    State(resolver): State<Arc<ClientIpResolver>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(generate, str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(HEADER, value);
    }
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client_ip = peer.map(|peer| resolver.client_ip(peer.ip(), req.headers()));
    req.extensions_mut().insert(ClientIp(client_ip));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        // Formatted only when a subscriber records the span; absent without connection info.
        client_ip = client_ip.map(tracing::field::display),
        peer = peer.map(tracing::field::display),
    );
    // The route template (`/v1/verifications/{id}`), never the raw path: a label must not carry
    // ids or anything else a client chose.
    let labels = METRICS.then(|| {
        let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
        (route, req.method().as_str().to_owned())
    });
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Some((route, method)) = labels {
        metrics::counter!(
            "otpgate_http_requests_total",
            "route" => route.clone(),
            "method" => method.clone(),
            "status" => status.to_string()
        )
        .increment(1);
        metrics::histogram!("otpgate_http_request_duration_seconds", "route" => route, "method" => method)
            .record(elapsed.as_secs_f64());
    }
    if ACCESS_LOG {
        span.in_scope(|| {
            tracing::info!(status, latency_ms = elapsed.as_millis() as u64, "request done");
        });
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_acceptable_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 26);
        assert!(acceptable(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn junk_ids_are_replaced() {
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\ny"));
        assert!(!acceptable(&"a".repeat(65)));
        assert!(acceptable("01J-abc_1.2"));
    }
}
