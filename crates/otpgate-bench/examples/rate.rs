//! An open-loop load generator for `bench/run.sh`'s fixed-rate runs (wrk can only saturate):
//! requests start on a fixed schedule whether or not earlier ones finished, and each latency is
//! measured from when its request was *due*, so a stall shows up in the percentiles instead of
//! silently slowing the schedule (no coordinated omission).
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

/// Sends a check waits behind, so the send it approves finished long ago.
const LAG: u64 = 256;
/// Requests in flight at most; a request that finds no slot is counted late and skipped.
const MAX_IN_FLIGHT: usize = 2048;

fn number(n: u64) -> String {
    format!("+1415{:03}{:04}", 200 + (n / 10_000) % 800, n % 10_000)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: rate BASE_URL send|flow RATE_PER_SEC SECONDS [FIRST_NUMBER [WRAP]]");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_owned();
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
    let number = |k: u64| number(if wrap > 0 { first + (k - 1) % wrap } else { first + k - 1 });

    let client = reqwest::Client::builder().pool_max_idle_per_host(MAX_IN_FLIGHT).build().expect("HTTP client");
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    // Failed answers by status code, so a run says what went wrong, not only how often.
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let (ok, non2xx, errors, late) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut sends = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    // The schedule is kept by a plain thread: std's sleep is precise to tens of microseconds,
    // tokio's timer only to a millisecond (which alone would add ~0.5 ms to every latency).
    let (ticks, mut due_times) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if ticks.send((i, due)).is_err() {
                return;
            }
        }
    });
    while let Some((i, due)) = due_times.recv().await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            late.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (url, body) = if !flow || i % 2 == 0 || sends <= LAG {
            sends += 1;
            (format!("{base}/v1/verifications"), format!(r#"{{"phone":"{}"}}"#, number(sends)))
        } else {
            let phone = number(sends - LAG);
            (format!("{base}/v1/verifications/check"), format!(r#"{{"phone":"{phone}","code":"123456"}}"#))
        };
        let (client, latencies, statuses) = (client.clone(), latencies.clone(), statuses.clone());
        let (ok, non2xx, errors) = (ok.clone(), non2xx.clone(), errors.clone());
        tasks.spawn(async move {
            let answer = client.post(url).header("content-type", "application/json").body(body).send().await;
            match answer {
                Ok(response) => {
                    let status = response.status();
                    let _ = response.bytes().await;
                    if status.is_success() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        non2xx.fetch_add(1, Ordering::Relaxed);
                        *statuses.lock().await.entry(status.as_u16()).or_default() += 1;
                    }
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().await.push(due.elapsed());
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort();
    let at =
        |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0)).unwrap_or("-".into());
    let statuses = statuses.lock().await.iter().map(|(s, n)| format!("{s}:{n}")).collect::<Vec<_>>().join(",");
    println!(
        "sent={} ok={} non2xx={} errors={} late={} p50_ms={} p99_ms={} max_ms={} elapsed_s={:.1} statuses={}",
        latencies.len(),
        ok.load(Ordering::Relaxed),
        non2xx.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(latencies.last().copied()),
        start.elapsed().as_secs_f64(),
        if statuses.is_empty() { "-" } else { &statuses },
    );
}
