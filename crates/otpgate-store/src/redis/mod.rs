//! The shared hot store on Redis (a single server or a Redis Cluster): verifications and rate
//! limits for any number of otpgate instances. Every operation that reads before it decides is one
//! Lua script, so it runs atomically on the server; the scripts live beside this file.
//!
//! Keys (`P` is the configurable prefix, `otpgate:` by default):
//! - `P v2:{+14155550100}` — string: the phone's verification records, packed (record.lua): its
//!   current verification, then the one before it while that one is dead and not expired, so
//!   reverting a failed send cannot lift a lockout. Lives until the current one's expiry plus
//!   [`KEY_GRACE`];
//! - `P ix:{<4 hex>}` — hash, one of 16,384 buckets of the id index (the bucket is the first 14
//!   bits of the SHA-1 of the verification id's 15-byte form, `id_arg`): a verification's phone,
//!   for cancel and the provider ref, under a field derived from the id, XORed with a pad derived
//!   from the id;
//! - `P rl:{send:phone:+14155550100}` — string: a limit key's GCRA arrival time;
//! - `P ctr:{key}` — hash: a windowed counter (bucket start -> count), for the tripwire;
//! - `P rs:{<4 hex>}` — hash, one of 16,384 buckets of phones' resend values (a phone's resend
//!   cooldown, a shared value keyed by an HMAC of the number: the bucket is its first 14 bits, the
//!   field its last 14 bytes);
//! - `P sv:{key}` — hash: any other shared value (`v`, and `exp` when it expires): the fingerprint
//!   of the HMAC key — the one key without a TTL, a few dozen bytes per deployment;
//! - `P idem:{<hex>}` — hash: one `Idempotency-Key` entry (see [`idempotency`]).
//!
//! Why buckets: a key of its own costs Redis about 100 bytes before its value (the dict entry,
//! the key string, the value object, the entry in the expires dict, the dicts' bucket arrays),
//! more than an id index entry or a resend value holds. A bucket small enough for Redis's listpack
//! encoding (at most `hash-max-listpack-entries`, 128 by default, entries of at most
//! `hash-max-listpack-value`, 64 bytes) stores its entries back to back. 16,384 buckets hold a
//! dozen entries each at 200,000 live verifications and stay below 128 entries up to about a
//! million entries of a kind (phones' resend values outnumber live verifications when codes
//! live shorter than the hour a send count is kept); past that a bucket still works, as a hash
//! table (about 100 bytes an entry, still less than a key of its own), or raise
//! `hash-max-listpack-entries`. Redis 7.0 has no per-field TTL, so an entry carries its own
//! expiry (bucket.lua): an entry past it counts as absent, every write to a bucket drops the
//! bucket's expired entries, and the bucket's TTL is raised to cover its longest entry, so an idle
//! bucket expires as a whole. An id index entry left behind that way holds no number anyone can
//! read: the phone is XORed with a pad derived from the verification id, which Redis only holds
//! while the verification lives.
//!
//! The scripts need Redis 6.2 or later (`SET … KEEPTTL`, `HRANDFIELD`).
//!
//! Upgrading from the layout before `v2:` (the verification hashes `v:` and `vp:`, the id index
//! strings `vid:`, the resend hashes `sv:{send:phone:resend:…}`): the new names are never read as
//! the old types; the old keys are ignored and expire on their own (within the code TTL plus
//! 60 s, the resend values within two hours). What a deploy loses: codes pending at that moment
//! (checked, they are not found: the user asks for a new one), lockouts of dead verifications
//! (their codes are not found either), and the phones' running resend waits and send counts (a
//! phone's next send may go at once, and starts again at the first cooldown). The rate-limit keys
//! (`rl:`) and the HMAC-key fingerprint keep their keys, so the per-phone limits still hold.
//! While old and new instances run side by side (a rolling deploy), neither sees the other's
//! verifications or resend waits: replace all instances at once, or accept that window.
//!
//! The `{…}` hash tag keeps a phone's records in one Cluster slot, so the issue and check scripts
//! see them together; the id index bucket and the resend value live in other slots, so on a
//! Cluster they are written in steps (see `Verifications::issue_with_resend`). Every key but the
//! HMAC-key fingerprint has a TTL: a phone's value lives until its current verification's expiry
//! plus [`KEY_GRACE`], a bucket until its longest entry's, a limit key until its arrival time
//! passes (then it is spent anyway), a shared value until its expiry.
//!
//! Time: verification scripts use the `now` the caller passes (the service's clock), because the
//! timestamps go back to the service and the client and the contract moves time. Instances are
//! expected to be NTP-synced; a skew of a few milliseconds only shifts one verification's expiry
//! or cooldown by that much and never grants an attempt (attempts are counted, not timed). Limits
//! use Redis's own `TIME` by default ([`LimitClock::Redis`]), so every instance takes from a bucket
//! on one clock; [`LimitClock::Caller`] uses the passed `now` (the contract tests move time).

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::io::tcp::TcpSettings;
use ::redis::{Client, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError, Script, ScriptInvocation};
use otpgate_core::Verifications;
use otpgate_core::{Channel, CodeDigest, StoreError, Timestamp, Verification, VerificationId, VerificationStatus};

