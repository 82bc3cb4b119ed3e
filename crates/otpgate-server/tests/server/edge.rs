//! The listener under slow and idle clients: request-head deadlines, the head size cap (431),
//! the keep-alive idle timeout, and the caps on connections overall and per client address.
//!
//! Loopback has a whole /8: attackers here connect from 127.0.0.2 and up, so the per-address
//! cap meets them the way it would on the internet, and the normal client (127.0.0.1) is
//! another address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use otpgate_server::Config;
use otpgate_server::client_ip::TrustedProxies;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, timeout};

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to `to` from the loopback address 127.0.0.`from`.
async fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0)).unwrap();
    socket.connect(to).await.unwrap_or_else(|e| panic!("connect from 127.0.0.{from}: {e}"))
}

/// Reads until the server closes the connection (what it sent), or `None` if it is still open
/// after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        match timeout(deadline.saturating_duration_since(Instant::now()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Descriptors for `needed` more sockets, or a loud failure (never a silent pass).
fn ensure_fds(needed: u64) {
    let limit = otpgate_server::serve::raise_fd_limit().unwrap_or(u64::MAX);
    assert!(limit >= needed, "this test needs {needed} open files; the hard limit allows {limit} (ulimit -Hn)");
}

async fn app(configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(configure, otpgate_server::Overrides::default()).await
}

/// Within 1 s, twice: `/healthz`, and a send (demo provider) to a number not used before.
async fn normal_client_is_served(app: &TestApp) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    for _ in 0..2 {
        let started = Instant::now();
        let health = timeout(Duration::from_secs(1), app.get("/healthz")).await.expect("/healthz within 1 s");
        assert_eq!(health.status, 200);
        let phone = format!("+1415555{:04}", 300 + NEXT.fetch_add(1, Ordering::SeqCst));
        let sent = timeout(Duration::from_secs(1), app.send(&phone)).await.expect("a send within 1 s");
        assert_eq!(sent.status, 201, "{}", sent.text);
        eprintln!("normal client: healthz + send in {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn five_hundred_slow_clients_neither_delay_a_normal_client_nor_outlive_the_header_timeout() {
    const SLOW: usize = 500;
    const SOURCES: u8 = 50; // 127.0.0.2 ..= 127.0.0.51, 10 connections each
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    ensure_fds(3 * SLOW as u64 + 256);
    let app = app(|c| {
        c.http.header_read_timeout_secs = HEADER_TIMEOUT.as_secs();
        // Spelled out: the slow clients stay under both caps, so every one of them is held
        // until the header timeout ends it (the caps have their own tests below).
        c.http.max_connections = 4096;
        c.http.max_connections_per_ip = 64;
    })
    .await;
    let to = addr(&app);
    // Warm up (allocator, pools), then the baseline.
    normal_client_is_served(&app).await;
    sleep(Duration::from_millis(200)).await;
    let rss_before = proc_status_kib("VmRSS:");

    let open = Arc::new(AtomicUsize::new(0));
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..SLOW {
        let from = 2 + (i % SOURCES as usize) as u8;
        let open = open.clone();
        slow.spawn(async move {
            let mut stream = connect_from(from, to).await;
            let opened = Instant::now();
            // A request head that never ends: a header line every 100 ms.
            stream
                .write_all(b"POST /v1/verifications HTTP/1.1\r\nhost: otpgate\r\ncontent-type: application/json\r\n")
                .await
                .unwrap();
            open.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let mut n = 0u32;
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {} // an error answer; the close follows
                    },
                    () = sleep(Duration::from_millis(100)) => {
                        n += 1;
                        let line = format!("x-slow-{n}: {}\r\n", "a".repeat(200));
                        if stream.write_all(line.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
            opened.elapsed()
        });
    }
    let all_open_t = Instant::now();
    let all_open = Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) < SLOW {
        assert!(Instant::now() < all_open, "only {} slow connections got going", open.load(Ordering::SeqCst));
        sleep(Duration::from_millis(10)).await;
    }
    eprintln!("all open after {:?}", all_open_t.elapsed());
    sleep(Duration::from_millis(300)).await;
    assert_eq!(open.load(Ordering::SeqCst), SLOW, "every slow connection is held, none shed by a cap");

    normal_client_is_served(&app).await;
    let mut rss_peak = proc_status_kib("VmRSS:");

    let mut lifetimes = Vec::new();
    let all_closed = timeout(HEADER_TIMEOUT + Duration::from_secs(5), async {
        while let Some(lifetime) = slow.join_next().await {
            lifetimes.push(lifetime.unwrap());
            rss_peak = rss_peak.max(proc_status_kib("VmRSS:"));
        }
    })
    .await;
    assert!(all_closed.is_ok(), "{} slow connections still open", open.load(Ordering::SeqCst));
    let longest = lifetimes.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{SLOW} slow connections closed after {:?}..{longest:?}; RSS {rss_before} KiB -> peak {rss_peak} KiB",
        lifetimes.iter().min().unwrap()
    );
    // Closed by the header timeout (plus scheduling slack), not by the test ending.
    assert!(longest <= HEADER_TIMEOUT + Duration::from_millis(1500), "a slow connection lived {longest:?}");
    assert!(rss_peak < rss_before + 32 * 1024, "memory grew by {} KiB", rss_peak.saturating_sub(rss_before));
    normal_client_is_served(&app).await;
}

