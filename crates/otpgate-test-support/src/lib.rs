//! What otpgate's test suites share, never part of a shipped crate: the services a suite needs,
//! and the contract suites every store backend must pass ([`store_contract`],
//! [`session_contract`], [`idempotency_contract`], [`privacy_contract`]).
//!
//! # Skipped is not passed
//! A test that needs an outside service (Redis, PostgreSQL, a vendor mock, …) is marked
//! `#[ignore = "needs …: set OTPGATE_TEST_…"]`, so a plain `cargo test` reports it as *ignored*,
//! never as *ok*. It runs with `cargo test -- --include-ignored`, and then [`service`] hands it the
//! address from its variable — or fails the test, naming the variable, when it is not set: a test
//! that was asked to run and could not is a failure, not a pass.
//!
//! `OTPGATE_TEST_REQUIRE_SERVICES=1` (which `.ci/run` sets) adds one more check that runs in every
//! `cargo test`: [`tests::services_required_by_ci_are_configured`] fails unless every variable in
//! [`SERVICES`] is set, so a CI machine that lost a service fails instead of quietly testing less.
//!
//! # Logs
//! [`logs::capture`] gives a test the logs of its own thread only (a crate's tests share one
//! binary, so a process-wide subscriber would mix them).

pub mod approvals;
pub mod logs;

pub mod idempotency_contract;
pub mod privacy_contract;
pub mod session_contract;
pub mod store_contract;

/// One contract check as a `#[tokio::test]`: `$attrs` is `[]` or `[#[ignore = "needs …"]]`, so
/// a backend behind an outside service is reported as ignored rather than passed. Used by the
/// `*_contract_tests!` macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_test {
    ([$(#[$meta:meta])*], $make:expr, $backend:ty, $check:path, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$meta])*
        async fn $name() {
            let store: std::sync::Arc<$backend> = $make.await;
            $check(store).await
        }
    };
}

/// Set to `1` to make a missing service fail the run (`.ci/run` sets it).
pub const REQUIRE_SERVICES: &str = "OTPGATE_TEST_REQUIRE_SERVICES";

/// Every service variable a suite reads, and what it is.
pub const SERVICES: &[(&str, &str)] = &[
    ("OTPGATE_TEST_REDIS_URL", "a Redis server (redis://127.0.0.1:6379)"),
    ("OTPGATE_TEST_REDIS_CLUSTER_URLS", "a Redis Cluster's node URLs, comma-separated"),
    ("OTPGATE_TEST_DATABASE_URL", "a PostgreSQL database (postgres://postgres@127.0.0.1:5432/test)"),
    ("OTPGATE_TEST_TWILIO_MOCK_VERIFY_URL", "the Twilio Verify Prism mock"),
    ("OTPGATE_TEST_TWILIO_MOCK_API_URL", "the Twilio Messaging Prism mock"),
    ("OTPGATE_TEST_VONAGE_MOCK_URL", "the Vonage Prism mock"),
    ("OTPGATE_TEST_SINCH_MOCK_URL", "the Sinch Prism mock"),
    ("OTPGATE_TEST_WEBHOOK_RECEIVER", "the Node standardwebhooks receiver (npm ci in its directory)"),
];

/// The value of a service variable, for a test that is running because it was asked to
/// (`--include-ignored`). Panics, naming the variable, when it is unset or empty.
pub fn service(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "this test needs {var} ({}); it is ignored in a plain `cargo test` and fails when run without it",
            describe(var)
        ),
    }
}

/// The value of a service variable when it is set, for code that only adds to a test when the
/// service is there (never to decide whether a test passes).
pub fn optional_service(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.trim().is_empty())
}

/// Whether `OTPGATE_TEST_REQUIRE_SERVICES=1`.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|value| value == "1")
}

/// The services [`SERVICES`] names whose variable is unset.
pub fn missing_services() -> Vec<&'static str> {
    SERVICES.iter().map(|(var, _)| *var).filter(|var| optional_service(var).is_none()).collect()
}

fn describe(var: &str) -> &'static str {
    SERVICES.iter().find(|(name, _)| *name == var).map_or("an outside service", |(_, what)| what)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `OTPGATE_TEST_REQUIRE_SERVICES=1`, every service variable must be set. Without it this
    /// test has nothing to require and says so on stderr.
    #[test]
    fn services_required_by_ci_are_configured() {
        if !services_required() {
            eprintln!("{REQUIRE_SERVICES} is not 1: service suites are ignored unless configured");
            return;
        }
        let missing = missing_services();
        assert!(
            missing.is_empty(),
            "{REQUIRE_SERVICES}=1 but these services are not configured: {}",
            missing.join(", ")
        );
    }

    #[test]
    #[should_panic(expected = "OTPGATE_TEST_NOT_A_SERVICE")]
    fn a_missing_service_fails_the_test_that_needs_it() {
        service("OTPGATE_TEST_NOT_A_SERVICE");
    }
}
