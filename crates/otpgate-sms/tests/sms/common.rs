//! What the provider suites share: messages, clocks, and a raw HTTP fake that can do what
//! wiremock cannot (drop a connection without answering).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otpgate_core::{Channel, Clock, Code, ManualClock, OutgoingCode, PhoneNumber, ProviderError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Vendor words that must reach the log only, never a returned error.
pub const VENDOR_TEXT: &str = "vendor internal wording that must not leak";

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::starting_now())
}

pub fn msg(to: &str, channel: Channel, code: &str) -> OutgoingCode {
    OutgoingCode {
        to: PhoneNumber::parse(to, None).unwrap(),
        code: Code::parse(code, 6).unwrap(),
        channel,
        locale: Some("en".into()),
        text: format!("{code} is your Acme verification code.\n\n@example.com #{code}"),
        verification_id: None,
        expires_at: None,
    }
}

pub fn sms(code: &str) -> OutgoingCode {
    msg("+14155550100", Channel::Sms, code)
}

pub fn assert_no_leak(err: &ProviderError) {
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(VENDOR_TEXT), "leaked: {shown}");
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// Short limits so failure tests finish fast: 300 ms per try, 800 ms per call, 3 failures
/// open the breaker.
pub fn limits() -> serde_json::Value {
    serde_json::json!({
        "http": { "connect_timeout_ms": 200, "request_timeout_ms": 300 },
        "retry": { "max_retries": 2, "min_delay_ms": 10, "max_delay_ms": 40, "deadline_ms": 800 },
        "breaker": { "failure_threshold": 3, "open_secs": 30 }
    })
}

/// `base` with `extra`'s keys added.
pub fn merged(base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut v = base;
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

/// One request as the raw fake read it.
pub struct RawRequest {
    pub body: Vec<u8>,
}

/// What the raw fake does with a request.
pub enum Action {
    /// Answer with this status and JSON body (keep-alive).
    Respond(u16, String),
    /// Close the connection without a byte of answer.
    Drop,
    /// Say nothing for this long, then close.
    Stall(Duration),
}

/// A minimal HTTP/1.1 server on loopback whose every answer a closure decides.
pub struct RawFake {
    pub url: String,
    requests: Arc<AtomicUsize>,
}

impl RawFake {
    pub async fn start(behaviour: impl Fn(&RawRequest) -> Action + Send + Sync + 'static) -> RawFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(behaviour);
        let counter = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let behaviour = behaviour.clone();
                let counter = counter.clone();
                tokio::spawn(async move { serve(stream, &*behaviour, &counter).await });
            }
        });
        RawFake { url, requests }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    behaviour: &(dyn Fn(&RawRequest) -> Action + Send + Sync),
    counter: &AtomicUsize,
) {
    let mut buf = Vec::new();
    loop {
        // The head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();

        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        counter.fetch_add(1, Ordering::SeqCst);
        match behaviour(&RawRequest { body }) {
            Action::Respond(status, json) => {
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                    json.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Action::Drop => return,
            Action::Stall(d) => {
                tokio::time::sleep(d).await;
                return;
            }
        }
    }
}
