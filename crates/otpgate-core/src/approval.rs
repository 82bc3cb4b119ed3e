//! [`Approved`]: the proof that a check just approved a phone's code.

use crate::{Channel, PhoneNumber, Verification};

/// What a successful [`check`](crate::VerificationService::check) yields, and the only thing a
/// session or a login session is issued for. Only this crate builds one (in the check flow): its
/// fields are private, it has no public constructor, and it is not `Clone`, `Default` or
/// `Deserialize`, so no handler can issue a session for a phone nobody verified, and one approval
/// is spent by one issue.
///
/// Read from outside, it says which phone was approved and over which channel:
///
/// ```
/// fn describe(approved: &otpgate_core::Approved) -> String {
///     format!("{} over {}", approved.phone().masked(), approved.channel().as_str())
/// }
/// ```
///
/// It cannot be built outside this crate:
///
/// ```compile_fail,E0451
/// use otpgate_core::{Approved, Channel, PhoneNumber, Verification};
/// fn forge(phone: PhoneNumber, verification: Verification) -> Approved {
///     Approved { phone, verification }
/// }
/// ```
///
/// nor copied to be spent twice:
///
/// ```compile_fail,E0599
/// fn twice(approved: &otpgate_core::Approved) -> otpgate_core::Approved {
///     approved.clone()
/// }
/// ```
#[derive(Debug)]
#[must_use = "an approval is what a session is issued for"]
pub struct Approved {
    phone: PhoneNumber,
    verification: Verification,
}

impl Approved {
    /// Only the check flow calls this, with the verification the store (or the provider) just
    /// approved for `phone`.
    pub(crate) fn new(phone: PhoneNumber, verification: Verification) -> Self {
        Approved { phone, verification }
    }

    /// The phone whose code was approved.
    pub fn phone(&self) -> &PhoneNumber {
        &self.phone
    }

    /// The channel the approved code was sent on.
    pub fn channel(&self) -> Channel {
        self.verification.channel
    }

    /// The approved verification (its id, its status `approved`).
    pub fn verification(&self) -> &Verification {
        &self.verification
    }
}
