//! otpgate's domain. Everything here is pure logic over the traits the edges implement:
//! no sockets, no files, no SQL. The server, the stores and the providers depend on this crate,
//! never the other way round.

pub mod approval;
pub mod bot;
pub mod client;
pub mod clock;
pub mod code;
pub mod error;
pub mod idempotency;
pub mod limits;
pub mod mask;
pub mod oidc;
pub mod phone;
pub mod policy;
pub mod privacy;
pub mod provider;
pub mod resend;
pub mod service;
pub mod session;
pub mod shared_key;
pub mod store;
pub mod tripwire;
pub mod verification;

pub use approval::Approved;
pub use client::{ClientKey, Ipv6Prefix};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use code::{Code, CodeDigest, CodeHasher};
pub use error::OtpError;
pub use idempotency::{Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse};
pub use limits::{LimitDecision, LimitRule, LimitScope};
pub use mask::{mask_numbers_in_text, mask_phone};
pub use oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
pub use phone::{NumberKind, PhoneError, PhoneNumber, Region, parse_region};
pub use policy::{LimitSet, Policy, PolicyError, RegionPolicy, TripwirePolicy};
pub use provider::{OutgoingCode, ProviderError, SmsProvider};
pub use service::{SendRequest, Sent, ServiceSettings, VerificationService};
pub use session::{
    NewRefreshToken, PublicKeyMaterial, PublishedKey, RotateOutcome, Rotation, SessionStore, TokenFamily, User, UserId,
};
pub use store::{
    AttemptOutcome, CheckOutcome, Counters, Denied, HotStore, IssueOutcome, Issued, Limits, NewCode, ProviderHeldCodes,
    RateLimiter, Retention, SharedValues, StoreError, StoredValue, VerificationStore, Verifications,
};
pub use verification::{Channel, Verification, VerificationId, VerificationStatus};
