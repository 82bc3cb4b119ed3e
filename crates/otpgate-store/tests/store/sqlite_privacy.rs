//! Retention, export and erasure against the embedded SQLite store.

use std::sync::Arc;

use otpgate_test_support::store_contract::Backend;

async fn fresh() -> Arc<dyn Backend> {
    Arc::new(super::sqlite_contract::open("privacy.db").await)
}

otpgate_test_support::privacy_contract_tests!(fresh());
