//! HTTP routes. Handlers parse, call the domain, and map errors; they decide nothing themselves.

pub mod dev;
pub mod ops;
pub mod sessions;
pub mod sms;
pub mod verifications;
pub mod web;

use std::sync::Arc;

use otpgate_core::{Region, SmsProvider, VerificationService, VerificationStore};
use otpgate_sms::demo::DemoInbox;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

pub struct AppInner {
    pub service: VerificationService,
    pub store: Arc<dyn VerificationStore>,
    pub provider: Arc<dyn SmsProvider>,
    /// Absent when sessions are disabled.
    pub sessions: Option<Arc<otpgate_session::SessionService>>,
    /// Twilio Messaging's delivery receipts, when configured.
    pub status_callback: Option<sms::StatusCallback>,
    /// Present only with the demo provider outside production.
    pub inbox: Option<DemoInbox>,
    pub default_region: Option<Region>,
    /// `Idempotency-Key` on sends (every hot store keeps its entries).
    pub idempotency: crate::idempotency::Idempotency,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}
