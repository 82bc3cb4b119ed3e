//! The connection flood of `bench/flood.sh`: slow and idle connections held against a running
//! otpgate on loopback, while a normal client keeps asking; reports how many flood connections
//! the server held, how it ended them, its memory, and the normal client's latency.
//!
//!   flood ADDR SECONDS SERVER_PID [--tls CERT_PEM] [--slow N] [--idle N] [--sources K]
//!
//! - `--slow N` connections send a request head that never ends: 1 KiB of header lines every
//!   100 ms (over TLS: after a finished handshake).
//! - `--idle N` connections send nothing at all (over TLS: never a ClientHello).
//! - They come from `--sources K` loopback addresses, 127.0.0.2 and up (loopback is a /8), and
//!   each one reconnects 100 ms after the server closes it, as an attacker holding slots would.
//! - The normal client, from 127.0.0.1, opens a new connection (and TLS handshake) for each
//!   request: `GET /healthz` every 100 ms and a send every 500 ms; a request not answered within
//!   5 s counts as failed.
//!
//! Prints a summary (one `key: value` per line) and a Markdown table row; every run is bounded by
//! SECONDS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

struct Args {
    addr: SocketAddr,
    seconds: u64,
    server_pid: u32,
    cert: Option<String>,
    slow: usize,
    idle: usize,
    sources: u8,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: flood ADDR SECONDS SERVER_PID [--tls CERT_PEM] [--slow N] [--idle N] [--sources K]");
        std::process::exit(2)
    };
    if argv.len() < 4 {
        usage();
    }
    let mut a = Args {
        addr: argv[1].parse().unwrap_or_else(|_| usage()),
        seconds: argv[2].parse().unwrap_or_else(|_| usage()),
        server_pid: argv[3].parse().unwrap_or_else(|_| usage()),
        cert: None,
        slow: 500,
        idle: 500,
        sources: 50,
    };
    let mut rest = argv[4..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--tls" => a.cert = Some(value.clone()),
            "--slow" => a.slow = value.parse().unwrap_or_else(|_| usage()),
            "--idle" => a.idle = value.parse().unwrap_or_else(|_| usage()),
            "--sources" => a.sources = value.parse().ok().filter(|k| (1..=250).contains(k)).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    assert!(a.addr.ip().is_loopback(), "the flood runs against loopback only");
    a
}

/// What the flood saw.
#[derive(Default)]
struct FloodStats {
    /// Flood connections open right now.
    open: AtomicU64,
    /// Connections made (first ones and reconnects).
    opened: AtomicU64,
    /// Connections the server ended (EOF or reset), and their total lifetime in ms.
    closed_by_server: AtomicU64,
    lifetime_ms: AtomicU64,
    /// Connections the server ended within 50 ms of accepting them (shed by a cap).
    shed: AtomicU64,
    /// Connection attempts that failed outright.
    refused: AtomicU64,
}

async fn connect_from(source: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, source)), 0))?;
    socket.connect(to).await
}