mod idempotency;
mod limits;
mod oidc;
mod privacy;
mod provider_codes;
mod verifications;

/// How long a verification's keys outlive its expiry: covers clock skew between instances, so an
/// instance whose clock is a little behind still finds the state it expects.
pub const KEY_GRACE: Duration = Duration::from_secs(60);

/// A script over a phone's value: record.lua (the packed verification) before its body.
macro_rules! record_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("record.lua"), include_str!($file))))
    };
}

static ISSUE: LazyLock<Script> = record_script!("issue.lua");
/// A send in one script on one server: issue.lua as a function, called by issue_resend.lua
/// between taking the resend slot and writing it (never on a Cluster: the resend value and the id
/// index live in other slots).
static ISSUE_RESEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("record.lua"),
        include_str!("bucket.lua"),
        "local function issue()\n",
        include_str!("issue.lua"),
        "\nend\n",
        include_str!("issue_resend.lua")
    ))
});
static CHECK: LazyLock<Script> = record_script!("check.lua");
static REVERT: LazyLock<Script> = record_script!("revert.lua");
static UPDATE_BY_ID: LazyLock<Script> = record_script!("update_by_id.lua");
static ID_PUT: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("bucket.lua"), include_str!("id_index.lua"))));
static SWAP_BUCKET: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("bucket.lua"), include_str!("swap_bucket.lua"))));
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

    fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The phone's value: its verification records (record.lua).
    fn phone_key(&self, e164: &str) -> String {
        format!("{}v2:{{{e164}}}", self.prefix)
    }

    /// A verification id's entry in the id index (bucket.lua's `id_entry` computes the same).
    fn id_entry(&self, id: &VerificationId) -> IdEntry {
        use sha1::{Digest, Sha1};
        let arg = id_arg(id);
        let digest = Sha1::digest(arg);
        let pad = Sha1::new().chain_update(b"otpgate-id-pad:").chain_update(arg).finalize();
        IdEntry {
            bucket: format!("{}ix:{{{}}}", self.prefix, bucket_of(digest[0], digest[1])),
            field: digest[2..12].to_vec(),
            pad: pad.to_vec(),
        }
    }

    fn limit_key(&self, key: &str) -> String {
        format!("{}rl:{{{key}}}", self.prefix)
    }

    /// Where the shared value `key` lives: a phone's resend value in a bucket, anything else (the
    /// HMAC key's fingerprint, which never expires) in a hash of its own.
    fn value_place(&self, key: &str) -> ValuePlace {
        match resend_bucket(key) {
            Some((bucket, field)) => ValuePlace::Bucket { key: format!("{}rs:{{{bucket}}}", self.prefix), field },
            None => ValuePlace::Hash(format!("{}sv:{{{key}}}", self.prefix)),
        }
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

/// Where a shared value lives (see [`RedisStore::value_place`]).
enum ValuePlace {
    /// swap.lua's hash (`v`, `exp`) under its own key.
    Hash(String),
    /// An entry of a bucket (bucket.lua).
    Bucket { key: String, field: Vec<u8> },
}

/// The prefix of a phone's resend key (`otpgate_core::privacy::phone_resend_key`), followed by 32
/// hex digits of an HMAC.
const RESEND_KEY_PREFIX: &str = "send:phone:resend:";

/// How many buckets each of the id index and the resend values has: a power of two, so a bucket
/// is the first 14 bits of a hash (see the module docs for the sizing).
const BUCKETS: u16 = 16_384;

/// The bucket named by a hash's first two bytes, as 4 hex digits.
fn bucket_of(first: u8, second: u8) -> String {
    format!("{:04x}", u16::from_be_bytes([first, second]) % BUCKETS)
}

/// A phone's resend value's bucket (from the HMAC's first 14 bits) and field (its last 14
/// bytes); `None` for any other key.
fn resend_bucket(key: &str) -> Option<(String, Vec<u8>)> {
    let hex = key.strip_prefix(RESEND_KEY_PREFIX)?;
    if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes: Vec<u8> =
        (0..32).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect::<Option<_>>()?;
    Some((bucket_of(bytes[0], bytes[1]), bytes[2..].to_vec()))
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An id as the scripts hold it: its 20 base-62 characters after `vf_` as one number, 15 bytes
/// big-endian (62^20 < 2^120), 5 bytes less than the characters.
fn id_arg(id: &VerificationId) -> [u8; 15] {
    let digits = &id.as_str().as_bytes()[VerificationId::PREFIX.len()..];
    let n = digits.iter().fold(0u128, |n, c| {
        // `VerificationId::parse` admits ASCII letters and digits only.
        n * 62 + BASE62.iter().position(|b| b == c).unwrap_or(0) as u128
    });
    n.to_be_bytes()[1..].try_into().expect("15 of 16 bytes")
}

/// The id an [`id_arg`] holds; `None` for bytes no id gives.
fn id_from(bytes: &[u8]) -> Option<VerificationId> {
    let mut be = [0u8; 16];
    be[1..].copy_from_slice(<&[u8; 15]>::try_from(bytes).ok()?);
    let mut n = u128::from_be_bytes(be);
    let mut digits = [0u8; 20];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    if n != 0 {
        return None;
    }
    VerificationId::parse(&format!("{}{}", VerificationId::PREFIX, std::str::from_utf8(&digits).ok()?))
}

/// A channel as the scripts hold it: one character.
fn channel_arg(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "s",
        Channel::Whatsapp => "w",
        Channel::Call => "c",
    }
}

/// The max attempts of a new verification, which its record holds in one byte (the policy allows
/// 1 to 20).
fn max_attempts_arg(policy: &otpgate_core::Policy) -> Result<u8, StoreError> {
    u8::try_from(policy.max_attempts)
        .map_err(|_| StoreError::Internal(format!("max attempts {} is more than 255", policy.max_attempts)))
}

/// A bucket entry's expiry (ms, the caller's clock) and payload (bucket.lua).
fn bucket_entry(entry: &[u8]) -> Option<(i64, &[u8])> {
    let mut reader = Reader { bytes: entry };
    let expires = reader.i48().ok()?;
    Some((expires, reader.bytes))
}

/// The id index bucket of a verification id: the first 14 bits of the SHA-1 of [`id_arg`] (as
/// [`RedisStore::id_entry`] names it; for the tests).
#[cfg(test)]
fn id_bucket(id: &VerificationId) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(id_arg(id));
    bucket_of(digest[0], digest[1])
}

