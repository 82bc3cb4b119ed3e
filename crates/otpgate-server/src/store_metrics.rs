//! Store latency: decorators over the hot store's traits that time every call into
//! `otpgate_store_duration_seconds{op}` and count failures into
//! `otpgate_store_errors_total{op,kind}` (`unavailable` or `internal`). The only label values
//! are the fixed operation names below; keys, phones and ids never become labels.
//!
//! Each decorator implements every capability of its role (the store traits have no default
//! bodies), so a method added to a capability does not compile here until it is forwarded and
//! timed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use otpgate_core::limits::LimitRule;
use otpgate_core::privacy::{HotDeleted, HotRecords, PurgeCounts};
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::{Denied, Issued, NewCode, StoredValue};
use otpgate_core::{
    AttemptOutcome, Channel, CheckOutcome, CodeDigest, Counters, IssueOutcome, Limits, PhoneNumber, Policy,
    ProviderHeldCodes, RateLimiter, Retention, SharedValues, StoreError, Timestamp, Verification, VerificationId,
    VerificationStatus, VerificationStore, Verifications,
};

use crate::stores::Stores;

/// Wraps the hot-role handles of `stores` (verifications and limits) in the timing decorators.
pub fn instrument(mut stores: Stores) -> Stores {
    stores.verifications = Arc::new(TimedVerificationStore(stores.verifications));
    stores.limits = Arc::new(TimedRateLimiter(stores.limits));
    stores
}

async fn timed<T>(op: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!("otpgate_store_duration_seconds", "op" => op).record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        let kind = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Internal(_) => "internal",
        };
        metrics::counter!("otpgate_store_errors_total", "op" => op, "kind" => kind).increment(1);
    }
    result
}

/// A `VerificationStore` that times every call to the one it wraps.
pub struct TimedVerificationStore(pub Arc<dyn VerificationStore>);

#[async_trait]
impl Verifications for TimedVerificationStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        timed("resend_wait", self.0.resend_wait(phone, now)).await
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        timed("issue", self.0.issue(new, now, policy)).await
    }

    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError> {
        timed("issue_with_resend", self.0.issue_with_resend(claim, new, now, policy)).await
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        timed("set_provider_ref", self.0.set_provider_ref(id, provider_ref)).await
    }

    async fn set_channel(&self, id: &VerificationId, channel: Channel) -> Result<(), StoreError> {
        timed("set_channel", self.0.set_channel(id, channel)).await
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        timed("revert_issue", self.0.revert_issue(outcome)).await
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        timed("check", self.0.check(phone, candidate, now)).await
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        timed("cancel", self.0.cancel(id, now)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }
}

#[async_trait]
impl ProviderHeldCodes for TimedVerificationStore {
    async fn mark_remote(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        timed("mark_remote", self.0.mark_remote(id, provider_ref)).await
    }

    async fn count_attempt(&self, id: &VerificationId, now: Timestamp) -> Result<AttemptOutcome, StoreError> {
        timed("count_attempt", self.0.count_attempt(id, now)).await
    }

    async fn approve(&self, id: &VerificationId, now: Timestamp) -> Result<bool, StoreError> {
        timed("approve", self.0.approve(id, now)).await
    }

    async fn finish(&self, id: &VerificationId, status: VerificationStatus, now: Timestamp) -> Result<(), StoreError> {
        timed("finish", self.0.finish(id, status, now)).await
    }
}

#[async_trait]
impl Retention for TimedVerificationStore {
    async fn purge(&self, before: Timestamp, now: Timestamp) -> Result<PurgeCounts, StoreError> {
        timed("purge", self.0.purge(before, now)).await
    }

    async fn export_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotRecords, StoreError> {
        timed("export_phone", self.0.export_phone(phone, limit_keys)).await
    }

    async fn delete_phone(&self, phone: &PhoneNumber, limit_keys: &[String]) -> Result<HotDeleted, StoreError> {
        timed("delete_phone", self.0.delete_phone(phone, limit_keys)).await
    }
}

/// A `RateLimiter` that times every call to the one it wraps.
pub struct TimedRateLimiter(pub Arc<dyn RateLimiter>);

#[async_trait]
impl Limits for TimedRateLimiter {
    async fn acquire(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        timed("acquire", self.0.acquire(rules, now)).await
    }

