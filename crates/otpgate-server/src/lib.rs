//! otpgate's HTTP server: routes, extractors, the error edge, configuration, telemetry, and
//! `Application::build`, which wires a store and a provider into a router bound to a port.

pub mod botcheck;
pub mod client_ip;
pub mod config;
pub mod cors;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod keys;
pub mod layers;
pub mod metrics;
pub mod privacy;
pub mod provider;
pub mod request_id;
pub mod retention;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod startup_warnings;
pub mod store_metrics;
pub mod stores;
pub mod telemetry;
pub mod time_fmt;
pub mod tls;
pub mod transport;

pub use config::{Config, ConfigError, Environment};
pub use startup::{Application, Overrides, StartError, shutdown_signal};