/// Where a verification id's entry is in the id index: its bucket (the first 14 bits of the SHA-1
/// of [`id_arg`]) and field (the next 80 bits); its payload is the phone XORed with `pad` (the
/// SHA-1 of `otpgate-id-pad:` and the id). bucket.lua's `id_entry` and `id_pad` compute the same.
struct IdEntry {
    bucket: String,
    field: Vec<u8>,
    pad: Vec<u8>,
}

impl IdEntry {
    /// XORs with the pad: hides a phone, and shows a hidden one again.
    fn xor(&self, bytes: &[u8]) -> Vec<u8> {
        bytes.iter().zip(self.pad.iter().cycle()).map(|(b, p)| b ^ p).collect()
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt verification in Redis: {what}"))
}

/// One verification record of a phone's value (record.lua), and when it ended.
struct Record {
    verification: Verification,
    ended: Option<Timestamp>,
}

/// Reads record.lua's big-endian fields.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(corrupt("short record"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn uint(&mut self, n: usize) -> Result<u64, StoreError> {
        Ok(self.take(n)?.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A 6-byte signed number (Lua's `i6`).
    fn i48(&mut self) -> Result<i64, StoreError> {
        let raw = self.uint(6)? as i64;
        Ok(if raw & (1 << 47) != 0 { raw - (1 << 48) } else { raw })
    }

    fn text(&mut self, len_bytes: usize, what: &str) -> Result<&'a str, StoreError> {
        let len = self.uint(len_bytes)? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| corrupt(what))
    }

