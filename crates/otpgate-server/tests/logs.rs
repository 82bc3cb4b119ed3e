//! What reaches the logs: masked phone numbers and security events, never a code or a full
//! number. This file installs a global subscriber, so it is its own test binary.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn logs_hold_masked_numbers_and_no_codes() {
    let captured = Captured::default();
    // The production filter at its most verbose: even `trace` must not leak numbers or codes.
    tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .with_env_filter(otpgate_server::telemetry::env_filter("trace"))
        .init();

    let app = spawn_app().await;
    let phone = "+14155550177";
    app.send(phone).await;
    let code = app.inbox_code(phone).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    app.check(phone, wrong).await;
    app.check(phone, &code).await;
    app.send("+15005550006").await;
    app.check("+15005550006", "123456").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for needle in [code.as_str(), "123456", "4155550177", "5005550006"] {
        assert!(!logs.contains(needle), "`{needle}` leaked into the logs:\n{logs}");
    }
    assert!(logs.contains("+1******0177"), "masked number is logged");
    for event in [r#""event":"otp.send""#, r#""outcome":"wrong""#, r#""outcome":"approved""#] {
        assert!(logs.contains(event), "missing {event}");
    }
    assert!(logs.contains("request_id"), "events carry the request id");
    let check_event = logs.lines().find(|l| l.contains(r#""event":"otp.check""#)).expect("a check event");
    assert!(check_event.contains(r#""client_ip":"127.0.0.1""#), "{check_event}");
    assert!(check_event.contains(r#""country":"US""#), "{check_event}");
}
