//! Ordered failover: the first provider that supports the channel sends; the next one is tried
//! only when it is *unavailable*. A number one provider rejects (invalid, undeliverable, region,
//! rate limit) is rejected: trying it elsewhere would only spend money and help pumping.
//!
//! Caveat: after a timeout the first provider may in fact have sent, so the user can get two
//! messages. With a Verify-then-Messaging list the first one's code would not work; the user
//! asks again and the resend goes through whichever provider is up then.

use std::sync::Arc;

use async_trait::async_trait;
use otpgate_core::provider::{ProviderCheck, SendReceipt};
use otpgate_core::{Channel, Code, OutgoingCode, PhoneNumber, ProviderError, SmsProvider};
use tracing::warn;

pub struct Failover {
    providers: Vec<Arc<dyn SmsProvider>>,
}

impl Failover {
    pub const NAME: &'static str = "failover";

    /// `providers` in order of preference; must not be empty.
    pub fn new(providers: Vec<Arc<dyn SmsProvider>>) -> Self {
        assert!(!providers.is_empty(), "failover needs at least one provider");
        Failover { providers }
    }

    /// Refs are tagged with the sender's position (`1:VE…`), so a check or a cancel reaches the
    /// provider that holds the verification. A ref without a tag belongs to the first provider.
    fn route<'a>(&self, provider_ref: &'a str) -> Option<(&Arc<dyn SmsProvider>, &'a str)> {
        let (index, inner) = match provider_ref.split_once(':') {
            Some((i, inner)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => (i.parse().ok()?, inner),
            _ => (0, provider_ref),
        };
        Some((self.providers.get(index)?, inner))
    }
}

#[async_trait]
impl SmsProvider for Failover {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn supports(&self, channel: Channel) -> bool {
        self.providers.iter().any(|p| p.supports(channel))
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        let mut last = ProviderError::Unavailable { retry_after: None };
        for (index, provider) in self.providers.iter().enumerate().filter(|(_, p)| p.supports(msg.channel)) {
            match provider.send(msg).await {
                Ok(mut receipt) => {
                    receipt.provider_ref = receipt.provider_ref.map(|r| format!("{index}:{r}"));
                    return Ok(receipt);
                }
                Err(err @ ProviderError::Unavailable { .. }) => {
                    warn!(event = "sms.failover", provider = provider.name(), phone = %msg.to.masked(), "provider unavailable, trying the next");
                    last = err;
                }
                Err(err) => return Err(err),
            }
        }
        Err(last)
    }

    async fn check(
        &self,
        provider_ref: &str,
        phone: &PhoneNumber,
        code: &Code,
    ) -> Result<ProviderCheck, ProviderError> {
        match self.route(provider_ref) {
            Some((provider, inner)) => provider.check(inner, phone, code).await,
            // The list changed since the send: nobody holds it any more.
            None => Ok(ProviderCheck::NotFound),
        }
    }

    async fn cancel(&self, provider_ref: &str) -> Result<(), ProviderError> {
        match self.route(provider_ref) {
            Some((provider, inner)) => provider.cancel(inner).await,
            None => Ok(()),
        }
    }

    /// Ready while any provider is: sends still go out, through the next one.
    async fn readiness(&self) -> Result<(), String> {
        let mut reasons = Vec::new();
        for p in &self.providers {
            match p.readiness().await {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A provider that answers from a script and records what it was asked.
    struct Scripted {
        answer: Result<&'static str, ProviderError>,
        calls: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answer: Result<&'static str, ProviderError>) -> Arc<Self> {
            Arc::new(Scripted { answer, calls: Mutex::new(Vec::new()) })
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SmsProvider for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn supports(&self, _: Channel) -> bool {
            true
        }
        async fn send(&self, _: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
            self.calls.lock().unwrap().push("send".into());
            self.answer.clone().map(|r| SendReceipt {
                provider_ref: Some(r.into()),
                provider_checks: true,
                ..SendReceipt::default()
            })
        }
        async fn check(&self, r: &str, _: &PhoneNumber, _: &Code) -> Result<ProviderCheck, ProviderError> {
            self.calls.lock().unwrap().push(format!("check {r}"));
            Ok(ProviderCheck::Approved)
        }
    }

    fn msg() -> OutgoingCode {
        OutgoingCode {
            to: PhoneNumber::parse("+14155550100", None).unwrap(),
            code: Code::parse("123456", 6).unwrap(),
            channel: Channel::Sms,
            locale: None,
            text: "123456 is your code".into(),
            verification_id: None,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn unavailable_moves_on_and_checks_route_back() {
        let down = Scripted::new(Err(ProviderError::Unavailable { retry_after: None }));
        let up = Scripted::new(Ok("ref-b"));
        let f = Failover::new(vec![down.clone(), up.clone()]);
        let receipt = f.send(&msg()).await.unwrap();
        assert_eq!(receipt.provider_ref.as_deref(), Some("1:ref-b"));
        let m = msg();
        assert_eq!(f.check("1:ref-b", &m.to, &m.code).await.unwrap(), ProviderCheck::Approved);
        assert_eq!(up.calls(), ["send", "check ref-b"]);
        assert_eq!(down.calls(), ["send"]);
        assert_eq!(f.check("7:ref-b", &m.to, &m.code).await.unwrap(), ProviderCheck::NotFound);
    }

    #[tokio::test]
    async fn a_rejected_number_is_not_tried_elsewhere() {
        for rejection in [ProviderError::InvalidNumber, ProviderError::Undeliverable, ProviderError::UnsupportedRegion]
        {
            let first = Scripted::new(Err(rejection.clone()));
            let second = Scripted::new(Ok("ref"));
            let f = Failover::new(vec![first, second.clone()]);
            assert_eq!(f.send(&msg()).await.unwrap_err(), rejection);
            assert!(second.calls().is_empty());
        }
    }

    #[tokio::test]
    async fn all_down_is_unavailable() {
        let f = Failover::new(vec![
            Scripted::new(Err(ProviderError::Unavailable { retry_after: None })),
            Scripted::new(Err(ProviderError::Unavailable { retry_after: Some(std::time::Duration::from_secs(9)) })),
        ]);
        assert!(matches!(f.send(&msg()).await, Err(ProviderError::Unavailable { .. })));
    }
}
