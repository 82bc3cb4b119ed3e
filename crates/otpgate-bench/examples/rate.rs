//! An open-loop load generator for `bench/run.sh`'s fixed-rate runs (wrk can only saturate):
//! requests are due on a fixed schedule whether or not earlier ones finished, and each latency is
//! measured from when its request was *due*, so a stall shows up in the percentiles instead of
//! silently slowing the schedule (no coordinated omission, as in wrk2).
//!
//!   rate BASE_URL send|flow RATE_PER_SEC SECONDS [FIRST_NUMBER [WRAP]]
//!
//! With `WRAP` the numbers cycle through `WRAP` of them (a long `flow` run on the test numbers:
//! a number comes round again only long after its verification was approved).
//!
//! `send` posts a first send to a new number each time; `flow` alternates send and check like
//! `bench/flow.lua` (the check approves the send made `LAG` sends earlier, with the test numbers'
//! fixed code). Numbers follow `bench/run.sh`: +1 415 (200 + n / 10000 % 800) (n % 10000).
//! Prints one line: `sent ok non2xx errors late p50_ms p99_ms max_ms elapsed_s statuses` (the
//! failed answers by status code).
//!
//! It has to stay light, because it shares two cores with the server it measures: a plain
//! thread keeps the schedule and formats each request; a fixed set of keep-alive connections
//! (`RATE_CONNECTIONS`, 64 by default like the wrk runs) on one tokio thread writes them and
//! reads the answers with a minimal HTTP/1.1 reader (status line and `content-length`: all the
//! server's answers have one). An earlier version used reqwest, which cost about twice wrk's CPU
//! per request and left requests late at the rates it was asked for. A request is **late** when
//! it starts more than [`SLACK`] after it was due (every connection was busy, or the generator
//! fell behind); it is still sent, and its latency counts the wait.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Sends a check waits behind, so the send it approves finished long ago.
const LAG: u64 = 256;
/// How long after its due time a request may start before it counts as late.
const SLACK: Duration = Duration::from_millis(1);
/// Connections unless `RATE_CONNECTIONS` says otherwise.
const DEFAULT_CONNECTIONS: usize = 64;
/// The most an answer may be (the server's are a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

fn number(n: u64) -> String {
    format!("+1415{:03}{:04}", 200 + (n / 10_000) % 800, n % 10_000)
}

/// One request, formatted by the schedule thread.
struct Due {
    at: Instant,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    non2xx: AtomicU64,
    errors: AtomicU64,
    late: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    /// Failed answers by status code, so a run says what went wrong, not only how often.
    statuses: Mutex<std::collections::BTreeMap<u16, u64>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: rate BASE_URL send|flow RATE_PER_SEC SECONDS [FIRST_NUMBER [WRAP]]");
        std::process::exit(2);
    }
    let Some(host) = args[1].trim_end_matches('/').strip_prefix("http://").map(str::to_owned) else {
        eprintln!("BASE_URL must be http://HOST:PORT (plain HTTP to a local server)");
        std::process::exit(2);
    };
    let addr: SocketAddr = host.parse().expect("BASE_URL's host is IP:PORT");
    let flow = match args[2].as_str() {
        "send" => false,
        "flow" => true,
        other => {
            eprintln!("unknown script {other}: send or flow");
            std::process::exit(2);
        }
    };
    let rate: f64 = args[3].parse().expect("RATE_PER_SEC is a number");
    let seconds: f64 = args[4].parse().expect("SECONDS is a number");
    let first: u64 = args.get(5).map(|s| s.parse().expect("FIRST_NUMBER is a number")).unwrap_or(1);
    let wrap: u64 = args.get(6).map(|s| s.parse().expect("WRAP is a number")).unwrap_or(0);
    let connections: usize = std::env::var("RATE_CONNECTIONS")
        .ok()
        .map(|s| s.parse().expect("RATE_CONNECTIONS is a number"))
        .unwrap_or(DEFAULT_CONNECTIONS);
    let number = move |k: u64| number(if wrap > 0 { first + (k - 1) % wrap } else { first + k - 1 });
    let request = move |path: &str, body: String| -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };

    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    // The schedule is kept by a plain thread: std's sleep is precise to tens of microseconds,
    // tokio's timer only to a millisecond (which alone would add ~0.5 ms to every latency).
    let (ticks, due) = mpsc::unbounded_channel::<Due>();
    std::thread::spawn(move || {
        let mut sends = 0u64;
        for i in 0..total {
            let at = start + interval.mul_f64(i as f64);
            let bytes = if !flow || i % 2 == 0 || sends <= LAG {
                sends += 1;
                request("/v1/verifications", format!(r#"{{"phone":"{}"}}"#, number(sends)))
            } else {
                let phone = number(sends - LAG);
                request("/v1/verifications/check", format!(r#"{{"phone":"{phone}","code":"123456"}}"#))
            };
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if ticks.send(Due { at, bytes }).is_err() {
                return;
            }
        }
    });

    let tally = Arc::new(Tally::default());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let due = Arc::new(tokio::sync::Mutex::new(due));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..connections {
            workers.spawn(connection(addr, due.clone(), tally.clone()));
        }
        while workers.join_next().await.is_some() {}
    });

    let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap());
    latencies.sort();
    let at =
        |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0)).unwrap_or("-".into());
    let statuses = tally.statuses.lock().unwrap().iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(",");
    println!(
        "sent={} ok={} non2xx={} errors={} late={} p50_ms={} p99_ms={} max_ms={} elapsed_s={:.1} statuses={}",
        latencies.len(),
        tally.ok.load(Ordering::Relaxed),
        tally.non2xx.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally.late.load(Ordering::Relaxed),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(latencies.last().copied()),
        start.elapsed().as_secs_f64(),
        if statuses.is_empty() { "-" } else { &statuses },
    );
}

