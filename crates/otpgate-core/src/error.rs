//! The domain's one error type. The server maps each variant to exactly one row of the API's
//! error table; nothing here carries provider text or anything else unsafe to show.

use std::time::Duration;

use crate::{LimitScope, PhoneError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    /// A field has the right JSON type but a value we refuse (e.g. a code of the wrong shape).
    #[error("invalid request: {reason}")]
    InvalidRequest { field: Option<&'static str>, reason: &'static str },
    #[error("invalid phone number: {0}")]
    InvalidPhone(#[from] PhoneError),
    #[error("the number's country or kind is not allowed")]
    UnsupportedRegion,
    #[error("the provider cannot deliver to this number")]
    Undeliverable,
    #[error("wrong code")]
    InvalidCode { attempts_left: u32 },
    #[error("no live verification")]
    VerificationNotFound,
    #[error("the verification took its maximum of wrong codes")]
    TooManyAttempts,
    #[error("rate limited ({})", scope.as_str())]
    RateLimited { retry_after: Duration, scope: LimitScope },
    #[error("the SMS provider is unavailable")]
    ProviderUnavailable { retry_after: Duration },
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    #[error("unauthorized")]
    Unauthorized,
    /// A bug. The string goes to the log, never to a response.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for OtpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => OtpError::StoreUnavailable(msg),
            StoreError::Internal(msg) => OtpError::Internal(msg),
        }
    }
}