/// Holds one flood slot until `end`: connect, misbehave until the server closes, reconnect.
async fn hold(
    slow: bool,
    source: u8,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    stats: Arc<FloodStats>,
    end: Instant,
) {
    while Instant::now() < end {
        let Ok(tcp) = connect_from(source, addr).await else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        stats.opened.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let closed = match (&tls, slow) {
            (Some(connector), true) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                match tokio::time::timeout_at(end.into(), connector.connect(name, tcp)).await {
                    Ok(Ok(stream)) => misbehave(stream, true, end).await,
                    Ok(Err(_)) => true,
                    Err(_) => false,
                }
            }
            (_, slow) => misbehave(tcp, slow, end).await,
        };
        stats.open.fetch_sub(1, Ordering::Relaxed);
        if closed {
            let lived = started.elapsed();
            stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
            stats.lifetime_ms.fetch_add(lived.as_millis() as u64, Ordering::Relaxed);
            if lived < Duration::from_millis(50) {
                stats.shed.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Slow: a request head that never ends. Idle: nothing. Answers whether the server closed the
/// connection (rather than the run ending).
async fn misbehave<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, slow: bool, end: Instant) -> bool {
    let line = format!("x-slow: {}\r\n", "a".repeat(1014));
    if slow && stream.write_all(b"POST /v1/verifications HTTP/1.1\r\nhost: otpgate\r\n").await.is_err() {
        return true;
    }
    let mut buf = [0u8; 1024];
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(100));
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {} // an error answer (431): the close follows
            },
            () = tick, if slow => {
                if stream.write_all(line.as_bytes()).await.is_err() {
                    return true;
                }
            }
            () = tokio::time::sleep_until(end.into()) => return false,
        }
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let (tls, client) = match &a.cert {
        Some(pem) => {
            let pem = std::fs::read(pem).expect("the certificate file");
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.expect("a PEM certificate")).expect("a usable certificate");
            }
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let client = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("certificate")])
                .resolve("localhost", a.addr)
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            (Some(tokio_rustls::TlsConnector::from(Arc::new(config))), client)
        }
        None => {
            let client =
                reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(5)).build().unwrap();
            (None, client)
        }
    };
    let base = match &tls {
        Some(_) => format!("https://localhost:{}", a.addr.port()),
        None => format!("http://{}", a.addr),
    };

    let rss_start = rss_kib(a.server_pid, "VmRSS:");
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let stats = Arc::new(FloodStats::default());
    for i in 0..a.slow + a.idle {
        let source = 2 + (i % usize::from(a.sources)) as u8;
        tokio::spawn(hold(i < a.slow, source, a.addr, tls.clone(), stats.clone(), end));
    }

    // The normal client, and the samples.
    let healthz_latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let send_latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let mut normal = tokio::task::JoinSet::new();
    let mut held_peak = 0;
    let mut held_samples = Vec::new();
    let mut rss_peak = rss_start;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        n += 1;
        let send = n.is_multiple_of(5);
        let (client, base, failed) = (client.clone(), base.clone(), failed.clone());
        let latencies = if send { send_latencies.clone() } else { healthz_latencies.clone() };
        normal.spawn(async move {
            let started = Instant::now();
            let request = if send {
                let phone = format!("+1415{:03}{:04}", 200 + (n / 10_000) % 800, n % 10_000);
                client.post(format!("{base}/v1/verifications")).json(&serde_json::json!({ "phone": phone }))
            } else {
                client.get(format!("{base}/healthz"))
            };
            match request.send().await {
                Ok(r) if r.status().is_success() => latencies.lock().unwrap().push(started.elapsed()),
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        if n.is_multiple_of(10) {
            let held = stats.open.load(Ordering::Relaxed);
            held_peak = held_peak.max(held);
            held_samples.push(held);
            rss_peak = rss_peak.max(rss_kib(a.server_pid, "VmRSS:"));
        }
    }
    while normal.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_end = rss_kib(a.server_pid, "VmRSS:");
    let hwm = rss_kib(a.server_pid, "VmHWM:");

    let mut health: Vec<Duration> = healthz_latencies.lock().unwrap().clone();
    let mut sends: Vec<Duration> = send_latencies.lock().unwrap().clone();
    health.sort();
    sends.sort();
    let closed = stats.closed_by_server.load(Ordering::Relaxed);
    let mean_life =
        if closed > 0 { stats.lifetime_ms.load(Ordering::Relaxed) as f64 / closed as f64 / 1000.0 } else { f64::NAN };
    let held_mean = held_samples.iter().sum::<u64>() as f64 / held_samples.len().max(1) as f64;
    let mode = if tls.is_some() { "tls" } else { "plain" };
    println!("mode: {mode}");
    println!("flood: {} slow + {} idle from {} addresses, {} s", a.slow, a.idle, a.sources, a.seconds);
    println!("flood connections held: mean {held_mean:.0}, peak {held_peak}");
    println!(
        "flood connections made: {}; closed by the server: {closed} (shed at once: {}), mean lifetime {mean_life:.2} s; refused: {}",
        stats.opened.load(Ordering::Relaxed),
        stats.shed.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    println!(
        "server RSS: start {} MiB, peak {} MiB, end {} MiB, VmHWM {} MiB",
        rss_start / 1024,
        rss_peak / 1024,
        rss_end / 1024,
        hwm / 1024
    );
    println!(
        "normal client /healthz: {} ok, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        health.len(),
        percentile(&health, 0.5),
        percentile(&health, 0.99),
        percentile(&health, 1.0)
    );
    println!(
        "normal client send: {} ok, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sends.len(),
        percentile(&sends, 0.5),
        percentile(&sends, 0.99),
        percentile(&sends, 1.0)
    );
    println!("normal client failed (error, non-2xx or > 5 s): {}", failed.load(Ordering::Relaxed));
    // mode | flood | held mean/peak | closed (shed) | mean lifetime | RSS start→peak | healthz p50/p99/max | send p50/p99/max | failed
    println!(
        "row: | {mode} | {}+{} from {} | {held_mean:.0} / {held_peak} | {closed} ({}) | {mean_life:.1} s | {} → {} MiB | {:.1} / {:.1} / {:.0} ms | {:.1} / {:.1} / {:.0} ms | {} |",
        a.slow,
        a.idle,
        a.sources,
        stats.shed.load(Ordering::Relaxed),
        rss_start / 1024,
        rss_peak / 1024,
        percentile(&health, 0.5),
        percentile(&health, 0.99),
        percentile(&health, 1.0),
        percentile(&sends, 0.5),
        percentile(&sends, 0.99),
        percentile(&sends, 1.0),
        failed.load(Ordering::Relaxed),
    );
}
