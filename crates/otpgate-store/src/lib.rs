//! otpgate's storage backends. Each implements the core's store traits with the same
//! guarantees; `contract` holds the one test suite every backend must pass.

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "postgres")]
pub mod postgres;

pub mod open;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrations;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code, unused_imports))]
mod oidc_rows;

mod wire;

pub mod contract;
pub mod idempotency_contract;
pub mod privacy_contract;
pub mod session_contract;

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
