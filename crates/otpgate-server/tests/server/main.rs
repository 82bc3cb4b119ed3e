//! The server's integration tests, one binary (linked once): the real application spawned on
//! 127.0.0.1:0 per test (`common`), a module per topic. Suites that need an outside service are
//! `#[ignore]`d with the variable to set (see the README's testing section).

mod common;

mod abuse;
mod admin;
mod concurrency;
mod cors;
mod edge;
mod faults;
mod idempotency;
mod logs;
mod metrics;
mod oidc;
mod openapi_snapshot;
mod privacy;
mod prop_decoders;
mod providers_routing;
mod scale_out;
mod sessions_flow;
mod store_outage;
mod test_numbers;
mod tls;
mod twilio_flow;
mod verification_flow;
