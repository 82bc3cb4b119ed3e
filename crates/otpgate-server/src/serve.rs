//! The listeners: accepting connections, TLS handshakes, and the connection-level limits that
//! keep slow and idle clients from holding the server.
//!
//! `axum::serve` gives hyper no timer, so a client that never finishes its request headers
//! (slowloris) or never sends a byte holds a connection forever. Here every connection runs in
//! its own task under deadlines:
//!
//! - TLS: the handshake must finish within `tls.handshake_timeout_secs`, with at most
//!   `tls.max_handshakes_per_ip` in progress per client address;
//! - the first request's headers must be complete within `http.header_read_timeout_secs` of the
//!   connection opening (or its handshake finishing), whatever the protocol; for HTTP/1.1 hyper
//!   applies the same deadline to every later request, counted from when the connection went
//!   idle;
//! - a connection with no request in flight that starts no new request within
//!   `http.keep_alive_timeout_secs` is shut down (HTTP/2 gets a GOAWAY);
//! - request heads larger than `http.max_header_bytes` get `431` (HTTP/1.1) or a refused stream
//!   (HTTP/2, as its `SETTINGS_MAX_HEADER_LIST_SIZE`).
//!
//! Connections are capped overall (`http.max_connections`) and per client address
//! (`http.max_connections_per_ip`; an IPv6 client is its `http.ipv6_prefix_len` network, trusted
//! proxies are exempt). Past a cap a new connection is closed as soon as it is accepted: never
//! queued, so the accept loop always moves and a real client gets in as soon as a slot is free.
//! The listening sockets get a deep accept backlog (`bind`), so a burst of connections waits for
//! this loop instead of being dropped or reset by the kernel first.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use otpgate_core::{ClientKey, Ipv6Prefix};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::client_ip::TrustedProxies;
use crate::config::ConfigError;

/// The connection-level limits of a listener (see the module docs and `docs/configuration.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub ipv6_prefix: Ipv6Prefix,
    pub tls_handshake_timeout: Duration,
    pub max_tls_handshakes_per_ip: usize,
}

/// hyper refuses a smaller read buffer.
const MIN_HEADER_BYTES: usize = 8192;
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Streams one HTTP/2 connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 100;

impl EdgeSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::key(key, why));
        if !(1..=60).contains(&self.header_read_timeout.as_secs()) {
            return bad("http.header_read_timeout_secs", "must be between 1 and 60");
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.max_header_bytes) {
            return bad("http.max_header_bytes", "must be between 8192 and 1048576");
        }
        if !(1..=300).contains(&self.keep_alive_timeout.as_secs()) {
            return bad("http.keep_alive_timeout_secs", "must be between 1 and 300");
        }
        if self.max_connections == 0 {
            return bad("http.max_connections", "must be positive");
        }
        if self.max_connections_per_ip == 0 {
            return bad("http.max_connections_per_ip", "must be positive");
        }
        Ok(())
    }

    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            // The whole head must fit in the read buffer; past it hyper answers 431.
            .max_buf_size(self.max_header_bytes)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        builder
    }
}

/// Why a connection was closed by the edge rather than by its client.
#[derive(Debug, Clone, Copy)]
enum Closed {
    MaxConnections,
    MaxConnectionsPerIp,
    TlsHandshakesPerIp,
    TlsHandshakeTimeout,
    TlsHandshakeFailed,
    HeaderTimeout,
    Idle,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::MaxConnections => "max_connections",
            Closed::MaxConnectionsPerIp => "max_connections_per_ip",
            Closed::TlsHandshakesPerIp => "tls_handshakes_per_ip",
            Closed::TlsHandshakeTimeout => "tls_handshake_timeout",
            Closed::TlsHandshakeFailed => "tls_handshake_failed",
            Closed::HeaderTimeout => "header_timeout",
            Closed::Idle => "idle",
        }
    }

    fn record(self) {
        metrics::counter!("otpgate_connections_closed_total", "reason" => self.as_str()).increment(1);
        tracing::debug!(reason = self.as_str(), "connection closed by the server");
    }
}

/// Counts held slots overall and per client; a slot is given back when its `Slot` drops.
struct Slots {
    max_total: usize,
    max_per_client: usize,
    held: Mutex<(usize, HashMap<ClientKey, usize>)>,
}

struct Slot {
    slots: Arc<Slots>,
    client: Option<ClientKey>,
}

impl Slots {
    fn new(max_total: usize, max_per_client: usize) -> Arc<Slots> {
        Arc::new(Slots { max_total, max_per_client, held: Mutex::new((0, HashMap::new())) })
    }

