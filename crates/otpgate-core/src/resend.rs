//! A phone's resend cooldown, kept apart from its verifications: the wait after a send doubles
//! with each send to that phone (30 s, 60 s, 120 s … at most an hour), and neither an expired nor
//! a cancelled verification starts it over. (Held in the verification, it did: a resend renews
//! the code's expiry, so from the third send on the verification expired before its cooldown
//! ended, and the next send started again at 30 s; so did a cancel.)
//!
//! The state is a shared value of the hot store (`RateLimiter::swap_value`) under a keyed HMAC
//! of the number (`privacy::phone_resend_key`), never the number: how many sends, when the next
//! may go, and when the count is forgotten — an hour after the wait of the last send ended, so a
//! phone that stays quiet for an hour starts again at the first cooldown. It is taken by compare
//! and swap, so of concurrent sends to one phone exactly one gets past a running wait.

use std::time::Duration;

use tracing::warn;

use crate::policy::resend_cooldown_after;
use crate::store::{IssueOutcome, Issued, NewCode, SharedValues, StoredValue, Verifications};
use crate::{Policy, RateLimiter, StoreError, Timestamp};

/// How long after the wait of its last send a phone's send count is kept.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Rounds of read-and-swap before a send that keeps losing to concurrent ones gives up.
const MAX_ROUNDS: usize = 8;

/// One phone's place in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendState {
    /// Sends counted so far (1 after the first).
    pub sends: u32,
    /// When the next send may go.
    pub next_at: Timestamp,
    /// When the count is forgotten (and the stored value expires).
    pub forget_at: Timestamp,
}

impl ResendState {
    /// The state after one more send at `now`, the first cooldown being `first`.
    pub fn after_send(previous: Option<&ResendState>, first: Duration, now: Timestamp) -> ResendState {
        let sends = previous.filter(|p| now < p.forget_at).map_or(1, |p| p.sends.saturating_add(1));
        let next_at = now.plus(resend_cooldown_after(first, sends));
        ResendState { sends, next_at, forget_at: next_at.plus(FORGET_AFTER) }
    }

    /// How long a send must still wait at `now`; `None` when it may go.
    pub fn wait(&self, now: Timestamp) -> Option<Duration> {
        (now < self.next_at).then(|| now.until(self.next_at))
    }

    fn encode(&self) -> String {
        format!("v1:{}:{}:{}", self.sends, self.next_at.0, self.forget_at.0)
    }

    /// `None` for anything we did not write (treated as no state: it is then overwritten).
    fn decode(value: &str) -> Option<ResendState> {
        let mut parts = value.strip_prefix("v1:")?.split(':');
        let sends = parts.next()?.parse().ok()?;
        let next_at = Timestamp(parts.next()?.parse().ok()?);
        let forget_at = Timestamp(parts.next()?.parse().ok()?);
        parts.next().is_none().then_some(ResendState { sends, next_at, forget_at })
    }

    fn stored(&self) -> StoredValue {
        StoredValue { value: self.encode(), expires_at: Some(self.forget_at) }
    }
}

/// A send's place in the schedule, taken by [`take`]; [`give_back`] undoes it when the send does
/// not happen after all.
#[derive(Debug, Clone)]
pub struct ResendSlot {
    key: String,
    taken: StoredValue,
    previous: Option<StoredValue>,
    /// The wait this send starts (for the answer's `resend_in`).
    pub wait: Duration,
}

impl ResendSlot {
    /// The shared value this send stored under the phone's key.
    pub fn taken(&self) -> &StoredValue {
        &self.taken
    }

    /// The phone's key (`privacy::phone_resend_key`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What a store needs to take a phone's resend slot inside its own atomic send
/// (`Verifications::issue_with_resend`): the phone's key and the first cooldown. The rules are
/// [`take`]'s; a store holding the shared values in the same place as the verifications applies
/// them in the send's own transaction (or script) instead of a read and a compare-and-swap
/// before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendClaim {
    pub key: String,
    pub first: Duration,
}

impl ResendClaim {
    /// Given the live value under the key at `now` (`None`: there is none), the slot a send at
    /// `now` takes, or `Err(wait)` while the wait of the last send still runs. Nothing is
    /// written: the store writes `slot.taken()` under the key in the same atomic step.
    pub fn take(&self, current: Option<&str>, now: Timestamp) -> Result<ResendSlot, Duration> {
        let previous = current.and_then(ResendState::decode);
        if let Some(wait) = previous.and_then(|p| p.wait(now)) {
            return Err(wait);
        }
        let next = ResendState::after_send(previous.as_ref(), self.first, now);
        Ok(ResendSlot {
            key: self.key.clone(),
            taken: next.stored(),
            previous: previous.map(|p| p.stored()),
            wait: now.until(next.next_at),
        })
    }

    /// The slot a store's script took (it applied the same rules to the live value `previous`
    /// and stored `taken`), for the caller's `give_back`; `None` if `taken` is not a value those
    /// rules write.
    pub fn slot_from(&self, previous: Option<&str>, taken: &str, now: Timestamp) -> Option<ResendSlot> {
        let state = ResendState::decode(taken)?;
        Some(ResendSlot {
            key: self.key.clone(),
            taken: state.stored(),
            previous: previous.and_then(ResendState::decode).map(|p| p.stored()),
            wait: now.until(state.next_at),
        })
    }
}

/// The wait still running for the phone whose key is `key`; `None` when a send may go. A read:
/// nothing is taken.
pub async fn current_wait(
    limiter: &dyn RateLimiter,
    key: &str,
    now: Timestamp,
) -> Result<Option<Duration>, StoreError> {
    let stored = limiter.load_value(key, now).await?;
    Ok(stored.as_deref().and_then(ResendState::decode).and_then(|s| s.wait(now)))
}

