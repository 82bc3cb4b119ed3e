//! Request ids: every request gets one (a sane `X-Request-Id` from a proxy is kept), it is echoed
//! in the `X-Request-Id` response header, put on the request's log span, and available to error
//! bodies through a task-local, so an error can always be quoted back to the operator.
//!
//! The client's address is resolved here too, once per request (`client_ip`): the span carries
//! it as `client_ip` next to the socket `peer`, and handlers read it through `ClientIp`.

use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
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

/// What the edge middleware needs: how to find the client's address, and the request deadline.
pub struct Edge {
    pub resolver: ClientIpResolver,
    pub timeout: std::time::Duration,
}

/// The edge of every request: its id, the client address, the span, the request metrics and
/// the access log, and with `EDGE` the security headers and the whole-request deadline too (one
/// middleware, not three layers: each layer is a boxed future and a cloned service per request).
/// `METRICS`, `ACCESS_LOG` and `EDGE` are all true in every server; a benchmark build turns one
/// off to measure it (`crate::layers`), chosen when the router is built.
pub async fn middleware<const METRICS: bool, const ACCESS_LOG: bool, const EDGE: bool>(
    State(edge): State<Arc<Edge>>,
    mut req: Request,
    next: Next,
) -> Response {
    let resolver = &edge.resolver;
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(generate, str::to_owned);
    let id_header = HeaderValue::from_str(&id).ok();
    if let Some(value) = &id_header {
        req.headers_mut().insert(HEADER, value.clone());
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
        let route = req.extensions().get::<MatchedPath>().cloned();
        (route, req.method().clone())
    });
    let started = std::time::Instant::now();
    let inner = async {
        if EDGE {
            let mut response = crate::startup::within(edge.timeout, next.run(req)).await;
            crate::startup::add_security_headers(&mut response);
            response
        } else {
            next.run(req).await
        }
    };
    let mut response = REQUEST_ID.scope(id.clone(), inner.instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Some((route, method)) = labels {
        record(route.as_ref().map_or("unmatched", MatchedPath::as_str), &method, status, elapsed);
    }
    if ACCESS_LOG {
        span.in_scope(|| {
            tracing::info!(status, latency_ms = elapsed.as_millis() as u64, "request done");
        });
    }
    if let Some(value) = id_header {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// One request's counter and duration handles.
type Handles = (metrics::Counter, metrics::Histogram);

/// Per route template: the handles of each method and status seen.
type RouteHandles = std::collections::HashMap<String, Vec<(Method, u16, Handles)>>;

thread_local! {
    /// The handles of each route, method and status this worker thread has answered. Looking a
    /// metric up by its labels builds and hashes a key of owned strings and searches the
    /// registry, for every request; a handle is the registry's own entry, so recording through
    /// a kept one counts the same. The set is bounded by the routes, the methods and the
    /// statuses (an unmatched path is the one route `unmatched`).
    static HANDLES: std::cell::RefCell<RouteHandles> = std::cell::RefCell::default();
}

/// Counts the request and records its duration (`otpgate_http_requests_total`,
/// `otpgate_http_request_duration_seconds`), labelled by the route template (never the raw path:
/// a label must not carry ids or anything else a client chose), the method and the status.
fn record(route: &str, method: &Method, status: u16, elapsed: std::time::Duration) {
    HANDLES.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), Vec::new());
        }
        let Some(entries) = routes.get_mut(route) else { return };
        let index = match entries.iter().position(|(m, s, _)| m == method && *s == status) {
            Some(index) => index,
            None => {
                let (r, m) = (route.to_owned(), method.as_str().to_owned());
                let counter = metrics::counter!(
                    "otpgate_http_requests_total",
                    "route" => r.clone(),
                    "method" => m.clone(),
                    "status" => status.to_string()
                );
                let histogram =
                    metrics::histogram!("otpgate_http_request_duration_seconds", "route" => r, "method" => m);
                entries.push((method.clone(), status, (counter, histogram)));
                entries.len() - 1
            }
        };
        let (counter, histogram) = &entries[index].2;
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
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
