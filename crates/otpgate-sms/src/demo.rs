//! The demo provider: "sends" by keeping the message in an in-memory inbox that the server shows
//! at `GET /dev/inbox`, so the whole flow works with no SMS account. The code appears only in the
//! inbox, never in a log line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, OutgoingCode, ProviderError, SmsProvider, Timestamp};
use tracing::info;

/// How many messages the inbox keeps; older ones fall out.
pub const INBOX_CAPACITY: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// E.164: the inbox is a development tool and shows whom a message was for.
    pub to: String,
    pub channel: Channel,
    pub code: String,
    pub text: String,
    pub sent_at: Timestamp,
}

/// Messages the demo provider has "sent", newest first.
#[derive(Debug, Default, Clone)]
pub struct DemoInbox(Arc<Mutex<VecDeque<InboxMessage>>>);

impl DemoInbox {
    pub fn messages(&self, to: Option<&str>) -> Vec<InboxMessage> {
        let inbox = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inbox.iter().filter(|m| to.is_none_or(|to| m.to == to)).cloned().collect()
    }

    fn push(&self, msg: InboxMessage) {
        let mut inbox = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inbox.push_front(msg);
        inbox.truncate(INBOX_CAPACITY);
    }
}

pub struct DemoProvider {
    inbox: DemoInbox,
    clock: Arc<dyn Clock>,
}

impl DemoProvider {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        DemoProvider { inbox: DemoInbox::default(), clock }
    }

    pub fn inbox(&self) -> DemoInbox {
        self.inbox.clone()
    }
}

#[async_trait]
impl SmsProvider for DemoProvider {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn supports(&self, _channel: Channel) -> bool {
        true
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        self.inbox.push(InboxMessage {
            to: msg.to.e164().to_owned(),
            channel: msg.channel,
            code: msg.code.expose().to_owned(),
            text: msg.text.clone(),
            sent_at: self.clock.now(),
        });
        info!(provider = "demo", phone = %msg.to.masked(), channel = msg.channel.as_str(), "message recorded in the dev inbox");
        Ok(SendReceipt::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::{Code, ManualClock, PhoneNumber};

    fn msg(to: &str, code: &str) -> OutgoingCode {
        OutgoingCode {
            to: PhoneNumber::parse(to, None).unwrap(),
            code: Code::parse(code, 6).unwrap(),
            channel: Channel::Sms,
            locale: None,
            text: format!("{code} is your code"),
            verification_id: None,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn inbox_keeps_newest_first_and_filters_by_phone() {
        let p = DemoProvider::new(Arc::new(ManualClock::new(Timestamp(0))));
        p.send(&msg("+14155550100", "111111")).await.unwrap();
        p.send(&msg("+14155550101", "222222")).await.unwrap();
        p.send(&msg("+14155550100", "333333")).await.unwrap();
        let all = p.inbox().messages(None);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].code, "333333");
        let one: Vec<_> = p.inbox().messages(Some("+14155550100")).into_iter().map(|m| m.code).collect();
        assert_eq!(one, ["333333", "111111"]);
    }

    #[tokio::test]
    async fn inbox_is_bounded() {
        let p = DemoProvider::new(Arc::new(ManualClock::new(Timestamp(0))));
        for _ in 0..INBOX_CAPACITY + 5 {
            p.send(&msg("+14155550100", "123456")).await.unwrap();
        }
        assert_eq!(p.inbox().messages(None).len(), INBOX_CAPACITY);
    }
}
