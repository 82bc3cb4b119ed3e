//! Faults: a Twilio that hangs, drops connections or flaps, many failures in a row, and a
//! graceful shutdown under load. Each failure must answer `provider_unavailable` within the
//! provider deadline and leave no verification usable (the code that may have reached the user
//! does not work); every send answered 201 must survive a restart.
//!
//! The tests run one at a time (`SERIAL`): the thread and task counts are process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use otpgate_server::config::ProviderKind;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ACCOUNT: &str = "AC00000000000000000000000000000000"; // fake test SID
const MESSAGE_SID: &str = "SMcccccccccccccccccccccccccccccccc"; // fake test SID
const REQUEST_TIMEOUT_MS: u64 = 400;
const DEADLINE_MS: u64 = 1_200;
/// Scheduling slack on a loaded 2-core CI machine; the deadline itself is what is tested.
const SLACK: Duration = Duration::from_secs(3);

fn us(n: u32) -> String {
    format!("+1415555{n:04}")
}

/// The server with Twilio Messaging at `base`; `breaker_threshold` high keeps the breaker out of
/// the way where a test wants every call to reach the network.
async fn twilio_app(base: &str, max_retries: u32, breaker_threshold: u32) -> TestApp {
    let twilio = serde_json::from_value(json!({
        "account_sid": ACCOUNT,
        "auth_token": "fake-auth-token-for-faults",
        "messaging": { "from": "+15005550006", "base_url": base },
        "http": { "connect_timeout_ms": 300, "request_timeout_ms": REQUEST_TIMEOUT_MS },
        "retry": { "max_retries": max_retries, "min_delay_ms": 10, "max_delay_ms": 50, "deadline_ms": DEADLINE_MS },
        "breaker": { "failure_threshold": breaker_threshold, "open_secs": 30 },
    }))
    .unwrap();
    spawn_with(
        move |c| {
            no_limits(c);
            c.provider.kind = Some(ProviderKind::TwilioMessaging);
            c.provider.twilio = Some(twilio);
        },
        Default::default(),
    )
    .await
}

/// `(To, code)` from a Messages.json form body (`To=%2B1…&Body=123456+is+your…`).
fn to_and_code(body: &[u8]) -> (String, String) {
    let body = String::from_utf8_lossy(body);
    let field = |name: &str| {
        body.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('='))).unwrap_or("").to_owned()
    };
    let to = field("To").replace("%2B", "+");
    let code = field("Body").chars().take_while(char::is_ascii_digit).collect();
    (to, code)
}

/// The code that reached the fake Twilio for `phone` must not approve anything.
async fn assert_nothing_usable(app: &TestApp, phone: &str, code: &str) {
    assert_eq!(code.len(), 6, "a code was in the message");
    let r = app.check(phone, code).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "verification_not_found"), "{phone}: {}", r.text);
}

#[tokio::test]
async fn a_hanging_provider_answers_provider_unavailable_within_the_deadline() {
    let _serial = SERIAL.lock().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "sid": MESSAGE_SID })).set_delay(Duration::from_secs(60)),
        )
        .mount(&twilio)
        .await;
    let app = twilio_app(&twilio.uri(), 2, 1_000).await;

    let phone = us(301);
    let started = Instant::now();
    let r = app.send(&phone).await;
    let took = started.elapsed();
    assert_eq!((r.status, r.error_code().as_str()), (503, "provider_unavailable"), "{}", r.text);
    assert!(took >= Duration::from_millis(REQUEST_TIMEOUT_MS), "it did wait for the provider: {took:?}");
    assert!(took < Duration::from_millis(DEADLINE_MS) + SLACK, "answered within the deadline: {took:?}");

    // A timed-out call may have reached Twilio, so it is not repeated: one message at most.
    let requests = twilio.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "a lost call is never retried");
    let (to, code) = to_and_code(&requests[0].body);
    assert_eq!(to, phone);
    assert_nothing_usable(&app, &phone, &code).await;
    // The cooldown was reverted with the verification: a retry asks the provider again.
    assert_eq!(app.send(&phone).await.error_code(), "provider_unavailable");
}

/// Accepts connections, reads a little of the request, and closes them.
async fn dropping_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
                drop(socket);
            });
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn a_provider_that_drops_connections_answers_provider_unavailable() {
    let _serial = SERIAL.lock().await;
    let (base, accepted) = dropping_listener().await;
    let app = twilio_app(&base, 2, 1_000).await;
    for i in 0..3 {
        let phone = us(310 + i);
        let started = Instant::now();
        let r = app.send(&phone).await;
        let took = started.elapsed();
        assert_eq!((r.status, r.error_code().as_str()), (503, "provider_unavailable"), "{}", r.text);
        assert!(took < Duration::from_millis(DEADLINE_MS) + SLACK, "{took:?}");
        // Nothing reached a user here, but no guess works either: there is no verification.
        assert_nothing_usable(&app, &phone, "123456").await;
    }
    assert!(accepted.load(Ordering::SeqCst) >= 3, "the calls reached the listener");
}

#[tokio::test]
async fn a_refused_connection_answers_provider_unavailable() {
    let _serial = SERIAL.lock().await;
    // A port that was free a moment ago and has nobody listening now.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let app = twilio_app(&format!("http://127.0.0.1:{port}"), 2, 1_000).await;
    let started = Instant::now();
    let r = app.send(&us(320)).await;
    assert_eq!((r.status, r.error_code().as_str()), (503, "provider_unavailable"), "{}", r.text);
    assert!(started.elapsed() < Duration::from_millis(DEADLINE_MS) + SLACK);
}

