//! Export and erasure of one phone's hot state in Redis. Redis holds at most two verifications
//! per phone (`v:{phone}`, and `vp:{phone}` while a dead one is kept), their id index keys, and
//! the limit keys (`rl:{key}`, named by HMACs the caller derives). Retention needs no sweep here:
//! every key has a TTL (see the module docs), so `purge` deletes nothing.

use async_trait::async_trait;
use otpgate_core::privacy::PurgeCounts;
use otpgate_core::privacy::{HotDeleted, HotRecords, LimitRecord, VerificationRecord};
use otpgate_core::{PhoneNumber, Retention, StoreError, Timestamp, VerificationId};

use super::{RedisStore, verification_from_flat};

/// The value of `name` in a flat `HGETALL` answer.
fn field<'a>(flat: &'a [Vec<u8>], name: &str) -> Option<&'a [u8]> {
    flat.chunks_exact(2).find(|pair| pair[0] == name.as_bytes()).map(|pair| pair[1].as_slice())
}

impl RedisStore {
    pub(super) async fn export_phone_impl(&self, e164: &str, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        let mut verifications = Vec::new();
        for kind in ["vp", "v"] {
            let flat: Vec<Vec<u8>> = self.command(::redis::cmd("HGETALL").arg(self.phone_key(kind, e164))).await?;
            if flat.is_empty() {
                continue;
            }
            let ended = field(&flat, "ended")
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .map(Timestamp);
            let v = verification_from_flat(flat)?;
            verifications.push(VerificationRecord {
                id: v.id.as_str().to_owned(),
                channel: v.channel.as_str().to_owned(),
                status: v.status.as_str().to_owned(),
                attempts: v.attempts,
                sends: v.sends,
                created_at: v.created_at,
                expires_at: v.expires_at,
                ended_at: ended,
                provider_ref: v.provider_ref,
            });
        }
        verifications.sort_by_key(|v| v.created_at);
        let mut limits = Vec::new();
        // One GET per key: on a Cluster the limit keys live in different slots.
        // and the shared value under the same key (a phone's resend cooldown), if any.
        for key in limit_keys {
            let tat: Option<i64> = self.command(::redis::cmd("GET").arg(self.limit_key(key))).await?;
            let until: Option<i64> = self.command(::redis::cmd("HGET").arg(self.value_key(key)).arg("exp")).await?;
            if let Some(tat) = tat.or(until) {
                limits.push(LimitRecord { key: key.clone(), refilled_at: Timestamp(tat) });
            }
        }
        Ok(HotRecords { verifications, limits })
    }

    /// Deletes the phone's verifications (and their id index keys) and the given limit keys.
    /// Idempotent: a second call finds nothing and deletes nothing.
    pub(super) async fn delete_phone_impl(&self, e164: &str, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        let (current, previous) = (self.phone_key("v", e164), self.phone_key("vp", e164));
        for key in [&current, &previous] {
            let id: Option<String> = self.command(::redis::cmd("HGET").arg(key).arg("id")).await?;
            if let Some(id) = id.as_deref().and_then(VerificationId::parse) {
                self.command::<()>(::redis::cmd("DEL").arg(self.id_key(&id))).await?;
            }
        }
        // Same slot (one hash tag), so one DEL is fine on a Cluster too.
        let verifications: u64 = self.command(::redis::cmd("DEL").arg(&current).arg(&previous)).await?;
        let mut limits = 0;
        for key in limit_keys {
            limits += self.command::<u64>(::redis::cmd("DEL").arg(self.limit_key(key))).await?;
            limits += self.command::<u64>(::redis::cmd("DEL").arg(self.value_key(key))).await?;
        }
        Ok(HotDeleted { verifications, limits })
    }
}

#[async_trait]
impl Retention for RedisStore {
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