/// One keep-alive connection: takes the next due request whenever it is free, until the
/// schedule ends. Reconnects after an error (the request that met it counts as an error).
async fn connection(addr: SocketAddr, due: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Due>>>, tally: Arc<Tally>) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some(next) = due.lock().await.recv().await else { return };
        if next.at.elapsed() > SLACK {
            tally.late.fetch_add(1, Ordering::Relaxed);
        }
        let mut answer = exchange(addr, &mut stream, &next.bytes, &mut buf).await;
        if answer.is_err() && stream.is_some() && buf.is_empty() {
            // A kept-alive connection the server had closed while it was idle: once more on a
            // new one (the request never reached the server).
            stream = None;
            answer = exchange(addr, &mut stream, &next.bytes, &mut buf).await;
        }
        match answer {
            Ok(status) if (200..300).contains(&status) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(status) => {
                tally.non2xx.fetch_add(1, Ordering::Relaxed);
                *tally.statuses.lock().unwrap().entry(status).or_default() += 1;
            }
            Err(_) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                stream = None;
            }
        }
        tally.latencies.lock().unwrap().push(next.at.elapsed());
    }
}

/// Writes one request on `stream` (connecting first if there is none) and reads its answer.
async fn exchange(
    addr: SocketAddr,
    stream: &mut Option<TcpStream>,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<u16> {
    buf.clear();
    if stream.is_none() {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        *stream = Some(s);
    }
    let s = stream.as_ref().expect("connected above");
    write_all(s, request).await?;
    read_answer(s, buf).await
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one answer (status line, headers, `content-length` bytes of body) and returns its
/// status. Nothing is pipelined, so the buffer starts empty for every answer (`exchange`
/// empties it).
async fn read_answer(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<u16> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut head_end = None;
    let mut wanted = usize::MAX;
    loop {
        if let Some(end) = head_end {
            if buf.len() >= end + wanted {
                break;
            }
        } else if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..pos]).map_err(|_| bad("answer head is not UTF-8"))?;
            wanted = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| bad("answer without content-length"))?;
            head_end = Some(pos + 4);
            continue;
        }
        if buf.len() > MAX_ANSWER {
            return Err(bad("answer too long"));
        }
        stream.readable().await?;
        let len = buf.len();
        buf.resize(len + 4096, 0);
        match stream.try_read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf.truncate(len),
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        }
    }
    let status = buf.get(9..12).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok());
    if !buf.starts_with(b"HTTP/1.1 ") {
        return Err(bad("not an HTTP/1.1 answer"));
    }
    status.ok_or_else(|| bad("no status code"))
}
