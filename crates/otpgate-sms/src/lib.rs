//! otpgate's SMS providers. Each implements `otpgate_core::SmsProvider`; the server picks them
//! from configuration and never knows which one it talks to.
//!
//! Named providers and routes: deserialize `[providers.NAME]` into `router::ProviderConfig` and
//! `[[routing]]` into `router::RouteConfig`, then `router::build` makes every provider (one
//! pooled HTTP client for all) and the `Router`, the one `SmsProvider` the server holds.
//! `router::check_routes` answers the effective route per country for `otpgate config check`.
//!
//! Delivery receipts, as pure functions a route handler calls: Twilio
//! (`callback::verify_signature`, `callback::parse_status_callback`), Vonage
//! (`vonage::verify_receipt`, `vonage::parse_receipt`), Sinch (`sinch::verify_callback_auth`,
//! `sinch::parse_delivery_report`).
//!
//! The server's old `[provider]` table (one Twilio account, providers in failover order) is one
//! route for every country over those providers: the router replaced the Twilio-to-Twilio
//! failover of before routes.

pub mod demo;

mod breaker;
pub mod callback;
mod caller;
pub mod config;
pub mod http;
pub mod messaging;
pub mod router;
pub mod sinch;
mod twilio;
pub mod verify;
pub mod vonage;
pub mod webhook;

pub use config::{BreakerConfig, ConfigError, HttpConfig, MessagingConfig, RetryConfig, TwilioConfig, VerifyConfig};
pub use messaging::TwilioMessaging;
pub use router::{ProviderConfig, RouteConfig, Router};
pub use sinch::{Sinch, SinchConfig};
pub use verify::TwilioVerify;
pub use vonage::{Vonage, VonageConfig};
pub use webhook::{Webhook, WebhookConfig};
