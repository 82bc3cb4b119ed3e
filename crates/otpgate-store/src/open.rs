//! Opening the stores a deployment names: one URL for the hot role (verifications, limits) and
//! one for the durable role (users, refresh tokens). This is the only code that knows which
//! backends exist; the server hands it two URLs and gets the core's traits back.
//!
//! | role    | URL                                                    | backend                   |
//! |---------|--------------------------------------------------------|---------------------------|
//! | hot     | `sqlite://PATH`                                        | one instance              |
//! | hot     | `redis://[user:pass@]host:port[/db]`                   | one Redis server          |
//! | hot     | `redis+cluster://[user:pass@]host:port,host:port,…`    | Redis Cluster (any nodes) |
//! | hot     | `postgres://…` (also `postgresql://`)                  | "Postgres only" setups    |
//! | durable | `sqlite://PATH`                                        | one instance              |
//! | durable | `postgres://user[:pass]@host[:port]/db[?sslmode=…]`    | PostgreSQL                |
//!
//! When both roles name the same SQLite file or the same Postgres URL, one store serves both.
//! Otherwise erasing a user also erases their verifications in the hot store, and readiness
//! pings both. `Idempotency-Key` entries live in the hot store, whichever backend it is.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::idempotency::IdempotencyStore;
use otpgate_core::limits::LimitRule;
use otpgate_core::oidc::OidcStore;
use otpgate_core::privacy::{HotDeleted, HotRecords, PurgeCounts, UserRecords};
use otpgate_core::resend::ResendClaim;
use otpgate_core::session::{NewRefreshToken, PublishedKey, RotateOutcome, Rotation, SessionStore, User, UserId};
use otpgate_core::store::{Denied, Issued, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, Channel, CheckOutcome, CodeDigest, Counters, HotStore, IssueOutcome, Limits, PhoneNumber, Policy,
    ProviderHeldCodes, RateLimiter, Retention, SharedValues, StoreError, Timestamp, Verification, VerificationId,
    VerificationStatus, VerificationStore, Verifications,
};

/// Where the hot state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotUrl {
    Sqlite(PathBuf),
    Redis(String),
    /// Node URLs (`redis://host:port`), any subset of the cluster.
    RedisCluster(Vec<String>),
    Postgres(String),
}

/// Where the durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurableUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

fn sqlite_path(rest: &str) -> Result<PathBuf, String> {
    if rest.is_empty() {
        return Err("the SQLite path is empty".into());
    }
    Ok(PathBuf::from(rest))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl FromStr for HotUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return sqlite_path(rest).map(HotUrl::Sqlite);
        }
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let mut nodes: Vec<&str> = rest.split(',').map(str::trim).collect();
            if nodes.iter().any(|n| n.is_empty()) {
                return Err("redis+cluster:// needs a comma-separated list of host:port".into());
            }
            // Credentials written once, on the first node, apply to every node.
            let auth = nodes[0].rsplit_once('@').map(|(auth, _)| auth.to_owned());
            let first_host = nodes[0].rsplit_once('@').map_or(nodes[0], |(_, host)| host);
            nodes[0] = first_host;
            let nodes = nodes
                .into_iter()
                .map(|n| match (&auth, n.contains('@')) {
                    (Some(auth), false) => format!("redis://{auth}@{n}"),
                    _ => format!("redis://{n}"),
                })
                .collect();
            return Ok(HotUrl::RedisCluster(nodes));
        }
        if url.starts_with("redis://") {
            return Ok(HotUrl::Redis(url.to_owned()));
        }
        if url.starts_with("rediss://") {
            return Err(
                "TLS to Redis (rediss://) is not supported by this build; use a TLS tunnel or a private network".into(),
            );
        }
        if is_postgres(url) {
            return Ok(HotUrl::Postgres(url.to_owned()));
        }
        Err(format!(
            "unsupported store `{}`; use sqlite://PATH, redis://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT,… or postgres://…",
            crate::redact::url(url)
        ))
    }
}

impl FromStr for DurableUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            return sqlite_path(rest).map(DurableUrl::Sqlite);
        }
        if is_postgres(url) {
            return Ok(DurableUrl::Postgres(url.to_owned()));
        }
        Err(format!("unsupported store `{}`; use sqlite://PATH or postgres://…", crate::redact::url(url)))
    }
}

