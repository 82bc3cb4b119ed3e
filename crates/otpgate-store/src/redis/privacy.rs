//! Export and erasure of one phone's hot state in Redis. Redis holds at most two verifications
//! per phone (both in `v2:{phone}`: the current one, and the one before while it is dead), their
//! id index entries, the limit keys (`rl:{key}`, named by HMACs the caller derives) and the
//! phone's resend value (under such a key too). Retention needs no sweep here:
//! every key has a TTL (see the module docs), so `purge` deletes nothing.

use async_trait::async_trait;
use otpgate_core::privacy::PurgeCounts;
use otpgate_core::privacy::{HotDeleted, HotRecords, LimitRecord, VerificationRecord};
use otpgate_core::{PhoneNumber, Retention, StoreError, Timestamp};

use super::{Record, RedisStore, ValuePlace, bucket_entry, records};

impl RedisStore {
    pub(super) async fn export_phone_impl(&self, e164: &str, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        let value: Option<Vec<u8>> = self.command(::redis::cmd("GET").arg(self.phone_key(e164))).await?;
        let mut verifications = Vec::new();
        for Record { verification: v, ended } in records(value.as_deref().unwrap_or_default(), e164)? {
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
            let until = match self.value_place(key) {
                ValuePlace::Hash(k) => self.command(::redis::cmd("HGET").arg(k).arg("exp")).await?,
                ValuePlace::Bucket { key, field } => {
                    let entry: Option<Vec<u8>> = self.command(::redis::cmd("HGET").arg(key).arg(field)).await?;
                    entry.as_deref().and_then(bucket_entry).map(|(expires, _)| expires)
                }
            };
            if let Some(tat) = tat.or(until) {
                limits.push(LimitRecord { key: key.clone(), refilled_at: Timestamp(tat) });
            }
        }
        Ok(HotRecords { verifications, limits })
    }

    /// Deletes the phone's verifications (and their id index keys) and the given limit keys.
    /// Idempotent: a second call finds nothing and deletes nothing.
    pub(super) async fn delete_phone_impl(&self, e164: &str, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        let key = self.phone_key(e164);
        let value: Option<Vec<u8>> = self.command(::redis::cmd("GET").arg(&key)).await?;
        let held = records(value.as_deref().unwrap_or_default(), e164)?;
        for record in &held {
            self.id_delete(&record.verification.id).await?;
        }
        // Both verifications are one value: the count is of records, as it was of keys.
        let deleted: u64 = self.command(::redis::cmd("DEL").arg(&key)).await?;
        let verifications = if deleted == 0 { 0 } else { held.len() as u64 };
        let mut limits = 0;
        for key in limit_keys {
            limits += self.command::<u64>(::redis::cmd("DEL").arg(self.limit_key(key))).await?;
            limits += match self.value_place(key) {
                ValuePlace::Hash(k) => self.command::<u64>(::redis::cmd("DEL").arg(k)).await?,
                ValuePlace::Bucket { key, field } => {
                    self.command::<u64>(::redis::cmd("HDEL").arg(key).arg(field)).await?
                }
            };
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
