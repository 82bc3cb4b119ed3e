//! The storage traits. Every backend (SQLite, Redis, Postgres) implements them with the same
//! guarantees, checked by one contract suite: each operation is atomic, so concurrent requests
//! can never evaluate more wrong codes than allowed nor approve a code twice.

use std::time::Duration;

use async_trait::async_trait;

use crate::limits::{LimitRule, LimitScope};
use crate::resend::{ResendClaim, ResendSlot};
use crate::{CodeDigest, PhoneNumber, Policy, Timestamp, Verification, VerificationId};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or timed out; the request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something we did not expect (a bug or a corrupt row).
    #[error("store error: {0}")]
    Internal(String),
}

/// What to store for a send.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// Used when a new verification is created; ignored for a resend (the id stays).
    pub id: VerificationId,
    pub phone: PhoneNumber,
    pub channel: crate::Channel,
    pub code_digest: Option<CodeDigest>,
}

impl NewCode {
    /// The verification a send creates at `now` when its phone has none live: pending, no
    /// attempt, one send, the policy's expiry and first cooldown.
    pub fn created(self, now: Timestamp, policy: &Policy) -> Verification {
        Verification {
            id: self.id,
            phone: self.phone.e164().to_owned(),
            channel: self.channel,
            status: crate::VerificationStatus::Pending,
            code_digest: self.code_digest,
            provider_ref: None,
            attempts: 0,
            max_attempts: policy.max_attempts,
            sends: 1,
            created_at: now,
            expires_at: now.plus(policy.code_ttl),
            next_resend_at: now.plus(policy.cooldown_after(1)),
        }
    }

    /// The live verification `previous` after a resend at `now`: this code and channel, no
    /// provider handle yet, one send more, a renewed expiry and the next, longer cooldown.
    pub fn resent(self, previous: &Verification, now: Timestamp, policy: &Policy) -> Verification {
        let sends = previous.sends + 1;
        Verification {
            code_digest: self.code_digest,
            channel: self.channel,
            provider_ref: None,
            sends,
            expires_at: now.plus(policy.code_ttl),
            next_resend_at: now.plus(policy.cooldown_after(sends)),
            ..previous.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub enum IssueOutcome {
    Created(Verification),
    /// The live verification got a new code; `previous` is its state before, for `revert_issue`.
    Resent {
        verification: Verification,
        previous: Verification,
    },
    /// The live verification's resend cooldown is still running.
    Cooldown {
        retry_after: Duration,
    },
}

/// A send that got past the phone's resend wait (`Verifications::issue_with_resend`).
#[derive(Debug, Clone)]
pub struct Issued {
    /// `Created` or `Resent`, never `Cooldown`.
    pub outcome: IssueOutcome,
    /// The phone's resend slot this send took.
    pub slot: ResendSlot,
}

#[derive(Debug, Clone)]
pub enum CheckOutcome {
    /// The code was right; the verification is consumed (approved) by this call and no other.
    Approved(Verification),
    /// Wrong code, counted; the verification is still live.
    Wrong { attempts_left: u32 },
    /// Wrong code that used up the last attempt: compared and counted, and the verification is
    /// now dead.
    Killed,
    /// The verification was already dead: nothing was compared or counted.
    Exhausted,
    /// No live verification for this phone (never started, expired, used, cancelled).
    NotFound,
    /// The live verification's code is held by the provider (Twilio Verify): nothing was
    /// compared or counted; the caller counts the attempt (`count_attempt`) and asks the provider.
    Remote(Verification),
}

/// The outcome of counting one attempt against a provider-held code.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// Counted; `attempts` includes this one. The verification is still pending.
    Counted(Verification),
    /// No attempt left: the verification took its maximum.
    Exhausted,
    /// Not pending or past its expiry.
    NotFound,
}

// The store is split by capability, and every method is required: a backend or a wrapper (the
// server's timing decorators, a test's fault injector) that forgets one does not compile, rather
// than answering "unsupported" at run time. `VerificationStore` and `RateLimiter` are the two
// roles the service holds; each is only the sum of its capabilities, implemented for anything
// that has them all.

/// Verifications whose code otpgate holds: send, resend, check, cancel.
#[async_trait]
pub trait Verifications: Send + Sync + 'static {
    /// How long the live verification of `phone` must still wait before a resend; `None` when
    /// there is no live verification or it may be resent now. A cheap read, so a request
    /// refused by the cooldown does not use up the phone's send quota.
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError>;

    /// Atomically: resend the live verification of the phone (new code and expiry, same id and
    /// attempt count) if its cooldown has passed, refuse if it has not, or create a new one.
    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError>;

    /// `issue` with the phone's resend slot taken in the same atomic step: the shared value under
    /// `claim.key` (this store's own `SharedValues`, where `resend::take` and `resend::give_back`
    /// find it) is read, refused while its wait runs, and replaced by the next state under the
    /// rules of `ResendClaim::take`. One store call for a send instead of a read, a
    /// compare-and-swap and the issue. `Ok(Err(wait))`, with nothing written, while the phone's
    /// wait runs or when `issue` would answer `Cooldown`; otherwise the issue's outcome (never
    /// `Cooldown`) and the slot taken, for `resend::give_back` if the send does not happen after
    /// all.
    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError>;

    /// Records the provider's handle for a verification (after a successful send).
    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError>;

    /// Records the channel the code actually went out on, when a channel fallback (WhatsApp
    /// undeliverable -> SMS) used another than `issue` stored: the approval, and so the
    /// session's `amr`, then names the channel the user really received the code on.
    async fn set_channel(&self, id: &VerificationId, channel: crate::Channel) -> Result<(), StoreError>;

    /// Undoes `issue` after the provider failed: a created verification is deleted, a resent one
    /// gets its previous code back (only if nothing else changed it in between).
    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError>;

    /// Atomically: count the attempt, compare `candidate` in constant time, consume on a match.
    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError>;

    /// Cancels a pending verification; unknown or finished ids are not an error.
    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError>;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Verifications whose code the provider holds (Twilio Verify): otpgate counts the attempts and
/// records the provider's verdict.
#[async_trait]
pub trait ProviderHeldCodes: Send + Sync + 'static {
    /// Records that the provider holds this verification's code under `provider_ref`: the local
    /// digest is dropped, so checks go to the provider (`CheckOutcome::Remote`).
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError>;

    /// Atomically counts one attempt on a pending, unexpired verification with attempts left.
    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError>;

    /// Marks a pending verification approved; `true` only for the one call that did it.
    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError>;

    /// Ends a pending verification as `dead` or `expired` (what the provider reported).
    async fn finish(
        &self,
        id: &VerificationId,
        status: crate::VerificationStatus,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// Retention and privacy requests over the hot state.
#[async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Retention: deletes verifications that ended (or, still pending, expired) before `before`
    /// and, in a store that also holds the limits, limit rows spent by `now` (and expired
    /// idempotency entries). Idempotent and batched, so several instances may sweep at once.
    /// A backend whose keys expire on their own (Redis TTLs) deletes nothing, and says so in its
    /// implementation.
    async fn purge(&self, before: Timestamp, now: Timestamp) -> Result<crate::privacy::PurgeCounts, StoreError>;

    /// Export: every verification of `phone` (status and times, never digests) and which of
    /// `limit_keys` (see `privacy::phone_limit_keys`) hold a counter.
    async fn export_phone(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<crate::privacy::HotRecords, StoreError>;

    /// Erasure: deletes every verification of `phone` and the limit rows under `limit_keys`.
    async fn delete_phone(
        &self,
        phone: &PhoneNumber,
        limit_keys: &[String],
    ) -> Result<crate::privacy::HotDeleted, StoreError>;
}

/// The verification role: every capability over verifications. Implemented for anything that
/// implements them all; never implemented by hand.
pub trait VerificationStore: Verifications + ProviderHeldCodes + Retention {}
impl<T: Verifications + ProviderHeldCodes + Retention + ?Sized> VerificationStore for T {}

/// A small value kept under a key of the hot store (see `RateLimiter::swap_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    pub value: String,
    /// Gone from this moment on (the caller's clock); `None` keeps it until it is swapped away.
    pub expires_at: Option<Timestamp>,
}

/// A refused limit: which one, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub scope: LimitScope,
    pub retry_after: Duration,
}

/// Rate limits (GCRA buckets), all or nothing across rules.
#[async_trait]
pub trait Limits: Send + Sync + 'static {
    /// Takes one unit from every rule's bucket, or from none of them if any is exhausted (so a
    /// request refused by one limit does not use up the others). On refusal, answers the rule
    /// with the longest wait.
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError>;

