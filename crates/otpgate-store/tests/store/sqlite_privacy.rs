//! Retention, export and erasure against the embedded SQLite store.

use std::sync::Arc;

use otpgate_store::SqliteStore;
use otpgate_store::contract::Backend;

async fn fresh() -> Option<Arc<dyn Backend>> {
    // The directory is leaked on purpose: it must outlive the store, and the OS cleans /tmp.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open(&dir.join("privacy.db")).await.expect("open sqlite");
    Some(Arc::new(store))
}

otpgate_store::privacy_contract_tests!(fresh());
