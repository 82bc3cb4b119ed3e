//! Every backend against the contract suites of `otpgate-test-support`, in one test binary.
//!
//! SQLite runs in every `cargo test`. The service backends are `#[ignore]`d, so a plain
//! `cargo test` reports them as ignored, never as passed; run them with
//! `cargo test -p otpgate-store -- --include-ignored` and the variables of the services you have
//! (a test asked to run without its variable fails, naming it):
//!
//! | module                           | needs                                                       |
//! |----------------------------------|-------------------------------------------------------------|
//! | `sqlite_*`                       | nothing                                                     |
//! | `redis_contract`                 | `OTPGATE_TEST_REDIS_URL` (`redis://127.0.0.1:6379`)          |
//! | `redis_cluster_contract`         | `OTPGATE_TEST_REDIS_CLUSTER_URLS` (`scripts/redis-cluster.sh`) |
//! | `redis_outage`                   | `redis-server` on the PATH (starts its own)                  |
//! | `postgres_contract`              | `OTPGATE_TEST_DATABASE_URL` (`postgres://…/test`)            |
//! | `postgres_session_contract`      | PostgreSQL, and Redis for the split deployment              |

mod postgres_contract;
mod postgres_session_contract;
mod redis_cluster_contract;
mod redis_contract;
mod redis_outage;
mod sqlite_contract;
mod sqlite_privacy;
mod sqlite_session_contract;
