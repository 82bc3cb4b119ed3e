//! The store going away under the HTTP API: with Redis as the hot store, killing Redis mid-run
//! gives `503 service_unavailable` quickly (not a 500, not a hang, no per-instance fallback),
//! `/readyz` goes 503, and restarting Redis restores service without restarting otpgate.
//! Starts (and kills) its own `redis-server` on a free loopback port: ignored unless asked for
//! (`--include-ignored`), and failing when asked for without `redis-server` on the PATH.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Redis)
            .unwrap_or_else(|e| panic!("this test needs redis-server on the PATH: {e}"))
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
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
#[ignore = "needs redis-server on the PATH: it starts and kills its own"]
async fn killing_the_hot_store_gives_503_and_restarting_it_recovers() {
    let port = free_port();
    let mut redis = Redis::start(port);
    wait_until_up(port).await;
    let app = spawn_with(
        move |c| {
            c.store.hot = format!("redis://127.0.0.1:{port}").parse().unwrap();
            c.store.timeout_ms = 500;
        },
        Default::default(),
    )
    .await;
    assert_eq!(app.send("+14155550171").await.status, 201);
    assert_eq!(app.get("/readyz").await.status, 200);

    redis.stop();
    let started = Instant::now();
    let r = app.send("+14155550172").await;
    assert_eq!((r.status, r.error_code().as_str()), (503, "service_unavailable"), "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(5), "answered quickly, took {:?}", started.elapsed());
    let check = app.check("+14155550171", "123456").await;
    assert_eq!(check.error_code(), "service_unavailable", "no fallback to a per-instance memory");
    assert_eq!(app.get("/readyz").await.status, 503);

    let mut redis = Redis::start(port);
    wait_until_up(port).await;
    let mut recovered = false;
    for _ in 0..50 {
        if app.send("+14155550173").await.status == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "service came back without restarting otpgate");
    assert_eq!(app.get("/readyz").await.status, 200);
    redis.stop();
}
