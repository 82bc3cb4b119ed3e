//! Approvals the way the server gets them, for suites that need a session: `Approved` has no
//! other way in than a real check (only core builds one), so this sends a code through a
//! verification service over the suite's own store and checks the code that went out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otpgate_core::provider::{MessageTemplates, ProviderError, SendReceipt};
use otpgate_core::{
    Approved, Channel, Code, CodeHasher, ManualClock, OutgoingCode, PhoneNumber, Policy, RateLimiter, SendRequest,
    ServiceSettings, SmsProvider, VerificationService, VerificationStore,
};

/// A verification service with a clock of its own, moved two days on before each approval, so
/// the send limits and cooldowns of earlier approvals never stand in the way and the suite's
/// own clock is left alone.
pub struct Approvals {
    service: VerificationService,
    outbox: Arc<Outbox>,
    clock: ManualClock,
}

/// A provider that keeps the last code it was given.
#[derive(Default)]
struct Outbox(Mutex<Option<Code>>);

#[async_trait::async_trait]
impl SmsProvider for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        *self.0.lock().unwrap() = Some(msg.code.clone());
        Ok(SendReceipt::default())
    }
}

impl Approvals {
    /// Over the suite's store (the verifications and the limits, usually one SQLite store).
    pub fn new(store: Arc<dyn VerificationStore>, limiter: Arc<dyn RateLimiter>) -> Self {
        let (outbox, clock) = (Arc::new(Outbox::default()), ManualClock::starting_now());
        let settings = ServiceSettings {
            policy: Policy::default(),
            test_numbers: HashMap::new(),
            app_name: "Test".into(),
            webotp_domain: None,
            templates: MessageTemplates::default(),
            bot_check: None,
        };
        let hasher = CodeHasher::new(&[7u8; 32]).expect("a 32-byte key");
        let service =
            VerificationService::new(store, limiter, outbox.clone(), Arc::new(clock.clone()), hasher, settings);
        Approvals { service, outbox, clock }
    }

    /// `phone`'s code sent over `channel` and checked.
    pub async fn approve(&self, phone: &PhoneNumber, channel: Channel) -> Approved {
        self.clock.advance(Duration::from_secs(2 * 86_400));
        let req = SendRequest { phone: phone.clone(), channel, locale: None, client_ip: None, bot_token: None };
        self.service.send(req).await.expect("send");
        let code = self.outbox.0.lock().unwrap().take().expect("a code went out");
        self.service.check(phone, code.expose(), None).await.expect("approved")
    }
}
