//! otpgate's storage backends. Each implements the core's store traits with the same
//! guarantees; the contract suites every backend must pass live in `otpgate-test-support` (never
//! shipped) and run from `tests/store/`.

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "postgres")]
pub mod postgres;

pub mod open;

pub mod redact;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod migrations;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;

mod wire;

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
