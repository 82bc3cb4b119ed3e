//! Logs read by a test, captured for that test alone.
//!
//! A crate's integration tests are one binary, so a process-wide subscriber would mix the logs of
//! tests running in parallel: a random code of one test could turn up in another test's timestamps and
//! fail a "no code in the logs" check. [`capture`] installs the subscriber as the default of the
//! test's own thread instead. A `#[tokio::test]` runs on a current-thread runtime, so what it
//! spawns (the app, every task of it) runs and logs on that thread; a multi-threaded test's
//! workers are not captured.
//!
//! One trap of thread defaults: `tracing` caches, per call site, whether anyone wants its events,
//! and while a single subscriber is registered it asks only the *registering* thread's default.
//! A call site first reached by another test (no subscriber on its thread) would then be cached
//! as "never" and this test would miss it. [`capture`] therefore keeps two do-nothing
//! subscribers registered for the whole run (one is the global default), so every call site is
//! decided over all subscribers and is asked again on each event.

use std::io::Write;
use std::sync::{Arc, Mutex};

use std::sync::Once;

use tracing::subscriber::{DefaultGuard, NoSubscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// The bytes a subscriber wrote.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

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

/// A test's logs so far; capturing stops when it is dropped.
pub struct LogCapture {
    captured: Captured,
    _default: DefaultGuard,
}

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8(self.captured.0.lock().unwrap().clone()).unwrap()
    }
}

/// Captures what this thread logs through the subscriber `make` builds over the capture's writer
/// (and, as in production, what the `log` crate's users log).
pub fn capture<S>(make: impl FnOnce(Captured) -> S) -> LogCapture
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    static SHARED_CALL_SITES: Once = Once::new();
    SHARED_CALL_SITES.call_once(|| {
        let _ = tracing::subscriber::set_global_default(NoSubscriber::new());
        std::mem::forget(tracing::Dispatch::new(NoSubscriber::new()));
    });
    let captured = Captured::default();
    let default = make(captured.clone()).set_default();
    LogCapture { captured, _default: default }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_from_one_call_site() {
        tracing::info!("log-capture-call-site-marker");
    }

    /// The trap in the module docs: another thread reaches a call site first, with no subscriber
    /// of its own, while this test's capture is the only one registered.
    #[test]
    fn a_call_site_first_reached_on_another_thread_is_still_captured() {
        let logs = capture(|writer| tracing_subscriber::fmt().with_writer(writer).finish());
        std::thread::spawn(event_from_one_call_site).join().unwrap();
        event_from_one_call_site();
        assert_eq!(logs.text().matches("log-capture-call-site-marker").count(), 1, "{}", logs.text());
    }
}
