//! Idempotency-Key entries in Redis: one hash per entry, `P idem:{<hex of the key's hash>}`, so
//! an entry is one key in one Cluster slot and each operation is one script on it
//! (`idem_reserve.lua`, `idem_complete.lua`, `idem_release.lua`). Of any number of concurrent
//! requests with one key exactly one gets `Reserved`.
//!
//! Expiry: the entry's times (`locked`, `expires`) are on the caller's clock, like the
//! verifications', and decide what `reserve` answers; Redis's TTL only cleans up. A reservation
//! lives one lease in Redis (a request that died leaves nothing behind for long), a finished
//! answer the replay TTL (24 h). So expired entries never need a sweep here.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse,
};
use otpgate_core::{StoreError, Timestamp};

use super::{RedisStore, ms};
use crate::wire::{decode_headers, encode_headers};

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("idem_reserve.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("idem_complete.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("idem_release.lua")));

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt idempotency entry in Redis: {what}"))
}

fn text(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(what))
}

impl RedisStore {
    fn idempotency_key(&self, key: &IdempotencyKey) -> String {
        let mut hex = String::with_capacity(64);
        for b in key.as_bytes() {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{}idem:{{{hex}}}", self.prefix)
    }
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let mut inv = RESERVE.prepare_invoke();
        inv.key(self.idempotency_key(key))
            .arg(now.0)
            .arg(fingerprint.as_bytes().as_slice())
            .arg(token.as_bytes().as_slice())
            .arg(ms(lease).max(1))
            .arg(ms(ttl).max(1));
        let answer: Vec<Vec<u8>> = self.script(&inv).await?;
        let kind = answer.first().map(|k| text(k, "answer")).transpose()?.unwrap_or_default();
        match (kind.as_str(), answer.as_slice()) {
            ("reserved", _) => Ok(Reservation::Reserved),
            ("mismatch", _) => Ok(Reservation::Mismatch),
            ("inflight", [_, wait]) => {
                let wait: u64 = text(wait, "lease")?.parse().map_err(|_| corrupt("lease"))?;
                Ok(Reservation::InFlight { retry_after: Duration::from_millis(wait) })
            }
            ("done", [_, status, headers, body]) => Ok(Reservation::Completed(StoredResponse {
                status: text(status, "status")?.parse().map_err(|_| corrupt("status"))?,
                headers: decode_headers(&text(headers, "headers")?)?,
                body: body.clone(),
            })),
            (other, _) => Err(StoreError::Internal(format!("idempotency script answered {other:?}"))),
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inv = COMPLETE.prepare_invoke();
        inv.key(self.idempotency_key(key))
            .arg(token.as_bytes().as_slice())
            .arg(response.status)
            .arg(encode_headers(&response.headers)?)
            .arg(response.body.as_slice())
            .arg(now.0)
            .arg(ms(ttl).max(1));
        self.script::<i64>(&inv).await.map(drop)
    }

    async fn release(&self, key: &IdempotencyKey, token: &LeaseToken) -> Result<(), StoreError> {
        let mut inv = RELEASE.prepare_invoke();
        inv.key(self.idempotency_key(key)).arg(token.as_bytes().as_slice());
        self.script::<i64>(&inv).await.map(drop)
    }
}
