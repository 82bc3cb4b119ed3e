//! The session contract against PostgreSQL alone (`OTPGATE_TEST_DATABASE_URL`), and against the
//! split deployment: sessions in Postgres, verifications in Redis (`OTPGATE_TEST_REDIS_URL` too),
//! where erasing a user must reach both. Each test has its own schema and key prefix.

use std::sync::Arc;

use otpgate_core::verification::random_base62;
use otpgate_store::postgres::{PgOptions, PgStore};
use otpgate_store::redis::{LimitClock, RedisOptions, RedisStore};
use otpgate_store::session_contract::SessionBackend;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|u| !u.is_empty())
}

async fn pg() -> Option<PgStore> {
    let url = env("OTPGATE_TEST_DATABASE_URL")?;
    let options = PgOptions {
        schema: Some(format!("otpgate_test_{}", random_base62(12).to_lowercase())),
        max_connections: 8,
        ..Default::default()
    };
    Some(PgStore::connect(&url, options).await.expect("connect to OTPGATE_TEST_DATABASE_URL"))
}

mod postgres_only {
    use super::*;

    async fn fresh() -> Option<Arc<dyn SessionBackend>> {
        Some(Arc::new(pg().await?))
    }

    otpgate_store::session_contract_tests!(fresh());
}

mod redis_and_postgres {
    use super::*;

    async fn fresh() -> Option<Arc<dyn SessionBackend>> {
        let redis_url = env("OTPGATE_TEST_REDIS_URL")?;
        let durable = Arc::new(pg().await?);
        let options = RedisOptions {
            key_prefix: format!("otpgate-test:{}:", random_base62(12)),
            limit_clock: LimitClock::Caller,
            ..Default::default()
        };
        let hot = Arc::new(RedisStore::connect(&redis_url, options).await.expect("connect to OTPGATE_TEST_REDIS_URL"));
        Some(otpgate_store::open::combine(hot, durable))
    }

    otpgate_store::session_contract_tests!(fresh());
}
