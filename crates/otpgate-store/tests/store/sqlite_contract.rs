//! The storage contract (and the `Idempotency-Key` contract) against the embedded SQLite store,
//! each test on its own file.

use std::sync::Arc;

use otpgate_store::SqliteStore;
use otpgate_test_support::store_contract::Backend;

/// A fresh store on its own file. The directory is leaked on purpose: it must outlive the store,
/// and the OS cleans /tmp.
pub async fn open(name: &str) -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    SqliteStore::open(&dir.join(name)).await.expect("open sqlite")
}

async fn fresh() -> Arc<dyn Backend> {
    Arc::new(open("contract.db").await)
}

otpgate_test_support::store_contract_tests!(fresh());

mod idempotency {
    use std::sync::Arc;

    use otpgate_core::idempotency::IdempotencyStore;

    async fn fresh() -> Arc<dyn IdempotencyStore> {
        Arc::new(super::open("idempotency.db").await)
    }

    otpgate_test_support::idempotency_contract_tests!(fresh());
}