#[tokio::test]
async fn a_request_head_past_max_header_bytes_gets_431() {
    let app = app(|_| {}).await;
    let to = addr(&app);
    let head = |size: usize| format!("GET /healthz HTTP/1.1\r\nhost: otpgate\r\nx-big: {}\r\n\r\n", "b".repeat(size));
    let mut stream = connect_from(1, to).await;
    stream.write_all(head(12 * 1024).as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = timeout(Duration::from_secs(2), stream.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "12 KiB is within the 16 KiB default");

    let mut stream = connect_from(1, to).await;
    // Written in the background: the server may answer and close before reading it all.
    let big = head(20 * 1024);
    let (mut read, mut write) = stream.split();
    let (_, answer) = tokio::join!(write.write_all(big.as_bytes()), closed_within_half(&mut read));
    let answer = String::from_utf8_lossy(&answer.expect("closed after the answer")).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // HTTP/2 (prior knowledge on the plain port): the same cap, as SETTINGS_MAX_HEADER_LIST_SIZE.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let ok = h2.get(app.url("/healthz")).header("x-big", "b".repeat(8 * 1024)).send().await.unwrap();
    assert_eq!((ok.version(), ok.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    let refused = h2.get(app.url("/healthz")).header("x-big", "b".repeat(20 * 1024)).send().await;
    assert!(refused.is_err() || refused.as_ref().unwrap().status() == 431, "{refused:?}");
}

async fn closed_within_half(read: &mut tokio::net::tcp::ReadHalf<'_>) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(Duration::from_secs(3), read.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let app = app(|c| {
        c.http.header_read_timeout_secs = 1;
        c.http.keep_alive_timeout_secs = 30;
    })
    .await;
    let to = addr(&app);
    // Nothing at all; the HTTP/2 preface and nothing after it; half a request head.
    let mut silent = connect_from(3, to).await;
    let mut preface = connect_from(3, to).await;
    preface.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut half = connect_from(3, to).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\n").await.unwrap();
    // A second request on a kept-alive connection, its head never finished.
    let mut second = connect_from(3, to).await;
    second.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = timeout(Duration::from_secs(1), second.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    second.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\n").await.unwrap();
    let started = Instant::now();
    let streams = [
        ("silent", &mut silent),
        ("h2 preface", &mut preface),
        ("half a head", &mut half),
        ("half a second head", &mut second),
    ];
    for (name, stream) in streams {
        assert!(closed_within(stream, Duration::from_secs(3)).await.is_some(), "{name} still open");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed before the timeout: {took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let app = app(|c| {
        c.http.header_read_timeout_secs = 10;
        c.http.keep_alive_timeout_secs = 1;
    })
    .await;
    let mut stream = connect_from(4, addr(&app)).await;
    for _ in 0..2 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = timeout(Duration::from_secs(2), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "keep-alive: two requests on one connection");
        sleep(Duration::from_millis(500)).await;
    }
    let idle = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(4)).await.is_some(), "idle connection kept open");
    let after = idle.elapsed();
    assert!(
        after < Duration::from_millis(2500),
        "closed by the keep-alive timeout (1 s), not the header one: {after:?}"
    );
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once_and_others_still_get_in() {
    let app = app(|c| {
        c.http.max_connections_per_ip = 8;
        c.http.trusted_proxies = TrustedProxies::parse(&["127.0.0.12"]).unwrap();
    })
    .await;
    let to = addr(&app);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_from(10, to).await);
    }
    sleep(Duration::from_millis(100)).await;
    for stream in &mut held {
        assert!(closed_within(stream, Duration::from_millis(50)).await.is_none(), "within the cap: held");
    }
    let started = Instant::now();
    let mut extra = connect_from(10, to).await;
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await.is_some(), "the 9th from one address is closed");
    assert!(started.elapsed() < Duration::from_millis(500), "closed at once, not queued");

    // Another address is another client.
    let mut other = connect_from(11, to).await;
    other.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\nconnection: close\r\n\r\n").await.unwrap();
    let answer = closed_within(&mut other, Duration::from_secs(2)).await.expect("answered and closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"));

    // A trusted proxy carries many clients: only the overall cap applies to it.
    let mut proxied = Vec::new();
    for _ in 0..12 {
        proxied.push(connect_from(12, to).await);
    }
    sleep(Duration::from_millis(100)).await;
    for stream in &mut proxied {
        assert!(closed_within(stream, Duration::from_millis(50)).await.is_none(), "a trusted proxy is exempt");
    }

    // A slot comes back when its connection closes.
    drop(held.pop());
    sleep(Duration::from_millis(100)).await;
    let mut again = connect_from(10, to).await;
    again.write_all(b"GET /healthz HTTP/1.1\r\nhost: otpgate\r\nconnection: close\r\n\r\n").await.unwrap();
    let answer = closed_within(&mut again, Duration::from_secs(2)).await.expect("answered");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn connections_past_the_overall_cap_are_closed_at_once() {
    let app = app(|c| {
        c.http.max_connections = 10;
        c.http.max_connections_per_ip = 10;
    })
    .await;
    let to = addr(&app);
    let mut held = Vec::new();
    for i in 0..10 {
        held.push(connect_from(20 + i, to).await);
    }
    sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut extra = connect_from(40, to).await;
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await.is_some(), "the 11th connection is closed");
    assert!(started.elapsed() < Duration::from_millis(500), "closed at once, not queued");
    drop(held);
    sleep(Duration::from_millis(100)).await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, 200, "served again once connections closed");
    let sent = app.post_json("/v1/verifications", &json!({"phone": "+15005550006"})).await;
    assert_eq!(sent.status, 201);
}

