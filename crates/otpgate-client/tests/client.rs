//! The client against a real otpgate (spawned on 127.0.0.1:0 with the server's own test harness):
//! typed errors, the whole flow, retries, and idempotent sends.

#[path = "../../otpgate-server/tests/server/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use otpgate_client::{Client, Error, ErrorCode, RetryPolicy};
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, OutgoingCode, ProviderError, SmsProvider};
use otpgate_server::Overrides;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const PHONE: &str = "+14155550177";

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(10),
    }
}

fn client(base: &str) -> Client {
    Client::builder(base).retry(fast()).build().unwrap()
}

fn api(e: Error) -> otpgate_client::ApiError {
    match e {
        Error::Api(e) => e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Fails the first `failures` sends as unavailable, then delivers; counts what went out.
struct FlakyProvider {
    failures: usize,
    retry_after: Duration,
    calls: AtomicUsize,
    delivered: AtomicUsize,
}

impl FlakyProvider {
    fn new(failures: usize, retry_after: Duration) -> Arc<FlakyProvider> {
        Arc::new(FlakyProvider { failures, retry_after, calls: AtomicUsize::new(0), delivered: AtomicUsize::new(0) })
    }
}

#[async_trait]
impl SmsProvider for FlakyProvider {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, _msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(ProviderError::Unavailable { retry_after: Some(self.retry_after) });
        }
        self.delivered.fetch_add(1, Ordering::SeqCst);
        Ok(SendReceipt::default())
    }
}

#[tokio::test]
async fn errors_are_typed() {
    let app = spawn_app().await;
    let c = client(&app.base);

    let e = api(c.send_to("+1 415 555 01").await.unwrap_err());
    assert_eq!((e.status, e.code, e.field.as_deref()), (422, ErrorCode::InvalidPhone, Some("phone")));
    assert!(!e.request_id.is_empty() && !e.message.is_empty());

    let sent = c.send_to(PHONE).await.unwrap();
    assert!(sent.created && !sent.replayed && sent.attempts == 1);
    let code = app.inbox_code(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let e = api(c.check(PHONE, wrong).await.unwrap_err());
    assert_eq!((e.code, e.attempts_left, e.field.as_deref()), (ErrorCode::InvalidCode, Some(4), Some("code")));

    // A resend inside the cooldown: rate_limited, not retried, with when to come back.
    let e = api(c.send_to(PHONE).await.unwrap_err());
    assert_eq!((e.status, e.code), (429, ErrorCode::RateLimited));
    let wait = e.retry_after.expect("retry_after");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30), "{wait:?}");

    let e = api(c.me("not-a-token").await.unwrap_err());
    assert_eq!(e.code, ErrorCode::Unauthorized);
    let e = api(c.check("+14155550178", "123456").await.unwrap_err());
    assert_eq!(e.code, ErrorCode::VerificationNotFound);
}

#[tokio::test]
async fn the_whole_flow() {
    let app = spawn_app().await;
    let c = client(&app.base);
    let sent = c.send_to(PHONE).await.unwrap();
    assert_eq!(sent.verification.phone, "+1******0177");
    let approved = c.check(PHONE, &app.inbox_code(PHONE).await).await.unwrap();
    assert_eq!(approved.status, otpgate_api::CheckStatus::Approved);
    let session = approved.session.expect("a session");
    let me = c.me(&session.access_token).await.unwrap();
    assert_eq!(me.phone, PHONE);
    assert_eq!(Some(me.id), approved.user.map(|u| u.id));

    let next = c.refresh(&session.refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, session.refresh_token);
    c.revoke(&next.refresh_token).await.unwrap();
    assert_eq!(api(c.refresh(&next.refresh_token).await.unwrap_err()).code, ErrorCode::Unauthorized);

    // Cancel: the code stops working; unknown ids are fine too.
    app.advance(Duration::from_secs(60));
    let again = c.send_to(PHONE).await.unwrap();
    c.cancel(&again.verification.id).await.unwrap();
    c.cancel("vf_unknown/../x").await.unwrap();
    let e = api(c.check(PHONE, &app.inbox_code(PHONE).await).await.unwrap_err());
    assert_eq!(e.code, ErrorCode::VerificationNotFound);
}

