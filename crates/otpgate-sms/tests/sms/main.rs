//! The providers of issue 16 and the router over them, in one test binary: a module per
//! provider (wiremock suites, a raw fake for dropped connections), the vendors' published
//! OpenAPI specs through Prism (`spec_mock`), the failover run, and the channel fallback through
//! the real verification service.

mod common;
mod failover;
mod fallback;
mod sinch;
mod spec_mock;
mod twilio;
mod vonage;
mod webhook;