/// The knobs of the networked backends.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Put before every Redis key (several deployments can share one Redis).
    pub redis_key_prefix: String,
    /// Longest wait for a connection or an answer from Redis or Postgres.
    pub timeout: Duration,
    /// Upper bound of Postgres connections per instance.
    pub max_connections: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings { redis_key_prefix: "otpgate:".into(), timeout: Duration::from_millis(1500), max_connections: 10 }
    }
}

/// The store handles the application runs on.
#[derive(Clone)]
pub struct Stores {
    pub verifications: Arc<dyn VerificationStore>,
    pub limits: Arc<dyn RateLimiter>,
    pub sessions: Arc<dyn SessionStore>,
    /// `Idempotency-Key` entries, in the hot store (the same connection or pool).
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// OpenID Connect codes, login sessions and revocations, in the hot store too.
    pub oidc: Arc<dyn OidcStore>,
}

/// Erases every verification of a phone; what the hot store must offer for erasing a user.
#[async_trait]
pub trait ForgetPhone: Send + Sync + 'static {
    async fn forget_phone(&self, e164: &str) -> Result<(), StoreError>;
}

#[cfg(feature = "redis")]
#[async_trait]
impl ForgetPhone for crate::redis::RedisStore {
    async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        crate::redis::RedisStore::forget_phone(self, e164).await
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl ForgetPhone for crate::postgres::PgStore {
    async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        crate::postgres::PgStore::forget_phone(self, e164).await
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl ForgetPhone for crate::SqliteStore {
    async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        crate::SqliteStore::forget_phone(self, e164).await
    }
}

/// Something that is a whole hot store, and can erase a phone for a split deployment.
trait Hot: HotStore + ForgetPhone {}
impl<T: HotStore + ForgetPhone> Hot for T {}

/// Something that is a whole durable store (its `VerificationStore` side serves the ping).
trait Durable: SessionStore + VerificationStore {}
impl<T: SessionStore + VerificationStore> Durable for T {}

fn missing(feature: &str) -> StoreError {
    StoreError::Internal(format!("this build has no {feature} support (cargo feature `{feature}` of otpgate-store)"))
}

/// Opens (and for SQL, migrates) the stores; fails if one cannot be reached, so a deployment
/// with a wrong URL stops at start rather than serving errors.
// Builds without every backend compile some arms out, leaving the rest looking unused.
#[allow(unused_variables, unreachable_code)]
pub async fn open(hot: &HotUrl, durable: &DurableUrl, settings: &StoreSettings) -> Result<Stores, StoreError> {
    // One store for both roles when they name the same place.
    match (hot, durable) {
        #[cfg(feature = "sqlite")]
        (HotUrl::Sqlite(a), DurableUrl::Sqlite(b)) if a == b => {
            let store = Arc::new(crate::SqliteStore::open(a).await?);
            return Ok(Stores {
                verifications: store.clone(),
                limits: store.clone(),
                sessions: store.clone(),
                idempotency: store.clone(),
                oidc: store,
            });
        }
        #[cfg(feature = "postgres")]
        (HotUrl::Postgres(a), DurableUrl::Postgres(b)) if a == b => {
            let store = Arc::new(open_pg(a, settings).await?);
            return Ok(Stores {
                verifications: store.clone(),
                limits: store.clone(),
                sessions: store.clone(),
                idempotency: store.clone(),
                oidc: store,
            });
        }
        _ => {}
    }
    let (hot, idempotency, oidc): HotRoles = match hot {
        #[cfg(feature = "sqlite")]
        HotUrl::Sqlite(path) => both(crate::SqliteStore::open(path).await?),
        #[cfg(feature = "redis")]
        HotUrl::Redis(url) => both(crate::redis::RedisStore::connect(url, redis_options(settings)).await?),
        #[cfg(feature = "redis")]
        HotUrl::RedisCluster(nodes) => {
            both(crate::redis::RedisStore::connect_cluster(nodes, redis_options(settings)).await?)
        }
        #[cfg(feature = "postgres")]
        HotUrl::Postgres(url) => both(open_pg(url, settings).await?),
        #[allow(unreachable_patterns)]
        other => return Err(missing(feature_of_hot(other))),
    };
    let durable: Arc<dyn Durable> = match durable {
        #[cfg(feature = "sqlite")]
        DurableUrl::Sqlite(path) => Arc::new(crate::SqliteStore::open(path).await?),
        #[cfg(feature = "postgres")]
        DurableUrl::Postgres(url) => Arc::new(open_pg(url, settings).await?),
        #[allow(unreachable_patterns)]
        other => return Err(missing(feature_of_durable(other))),
    };
    Ok(split(hot, durable, idempotency, oidc))
}

/// A hot store in each of its roles.
type HotRoles = (Arc<dyn Hot>, Arc<dyn IdempotencyStore>, Arc<dyn OidcStore>);

/// One hot store as all of its roles.
#[allow(dead_code)]
fn both<T: Hot + OidcStore>(store: T) -> HotRoles {
    let store = Arc::new(store);
    (store.clone(), store.clone(), store)
}

#[allow(dead_code)]
fn feature_of_hot(url: &HotUrl) -> &'static str {
    match url {
        HotUrl::Sqlite(_) => "sqlite",
        HotUrl::Redis(_) | HotUrl::RedisCluster(_) => "redis",
        HotUrl::Postgres(_) => "postgres",
    }
}

