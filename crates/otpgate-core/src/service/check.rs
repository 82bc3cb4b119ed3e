//! The check flow: the check limits, one atomic store operation (or the provider, for a code it
//! holds), and on success the [`Approved`] that a session is issued for.

use std::net::IpAddr;

use tracing::{info, warn};

use super::events::{ip_field, security_event_limit};
use super::{REMOTE_PREFIX, VerificationService, map_provider_error};
use crate::provider::ProviderCheck;
use crate::store::{AttemptOutcome, CheckOutcome};
use crate::{Approved, Code, OtpError, PhoneNumber, Timestamp, Verification, VerificationStatus, tripwire};

impl VerificationService {
    /// Checks `code` for `phone`. Succeeds exactly once per verification, with the [`Approved`]
    /// a session is issued for.
    pub async fn check(
        &self,
        phone: &PhoneNumber,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Approved, OtpError> {
        let len = self.settings.policy.code_length;
        let Some(code) = Code::parse(code, len) else {
            return Err(OtpError::InvalidRequest {
                field: Some("code"),
                reason: "the code must be a string of digits of the configured length",
            });
        };
        let now = self.clock.now();
        let country = phone.region().unwrap_or("ZZ");
        let limited = |denied: crate::Denied| {
            security_event_limit(denied.scope, &phone.masked(), country, client_ip, denied.retry_after);
            metrics::counter!("otpgate_checks_total", "outcome" => "rate_limited", "country" => country.to_owned())
                .increment(1);
            Err(OtpError::RateLimited { retry_after: denied.retry_after, scope: denied.scope })
        };
        // A phone locked by failed checks is refused before anything is compared. The lock is
        // only looked at here: a check counts against its phone below, and only when it compared
        // a code, so checks against a phone with no live verification (anyone can send them) can
        // never lock its owner out. Counting after the compare lets checks already past this
        // look go on being compared; each is still one of its verification's atomically
        // counted attempts, so at most `max_attempts - 1` guesses pass the lock.
        let phone_rule = self.phone_check_rule(phone);
        if let Some(rule) = &phone_rule
            && let Err(denied) = self.limiter.peek(std::slice::from_ref(rule), now).await?
        {
            return limited(denied);
        }
        if let Some(rule) = self.ip_check_rule(client_ip)
            && let Err(denied) = self.limiter.acquire(&[rule], now).await?
        {
            return limited(denied);
        }
        let digest = self.hasher.digest(phone, &code);
        let outcome = self.store.check(phone, &digest, now).await?;
        let Checked { label, compared_wrong, result } = match outcome {
            CheckOutcome::Approved(v) => Checked::new("approved", false, Ok(v)),
            CheckOutcome::Wrong { attempts_left } => {
                Checked::new("wrong", true, Err(OtpError::InvalidCode { attempts_left }))
            }
            CheckOutcome::Killed => Checked::new("locked", true, Err(OtpError::TooManyAttempts)),
            CheckOutcome::Exhausted => Checked::new("locked", false, Err(OtpError::TooManyAttempts)),
            CheckOutcome::NotFound => Checked::new("not_found", false, Err(OtpError::VerificationNotFound)),
            CheckOutcome::Remote(v) => self.check_remote(phone, v, &code, now).await?,
        };
        if compared_wrong && let Some(rule) = &phone_rule {
            // Refused means the phone's bucket is already full: it is locked either way.
            let _ = self.limiter.acquire(std::slice::from_ref(rule), now).await?;
        }
        if result.is_ok() {
            // A success clears the phone's failure count and feeds the tripwire. Without the
            // failure limit nothing counted failures: no write (a count left from when the limit
            // was on drains by its own period).
            if phone_rule.is_some()
                && let Err(e) = self.limiter.reset(&[self.phone_check_key(phone)]).await
            {
                warn!(error = %e, "cannot reset the check limit after an approval");
            }
            tripwire::record_approval(&*self.limiter, &self.settings.policy.tripwire, country, now).await;
        }
        metrics::counter!("otpgate_checks_total", "outcome" => label, "country" => country.to_owned()).increment(1);
        info!(
            event = "otp.check",
            outcome = label,
            phone = %phone.masked(),
            country = %country,
            client_ip = %ip_field(client_ip),
        );
        result.map(|verification| Approved::new(phone.clone(), verification))
    }

    /// The provider holds the code (Twilio Verify). The attempt is counted here first, so a
    /// brute force is stopped by our own cap and never reaches the provider past it.
    async fn check_remote(
        &self,
        phone: &PhoneNumber,
        v: Verification,
        code: &Code,
        now: Timestamp,
    ) -> Result<Checked, OtpError> {
        let counted = match self.store.count_attempt(&v.id, now).await? {
            AttemptOutcome::Counted(counted) => counted,
            AttemptOutcome::Exhausted => return Ok(Checked::new("locked", false, Err(OtpError::TooManyAttempts))),
            AttemptOutcome::NotFound => {
                return Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound)));
            }
        };
        let Some(provider_ref) = counted.provider_ref.as_deref().and_then(|r| r.strip_prefix(REMOTE_PREFIX)) else {
            return Err(OtpError::Internal("a provider-held verification has no provider reference".into()));
        };
        match self.provider.check(provider_ref, phone, code).await {
            Ok(ProviderCheck::Approved) => {
                if self.store.approve(&counted.id, now).await? {
                    let approved = Verification { status: VerificationStatus::Approved, ..counted };
                    Ok(Checked::new("approved", false, Ok(approved)))
                } else {
                    // A concurrent check approved it first.
                    Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound)))
                }
            }
            Ok(ProviderCheck::Wrong) if counted.attempts >= counted.max_attempts => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                self.cancel_remote(provider_ref).await;
                Ok(Checked::new("locked", true, Err(OtpError::TooManyAttempts)))
            }
            Ok(ProviderCheck::Wrong) => {
                let attempts_left = counted.attempts_left();
                Ok(Checked::new("wrong", true, Err(OtpError::InvalidCode { attempts_left })))
            }
            Ok(ProviderCheck::TooManyAttempts) => {
                self.store.finish(&counted.id, VerificationStatus::Dead, now).await?;
                Ok(Checked::new("locked", false, Err(OtpError::TooManyAttempts)))
            }
            // Twilio forgets a verification once it approves it, so this may be a check that
            // raced a concurrent one of the right code whose approval has not reached our store
            // yet: ending the verification here would refuse that one too, and nobody would get
            // a session. Nothing is ended; our own expiry ends a verification the provider
            // dropped, and each check until then still counts an attempt.
            Ok(ProviderCheck::NotFound) => Ok(Checked::new("not_found", false, Err(OtpError::VerificationNotFound))),
            // The attempt stays counted: a failing provider must not become a free retry. It does
            // not count against the phone: an outage must not lock phones.
            Err(e) => Ok(Checked::new("provider_error", false, Err(map_provider_error(e)))),
        }
    }
}

/// What one check came to: its log and metric label, whether it compared a code and found it
/// wrong (only such a check counts against its phone), and the answer.
struct Checked {
    label: &'static str,
    compared_wrong: bool,
    result: Result<Verification, OtpError>,
}

impl Checked {
    fn new(label: &'static str, compared_wrong: bool, result: Result<Verification, OtpError>) -> Self {
        Checked { label, compared_wrong, result }
    }
}
