//! Verifications whose code otpgate holds, in SQLite: each operation reads, decides and writes
//! as one closure on the store's connection.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::resend::ResendClaim;
use otpgate_core::store::NewCode;
use otpgate_core::{
    Channel, CheckOutcome, CodeDigest, IssueOutcome, Issued, PhoneNumber, Policy, StoreError, Timestamp, Verification,
    VerificationId, VerificationStatus, Verifications,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, classify, execute, query_verification};
use crate::rows::{digest_bytes, verification_columns};

#[async_trait]
impl Verifications for SqliteStore {
    async fn resend_wait(&self, phone: &PhoneNumber, now: Timestamp) -> Result<Option<Duration>, StoreError> {
        let phone = phone.e164().to_owned();
        self.conn
            .run(move |conn| {
                let next: Option<i64> = conn
                    .prepare_cached(
                        "SELECT next_resend_at FROM verifications \
                         WHERE phone = ? AND status = 'pending' AND expires_at > ?",
                    )
                    .and_then(|mut s| s.query_row(params![phone, now.0], |row| row.get(0)).optional())
                    .map_err(classify)?;
                Ok(next.map(Timestamp).filter(|next| *next > now).map(|next| now.until(next)))
            })
            .await
    }

    async fn issue(&self, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
        let policy = policy.clone();
        self.conn.run(move |conn| issue_on(conn, new, now, &policy)).await
    }

    async fn issue_with_resend(
        &self,
        claim: &ResendClaim,
        new: NewCode,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Result<Issued, Duration>, StoreError> {
        let (claim, policy) = (claim.clone(), policy.clone());
        // One closure on the connection: the resend slot and the verification are written in the
        // same savepoint of the same commit, or neither is.
        self.conn
            .run(move |conn| {
                let current = super::limits::live_value(conn, &claim.key, now)?;
                let slot = match claim.take(current.as_deref(), now) {
                    Ok(slot) => slot,
                    Err(wait) => return Ok(Err(wait)),
                };
                let outcome = match issue_on(conn, new, now, &policy)? {
                    IssueOutcome::Cooldown { retry_after } => return Ok(Err(retry_after)),
                    outcome => outcome,
                };
                super::limits::put_value(conn, slot.key(), slot.taken())?;
                Ok(Ok(Issued { outcome, slot }))
            })
            .await
    }

    async fn set_provider_ref(&self, id: &VerificationId, provider_ref: &str) -> Result<(), StoreError> {
        let (id, provider_ref) = (id.clone(), provider_ref.to_owned());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE verifications SET provider_ref = ? WHERE id = ?",
                    params![provider_ref, id.as_str()],
                )
                .map(drop)
            })
            .await
    }

    async fn set_channel(&self, id: &VerificationId, channel: Channel) -> Result<(), StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE verifications SET channel = ? WHERE id = ?",
                    params![channel.as_str(), id.as_str()],
                )
                .map(drop)
            })
            .await
    }

    async fn revert_issue(&self, outcome: &IssueOutcome) -> Result<(), StoreError> {
        // Both statements only touch the row if it still holds the code this send stored, so a
        // revert never undoes a later send or check.
        let outcome = outcome.clone();
        self.conn
            .run(move |conn| {
                match outcome {
                    IssueOutcome::Created(v) => {
                        execute(
                            conn,
                            "DELETE FROM verifications WHERE id = ? AND status = 'pending' AND code_digest IS ?",
                            params![v.id.as_str(), digest_bytes(&v.code_digest)],
                        )?;
                    }
                    IssueOutcome::Resent { verification, previous } => {
                        execute(
                            conn,
                            "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = ?, sends = ?, \
                             expires_at = ?, next_resend_at = ? \
                             WHERE id = ? AND status = 'pending' AND code_digest IS ?",
                            params![
                                digest_bytes(&previous.code_digest),
                                previous.channel.as_str(),
                                previous.provider_ref,
                                i64::from(previous.sends),
                                previous.expires_at.0,
                                previous.next_resend_at.0,
                                verification.id.as_str(),
                                digest_bytes(&verification.code_digest)
                            ],
                        )?;
                    }
                    IssueOutcome::Cooldown { .. } => {}
                }
                Ok(())
            })
            .await
    }

    async fn check(
        &self,
        phone: &PhoneNumber,
        candidate: &CodeDigest,
        now: Timestamp,
    ) -> Result<CheckOutcome, StoreError> {
        let (phone, candidate) = (phone.e164().to_owned(), *candidate);
        self.conn
            .run(move |conn| {
                let v = query_verification(
                    conn,
                    concat!(
                        "SELECT ",
                        verification_columns!(),
                        " FROM verifications \
                         WHERE phone = ? AND status IN ('pending', 'dead') ORDER BY rowid DESC LIMIT 1"
                    ),
                    params![phone],
                )?;
                let Some(v) = v else { return Ok(CheckOutcome::NotFound) };
                if now >= v.expires_at {
                    return Ok(CheckOutcome::NotFound);
                }
                if v.status == VerificationStatus::Dead || v.attempts >= v.max_attempts {
                    return Ok(CheckOutcome::Exhausted);
                }
                let Some(stored) = &v.code_digest else {
                    // The provider holds this code: nothing to compare or count here.
                    return Ok(CheckOutcome::Remote(v));
                };
                if stored.ct_eq(&candidate) {
                    execute(
                        conn,
                        "UPDATE verifications SET status = 'approved', ended_at = ? WHERE id = ?",
                        params![now.0, v.id.as_str()],
                    )?;
                    return Ok(CheckOutcome::Approved(Verification { status: VerificationStatus::Approved, ..v }));
                }
                let attempts = v.attempts + 1;
                let dead = attempts >= v.max_attempts;
                execute(
                    conn,
                    "UPDATE verifications SET attempts = ?, status = ?, ended_at = CASE WHEN ? THEN ? END WHERE id = ?",
                    params![i64::from(attempts), if dead { "dead" } else { "pending" }, dead, now.0, v.id.as_str()],
                )?;
                Ok(if dead {
                    CheckOutcome::Killed
                } else {
                    CheckOutcome::Wrong { attempts_left: v.max_attempts - attempts }
                })
            })
            .await
    }

    async fn cancel(&self, id: &VerificationId, now: Timestamp) -> Result<Option<Verification>, StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                query_verification(
                    conn,
                    concat!("UPDATE verifications SET status = 'canceled', ended_at = ? WHERE id = ? AND status = 'pending' \
                         RETURNING ", verification_columns!()),
                    params![now.0, id.as_str()],
                )
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(classify)).await
    }
}