    /// A slot for `client` (`None`: exempt from the per-client cap), or which cap is full.
    fn take(self: &Arc<Self>, client: Option<ClientKey>) -> Result<Slot, Full> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *held;
        if *total >= self.max_total {
            return Err(Full::Total);
        }
        if let Some(client) = client {
            let count = per_client.entry(client).or_insert(0);
            if *count >= self.max_per_client {
                return Err(Full::PerClient);
            }
            *count += 1;
        }
        *total += 1;
        Ok(Slot { slots: self.clone(), client })
    }

    fn open(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

enum Full {
    Total,
    PerClient,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(client) = self.client
            && let std::collections::hash_map::Entry::Occupied(mut entry) = per_client.entry(client)
        {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// One listener's shared parts.
struct Listener {
    router: Router,
    edge: EdgeSettings,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    /// Peers exempt from the per-client caps (their connections carry many clients).
    proxies: TrustedProxies,
    connections: Arc<Slots>,
    handshakes: Arc<Slots>,
    /// Which listener, in metrics (`public`, `admin`).
    name: &'static str,
}

/// What a listener serves and how.
pub struct ServeOptions {
    pub edge: EdgeSettings,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub trusted_proxies: TrustedProxies,
    pub name: &'static str,
}

/// Connections the kernel holds for `accept` (capped by `net.core.somaxconn`). The standard
/// library's 128 overflows under a burst of a few hundred connections, and the kernel then
/// drops or resets connections — real clients' too — before the caps here ever see them.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening socket with a backlog deep enough for connection bursts.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // Restart without waiting out TIME_WAIT, as the standard library does.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, closes
/// connections that have not sent a request yet, lets requests in flight finish, and returns
/// when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let edge = options.edge;
    let shared = Arc::new(Listener {
        router,
        builder: edge.builder(),
        tls: options.tls.map(TlsAcceptor::from),
        proxies: options.trusted_proxies,
        connections: Slots::new(edge.max_connections, edge.max_connections_per_ip),
        // Handshakes are connections too, so the overall cap is `max_connections`.
        handshakes: Slots::new(usize::MAX, edge.max_tls_handshakes_per_ip),
        edge,
        name: options.name,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning. The
                    // caps keep this rare (`raise_fd_limit`, `http.max_connections`).
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let client = (!shared.proxies.contains(peer.ip())).then(|| ClientKey::new(peer.ip(), shared.edge.ipv6_prefix));
        let slot = match shared.connections.take(client) {
            Ok(slot) => slot,
            Err(full) => {
                // Dropping the stream closes it now: a client past a cap is not queued.
                drop(tcp);
                match full {
                    Full::Total => Closed::MaxConnections,
                    Full::PerClient => Closed::MaxConnectionsPerIp,
                }
                .record();
                continue;
            }
        };
        metrics::gauge!("otpgate_connections_open", "listener" => shared.name).set(shared.connections.open() as f64);
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(&shared, tcp, peer, client, stop).await;
            drop(slot);
            metrics::gauge!("otpgate_connections_open", "listener" => shared.name)
                .set(shared.connections.open() as f64);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Every connection task holds a receiver: this resolves when the last one has ended.
    stop_tx.closed().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    shared: &Listener,
    tcp: TcpStream,
    peer: SocketAddr,
    client: Option<ClientKey>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = &shared.tls else {
        return http(shared, TokioIo::new(tcp), peer, stop).await;
    };
    let Ok(handshake_slot) = shared.handshakes.take(client) else {
        return Closed::TlsHandshakesPerIp.record();
    };
    let handshake = tokio::time::timeout(shared.edge.tls_handshake_timeout, acceptor.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) => return Closed::TlsHandshakeFailed.record(),
            Err(_) => return Closed::TlsHandshakeTimeout.record(),
        },
        _ = stop.wait_for(|stopped| *stopped) => return,
    };
    drop(handshake_slot);
    http(shared, TokioIo::new(stream), peer, stop).await;
}

/// What the watchdog of one connection knows about its requests.
struct Activity {
    /// Requests whose handler has not finished.
    in_flight: usize,
    /// Requests whose head has arrived.
    started: u64,
    /// When a request last started or finished.
    changed: Instant,
}

/// A connection's `Activity`, shared by its requests and its watchdog. The watchdog is not
/// woken by requests (two wake-ups per request cost ~15% of a send's throughput): it looks at
/// the activity when its own deadline comes, at least every `keep_alive_timeout`.
struct Watched(Mutex<Activity>);

impl Watched {
    fn new(opened: Instant) -> Arc<Watched> {
        Arc::new(Watched(Mutex::new(Activity { in_flight: 0, started: 0, changed: opened })))
    }

    fn update<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A request counted in its connection's `Activity` until it drops.
struct InFlight(Arc<Watched>);

impl InFlight {
    fn enter(watched: &Arc<Watched>) -> InFlight {
        watched.update(|a| {
            a.in_flight += 1;
            a.started += 1;
            a.changed = Instant::now();
        });
        InFlight(watched.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|a| {
            a.in_flight -= 1;
            a.changed = Instant::now();
        });
    }
}

/// What the watchdog does when it wakes at `now`.
enum Verdict {
    /// Look again then.
    Sleep(Instant),
    /// The first request's head is late: close.
    HeaderTimeout,
    /// No request for a whole keep-alive period: shut down.
    Idle,
}

fn verdict(a: &Activity, opened: Instant, now: Instant, edge: &EdgeSettings) -> Verdict {
    // Never sleep longer than one idle period, so the idle deadline is never overslept.
    let look_again = |at: Instant| Verdict::Sleep(at.min(now + edge.keep_alive_timeout));
    match (a.started, a.in_flight) {
        (0, _) if now >= opened + edge.header_read_timeout => Verdict::HeaderTimeout,
        (0, _) => look_again(opened + edge.header_read_timeout),
        // A request in flight is bounded by the request deadline, not by this watchdog.
        (_, 1..) => look_again(now + edge.keep_alive_timeout),
        (_, 0) if now >= a.changed + edge.keep_alive_timeout => Verdict::Idle,
        (_, 0) => look_again(a.changed + edge.keep_alive_timeout),
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by the first bytes) on one connection under the deadlines.
async fn http<I>(shared: &Listener, io: TokioIo<I>, peer: SocketAddr, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let opened = Instant::now();
    let watched = Watched::new(opened);
    let router = shared.router.clone();
    let counted = watched.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` would add: handlers read the peer from it.
        req.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = InFlight::enter(&counted);
        let router = router.clone();
        async move {
            let response = router.oneshot(req).await;
            drop(in_flight);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let conn = shared.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let edge = &shared.edge;
    let watchdog = tokio::time::sleep_until(opened + edge.header_read_timeout.min(edge.keep_alive_timeout));
    tokio::pin!(watchdog);
    let stopped = stop.wait_for(|stopped| *stopped);
    tokio::pin!(stopped);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            // The connection first: it is what wakes this task for nearly every poll.
            biased;
            ended = conn.as_mut() => {
                // hyper's own HTTP/1.1 header deadline, on a later request of the connection.
                if let Err(e) = ended
                    && e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
                {
                    Closed::HeaderTimeout.record();
                }
                return;
            }
            _ = &mut stopped, if !shutting_down => {
                if watched.update(|a| a.started) == 0 {
                    return; // nothing asked yet, nothing to finish
                }
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            () = &mut watchdog => {
                let now = Instant::now();
                match watched.update(|a| verdict(a, opened, now, edge)) {
                    Verdict::Sleep(at) => watchdog.as_mut().reset(at),
                    Verdict::HeaderTimeout => return Closed::HeaderTimeout.record(),
                    // Asked to finish and still open a whole idle period later: drop it.
                    Verdict::Idle if shutting_down => return,
                    Verdict::Idle => {
                        Closed::Idle.record();
                        conn.as_mut().graceful_shutdown();
                        shutting_down = true;
                        // One more idle period to say goodbye (HTTP/2 GOAWAY), then dropped.
                        watched.update(|a| a.changed = now);
                        watchdog.as_mut().reset(now + edge.keep_alive_timeout);
                    }
                }
            }
        }
    }
}

/// Lifts the soft limit on open files to the hard limit (as Go does at start), so
/// `http.max_connections` is reachable before `accept` fails for want of descriptors. Answers
/// the soft limit in force afterwards.
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> Option<ClientKey> {
        Some(ClientKey::new(ip.parse().unwrap(), Ipv6Prefix::DEFAULT))
    }

    #[test]
    fn slots_cap_overall_and_per_client_and_come_back_on_drop() {
        let slots = Slots::new(4, 2);
        let a1 = slots.take(key("192.0.2.1")).ok().unwrap();
        let _a2 = slots.take(key("192.0.2.1")).ok().unwrap();
        assert!(matches!(slots.take(key("192.0.2.1")), Err(Full::PerClient)));
        // Another address of the same IPv6 /64 is the same client.
        let _b1 = slots.take(key("2001:db8::1")).ok().unwrap();
        let _b2 = slots.take(key("2001:db8::2")).ok().unwrap();
        assert!(matches!(slots.take(key("2001:db8::3")), Err(Full::Total)));
        drop(a1);
        assert!(matches!(slots.take(key("2001:db8::3")), Err(Full::PerClient)));
        let _exempt = slots.take(None).ok().expect("a trusted proxy is only under the overall cap");
        assert!(matches!(slots.take(None), Err(Full::Total)));
        assert_eq!(slots.open(), 4);
    }

    #[test]
    fn settings_are_checked_naming_the_key() {
        let ok = crate::Config::default().edge();
        assert!(ok.validate().is_ok());
        for (edit, key) in [
            (
                &(|e: &mut EdgeSettings| e.max_header_bytes = 4096) as &dyn Fn(&mut EdgeSettings),
                "http.max_header_bytes",
            ),
            (&|e: &mut EdgeSettings| e.header_read_timeout = Duration::ZERO, "http.header_read_timeout_secs"),
            (&|e: &mut EdgeSettings| e.keep_alive_timeout = Duration::from_secs(301), "http.keep_alive_timeout_secs"),
            (&|e: &mut EdgeSettings| e.max_connections = 0, "http.max_connections"),
            (&|e: &mut EdgeSettings| e.max_connections_per_ip = 0, "http.max_connections_per_ip"),
        ] {
            let mut e = ok.clone();
            edit(&mut e);
            assert!(e.validate().unwrap_err().to_string().contains(key), "{key}");
        }
    }
}