/// Answers 503 and 201 in turn, recording `(To, code, status)` for each call.
struct Flapping {
    calls: AtomicUsize,
    seen: Arc<Mutex<Vec<(String, String, u16)>>>,
}

impl Respond for Flapping {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let status = if n.is_multiple_of(2) { 503 } else { 201 };
        let (to, code) = to_and_code(&request.body);
        self.seen.lock().unwrap().push((to, code, status));
        if status == 201 {
            ResponseTemplate::new(201).set_body_json(json!({ "sid": MESSAGE_SID, "status": "queued" }))
        } else {
            ResponseTemplate::new(503).set_body_json(json!({ "code": 20500, "message": "flap", "status": 503 }))
        }
    }
}

#[tokio::test]
async fn a_flapping_provider_gives_either_a_usable_201_or_a_503_with_nothing_usable() {
    let _serial = SERIAL.lock().await;
    let twilio = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(Flapping { calls: AtomicUsize::new(0), seen: seen.clone() })
        .mount(&twilio)
        .await;
    // No retries, so both answers reach the service; the alternation never opens the breaker.
    let app = twilio_app(&twilio.uri(), 0, 5).await;
    let (mut created, mut unavailable) = (0, 0);
    for i in 0..12 {
        let phone = us(330 + i);
        let r = app.send(&phone).await;
        let (to, code, status) = seen.lock().unwrap().last().cloned().expect("the provider was called");
        assert_eq!(to, phone);
        match r.status {
            201 => {
                assert_eq!(status, 201);
                let ok = app.check(&phone, &code).await;
                assert_eq!(ok.status, 200, "the code of a 201 works: {}", ok.text);
                created += 1;
            }
            503 => {
                assert_eq!((status, r.error_code().as_str()), (503, "provider_unavailable"));
                assert_nothing_usable(&app, &phone, &code).await;
                unavailable += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!((created, unavailable), (6, 6));
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Sends `n` requests, `width` at a time, each to a fresh phone; all must fail as unavailable.
async fn failing_sends(app: &TestApp, from: u32, n: u32, width: u32) {
    for batch in (0..n).step_by(width as usize) {
        let mut set = tokio::task::JoinSet::new();
        for i in batch..(batch + width).min(n) {
            let (client, url, phone) = (app.client.clone(), app.url("/v1/verifications"), us(from + i));
            set.spawn(async move {
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(json!({ "phone": phone }).to_string())
                    .send()
                    .await
                    .expect("answered");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            });
        }
        while let Some(joined) = set.join_next().await {
            let (status, text) = joined.unwrap();
            assert!(status == 503 && text.contains("provider_unavailable"), "{status} {text}");
        }
    }
}

#[tokio::test]
async fn two_hundred_failures_grow_no_threads_tasks_or_memory() {
    let _serial = SERIAL.lock().await;
    let (base, _) = dropping_listener().await;
    let app = twilio_app(&base, 1, 1_000_000).await;
    // Warm up: connection pools, the blocking pool and the allocator reach their working size.
    failing_sends(&app, 1_000, 40, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let threads = proc_status("Threads:");
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let rss_kib = proc_status("VmRSS:");

    failing_sends(&app, 2_000, 200, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let threads_after = proc_status("Threads:");
    let tasks_after = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let rss_after = proc_status("VmRSS:");
    eprintln!(
        "threads {threads} -> {threads_after}, tasks {tasks} -> {tasks_after}, rss {rss_kib} KiB -> {rss_after} KiB"
    );
    assert!(threads > 0, "/proc/self/status is readable");
    assert!(threads_after <= threads + 4, "threads grew: {threads} -> {threads_after}");
    assert!(tasks_after <= tasks + 10, "tasks grew: {tasks} -> {tasks_after}");
    // Coarse: a leak of the failed requests' state would show; allocator noise does not.
    assert!(rss_after <= rss_kib + 32 * 1024, "memory grew: {rss_kib} KiB -> {rss_after} KiB");
}

#[tokio::test]
async fn graceful_shutdown_under_load_loses_no_verification_answered_201() {
    let _serial = SERIAL.lock().await;
    let provider = FakeProvider::new(FakeBehaviour::Delay(Duration::from_millis(400)));
    let app = spawn_with(no_limits, with_provider(provider.clone())).await;
    let url = app.url("/v1/verifications");
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let url = url.clone();
        let phone = us(400 + i);
        tasks.push(tokio::spawn(async move {
            // Staggered, each on its own connection: some land before the stop, some during it,
            // some after the listener is gone.
            tokio::time::sleep(Duration::from_millis(20 * u64::from(i))).await;
            let sent = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "phone": phone }).to_string())
                .send()
                .await;
            (phone, sent.ok().map(|r| r.status().as_u16()))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Graceful stop (in-flight requests finish), then a new app on the same database.
    let app = app.restart().await;
    let mut answered = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            (phone, Some(201)) => answered.push(phone),
            (_, Some(status)) => panic!("a send answered {status} during shutdown"),
            (_, None) => refused += 1,
        }
    }
    eprintln!("{} answered 201, {refused} not served", answered.len());
    assert!(!answered.is_empty(), "some sends were answered before the stop");
    assert!(refused > 0, "the stop came mid-way");
    let sent = provider.sent.lock().unwrap().clone();
    for phone in answered {
        let code = sent.iter().rev().find(|(to, _)| *to == phone).map(|(_, c)| c.clone()).expect("code recorded");
        let r = app.check(&phone, &code).await;
        assert_eq!(r.status, 200, "{phone} answered 201 but its code fails after the restart: {}", r.text);
    }
}
