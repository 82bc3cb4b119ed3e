//! The session storage contract against the embedded SQLite store, each test on its own file.

use std::sync::Arc;

use otpgate_store::SqliteStore;
use otpgate_store::session_contract::SessionBackend;

async fn fresh() -> Option<Arc<dyn SessionBackend>> {
    // The directory is leaked on purpose: it must outlive the store, and the OS cleans /tmp.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open(&dir.join("sessions.db")).await.expect("open sqlite");
    Some(Arc::new(store))
}

otpgate_store::session_contract_tests!(fresh());
