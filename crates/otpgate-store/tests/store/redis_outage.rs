//! Redis going away mid-run: operations fail fast with `Unavailable` (no hang, no fallback), and
//! the same store works again once Redis is back, without reconnecting by hand. Starts its own
//! `redis-server` on a free loopback port: ignored unless asked for (`--include-ignored`, with the
//! Redis suites), and then fails when there is no `redis-server` on the PATH.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otpgate_core::limits::{LimitRule, LimitScope, Rate};
use otpgate_core::{Clock, Limits, StoreError, SystemClock, Verifications};
use otpgate_store::redis::{RedisOptions, RedisStore};
use otpgate_test_support::store_contract::phone;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_redis(port: u16) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server on the PATH (it starts its own)"]
async fn redis_outage_is_unavailable_quickly_and_recovers() {
    let port = free_port();
    let child = start_redis(port).expect("start redis-server (is it on the PATH?)");
    let mut server = Server(child);
    wait_until_up(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let options = RedisOptions { timeout: Duration::from_millis(1000), ..Default::default() };
    let store = RedisStore::connect(&url, options).await.expect("connect");
    let rule = [LimitRule::new(LimitScope::PhoneSend, "outage", Rate::new(1000, Duration::from_secs(60)))];
    store.acquire(&rule, SystemClock.now()).await.unwrap().unwrap();

    // Frozen (accepts, never answers): the response timeout turns a hang into Unavailable.
    let signal = |sig: &str| {
        let pid = server.0.id().to_string();
        Command::new("kill").args([sig, &pid]).status().map(|s| s.success()).unwrap_or(false)
    };
    if signal("-STOP") {
        let started = Instant::now();
        let limit = store.acquire(&rule, SystemClock.now()).await;
        assert!(matches!(limit, Err(StoreError::Unavailable(_))), "{limit:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(signal("-CONT"));
    }

    // Kill it: every kind of operation answers Unavailable, each within the timeout.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let limit = store.acquire(&rule, SystemClock.now()).await;
        assert!(matches!(limit, Err(StoreError::Unavailable(_))), "{limit:?}");
        let wait = store.resend_wait(&phone(1), SystemClock.now()).await;
        assert!(matches!(wait, Err(StoreError::Unavailable(_))), "{wait:?}");
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    }

    // Back on the same port: the same store recovers by itself.
    let _server = Server(start_redis(port).expect("restart redis-server"));
    wait_until_up(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.acquire(&rule, SystemClock.now()).await {
            Ok(Ok(())) => break,
            other => {
                assert!(Instant::now() < deadline, "did not recover: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    store.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast() {
    let port = free_port();
    let started = Instant::now();
    let options = RedisOptions { timeout: Duration::from_millis(500), ..Default::default() };
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}"), options).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
