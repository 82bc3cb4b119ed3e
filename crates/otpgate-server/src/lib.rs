//! otpgate's HTTP server: routes, extractors, the error edge, configuration, telemetry, and
//! `Application::build`, which wires a store and a provider into a router bound to a port.

pub mod config;
pub mod error;
pub mod extract;
pub mod keys;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod stores;
pub mod telemetry;
pub mod time_fmt;

pub use config::{Config, ConfigError, Environment};
pub use startup::{Application, Overrides, StartError, shutdown_signal};
