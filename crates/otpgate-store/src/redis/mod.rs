//! The shared hot store on Redis (a single server or a Redis Cluster): verifications and rate
//! limits for any number of otpgate instances. Every operation that reads before it decides is one
//! Lua script, so it runs atomically on the server; the scripts live beside this file.
//!
//! Keys (`P` is the configurable prefix, `otpgate:` by default):
//! - `P v:{+14155550100}` — hash: the phone's current verification;
//! - `P vp:{+14155550100}` — hash: the one before it, kept while it is dead (wrong codes) and not
//!   expired, so reverting a failed send cannot lift a lockout;
//! - `P vid:{vf_…}` — string: the phone of a verification id (for cancel and the provider ref);
//! - `P rl:{send:phone:+14155550100}` — string: a limit key's GCRA arrival time;
//! - `P ctr:{key}` — hash: a windowed counter (bucket start -> count), for the tripwire;
//! - `P sv:{key}` — hash: a shared value (`v`, and `exp` when it expires): a phone's resend
//!   cooldown (keyed by an HMAC of the number), and the fingerprint of the HMAC key — the one key
//!   without a TTL, a few dozen bytes per deployment;
//! - `P idem:{<hex>}` — hash: one `Idempotency-Key` entry (see [`idempotency`]).
//!
//! The `{…}` hash tag puts both keys of one phone in one Cluster slot, so the issue and check
//! scripts see them together. Every key but the HMAC-key fingerprint has a TTL: a verification
//! lives until its expiry plus [`KEY_GRACE`], a limit key until its arrival time passes (then it
//! is spent anyway), a shared value until its expiry.
//!
//! Time: verification scripts use the `now` the caller passes (the service's clock), because the
//! timestamps go back to the service and the client and the contract moves time. Instances are
//! expected to be NTP-synced; a skew of a few milliseconds only shifts one verification's expiry
//! or cooldown by that much and never grants an attempt (attempts are counted, not timed). Limits
//! use Redis's own `TIME` by default ([`LimitClock::Redis`]), so every instance takes from a bucket
//! on one clock; [`LimitClock::Caller`] uses the passed `now` (the contract tests move time).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::Slot;
use ::redis::io::tcp::TcpSettings;
use ::redis::{Client, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError, Script, ScriptInvocation};
use async_trait::async_trait;
use otpgate_core::limits::LimitRule;
use otpgate_core::policy::MAX_RESEND_COOLDOWN;
use otpgate_core::privacy::{HotDeleted, HotRecords, PurgeCounts};
use otpgate_core::store::{Denied, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, Channel, CheckOutcome, CodeDigest, IssueOutcome, PhoneNumber, Policy, RateLimiter, StoreError,
    Timestamp, Verification, VerificationId, VerificationStatus, VerificationStore,
};

mod idempotency;
mod oidc;
mod privacy;

/// How long a verification's keys outlive its expiry: covers clock skew between instances, so an
/// instance whose clock is a little behind still finds the state it expects.
pub const KEY_GRACE: Duration = Duration::from_secs(60);

static ISSUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("issue.lua")));
static CHECK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("check.lua")));
static REVERT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("revert.lua")));
static UPDATE_BY_ID: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("update_by_id.lua")));
static LIMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limit.lua")));
static COUNTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("counter.lua")));
static GIVEBACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("giveback.lua")));
static SWAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("swap.lua")));

/// Which clock the rate limits run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitClock {
    /// Redis's `TIME`: one clock for all instances (the default for serving).
    #[default]
    Redis,
    /// The `now` the caller passes (tests that move time).
    Caller,
}

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Put before every key, so several deployments (or test runs) can share one Redis.
    /// Must not contain `{` or `}` (they would change the Cluster hash tag).
    pub key_prefix: String,
    /// Longest wait for a connection or an answer; past it an operation is `Unavailable`.
    pub timeout: Duration,
    pub limit_clock: LimitClock,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: "otpgate:".into(),
            timeout: Duration::from_millis(1500),
            limit_clock: LimitClock::Redis,
        }
    }
}