/// Counts a send to the phone whose key is `key`, unless its wait is still running: then
/// `Err(wait)` and nothing changed.
pub async fn take<L: SharedValues + ?Sized>(
    limiter: &L,
    key: &str,
    first: Duration,
    now: Timestamp,
) -> Result<Result<ResendSlot, Duration>, StoreError> {
    let claim = ResendClaim { key: key.to_owned(), first };
    for _ in 0..MAX_ROUNDS {
        let raw = limiter.load_value(key, now).await?;
        let slot = match claim.take(raw.as_deref(), now) {
            Ok(slot) => slot,
            Err(wait) => return Ok(Err(wait)),
        };
        if limiter.swap_value(key, raw.as_deref(), Some(&slot.taken), now).await? {
            return Ok(Ok(slot));
        }
        // A concurrent send changed it between our read and our swap: read again (its wait
        // will most likely refuse us now).
    }
    Ok(Err(first))
}

/// Puts back what [`take`] replaced, unless another send changed it since (then that send's
/// state stands). Best effort: a failure is logged, and at worst the phone waits once for
/// nothing.
pub async fn give_back<L: SharedValues + ?Sized>(limiter: &L, slot: &ResendSlot, now: Timestamp) {
    if let Err(e) = limiter.swap_value(&slot.key, Some(&slot.taken.value), slot.previous.as_ref(), now).await {
        warn!(error = %e, "could not give back a resend cooldown after a send that did not happen");
    }
}

/// `Verifications::issue_with_resend` in steps, for a store that cannot do it in one (Redis
/// Cluster, where the phone's shared value and its verification live in different slots):
/// [`take`] (a read and a compare-and-swap), then `issue`, giving the slot back when the issue
/// refuses or fails. The same outcomes as the one-step version, in three round trips; of
/// concurrent sends to one phone still only one gets past a running wait (the swap decides).
pub async fn issue_in_steps<S: Verifications + SharedValues + ?Sized>(
    store: &S,
    claim: &ResendClaim,
    new: NewCode,
    now: Timestamp,
    policy: &Policy,
) -> Result<Result<Issued, Duration>, StoreError> {
    let slot = match take(store, &claim.key, claim.first, now).await? {
        Ok(slot) => slot,
        Err(wait) => return Ok(Err(wait)),
    };
    match store.issue(new, now, policy).await {
        Ok(IssueOutcome::Cooldown { retry_after }) => {
            give_back(store, &slot, now).await;
            Ok(Err(retry_after))
        }
        Ok(outcome) => Ok(Ok(Issued { outcome, slot })),
        Err(e) => {
            give_back(store, &slot, now).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn at(secs: u64) -> Timestamp {
        Timestamp(0).plus(S * secs as u32)
    }

    /// The waits a phone sees when every send goes as soon as it may.
    fn schedule(first: Duration, n: usize) -> Vec<u64> {
        let (mut state, mut now, mut waits) = (None, at(0), Vec::new());
        for _ in 0..n {
            let next = ResendState::after_send(state.as_ref(), first, now);
            waits.push(now.until(next.next_at).as_secs());
            now = next.next_at;
            state = Some(next);
        }
        waits
    }

    #[test]
    fn the_wait_doubles_up_to_an_hour() {
        assert_eq!(schedule(30 * S, 9), [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn the_count_is_forgotten_an_hour_after_the_wait_ends() {
        let first = ResendState::after_send(None, 30 * S, at(0));
        assert_eq!(first.wait(at(10)), Some(20 * S));
        assert_eq!(first.wait(at(30)), None);
        let second = ResendState::after_send(Some(&first), 30 * S, at(30 + 3599));
        assert_eq!(second.sends, 2, "within the hour after the wait: counted on");
        let fresh = ResendState::after_send(Some(&first), 30 * S, at(30 + 3600));
        assert_eq!(fresh.sends, 1, "an hour after the wait: forgotten");
        assert_eq!(fresh.wait(at(30 + 3600)), Some(30 * S));
    }

    #[test]
    fn a_claim_takes_like_take_and_a_scripts_slot_reads_back() {
        let claim = ResendClaim { key: "k".into(), first: 30 * S };
        let first = claim.take(None, at(0)).expect("nothing stored: goes");
        assert_eq!(first.wait, 30 * S);
        assert_eq!(first.taken().value, ResendState::after_send(None, 30 * S, at(0)).encode());
        assert_eq!(claim.take(Some(&first.taken().value), at(10)).unwrap_err(), 20 * S);
        assert_eq!(claim.take(Some("junk"), at(10)).expect("junk is no state").wait, 30 * S);
        let second = claim.take(Some(&first.taken().value), at(30)).expect("the wait is over");
        assert_eq!(second.wait, 60 * S);
        assert_eq!(second.previous.as_ref(), Some(first.taken()));
        let read_back = claim.slot_from(Some(&first.taken().value), &second.taken().value, at(30)).unwrap();
        assert_eq!(
            (read_back.taken(), &read_back.previous, read_back.wait),
            (second.taken(), &second.previous, 60 * S)
        );
        assert!(claim.slot_from(None, "v2:1:2:3", at(30)).is_none(), "not a value the rules write");
    }

    #[test]
    fn stored_states_round_trip_and_junk_is_no_state() {
        let state = ResendState { sends: 3, next_at: at(120), forget_at: at(3720) };
        assert_eq!(ResendState::decode(&state.encode()), Some(state));
        for junk in ["", "v1:", "v1:1:2", "v1:1:2:3:4", "v2:1:2:3", "v1:x:2:3"] {
            assert_eq!(ResendState::decode(junk), None, "{junk:?}");
        }
    }
}
