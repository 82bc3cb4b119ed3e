//! Logs read by a test, captured for that test alone.
//!
//! This binary holds every server suite, so a process-wide subscriber would mix the logs of tests
//! running in parallel: a random code of one test could turn up in another test's timestamps and
//! fail a "no code in the logs" check. [`capture`] installs the subscriber as the default of the
//! test's own thread instead. A `#[tokio::test]` runs on a current-thread runtime, so the app it
//! spawns (every task of it) runs and logs on that thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

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

/// Captures what this thread logs through the subscriber `make` builds over the capture's writer.
pub fn capture<S>(make: impl FnOnce(Captured) -> S) -> LogCapture
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    let captured = Captured::default();
    let default = tracing::subscriber::set_default(make(captured.clone()));
    LogCapture { captured, _default: default }
}
