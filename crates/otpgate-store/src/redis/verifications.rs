//! Verifications whose code otpgate holds, in Redis: each operation is one Lua script on the
//! phone's slot.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::policy::MAX_RESEND_COOLDOWN;
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::NewCode;
use otpgate_core::{
    Channel, CheckOutcome, CodeDigest, IssueOutcome, Issued, PhoneNumber, Policy, StoreError, Timestamp, Verification,
    VerificationId, Verifications,
};

use super::{
    CHECK, ISSUE, ISSUE_RESEND, KEY_GRACE, REVERT, RedisStore, UPDATE_BY_ID, digest_arg, first_number, ms,
    verification_from_flat,
};

#[async_trait]
impl Verifications for RedisStore {
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

    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError> {
        if self.is_cluster() {
            // The resend value and the verification live in different slots: no one script can
            // hold both, so the steps are separate (and atomic as a whole by the swap).
            return otpgate_core::resend::issue_in_steps(self, claim, new, now, policy).await;
        }
        let e164 = new.phone.e164();
        let mut inv = ISSUE_RESEND.prepare_invoke();
        inv.key(self.phone_key("v", e164))
            .key(self.phone_key("vp", e164))
            .key(self.value_key(&claim.key))
            .arg(now.0)
            .arg(new.id.as_str())
            .arg(e164)
            .arg(new.channel.as_str())
            .arg(digest_arg(&new.code_digest))
            .arg(ms(policy.code_ttl))
            .arg(policy.max_attempts)
            .arg(ms(policy.resend_cooldown))
            .arg(ms(MAX_RESEND_COOLDOWN.max(policy.resend_cooldown)))
            .arg(ms(KEY_GRACE))
            .arg(ms(otpgate_core::resend::FORGET_AFTER))
            .arg(format!("{}vid:{{", self.prefix))
            .arg(ms(claim.first))
            .arg(ms(MAX_RESEND_COOLDOWN.max(claim.first)));
        let (kind, before, after, previous, taken): (String, Vec<Vec<u8>>, Vec<Vec<u8>>, String, String) =
            self.script(&inv).await?;
        let outcome = match kind.as_str() {
            "cooldown" => return Ok(Err(Duration::from_millis(first_number(&before)?))),
            "created" => IssueOutcome::Created(verification_from_flat(after)?),
            "resent" => IssueOutcome::Resent {
                previous: verification_from_flat(before)?,
                verification: verification_from_flat(after)?,
            },
            other => return Err(StoreError::Internal(format!("issue script answered {other:?}"))),
        };
        let previous = (!previous.is_empty()).then_some(previous.as_str());
        let slot = claim
            .slot_from(previous, &taken, now)
            .ok_or_else(|| StoreError::Internal(format!("issue script stored resend value {taken:?}")))?;
        Ok(Ok(Issued { outcome, slot }))
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        self.by_id(id, "ref", &[provider_ref]).await.map(drop)
    }

    async fn set_channel(&self, id: &VerificationId, channel: Channel) -> Result<(), StoreError> {
        self.by_id(id, "channel", &[channel.as_str()]).await.map(drop)
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
}

impl RedisStore {
    /// Runs one `update_by_id.lua` operation on the verification `id`, found through the id
    /// index; `("", [])` when the id is unknown (never issued, or its keys expired).
    pub(super) async fn by_id(
        &self,
        id: &VerificationId,
        op: &str,
        args: &[&str],
    ) -> Result<(String, Vec<Vec<u8>>), StoreError> {
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
