//! The session contract against PostgreSQL alone (`OTPGATE_TEST_DATABASE_URL`), and against the
//! split deployment: sessions in Postgres, verifications in Redis (`OTPGATE_TEST_REDIS_URL` too),
//! where erasing a user must reach both. Each test has its own schema and key prefix. Ignored
//! unless asked for (`--include-ignored`); asked for without the variables, they fail.

use std::sync::Arc;

use otpgate_core::verification::random_base62;
use otpgate_store::redis::{LimitClock, RedisOptions, RedisStore};
use otpgate_test_support::session_contract::SessionBackend;

use super::postgres_contract::store as pg;

mod postgres_only {
    use super::*;

    async fn fresh() -> Arc<dyn SessionBackend> {
        Arc::new(pg().await)
    }

    otpgate_test_support::session_contract_tests!(ignore = "needs PostgreSQL: set OTPGATE_TEST_DATABASE_URL", fresh());
}

mod redis_and_postgres {
    use super::*;

    async fn fresh() -> Arc<dyn SessionBackend> {
        let redis_url = otpgate_test_support::service("OTPGATE_TEST_REDIS_URL");
        let durable = Arc::new(pg().await);
        let options = RedisOptions {
            key_prefix: format!("otpgate-test:{}:", random_base62(12)),
            limit_clock: LimitClock::Caller,
            ..Default::default()
        };
        let hot = Arc::new(RedisStore::connect(&redis_url, options).await.expect("connect to OTPGATE_TEST_REDIS_URL"));
        otpgate_store::open::combine(hot, durable)
    }

    otpgate_test_support::session_contract_tests!(
        ignore = "needs Redis and PostgreSQL: set OTPGATE_TEST_REDIS_URL and OTPGATE_TEST_DATABASE_URL",
        fresh()
    );
}
