//! `twilio-messaging`: otpgate makes the code and sends its own text (already rendered by the
//! core, WebOTP line included) through Programmable Messaging. Checks stay local.

use std::sync::Arc;

use async_trait::async_trait;
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, Clock, OutgoingCode, ProviderError, SmsProvider};
use serde::Deserialize;

use crate::config::{ConfigError, TwilioConfig};
use crate::twilio::{Ctx, TwilioClient};

#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: Option<String>,
}

/// Who the message is from, in Twilio's form field terms.
enum Sender {
    From(String),
    MessagingService(String),
}

pub struct TwilioMessaging {
    client: TwilioClient,
    messages_url: String,
    sender: Sender,
    status_callback: Option<String>,
}

impl TwilioMessaging {
    pub const NAME: &'static str = "twilio-messaging";

    /// Needs `cfg.messaging`. `http` is the shared client (`http::build_client`); `clock` drives
    /// the circuit breaker.
    pub fn new(cfg: &TwilioConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let m =
            cfg.messaging.as_ref().ok_or_else(|| ConfigError("twilio-messaging needs a [messaging] section".into()))?;
        let client = TwilioClient::new(cfg, http, clock, Self::NAME)?;
        let sender = match (&m.from, &m.messaging_service_sid) {
            (Some(from), _) => Sender::From(from.clone()),
            (None, Some(mg)) => Sender::MessagingService(mg.clone()),
            (None, None) => return Err(ConfigError("messaging needs from or messaging_service_sid".into())),
        };
        Ok(TwilioMessaging {
            client,
            messages_url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                m.base_url.trim_end_matches('/'),
                cfg.account_sid
            ),
            sender,
            status_callback: m.status_callback_url.clone(),
        })
    }
}

#[async_trait]
impl SmsProvider for TwilioMessaging {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Text only: WhatsApp through Messaging needs approved templates, and voice is another API.
    fn supports(&self, channel: Channel) -> bool {
        channel == Channel::Sms
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let masked = msg.to.masked();
        let ctx = Ctx { op: "messaging.send", phone: Some(&masked) };
        let mut form = vec![("To", msg.to.e164()), ("Body", msg.text.as_str())];
        match &self.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url));
        }
        let m: MessageResource =
            self.client.post_form(&self.messages_url, &form, ctx).await.map_err(|e| self.client.send_error(e, ctx))?;
        // A missing SID costs nothing here: the code is ours and checked locally.
        Ok(SendReceipt { provider_ref: m.sid, provider_checks: false })
    }

    async fn readiness(&self) -> Result<(), String> {
        self.client.readiness()
    }
}
