//! Test harness: spawns the real application on 127.0.0.1:0 with its own SQLite file, a manual
//! clock, and optionally a fake provider, and talks HTTP to it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, ManualClock, OutgoingCode, ProviderError, SmsProvider};
use otpgate_server::{Application, Config, Overrides};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub base: String,
    /// `http://…` of the admin listener, when `http.admin_listen` is in force.
    pub admin_base: Option<String>,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub dir: Arc<TempDir>,
    pub config: Config,
    overrides: Overrides,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn test_config(dir: &TempDir) -> Config {
    let db = format!("sqlite://{}", dir.path().join("otpgate.db").display());
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: otpgate_server::config::StoreConfig {
            hot: db.parse().unwrap(),
            durable: db.parse().unwrap(),
            ..Default::default()
        },
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}, Overrides::default()).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Config), mut overrides: Overrides) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = test_config(&dir);
    configure(&mut config);
    let clock = ManualClock::starting_now();
    overrides.clock = Some(Arc::new(clock.clone()) as Arc<dyn Clock>);
    start(config, overrides, clock, dir).await
}

async fn start(config: Config, overrides: Overrides, clock: ManualClock, dir: Arc<TempDir>) -> TestApp {
    let app = Application::build(&config, overrides.clone()).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let admin_base = app.admin_addr().map(|addr| format!("http://{addr}"));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        admin_base,
        client: reqwest::Client::new(),
        clock,
        dir,
        config,
        overrides,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// `n` wrong codes for `phone` (whose right code is `code`), checked in parallel and spread in
/// turn over `apps`; how many answers carried each error code.
pub async fn parallel_wrong_codes(
    apps: &[&TestApp],
    phone: &str,
    code: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let app = apps[i % apps.len()];
        let (client, url) = (app.client.clone(), app.url("/v1/verifications/check"));
        let mut guess = format!("{:06}", 100_000 + i);
        if guess == code {
            guess = format!("{:06}", 999_999 - i);
        }
        let body = format!(r#"{{"phone":"{phone}","code":"{guess}"}}"#);
        tasks.spawn(async move {
            let r = client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
            let body: Value = r.json().await.unwrap();
            body["error"]["code"].as_str().unwrap().to_owned()
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(error) = tasks.join_next().await {
        *counts.entry(error.unwrap()).or_default() += 1;
    }
    counts
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Reply { status, headers, text }
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.request(self.client.post(self.url(path)).header("content-type", content_type).body(body)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, "application/json", body.to_string()).await
    }

    pub async fn send(&self, phone: &str) -> Reply {
        self.post_json("/v1/verifications", &json!({ "phone": phone })).await
    }

    pub async fn check(&self, phone: &str, code: &str) -> Reply {
        self.post_json("/v1/verifications/check", &json!({ "phone": phone, "code": code })).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(self.client.get(self.url(path))).await
    }

    /// The newest code the demo provider "sent" to `phone`.
    pub async fn inbox_code(&self, phone: &str) -> String {
        let reply = self.get(&format!("/dev/inbox?phone={}", phone.replace('+', "%2B"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["messages"][0]["code"].as_str().expect("a message in the inbox").to_owned()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Graceful stop, then a new process-equivalent on the same database file and clock.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let overrides = self.overrides.clone();
        start(self.config.clone(), overrides, self.clock.clone(), self.dir.clone()).await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server ran");
        }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("otpgate.db")
    }
}

/// What a fake provider does on each send.
#[derive(Clone, Debug)]
pub enum FakeBehaviour {
    Deliver,
    Fail(ProviderError),
    Panic,
    Delay(Duration),
}

/// A provider that records what it was asked to send, and fails or stalls on demand.
pub struct FakeProvider {
    pub behaviour: Mutex<FakeBehaviour>,
    pub sent: Mutex<Vec<(String, String)>>,
    pub calls: AtomicUsize,
}

impl FakeProvider {
    pub fn new(behaviour: FakeBehaviour) -> Arc<FakeProvider> {
        Arc::new(FakeProvider {
            behaviour: Mutex::new(behaviour),
            sent: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }

    pub fn set(&self, behaviour: FakeBehaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn last_code(&self) -> String {
        self.sent.lock().unwrap().last().expect("something sent").1.clone()
    }
}

#[async_trait]
impl SmsProvider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn supports(&self, channel: Channel) -> bool {
        channel != Channel::Call
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = self.behaviour.lock().unwrap().clone();
        match behaviour {
            FakeBehaviour::Deliver => {}
            FakeBehaviour::Fail(e) => return Err(e),
            FakeBehaviour::Panic => panic!("fake provider panicked on purpose"),
            FakeBehaviour::Delay(d) => tokio::time::sleep(d).await,
        }
        self.sent.lock().unwrap().push((msg.to.e164().to_owned(), msg.code.expose().to_owned()));
        Ok(SendReceipt::default())
    }
}

pub fn with_provider(provider: Arc<FakeProvider>) -> Overrides {
    Overrides { provider: Some(provider), ..Overrides::default() }
}

/// Every rate limit and the tripwire off, for tests about something else (or about one limit,
/// which they switch back on).
pub fn no_limits(c: &mut Config) {
    let l = &mut c.limits;
    for rate in [
        &mut l.phone_send,
        &mut l.phone_send_hourly,
        &mut l.phone_send_daily,
        &mut l.ip_send,
        &mut l.ip_send_hourly,
        &mut l.prefix_send,
        &mut l.country_send,
        &mut l.global_send_hourly,
        &mut l.global_send_daily,
        &mut l.phone_check_failures,
        &mut l.ip_check,
    ] {
        rate.count = 0;
    }
    c.tripwire.enabled = false;
}
