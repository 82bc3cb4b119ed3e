//! The session storage contract against the embedded SQLite store, each test on its own file.

use std::sync::Arc;

use otpgate_test_support::session_contract::SessionBackend;

async fn fresh() -> Arc<dyn SessionBackend> {
    Arc::new(super::sqlite_contract::open("sessions.db").await)
}

otpgate_test_support::session_contract_tests!(fresh());