/// Creates or resends the verification of `new.phone` (see `Verifications::issue`), on the
/// connection, inside the caller's savepoint.
fn issue_on(conn: &Connection, new: NewCode, now: Timestamp, policy: &Policy) -> Result<IssueOutcome, StoreError> {
    let phone = new.phone.e164();
    // The phone's one pending row (a unique partial index). Past its expiry it is over: closed
    // here, so the phone can have a new one. (Read first and closed by id only when expired:
    // an UPDATE by phone before the read was one more statement on every send.)
    let mut live = query_verification(
        conn,
        concat!("SELECT ", verification_columns!(), " FROM verifications WHERE phone = ? AND status = 'pending'"),
        params![phone],
    )?;
    if let Some(expired) = live.take_if(|v| v.expires_at <= now) {
        execute(
            conn,
            "UPDATE verifications SET status = 'expired', ended_at = expires_at WHERE id = ?",
            params![expired.id.as_str()],
        )?;
    }
    if let Some(previous) = live {
        if now < previous.next_resend_at {
            return Ok(IssueOutcome::Cooldown { retry_after: now.until(previous.next_resend_at) });
        }
        let verification = new.resent(&previous, now, policy);
        execute(
            conn,
            "UPDATE verifications SET code_digest = ?, channel = ?, provider_ref = NULL, sends = ?, \
                 expires_at = ?, next_resend_at = ? WHERE id = ?",
            params![
                digest_bytes(&verification.code_digest),
                verification.channel.as_str(),
                i64::from(verification.sends),
                verification.expires_at.0,
                verification.next_resend_at.0,
                previous.id.as_str()
            ],
        )?;
        return Ok(IssueOutcome::Resent { verification, previous });
    }
    let v = new.created(now, policy);
    execute(
        conn,
        concat!(
            "INSERT INTO verifications (",
            verification_columns!(),
            ") \
                 VALUES (?, ?, ?, 'pending', ?, NULL, 0, ?, 1, ?, ?, ?)"
        ),
        params![
            v.id.as_str(),
            v.phone,
            v.channel.as_str(),
            digest_bytes(&v.code_digest),
            i64::from(v.max_attempts),
            v.created_at.0,
            v.expires_at.0,
            v.next_resend_at.0
        ],
    )?;
    Ok(IssueOutcome::Created(v))
}
