//! Verifications whose code otpgate holds, in Redis: each operation is one Lua script on the
//! phone's slot.

use std::time::Duration;

use ::redis::ScriptInvocation;
use async_trait::async_trait;
use otpgate_core::policy::MAX_RESEND_COOLDOWN;
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::NewCode;
use otpgate_core::{
    Channel, CheckOutcome, CodeDigest, IssueOutcome, Issued, PhoneNumber, Policy, StoreError, Timestamp, Verification,
    VerificationId, Verifications,
};

use super::{
    CHECK, ID_PUT, ISSUE, ISSUE_RESEND, KEY_GRACE, REVERT, RedisStore, UPDATE_BY_ID, ValuePlace, bucket_entry,
    channel_arg, digest_arg, first_number, id_arg, max_attempts_arg, ms, records, verification_from,
};

/// What the issue script answered, as an outcome.
fn issue_outcome(kind: &str, before: &[u8], after: &[u8], e164: &str) -> Result<IssueOutcome, StoreError> {
    Ok(match kind {
        "cooldown" => IssueOutcome::Cooldown { retry_after: Duration::from_millis(first_number(before)?) },
        "created" => IssueOutcome::Created(verification_from(after, e164)?),
        "resent" => IssueOutcome::Resent {
            previous: verification_from(before, e164)?,
            verification: verification_from(after, e164)?,
        },
        other => return Err(StoreError::Internal(format!("issue script answered {other:?}"))),
    })
}

