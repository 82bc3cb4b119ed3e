//! The providers and the router over them, in one test binary: a module per provider (wiremock
//! suites, a raw fake for dropped connections, `twilio_fake`), the vendors' published OpenAPI
//! specs through Prism (`spec_mock`, `twilio_mock`: ignored unless asked for, see the README's
//! testing section), the failover run, the channel fallback through the real verification
//! service, and what reaches the logs (`twilio_logs`).

mod common;
mod failover;
mod fallback;
mod sinch;
mod spec_mock;
mod twilio;
mod twilio_fake;
mod twilio_logs;
mod twilio_mock;
mod vonage;
mod webhook;