    fn record(&mut self, e164: &str) -> Result<Record, StoreError> {
        let status = match self.take(1)?[0] {
            b'p' => VerificationStatus::Pending,
            b'a' => VerificationStatus::Approved,
            b'c' => VerificationStatus::Canceled,
            b'd' => VerificationStatus::Dead,
            b'e' => VerificationStatus::Expired,
            _ => return Err(corrupt("status")),
        };
        let channel = match self.take(1)?[0] {
            b's' => Channel::Sms,
            b'w' => Channel::Whatsapp,
            b'c' => Channel::Call,
            _ => return Err(corrupt("channel")),
        };
        let id_len = self.uint(1)? as usize;
        let id = id_from(self.take(id_len)?).ok_or_else(|| corrupt("id"))?;
        let digest_len = self.uint(1)? as usize;
        let code_digest = match self.take(digest_len)? {
            [] => None,
            bytes => Some(CodeDigest::from_slice(bytes).ok_or_else(|| corrupt("digest"))?),
        };
        let provider_ref = Some(self.text(2, "provider ref")?).filter(|r| !r.is_empty()).map(str::to_owned);
        let (attempts, max_attempts, sends) = (self.uint(1)? as u32, self.uint(1)? as u32, self.uint(4)? as u32);
        let (created, expires, next, ended) = (self.i48()?, self.i48()?, self.i48()?, self.i48()?);
        Ok(Record {
            verification: Verification {
                id,
                phone: e164.to_owned(),
                channel,
                status,
                code_digest,
                provider_ref,
                attempts,
                max_attempts,
                sends,
                created_at: Timestamp(created),
                expires_at: Timestamp(expires),
                next_resend_at: Timestamp(next),
            },
            ended: (ended != 0).then_some(Timestamp(ended)),
        })
    }
}

/// Every record of a phone's value: the current verification, then the previous one if kept.
fn records(value: &[u8], e164: &str) -> Result<Vec<Record>, StoreError> {
    let mut reader = Reader { bytes: value };
    let mut out = Vec::new();
    while !reader.bytes.is_empty() {
        out.push(reader.record(e164)?);
    }
    Ok(out)
}

/// The one record a script answered.
fn verification_from(record: &[u8], e164: &str) -> Result<Verification, StoreError> {
    let mut reader = Reader { bytes: record };
    let v = reader.record(e164)?.verification;
    if reader.bytes.is_empty() { Ok(v) } else { Err(corrupt("trailing bytes")) }
}

fn digest_arg(d: &Option<CodeDigest>) -> Vec<u8> {
    d.as_ref().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
}

fn first_number(data: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Internal("unexpected answer from a Redis script".into()))
}

#[cfg(test)]
mod tests;