#[async_trait]
impl Verifications for RedisStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let value: Option<Vec<u8>> = self.command(::redis::cmd("GET").arg(self.phone_key(phone.e164()))).await?;
        let Some(value) = value else { return Ok(None) };
        let current = records(&value, phone.e164())?.into_iter().next().map(|r| r.verification);
        Ok(current
            .filter(|v| v.is_live(now))
            .and_then(|v| (v.next_resend_at > now).then(|| now.until(v.next_resend_at))))
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let e164 = new.phone.e164();
        let mut inv = ISSUE.prepare_invoke();
        inv.key(self.phone_key(e164));
        issue_args(&mut inv, &new, now, policy)?;
        let (kind, before, after): (String, Vec<u8>, Vec<u8>) = self.script(&inv).await?;
        let outcome = issue_outcome(&kind, &before, &after, e164)?;
        let v = match &outcome {
            IssueOutcome::Created(v) | IssueOutcome::Resent { verification: v, .. } => v,
            IssueOutcome::Cooldown { .. } => return Ok(outcome),
        };
        // The id index lives in the id's own bucket and slot, so it cannot be part of the script
        // on a Cluster; it is written right after, and refreshed with every resend.
        let entry = self.id_entry(&v.id);
        let mut put = ID_PUT.prepare_invoke();
        put.key(&entry.bucket)
            .arg(&entry.field)
            .arg(entry.xor(e164.as_bytes()))
            .arg(v.expires_at.plus(KEY_GRACE).0)
            .arg(now.0);
        self.script::<i64>(&put).await?;
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
        let (value_key, field) = match self.value_place(&claim.key) {
            ValuePlace::Bucket { key, field } => (key, field),
            ValuePlace::Hash(key) => (key, Vec::new()),
        };
        // The new id's entry in the id index, written by the script when it creates.
        let entry = self.id_entry(&new.id);
        let mut inv = ISSUE_RESEND.prepare_invoke();
        inv.key(self.phone_key(e164)).key(value_key);
        issue_args(&mut inv, &new, now, policy)?;
        inv.arg(ms(otpgate_core::resend::FORGET_AFTER))
            .arg(format!("{}ix:{{", self.prefix))
            .arg(ms(claim.first))
            .arg(ms(MAX_RESEND_COOLDOWN.max(claim.first)))
            .arg(field)
            .arg(&entry.bucket)
            .arg(&entry.field)
            .arg(entry.xor(e164.as_bytes()));
        let (kind, before, after, previous, taken): (String, Vec<u8>, Vec<u8>, String, String) =
            self.script(&inv).await?;
        let outcome = match issue_outcome(&kind, &before, &after, e164)? {
            IssueOutcome::Cooldown { retry_after } => return Ok(Err(retry_after)),
            outcome => outcome,
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
        self.by_id(id, "channel", &[channel_arg(channel)]).await.map(drop)
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        let mut inv = REVERT.prepare_invoke();
        match outcome {
            IssueOutcome::Created(v) => {
                inv.key(self.phone_key(&v.phone))
                    .arg("created")
                    .arg(&id_arg(&v.id)[..])
                    .arg(digest_arg(&v.code_digest));
                self.script::<i64>(&inv).await?;
                self.id_delete(&v.id).await?;
            }
            IssueOutcome::Resent { verification, previous } => {
                inv.key(self.phone_key(&verification.phone))
                    .arg("resent")
                    .arg(&id_arg(&verification.id)[..])
                    .arg(digest_arg(&verification.code_digest))
                    .arg(digest_arg(&previous.code_digest))
                    .arg(channel_arg(previous.channel))
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
        inv.key(self.phone_key(phone.e164())).arg(now.0).arg(candidate.as_bytes().as_slice());
        let (kind, data): (String, Vec<u8>) = self.script(&inv).await?;
        match kind.as_str() {
            "approved" => Ok(CheckOutcome::Approved(verification_from(&data, phone.e164())?)),
            "wrong" => Ok(CheckOutcome::Wrong { attempts_left: first_number(&data)? as u32 }),
            "killed" => Ok(CheckOutcome::Killed),
            "exhausted" => Ok(CheckOutcome::Exhausted),
            "notfound" => Ok(CheckOutcome::NotFound),
            // The provider holds this code: nothing was compared or counted here.
            "remote" => Ok(CheckOutcome::Remote(verification_from(&data, phone.e164())?)),
            other => Err(StoreError::Internal(format!("check script answered {other:?}"))),
        }
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        let (done, record, e164) = self.by_id(id, "cancel", &[&now.0.to_string()]).await?;
        if done == "1" { verification_from(&record, &e164).map(Some) } else { Ok(None) }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.command(&::redis::cmd("PING")).await?;
        if pong == "PONG" { Ok(()) } else { Err(StoreError::Internal(format!("PING answered {pong:?}"))) }
    }
}

impl RedisStore {
    /// The phone of a verification id, from the id index; `None` when it has no entry.
    pub(super) async fn id_phone(&self, id: &VerificationId) -> Result<Option<String>, StoreError> {
        let entry = self.id_entry(id);
        let held: Option<Vec<u8>> = self.command(::redis::cmd("HGET").arg(&entry.bucket).arg(&entry.field)).await?;
        let Some((_, payload)) = held.as_deref().and_then(bucket_entry) else { return Ok(None) };
        let phone = entry.xor(payload);
        // Not a number: not what we stored under this id (the entry of another id in the same
        // field, 94 bits of SHA-1 apart, would be the only way).
        let e164 = |p: &[u8]| p.first() == Some(&b'+') && p.len() > 1 && p[1..].iter().all(u8::is_ascii_digit);
        Ok(Some(phone).filter(|p| e164(p)).and_then(|p| String::from_utf8(p).ok()))
    }

    /// Drops a verification id's entry from the id index.
    pub(super) async fn id_delete(&self, id: &VerificationId) -> Result<(), StoreError> {
        let entry = self.id_entry(id);
        self.command::<i64>(::redis::cmd("HDEL").arg(&entry.bucket).arg(&entry.field)).await.map(drop)
    }

    /// Runs one `update_by_id.lua` operation on the verification `id`, found through the id
    /// index; `("", _, _)` when the id is unknown (never issued, or its entry expired). Answers
    /// the script's result, its record and the phone.
    pub(super) async fn by_id(
        &self,
        id: &VerificationId,
        op: &str,
        args: &[&str],
    ) -> Result<(String, Vec<u8>, String), StoreError> {
        let Some(phone) = self.id_phone(id).await? else { return Ok((String::new(), Vec::new(), String::new())) };
        let mut inv = UPDATE_BY_ID.prepare_invoke();
        inv.key(self.phone_key(&phone)).arg(&id_arg(id)[..]).arg(op);
        for arg in args {
            inv.arg(*arg);
        }
        let (result, record): (String, Vec<u8>) = self.script(&inv).await?;
        Ok((result, record, phone))
    }
}

/// issue.lua's ARGV (issue_resend.lua's first ten): the new code, the clock and the policy.
fn issue_args(
    inv: &mut ScriptInvocation<'_>,
    new: &NewCode,
    now: Timestamp,
    policy: &Policy,
) -> Result<(), StoreError> {
    inv.arg(now.0)
        .arg(&id_arg(&new.id)[..])
        .arg(new.phone.e164())
        .arg(channel_arg(new.channel))
        .arg(digest_arg(&new.code_digest))
        .arg(ms(policy.code_ttl))
        .arg(max_attempts_arg(policy)?)
        .arg(ms(policy.resend_cooldown))
        .arg(ms(MAX_RESEND_COOLDOWN.max(policy.resend_cooldown)))
        .arg(ms(KEY_GRACE));
    Ok(())
}