    async fn peek(&self, rules: &[LimitRule], now: Timestamp) -> Result<Result<(), Denied>, StoreError> {
        timed("peek", self.0.peek(rules, now)).await
    }

    async fn reset(&self, keys: &[String]) -> Result<(), StoreError> {
        timed("reset", self.0.reset(keys)).await
    }
}

#[async_trait]
impl Counters for TimedRateLimiter {
    async fn incr_counter(&self, key: &str, bucket: i64, expires_at: Timestamp) -> Result<(), StoreError> {
        timed("incr_counter", self.0.incr_counter(key, bucket, expires_at)).await
    }

    async fn sum_counter(&self, key: &str, since: i64) -> Result<u64, StoreError> {
        timed("sum_counter", self.0.sum_counter(key, since)).await
    }
}

#[async_trait]
impl SharedValues for TimedRateLimiter {
    async fn load_value(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        timed("load_value", self.0.load_value(key, now)).await
    }

    async fn swap_value(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&StoredValue>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        timed("swap_value", self.0.swap_value(key, expected, new, now)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use otpgate_core::Channel;

    use super::*;

    /// Implements every capability and records which methods were reached.
    #[derive(Default)]
    struct Recording(Mutex<Vec<&'static str>>);

    impl Recording {
        fn hit(&self, op: &'static str) {
            self.0.lock().unwrap().push(op);
        }
    }

    #[async_trait]
    impl Verifications for Recording {
        async fn resend_wait(&self, _: &PhoneNumber, _: Timestamp) -> Result<Option<Duration>, StoreError> {
            self.hit("resend_wait");
            Ok(None)
        }
        async fn issue(&self, _: NewCode, _: Timestamp, _: &Policy) -> Result<IssueOutcome, StoreError> {
            self.hit("issue");
            Ok(IssueOutcome::Cooldown { retry_after: Duration::from_secs(1) })
        }
        async fn issue_with_resend(
            &self,
            _: &ResendClaim,
            _: NewCode,
            _: Timestamp,
            _: &Policy,
        ) -> Result<Result<Issued, Duration>, StoreError> {
            self.hit("issue_with_resend");
            Ok(Err(Duration::from_secs(1)))
        }
        async fn set_provider_ref(&self, _: &VerificationId, _: &str) -> Result<(), StoreError> {
            self.hit("set_provider_ref");
            Ok(())
        }
        async fn set_channel(&self, _: &VerificationId, _: Channel) -> Result<(), StoreError> {
            self.hit("set_channel");
            Ok(())
        }
        async fn revert_issue(&self, _: &IssueOutcome) -> Result<(), StoreError> {
            self.hit("revert_issue");
            Ok(())
        }
        async fn check(&self, _: &PhoneNumber, _: &CodeDigest, _: Timestamp) -> Result<CheckOutcome, StoreError> {
            self.hit("check");
            Ok(CheckOutcome::NotFound)
        }
        async fn cancel(&self, _: &VerificationId, _: Timestamp) -> Result<Option<Verification>, StoreError> {
            self.hit("cancel");
            Ok(None)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.hit("ping");
            Ok(())
        }
    }

    #[async_trait]
    impl ProviderHeldCodes for Recording {
        async fn mark_remote(&self, _: &VerificationId, _: &str) -> Result<(), StoreError> {
            self.hit("mark_remote");
            Ok(())
        }
        async fn count_attempt(&self, _: &VerificationId, _: Timestamp) -> Result<AttemptOutcome, StoreError> {
            self.hit("count_attempt");
            Ok(AttemptOutcome::NotFound)
        }
        async fn approve(&self, _: &VerificationId, _: Timestamp) -> Result<bool, StoreError> {
            self.hit("approve");
            Ok(true)
        }
        async fn finish(&self, _: &VerificationId, _: VerificationStatus, _: Timestamp) -> Result<(), StoreError> {
            self.hit("finish");
            Ok(())
        }
    }

    #[async_trait]
    impl Retention for Recording {
        async fn purge(&self, _: Timestamp, _: Timestamp) -> Result<PurgeCounts, StoreError> {
            self.hit("purge");
            Ok(PurgeCounts::default())
        }
        async fn export_phone(&self, _: &PhoneNumber, _: &[String]) -> Result<HotRecords, StoreError> {
            self.hit("export_phone");
            Ok(HotRecords::default())
        }
        async fn delete_phone(&self, _: &PhoneNumber, _: &[String]) -> Result<HotDeleted, StoreError> {
            self.hit("delete_phone");
            Ok(HotDeleted::default())
        }
    }

    #[async_trait]
    impl Limits for Recording {
        async fn acquire(&self, _: &[LimitRule], _: Timestamp) -> Result<Result<(), Denied>, StoreError> {
            self.hit("acquire");
            Ok(Ok(()))
        }
        async fn peek(&self, _: &[LimitRule], _: Timestamp) -> Result<Result<(), Denied>, StoreError> {
            self.hit("peek");
            Ok(Ok(()))
        }
        async fn reset(&self, _: &[String]) -> Result<(), StoreError> {
            self.hit("reset");
            Ok(())
        }
    }

    #[async_trait]
    impl Counters for Recording {
        async fn incr_counter(&self, _: &str, _: i64, _: Timestamp) -> Result<(), StoreError> {
            self.hit("incr_counter");
            Ok(())
        }
        async fn sum_counter(&self, _: &str, _: i64) -> Result<u64, StoreError> {
            self.hit("sum_counter");
            Ok(7)
        }
    }

    #[async_trait]
    impl SharedValues for Recording {
        async fn load_value(&self, _: &str, _: Timestamp) -> Result<Option<String>, StoreError> {
            self.hit("load_value");
            Ok(Some("v".into()))
        }
        async fn swap_value(
            &self,
            _: &str,
            _: Option<&str>,
            _: Option<&StoredValue>,
            _: Timestamp,
        ) -> Result<bool, StoreError> {
            self.hit("swap_value");
            Ok(true)
        }
    }

    #[tokio::test]
    async fn every_method_reaches_the_wrapped_store() {
        let inner = Arc::new(Recording::default());
        let store = TimedVerificationStore(inner.clone());
        let limits = TimedRateLimiter(inner.clone());
        let phone = PhoneNumber::parse("+14155550100", None).unwrap();
        let id = VerificationId::generate();
        let now = Timestamp(0);
        let digest = CodeDigest([0; 32]);
        let new = NewCode { id: id.clone(), phone: phone.clone(), channel: Channel::Sms, code_digest: None };
        store.resend_wait(&phone, now).await.unwrap();
        let outcome = store.issue(new.clone(), now, &Policy::default()).await.unwrap();
        let claim = ResendClaim { key: "k".into(), first: Duration::from_secs(30) };
        assert!(store.issue_with_resend(&claim, new, now, &Policy::default()).await.unwrap().is_err());
        store.set_provider_ref(&id, "r").await.unwrap();
        store.set_channel(&id, Channel::Sms).await.unwrap();
        store.revert_issue(&outcome).await.unwrap();
        store.check(&phone, &digest, now).await.unwrap();
        store.cancel(&id, now).await.unwrap();
        store.ping().await.unwrap();
        store.mark_remote(&id, "r").await.unwrap();
        store.count_attempt(&id, now).await.unwrap();
        store.approve(&id, now).await.unwrap();
        store.finish(&id, VerificationStatus::Dead, now).await.unwrap();
        store.purge(now, now).await.unwrap();
        store.export_phone(&phone, &[]).await.unwrap();
        store.delete_phone(&phone, &[]).await.unwrap();
        limits.acquire(&[], now).await.unwrap().unwrap();
        limits.peek(&[], now).await.unwrap().unwrap();
        limits.reset(&[]).await.unwrap();
        limits.incr_counter("k", 0, now).await.unwrap();
        assert_eq!(limits.sum_counter("k", 0).await.unwrap(), 7);
        assert_eq!(limits.load_value("k", now).await.unwrap().as_deref(), Some("v"));
        assert!(limits.swap_value("k", None, None, now).await.unwrap());
        assert_eq!(
            *inner.0.lock().unwrap(),
            [
                "resend_wait",
                "issue",
                "issue_with_resend",
                "set_provider_ref",
                "set_channel",
                "revert_issue",
                "check",
                "cancel",
                "ping",
                "mark_remote",
                "count_attempt",
                "approve",
                "finish",
                "purge",
                "export_phone",
                "delete_phone",
                "acquire",
                "peek",
                "reset",
                "incr_counter",
                "sum_counter",
                "load_value",
                "swap_value"
            ]
        );
    }
}