#[derive(Clone)]
enum Conn {
    /// Reconnects by itself after the server went away (a `MultiplexedConnection` does not).
    Single(ConnectionManager),
    /// Follows the slot map and reconnects to the nodes by itself.
    Cluster(ClusterConnection),
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    timeout: Duration,
    limit_clock: LimitClock,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Single(_) => "single",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore").field("kind", &kind).field("prefix", &self.prefix).finish()
    }
}

fn tcp_settings() -> TcpSettings {
    // Every operation is one small request awaiting one small answer: Nagle would only add delay.
    TcpSettings::default().set_nodelay(true)
}

fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::Internal("the Redis key prefix must not contain `{` or `}`".into()));
    }
    Ok(())
}

impl RedisStore {
    /// Connects to one Redis server (`redis://[user:password@]host:port[/db]`) and checks that
    /// it answers.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        check_prefix(&options.key_prefix)?;
        let info = url.into_connection_info().map_err(config_error)?.set_tcp_settings(tcp_settings());
        let client = Client::open(info).map_err(config_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // Few quick retries: a request waiting on a reconnect must not hang, the next
            // request triggers another attempt anyway.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(config_error)?;
        let store = RedisStore {
            conn: Conn::Single(manager),
            prefix: options.key_prefix,
            timeout: options.timeout,
            limit_clock: options.limit_clock,
        };
        store.ping().await?;
        Ok(store)
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port` each) and checks
    /// that it answers.
    pub async fn connect_cluster(nodes: &[String], options: RedisOptions) -> Result<Self, StoreError> {
        check_prefix(&options.key_prefix)?;
        if nodes.is_empty() {
            return Err(StoreError::Internal("a Redis Cluster needs at least one node address".into()));
        }
        let client = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(options.timeout)
            .response_timeout(options.timeout)
            .tcp_settings(tcp_settings())
            .retries(1)
            .min_retry_wait(50)
            .max_retry_wait(500)
            .build()
            .map_err(config_error)?;
        let conn = tokio::time::timeout(options.timeout * 2, client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unavailable("Redis Cluster did not answer in time".into()))?
            .map_err(classify)?;
        let store = RedisStore {
            conn: Conn::Cluster(conn),
            prefix: options.key_prefix,
            timeout: options.timeout,
            limit_clock: options.limit_clock,
        };
        store.ping().await?;
        Ok(store)
    }

    fn phone_key(&self, kind: &str, e164: &str) -> String {
        format!("{}{kind}:{{{e164}}}", self.prefix)
    }

    fn id_key(&self, id: &VerificationId) -> String {
        format!("{}vid:{{{}}}", self.prefix, id.as_str())
    }

    fn limit_key(&self, key: &str) -> String {
        format!("{}rl:{{{key}}}", self.prefix)
    }

    fn value_key(&self, key: &str) -> String {
        format!("{}sv:{{{key}}}", self.prefix)
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT) within the timeout.
    async fn script<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        match &self.conn {
            Conn::Single(c) => self.timed(invocation.invoke_async(&mut c.clone())).await,
            Conn::Cluster(c) => self.timed(invocation.invoke_async(&mut c.clone())).await,
        }
    }

    async fn command<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T, StoreError> {
        match &self.conn {
            Conn::Single(c) => self.timed(cmd.query_async(&mut c.clone())).await,
            Conn::Cluster(c) => self.timed(cmd.query_async(&mut c.clone())).await,
        }
    }

    async fn timed<T>(&self, fut: impl Future<Output = Result<T, RedisError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(StoreError::Unavailable("Redis did not answer in time".into())),
        }
    }

    fn limit_now(&self, now: Timestamp) -> String {
        match self.limit_clock {
            LimitClock::Redis => String::new(),
            LimitClock::Caller => now.0.to_string(),
        }
    }

    /// Erases every verification of `phone` (for erasing a user). Limit keys stay: they hold no
    /// code, expire on their own, and must not be reset by an erase.
    pub async fn forget_phone(&self, e164: &str) -> Result<(), StoreError> {
        self.delete_phone_impl(e164, &[]).await.map(drop)
    }

    /// The keys under this store's prefix and their TTLs in ms (for tests: every key must have
    /// one). Scans a single server only.
    pub async fn ttls(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let Conn::Single(c) = &self.conn else {
            return Err(StoreError::Internal("ttls() scans a single Redis server only".into()));
        };
        let mut conn = c.clone();
        let pattern = format!("{}*", self.prefix);
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .timed(
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn),
                )
                .await?;
            for key in keys {
                let ttl: i64 = self.timed(::redis::cmd("PTTL").arg(&key).query_async(&mut conn)).await?;
                out.push((key, ttl));
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}

fn config_error(e: RedisError) -> StoreError {
    StoreError::Internal(format!("Redis configuration: {e}"))
}

/// Connection trouble, timeouts and a cluster in transition are "unavailable" (503, retry later);
/// anything else (a script error, an unexpected reply) is a bug (500).
fn classify(e: RedisError) -> StoreError {
    use ::redis::ServerErrorKind as S;
    let unavailable = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(S::BusyLoading | S::MasterDown | S::TryAgain | S::ClusterDown | S::ReadOnly)
        );
    if unavailable { StoreError::Unavailable(e.to_string()) } else { StoreError::Internal(e.to_string()) }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt verification in Redis: {what}"))
}

/// A verification from the flat field/value list `HGETALL` answers.
fn verification_from_flat(flat: Vec<Vec<u8>>) -> Result<Verification, StoreError> {
    let mut fields: HashMap<String, Vec<u8>> = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        fields.insert(String::from_utf8(k).map_err(|_| corrupt("field name"))?, v);
    }
    let text = |name: &str| -> Result<String, StoreError> {
        let bytes = fields.get(name).ok_or_else(|| corrupt(name))?;
        String::from_utf8(bytes.clone()).map_err(|_| corrupt(name))
    };
    let int = |name: &str| -> Result<i64, StoreError> { text(name)?.parse().map_err(|_| corrupt(name)) };
    let count = |name: &str| -> Result<u32, StoreError> { u32::try_from(int(name)?).map_err(|_| corrupt(name)) };
    let code_digest = match fields.get("digest") {
        Some(bytes) => Some(CodeDigest::from_slice(bytes).ok_or_else(|| corrupt("digest"))?),
        None => None,
    };
    let provider_ref = match fields.get("pref") {
        Some(bytes) => Some(String::from_utf8(bytes.clone()).map_err(|_| corrupt("pref"))?),
        None => None,
    };
    Ok(Verification {
        id: VerificationId::parse(&text("id")?).ok_or_else(|| corrupt("id"))?,
        phone: text("phone")?,
        channel: Channel::from_str(&text("channel")?).map_err(|_| corrupt("channel"))?,
        status: VerificationStatus::from_str(&text("status")?).map_err(|_| corrupt("status"))?,
        code_digest,
        provider_ref,
        attempts: count("attempts")?,
        max_attempts: count("max")?,
        sends: count("sends")?,
        created_at: Timestamp(int("created")?),
        expires_at: Timestamp(int("expires")?),
        next_resend_at: Timestamp(int("next")?),
    })
}

fn digest_arg(d: &Option<CodeDigest>) -> Vec<u8> {
    d.as_ref().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
}

fn first_number(data: &[Vec<u8>]) -> Result<u64, StoreError> {
    data.first()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Internal("unexpected answer from a Redis script".into()))
}

#[async_trait]
impl VerificationStore for RedisStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let key = self.phone_key("v", phone.e164());
        let (status, expires, next): (Option<String>, Option<i64>, Option<i64>) =
            self.command(::redis::cmd("HMGET").arg(&key).arg("status").arg("expires").arg("next")).await?;
        match (status.as_deref(), expires, next) {
            (Some("pending"), Some(expires), Some(next)) if now.0 < expires => {
                let next = Timestamp(next);
                Ok((next > now).then(|| now.until(next)))
            }
            _ => Ok(None),
        }
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let e164 = new.phone.e164();
        let mut inv = ISSUE.prepare_invoke();
        inv.key(self.phone_key("v", e164))
            .key(self.phone_key("vp", e164))
            .arg(now.0)
            .arg(new.id.as_str())
            .arg(e164)
            .arg(new.channel.as_str())
            .arg(digest_arg(&new.code_digest))
            .arg(ms(policy.code_ttl))
            .arg(policy.max_attempts)
            .arg(ms(policy.resend_cooldown))
            .arg(ms(MAX_RESEND_COOLDOWN.max(policy.resend_cooldown)))
            .arg(ms(KEY_GRACE));
        let (kind, before, after): (String, Vec<Vec<u8>>, Vec<Vec<u8>>) = self.script(&inv).await?;
        let outcome = match kind.as_str() {
            "cooldown" => {
                return Ok(IssueOutcome::Cooldown { retry_after: Duration::from_millis(first_number(&before)?) });
            }
            "created" => IssueOutcome::Created(verification_from_flat(after)?),
            "resent" => IssueOutcome::Resent {
                previous: verification_from_flat(before)?,
                verification: verification_from_flat(after)?,
            },
            other => return Err(StoreError::Internal(format!("issue script answered {other:?}"))),
        };
        let v = match &outcome {
            IssueOutcome::Created(v) | IssueOutcome::Resent { verification: v, .. } => v,
            IssueOutcome::Cooldown { .. } => unreachable!("answered above"),
        };
        // The id index lives in the id's own slot, so it cannot be part of the script on a
        // Cluster; it is written right after, and refreshed with every resend.
        let ttl = now.until(v.expires_at) + KEY_GRACE;
        self.command::<()>(::redis::cmd("SET").arg(self.id_key(&v.id)).arg(e164).arg("PX").arg(ms(ttl))).await?;
        Ok(outcome)
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.by_id(id, "ref", &[provider_ref]).await.map(drop)
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        let mut inv = REVERT.prepare_invoke();
        match outcome {
            IssueOutcome::Created(v) => {
                inv.key(self.phone_key("v", &v.phone))
                    .arg("created")
                    .arg(v.id.as_str())
                    .arg(digest_arg(&v.code_digest));
                self.script::<i64>(&inv).await?;
                self.command::<()>(::redis::cmd("DEL").arg(self.id_key(&v.id))).await?;
            }
            IssueOutcome::Resent { verification, previous } => {
                inv.key(self.phone_key("v", &verification.phone))
                    .arg("resent")
                    .arg(verification.id.as_str())
                    .arg(digest_arg(&verification.code_digest))
                    .arg(digest_arg(&previous.code_digest))
                    .arg(previous.channel.as_str())
                    .arg(previous.provider_ref.as_deref().unwrap_or(""))
                    .arg(previous.sends)
                    .arg(previous.expires_at.0)
                    .arg(previous.next_resend_at.0);
                self.script::<i64>(&inv).await?;
            }
            IssueOutcome::Cooldown { .. } => {}
        }
        Ok(())
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        let mut inv = CHECK.prepare_invoke();
        inv.key(self.phone_key("v", phone.e164()))
            .key(self.phone_key("vp", phone.e164()))
            .arg(now.0)
            .arg(candidate.as_bytes().as_slice());
        let (kind, data): (String, Vec<Vec<u8>>) = self.script(&inv).await?;
        match kind.as_str() {
            "approved" => Ok(CheckOutcome::Approved(verification_from_flat(data)?)),
            "wrong" => Ok(CheckOutcome::Wrong { attempts_left: first_number(&data)? as u32 }),
            "killed" => Ok(CheckOutcome::Killed),
            "exhausted" => Ok(CheckOutcome::Exhausted),
            "notfound" => Ok(CheckOutcome::NotFound),
            // The provider holds this code: nothing was compared or counted here.
            "remote" => Ok(CheckOutcome::Remote(verification_from_flat(data)?)),
            other => Err(StoreError::Internal(format!("check script answered {other:?}"))),
        }
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        let (done, flat) = self.by_id(id, "cancel", &[&now.0.to_string()]).await?;
        if done == "1" { verification_from_flat(flat).map(Some) } else { Ok(None) }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.command(&::redis::cmd("PING")).await?;
        if pong == "PONG" { Ok(()) } else { Err(StoreError::Internal(format!("PING answered {pong:?}"))) }
    }

    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.by_id(id, "remote", &[provider_ref]).await.map(drop)
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        let (result, flat) = self.by_id(id, "count", &[&now.0.to_string()]).await?;
        match result.as_str() {
            "counted" => Ok(AttemptOutcome::Counted(verification_from_flat(flat)?)),
            "exhausted" => Ok(AttemptOutcome::Exhausted),
            _ => Ok(AttemptOutcome::NotFound),
        }
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.by_id(id, "approve", &[&now.0.to_string()]).await?.0 == "1")
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        self.by_id(id, "finish", &[&now.0.to_string(), status.as_str()]).await.map(drop)
    }

    /// Deletes nothing: every Redis key has a TTL (a verification its expiry plus [`KEY_GRACE`],
    /// a limit key its arrival time, an idempotency entry its lease or replay TTL), so Redis
    /// drops what is over by itself and a sweep would only add load.
    async fn purge(&self, _before: Timestamp, _now: Timestamp) -> Result<PurgeCounts, StoreError> {
        Ok(PurgeCounts::default())
    }

    /// The phone's current verification and a dead predecessor, if kept (Redis holds no older
    /// ones), and which of `limit_keys` hold a limit.
    async fn export_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        self.export_phone_impl(phone.e164(), limit_keys).await
    }

    async fn delete_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        self.delete_phone_impl(phone.e164(), limit_keys).await
    }
}

impl RedisStore {
    /// Runs one `update_by_id.lua` operation on the verification `id`, found through the id
    /// index; `("", [])` when the id is unknown (never issued, or its keys expired).
    async fn by_id(&self, id: &VerificationId, op: &str, args: &[&str]) -> Result<(String, Vec<Vec<u8>>), StoreError> {
        let phone: Option<String> = self.command(::redis::cmd("GET").arg(self.id_key(id))).await?;
        let Some(phone) = phone else { return Ok((String::new(), Vec::new())) };
        let mut inv = UPDATE_BY_ID.prepare_invoke();
        inv.key(self.phone_key("v", &phone)).key(self.phone_key("vp", &phone)).arg(id.as_str()).arg(op);
        for arg in args {
            inv.arg(*arg);
        }
        self.script(&inv).await
    }
}

/// One rule prepared for the limit script.
struct Prepared<'a> {
    rule: &'a LimitRule,
    key: String,
    interval_ms: u64,
}

impl<'a> Prepared<'a> {
    fn new(store: &RedisStore, rule: &'a LimitRule) -> Self {
        // Same arithmetic as `gcra()`: a zero count allows nothing (interval 0 tells the script).
        let interval_ms =
            if rule.rate.count == 0 { 0 } else { (ms(rule.rate.period) / u64::from(rule.rate.count)).max(1) };
        Prepared { rule, key: store.limit_key(&rule.key), interval_ms }
    }
}

impl RedisStore {
    /// Runs the GCRA script over `group`: `Ok(())` if every key gave a unit (taken only when
    /// `take`), else the denial with the longest wait.
    async fn limit_group(
        &self,
        group: &[&Prepared<'_>],
        now: &str,
        take: bool,
    ) -> Result<Result<(), Denied>, StoreError> {
        let mut inv = LIMIT.prepare_invoke();
        for p in group {
            inv.key(&p.key);
        }
        inv.arg(now).arg(if take { "1" } else { "0" });
        for p in group {
            inv.arg(p.interval_ms).arg(p.rule.rate.burst_window_ms());
        }
        let (allowed, index, wait): (i64, i64, i64) = self.script(&inv).await?;
        if allowed == 1 {
            return Ok(Ok(()));
        }
        let rule = usize::try_from(index - 1)
            .ok()
            .and_then(|i| group.get(i))
            .ok_or_else(|| StoreError::Internal("limit script named no rule".into()))?;
        Ok(Err(Denied { scope: rule.rule.scope, retry_after: Duration::from_millis(wait.max(0) as u64) }))
    }

    async fn give_back(&self, group: &[&Prepared<'_>], now: &str) -> Result<(), StoreError> {
        let mut inv = GIVEBACK.prepare_invoke();
        for p in group {
            inv.key(&p.key);
        }
        inv.arg(now);
        for p in group {
            inv.arg(p.interval_ms);
        }
        self.script::<i64>(&inv).await.map(drop)
    }
}

fn longer(a: Option<Denied>, b: Denied) -> Denied {
    match a {
        Some(a) if a.retry_after >= b.retry_after => a,
        _ => b,
    }
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let prepared: Vec<Prepared<'_>> = rules.iter().map(|r| Prepared::new(self, r)).collect();
        let now = self.limit_now(now);
        // A single server runs a script over keys of any slot: all or nothing, atomically.
        let mut groups: Vec<(Slot, Vec<&Prepared<'_>>)> = Vec::new();
        match self.conn {
            Conn::Single(_) => groups.push((Slot::for_key(""), prepared.iter().collect())),
            Conn::Cluster(_) => {
                for p in &prepared {
                    let slot = Slot::for_key(&p.key);
                    match groups.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, group)) => group.push(p),
                        None => groups.push((slot, vec![p])),
                    }
                }
            }
        }
        if let [(_, group)] = groups.as_slice() {
            return self.limit_group(group, &now, true).await;
        }
        // Redis Cluster, keys in several slots: one script cannot span them. Take slot group by
        // slot group; if one refuses, give back what the earlier groups took and only look at the
        // later ones (for the longest wait). This never lets more through than the limits allow;
        // the weaker part is that a concurrent request may briefly see a unit as taken that is
        // then given back, and be refused where a single server would have allowed it.
        let mut taken = Vec::new();
        let mut denied: Option<Denied> = None;
        for (_, group) in &groups {
            let result = match denied {
                None => self.limit_group(group, &now, true).await,
                Some(_) => self.limit_group(group, &now, false).await,
            };
            match result {
                Ok(Ok(())) if denied.is_none() => taken.push(group),
                Ok(Ok(())) => {}
                Ok(Err(d)) => denied = Some(longer(denied, d)),
                Err(e) => {
                    for group in &taken {
                        if let Err(undo) = self.give_back(group, &now).await {
                            tracing::warn!(error = %undo, "could not give back rate-limit units after an error");
                        }
                    }
                    return Err(e);
                }
            }
        }
        let Some(denied) = denied else { return Ok(Ok(())) };
        for group in &taken {
            self.give_back(group, &now).await?;
        }
        Ok(Err(denied))
    }

    /// The limit script in its look-only mode, once per slot group on a Cluster: a read, so it
    /// needs no atomicity across groups.
    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        if rules.is_empty() {
            return Ok(Ok(()));
        }
        let prepared: Vec<Prepared<'_>> = rules.iter().map(|r| Prepared::new(self, r)).collect();
        let now = self.limit_now(now);
        let groups: Vec<Vec<&Prepared<'_>>> = match self.conn {
            Conn::Single(_) => vec![prepared.iter().collect()],
            Conn::Cluster(_) => prepared.iter().map(|p| vec![p]).collect(),
        };
        let mut denied: Option<Denied> = None;
        for group in &groups {
            if let Err(d) = self.limit_group(group, &now, false).await? {
                denied = Some(longer(denied, d));
            }
        }
        Ok(denied.map_or(Ok(()), Err))
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        // One DEL per key: on a Cluster the keys live in different slots.
        for key in keys {
            self.command::<()>(::redis::cmd("DEL").arg(self.limit_key(key))).await?;
        }
        Ok(())
    }

    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        let mut inv = COUNTER.prepare_invoke();
        inv.key(format!("{}ctr:{{{key}}}", self.prefix)).arg(bucket).arg(expires_at.0);
        self.script::<i64>(&inv).await.map(drop)
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        let buckets: HashMap<i64, u64> =
            self.command(::redis::cmd("HGETALL").arg(format!("{}ctr:{{{key}}}", self.prefix))).await?;
        Ok(buckets.into_iter().filter(|(bucket, _)| *bucket >= since).map(|(_, n)| n).sum())
    }

    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        let (value, expires): (Option<String>, Option<i64>) =
            self.command(::redis::cmd("HMGET").arg(self.value_key(key)).arg("v").arg("exp")).await?;
        Ok(value.filter(|_| expires.is_none_or(|exp| exp > now.0)))
    }

    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut inv = SWAP.prepare_invoke();
        inv.key(self.value_key(key))
            .arg(now.0)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or(""))
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.map_or("", |n| n.value.as_str()))
            .arg(new.and_then(|n| n.expires_at).map(|t| t.0.to_string()).unwrap_or_default());
        Ok(self.script::<i64>(&inv).await? == 1)
    }
}