    /// What `acquire` would answer now, without taking anything or writing: a read, so a caller
    /// can refuse early on a limit that it takes from only later, once it knows the request
    /// counts (a failed check counts against its phone only when a code was compared).
    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError>;

    /// Forgets limit keys (a successful check clears the phone's failure count).
    async fn reset(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// Windowed counters (the conversion tripwire).
#[async_trait]
pub trait Counters: Send + Sync + 'static {
    /// Adds one to the windowed counter `key` in the bucket starting at `bucket` (ms), kept at
    /// least until `expires_at`. Atomic increment, for the conversion tripwire.
    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError>;

    /// The sum of the buckets of `key` that start at or after `since` (ms).
    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError>;
}

/// Small values several instances must agree on, changed by compare and swap.
#[async_trait]
pub trait SharedValues: Send + Sync + 'static {
    /// The value stored under `key` (see `swap_value`); `None` when there is none or it expired
    /// by `now`.
    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError>;

    /// Atomically (compare and swap): if the value under `key` is `expected` (`None`: there is
    /// none, or it expired by `now`), replaces it with `new` (`None` deletes it) and answers true;
    /// otherwise changes nothing and answers false. Of concurrent swaps from one expected value,
    /// exactly one succeeds. For state several instances must agree on that is not a rate (a
    /// phone's resend cooldown, the fingerprint of the HMAC key).
    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// The limiter role: limits, counters and shared values. Implemented for anything that
/// implements them all; never implemented by hand.
pub trait RateLimiter: Limits + Counters + SharedValues {}
impl<T: Limits + Counters + SharedValues + ?Sized> RateLimiter for T {}

/// Everything a hot store is (SQLite, Redis, Redis Cluster, PostgreSQL): both roles and the
/// `Idempotency-Key` entries. Implemented for anything that implements every capability.
pub trait HotStore: VerificationStore + RateLimiter + crate::idempotency::IdempotencyStore {}
impl<T: VerificationStore + RateLimiter + crate::idempotency::IdempotencyStore + ?Sized> HotStore for T {}
