//! A verification: one phone number's pending proof of possession, with its code digest, its
//! attempt count and its resend schedule.

use std::fmt;
use std::str::FromStr;

use crate::code::os_random;
use crate::{CodeDigest, Timestamp};

/// Opaque public id: `vf_` and 20 base62 characters (119 bits), unguessable and URL-safe.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerificationId(String);

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters from the OS CSPRNG (for ids and tokens).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 48];
    while out.len() < len {
        os_random(&mut buf);
        // Rejection sampling keeps every character equally likely (248 = 4 * 62).
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[(b % 62) as usize]));
        }
    }
    out
}

impl VerificationId {
    pub const PREFIX: &'static str = "vf_";

    pub fn generate() -> Self {
        VerificationId(format!("{}{}", Self::PREFIX, random_base62(20)))
    }

    /// Accepts only the shape we generate, so junk never reaches a store query.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        (rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| VerificationId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for VerificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Sms,
    Whatsapp,
    Call,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Whatsapp, Channel::Call];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Call => "call",
        }
    }
}

impl FromStr for Channel {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerificationStatus {
    /// Waiting for the right code (may have passed its expiry; see `Verification::is_live`).
    Pending,
    Approved,
    Canceled,
    /// Took its maximum of wrong codes.
    Dead,
    /// Ended without a result (its code expired, or it was replaced).
    Expired,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Pending => "pending",
            VerificationStatus::Approved => "approved",
            VerificationStatus::Canceled => "canceled",
            VerificationStatus::Dead => "dead",
            VerificationStatus::Expired => "expired",
        }
    }
}

impl FromStr for VerificationStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        use VerificationStatus::*;
        [Pending, Approved, Canceled, Dead, Expired].into_iter().find(|st| st.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Clone)]
pub struct Verification {
    pub id: VerificationId,
    /// E.164.
    pub phone: String,
    pub channel: Channel,
    pub status: VerificationStatus,
    /// `None` when the provider holds the code (Twilio Verify).
    pub code_digest: Option<CodeDigest>,
    /// The provider's handle for this verification (e.g. Twilio's VerificationSid).
    pub provider_ref: Option<String>,
    /// Wrong codes so far; never reset by a resend.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Messages sent for this verification (1 after the first send).
    pub sends: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub next_resend_at: Timestamp,
}

impl Verification {
    /// Pending and within its expiry: the one verification a phone can have at a time.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.status == VerificationStatus::Pending && now < self.expires_at
    }

    pub fn attempts_left(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip_and_junk_is_refused() {
        let id = VerificationId::generate();
        assert_eq!(id.as_str().len(), 23);
        assert_eq!(VerificationId::parse(id.as_str()), Some(id.clone()));
        for junk in
            ["", "vf_", "vf_short", "xx_2b7Jm0cWQ5kq3n8Xa1ab", "vf_2b7Jm0cWQ5kq3n8Xa1a'", "vf_2b7Jm0cWQ5kq3n8Xa1ab;"]
        {
            assert!(VerificationId::parse(junk).is_none(), "{junk}");
        }
        assert_ne!(VerificationId::generate(), VerificationId::generate());
    }

    #[test]
    fn channel_and_status_names_roundtrip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
        assert!("fax".parse::<Channel>().is_err());
        assert_eq!("dead".parse::<VerificationStatus>(), Ok(VerificationStatus::Dead));
    }
}