#[allow(dead_code)]
fn feature_of_durable(url: &DurableUrl) -> &'static str {
    match url {
        DurableUrl::Sqlite(_) => "sqlite",
        DurableUrl::Postgres(_) => "postgres",
    }
}

#[cfg(feature = "redis")]
fn redis_options(settings: &StoreSettings) -> crate::redis::RedisOptions {
    crate::redis::RedisOptions {
        key_prefix: settings.redis_key_prefix.clone(),
        timeout: settings.timeout,
        limit_clock: crate::redis::LimitClock::Redis,
    }
}

#[cfg(feature = "postgres")]
async fn open_pg(url: &str, settings: &StoreSettings) -> Result<crate::postgres::PgStore, StoreError> {
    let options = crate::postgres::PgOptions {
        max_connections: settings.max_connections,
        timeout: settings.timeout,
        schema: None,
    };
    crate::postgres::PgStore::connect(url, options).await
}

fn split(
    hot: Arc<dyn Hot>,
    durable: Arc<dyn Durable>,
    idempotency: Arc<dyn IdempotencyStore>,
    oidc: Arc<dyn OidcStore>,
) -> Stores {
    let combined = Arc::new(Split { hot, durable });
    Stores { verifications: combined.clone(), limits: combined.clone(), sessions: combined, idempotency, oidc }
}

/// Two stores seen as one: verifications and limits from the hot one, sessions from the durable
/// one; erasing a user erases in both, and the ping asks both.
struct Split {
    hot: Arc<dyn Hot>,
    durable: Arc<dyn Durable>,
}

/// Combines stores already open into one object implementing every store trait (hot:
/// verifications and limits; durable: sessions), as `open` does for a split deployment.
pub fn combine<H, D>(hot: Arc<H>, durable: Arc<D>) -> Arc<impl SessionStore + VerificationStore + RateLimiter>
where
    H: HotStore + ForgetPhone,
    D: SessionStore + VerificationStore,
{
    Arc::new(Split { hot, durable })
}

#[async_trait]
impl Verifications for Split {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        self.hot.resend_wait(phone, now).await
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        self.hot.issue(new, now, policy).await
    }

    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError> {
        // The resend values are the hot store's too (`Stores::limits` is this same split).
        self.hot.issue_with_resend(claim, new, now, policy).await
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.hot.set_provider_ref(id, provider_ref).await
    }

    async fn set_channel(&self, id: &VerificationId, channel: Channel) -> Result<(), StoreError> {
        self.hot.set_channel(id, channel).await
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        self.hot.revert_issue(outcome).await
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        self.hot.check(phone, candidate, now).await
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        self.hot.cancel(id, now).await
    }

    /// Ready only when both answer: a sign-in needs the durable store as much as a check needs
    /// the hot one.
    async fn ping(&self) -> Result<(), StoreError> {
        let (hot, durable) = tokio::join!(self.hot.ping(), self.durable.ping());
        hot.and(durable)
    }
}

