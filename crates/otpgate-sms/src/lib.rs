//! otpgate's SMS providers. Each implements `otpgate_core::SmsProvider`; the server picks them
//! from configuration and never knows which one it talks to.
//!
//! For Twilio: build one HTTP client with `http::build_client(&cfg.http)`, then
//! `TwilioVerify::new` / `TwilioMessaging::new` with it, optionally wrapped in `Failover`.
//! Status callbacks go through `callback::verify_signature` and `callback::parse_status_callback`.

pub mod demo;

mod breaker;
mod caller;
pub mod callback;
pub mod config;
pub mod failover;
pub mod http;
pub mod messaging;
mod twilio;
pub mod verify;
pub mod vonage;

pub use config::{BreakerConfig, ConfigError, HttpConfig, MessagingConfig, RetryConfig, TwilioConfig, VerifyConfig};
pub use failover::Failover;
pub use messaging::TwilioMessaging;
pub use verify::TwilioVerify;
