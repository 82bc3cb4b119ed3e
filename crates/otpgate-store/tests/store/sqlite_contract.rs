//! The storage contract (and the `Idempotency-Key` contract) against the embedded SQLite store,
//! each test on its own file.

use std::sync::Arc;

use otpgate_store::SqliteStore;
use otpgate_store::contract::Backend;

async fn fresh() -> Option<Arc<dyn Backend>> {
    // The directory is leaked on purpose: it must outlive the store, and the OS cleans /tmp.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let store = SqliteStore::open(&dir.join("contract.db")).await.expect("open sqlite");
    Some(Arc::new(store))
}

otpgate_store::contract_tests!(fresh());

mod idempotency {
    use std::sync::Arc;

    use otpgate_store::SqliteStore;
    use otpgate_store::idempotency_contract::DynStore;

    async fn fresh() -> Option<DynStore> {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        Some(Arc::new(SqliteStore::open(&dir.join("idempotency.db")).await.expect("open sqlite")))
    }

    otpgate_store::idempotency_contract_tests!(fresh());
}