#[test]
fn the_edge_keys_load_with_their_defaults_and_bad_values_are_named() {
    let load = |pairs: &[(&str, &str)]| {
        let env: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_from(None, &env)
    };
    let defaults = load(&[]).unwrap();
    let h = &defaults.http;
    assert_eq!(h.client_ip_header, otpgate_server::client_ip::ClientIpHeader::XForwardedFor);
    assert_eq!(h.ipv6_prefix_len.bits(), 64);
    assert_eq!((h.header_read_timeout_secs, h.max_header_bytes, h.keep_alive_timeout_secs), (5, 16 * 1024, 5));
    assert_eq!((h.max_connections, h.max_connections_per_ip), (4096, 64));
    assert_eq!((defaults.tls.handshake_timeout_secs, defaults.tls.max_handshakes_per_ip), (3, 16));

    let set = load(&[
        ("OTPGATE_HTTP__CLIENT_IP_HEADER", "forwarded"),
        ("OTPGATE_HTTP__IPV6_PREFIX_LEN", "56"),
        ("OTPGATE_HTTP__MAX_HEADER_BYTES", "32768"),
    ])
    .unwrap();
    assert_eq!(set.http.client_ip_header, otpgate_server::client_ip::ClientIpHeader::Forwarded);
    assert_eq!((set.http.ipv6_prefix_len.bits(), set.http.max_header_bytes), (56, 32768));

    for (key, value, named) in [
        ("OTPGATE_HTTP__CLIENT_IP_HEADER", "x-client-ip", "http.client_ip_header"),
        ("OTPGATE_HTTP__IPV6_PREFIX_LEN", "16", "http.ipv6_prefix_len"),
        ("OTPGATE_HTTP__IPV6_PREFIX_LEN", "129", "http.ipv6_prefix_len"),
        ("OTPGATE_HTTP__MAX_HEADER_BYTES", "1024", "http.max_header_bytes"),
        ("OTPGATE_HTTP__HEADER_READ_TIMEOUT_SECS", "0", "http.header_read_timeout_secs"),
        ("OTPGATE_HTTP__KEEP_ALIVE_TIMEOUT_SECS", "0", "http.keep_alive_timeout_secs"),
        ("OTPGATE_HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
        ("OTPGATE_HTTP__MAX_CONNECTIONS_PER_IP", "0", "http.max_connections_per_ip"),
        ("OTPGATE_TLS__HANDSHAKE_TIMEOUT_SECS", "0", "tls.handshake_timeout_secs"),
        ("OTPGATE_TLS__MAX_HANDSHAKES_PER_IP", "0", "tls.max_handshakes_per_ip"),
    ] {
        let err = load(&[(key, value)]).unwrap_err().to_string();
        assert!(err.contains(named), "{key}={value}: {err}");
    }
}