#[async_trait]
impl ProviderHeldCodes for Split {
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.hot.mark_remote(id, provider_ref).await
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        self.hot.count_attempt(id, now).await
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        self.hot.approve(id, now).await
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        self.hot.finish(id, status, now).await
    }
}

#[async_trait]
impl Retention for Split {
    async fn purge(&self, before: Timestamp, now: Timestamp) -> Result<PurgeCounts, StoreError> {
        self.hot.purge(before, now).await
    }

    async fn export_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        self.hot.export_phone(phone, limit_keys).await
    }

    async fn delete_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        self.hot.delete_phone(phone, limit_keys).await
    }
}

#[async_trait]
impl Limits for Split {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        self.hot.acquire(rules, now).await
    }

    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        self.hot.peek(rules, now).await
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        self.hot.reset(keys).await
    }
}

#[async_trait]
impl Counters for Split {
    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        self.hot.incr_counter(key, bucket, expires_at).await
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        self.hot.sum_counter(key, since).await
    }
}

#[async_trait]
impl SharedValues for Split {
    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        self.hot.load_value(key, now).await
    }

    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.hot.swap_value(key, expected, new, now).await
    }
}

#[async_trait]
impl SessionStore for Split {
    async fn sign_in(
        &self,
        phone: &PhoneNumber,
        new_id: UserId,
        first: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<(User, bool), StoreError> {
        self.durable.sign_in(phone, new_id, first, now).await
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.durable.find_user(id).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &CodeDigest,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.durable.rotate_refresh_token(presented, rotation, now).await
    }

    async fn revoke_refresh_family(&self, presented: &CodeDigest, now: Timestamp) -> Result<bool, StoreError> {
        self.durable.revoke_refresh_family(presented, now).await
    }

    /// Erases the hot verifications first: if the durable delete then fails, a retry finds the
    /// user again and finishes; the other order could leave verifications of an erased user.
    async fn delete_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let Some(user) = self.durable.find_user(id).await? else { return Ok(None) };
        self.hot.forget_phone(&user.phone).await?;
        self.durable.delete_user(id).await
    }

    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.durable.purge_expired_refresh_tokens(now).await
    }

    async fn publish_signing_key(&self, key: &PublishedKey, now: Timestamp) -> Result<(), StoreError> {
        self.durable.publish_signing_key(key, now).await
    }

    async fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<PublishedKey>, StoreError> {
        self.durable.published_signing_keys(now).await
    }

    async fn export_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<UserRecords>, StoreError> {
        self.durable.export_user_by_phone(phone).await
    }

    /// Hot first, as in `delete_user`: a failed durable delete can be retried.
    async fn delete_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        self.hot.forget_phone(phone.e164()).await?;
        self.durable.delete_user_by_phone(phone).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_per_role() {
        assert_eq!("sqlite://otpgate.db".parse::<HotUrl>(), Ok(HotUrl::Sqlite("otpgate.db".into())));
        assert_eq!("redis://127.0.0.1:6379/2".parse::<HotUrl>(), Ok(HotUrl::Redis("redis://127.0.0.1:6379/2".into())));
        assert_eq!(
            "redis+cluster://:s3cret@10.0.0.1:7001, 10.0.0.2:7002".parse::<HotUrl>(),
            Ok(HotUrl::RedisCluster(vec![
                "redis://:s3cret@10.0.0.1:7001".into(),
                "redis://:s3cret@10.0.0.2:7002".into()
            ]))
        );
        assert_eq!(
            "postgresql://u@db/otp".parse::<DurableUrl>(),
            Ok(DurableUrl::Postgres("postgresql://u@db/otp".into()))
        );
        assert!("redis://x".parse::<DurableUrl>().is_err(), "Redis holds no durable state");
        assert!("sqlite://".parse::<HotUrl>().is_err());
        assert!("redis+cluster://a:1,,b:2".parse::<HotUrl>().is_err());
        let e = "mysql://root:hunter2@db/x".parse::<HotUrl>().unwrap_err();
        assert!(e.contains("mysql://root:<redacted>@db/x") && !e.contains("hunter2"), "{e}");
        let e = "mysql://db/x?password=hunter2".parse::<DurableUrl>().unwrap_err();
        assert!(e.contains("password=<redacted>") && !e.contains("hunter2"), "{e}");
    }
}