#[tokio::test]
async fn a_503_is_retried_and_one_sms_goes_out() {
    let provider = FlakyProvider::new(1, Duration::from_secs(1));
    let app = spawn_with(|_| {}, Overrides { provider: Some(provider.clone()), ..Overrides::default() }).await;
    let started = std::time::Instant::now();
    let sent = client(&app.base).send_to(PHONE).await.unwrap();
    assert_eq!(sent.attempts, 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    assert_eq!(provider.delivered.load(Ordering::SeqCst), 1, "exactly one SMS");
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_ends_the_call() {
    let provider = FlakyProvider::new(usize::MAX, Duration::from_secs(30));
    let app = spawn_with(|_| {}, Overrides { provider: Some(provider.clone()), ..Overrides::default() }).await;
    let started = std::time::Instant::now();
    let e = api(client(&app.base).send_to(PHONE).await.unwrap_err());
    assert_eq!((e.code, e.retry_after), (ErrorCode::ProviderUnavailable, Some(Duration::from_secs(30))));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_key_and_sends_once() {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let (proxy, connections) = lossy_proxy(app.base.trim_start_matches("http://").parse().unwrap(), 1).await;
    let sent = client(&format!("http://{proxy}")).send_to(PHONE).await.unwrap();
    assert!(connections.load(Ordering::SeqCst) >= 2, "the first answer was dropped");
    assert_eq!(sent.attempts, 2);
    assert!(sent.replayed, "the retry got the stored answer");
    assert!(sent.created, "with the first answer's status");
    assert_eq!(provider.calls(), 1, "exactly one SMS");

    // Replaying by hand with the key of that send: same answer, still one SMS.
    let c = client(&app.base);
    let req = otpgate_client::api::SendVerificationRequest {
        phone: PHONE.into(),
        channel: None,
        locale: None,
        bot_token: None,
    };
    let again = c.send_with_key(&req, &sent.idempotency_key).await.unwrap();
    assert_eq!(again.verification.id, sent.verification.id);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test]
async fn connection_failures_are_retried_then_reported() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let c = client(&format!("http://{closed}"));
    let started = std::time::Instant::now();
    let e = c.send_to(PHONE).await.unwrap_err();
    assert!(matches!(e, Error::Transport(ref t) if t.is_connect()), "{e:?}");
    assert!(started.elapsed() >= Duration::from_millis(30), "backed off between attempts");

    // A server that comes up while the client backs off is reached.
    let app_addr_holder = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = app_addr_holder.local_addr().unwrap();
    drop(app_addr_holder);
    let patient = Client::builder(&format!("http://{addr}"))
        .retry(RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(1),
            ..fast()
        })
        .build()
        .unwrap();
    let call = tokio::spawn(async move { patient.send_to(PHONE).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let app = spawn_with(|c| c.listen = addr, Overrides::default()).await;
    let sent = call.await.unwrap().unwrap();
    assert!(sent.attempts >= 2);
    assert_eq!(app.inbox_code(PHONE).await.len(), 6);
}

/// A TCP proxy to `upstream` that lets the first `drops` connections reach the server and then
/// cuts them as soon as the answer starts: the request was served, its answer is lost.
async fn lossy_proxy(upstream: SocketAddr, drops: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(upstream).await.unwrap();
                if n < drops {
                    let (mut out_read, mut out_write) = outbound.split();
                    let (mut in_read, _in_write) = inbound.split();
                    let forward = tokio::io::copy(&mut in_read, &mut out_write);
                    let mut first = [0u8; 1];
                    tokio::select! {
                        _ = forward => {}
                        _ = out_read.read(&mut first) => {}
                    }
                    // Dropping both sockets here resets the client's connection mid-exchange.
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_bot_check_token_goes_through() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let verifier = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("response=good-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "success": true })))
        .mount(&verifier)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "success": false })))
        .mount(&verifier)
        .await;
    let url = format!("{}/siteverify", verifier.uri());
    let app = spawn_with(
        |c| {
            c.bot_check.kind = Some(otpgate_server::config::BotCheckKind::Hcaptcha);
            c.bot_check.secret = Some("bot-secret".to_owned().into());
            c.bot_check.required_for = vec!["*".parse().unwrap()];
            c.bot_check.verify_url = Some(url);
        },
        Overrides::default(),
    )
    .await;
    let c = client(&app.base);
    let e = api(c.send_to(PHONE).await.unwrap_err());
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidRequest, Some("bot_token")));
    let req = otpgate_client::api::SendVerificationRequest {
        phone: PHONE.into(),
        channel: None,
        locale: None,
        bot_token: Some("good-token".into()),
    };
    let sent = c.send(&req).await.unwrap();
    assert_eq!(sent.verification.status, otpgate_api::VerificationStatusName::Pending);
    assert_eq!(verifier.received_requests().await.unwrap().len(), 1, "only the send with a token was verified");
}
