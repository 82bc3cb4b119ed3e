//! otpgate's storage backends. Each implements the core's store traits with the same
//! guarantees; `contract` holds the one test suite every backend must pass.

#[cfg(feature = "sqlite")]
pub mod sqlite;

pub mod contract;
pub mod session_contract;

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
