//! `twilio-messaging`: otpgate makes the code and sends its own text (already rendered by the
//! core, WebOTP line included) through Programmable Messaging. Checks stay local.
//!
//! WhatsApp goes through the same API when a content template is configured: WhatsApp only
//! lets a business start a conversation with an approved template, so the code travels as the
//! template's variable `{{1}}` (`ContentSid` + `ContentVariables`) to `whatsapp:+…`.

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
    whatsapp: Option<WhatsApp>,
}

/// WhatsApp through Messaging: the template and, when set, the sender.
struct WhatsApp {
    content_sid: String,
    /// `whatsapp:+…`; `None` sends through the messaging service.
    from: Option<String>,
}

impl TwilioMessaging {
    pub const NAME: &'static str = "twilio-messaging";

    /// Needs `cfg.messaging`. `http` is the shared client (`http::build_client`); `clock` drives
    /// the circuit breaker.
    pub fn new(cfg: &TwilioConfig, http: reqwest::Client, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Self::named(Self::NAME, cfg, http, clock)
    }

    /// As `new`, under a configured provider name (logs, metrics, readiness).
    pub fn named(
        name: &'static str,
        cfg: &TwilioConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let m =
            cfg.messaging.as_ref().ok_or_else(|| ConfigError("twilio-messaging needs a [messaging] section".into()))?;
        let client = TwilioClient::new(cfg, http, clock, name)?;
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
            whatsapp: m.whatsapp_content_sid.as_ref().map(|sid| WhatsApp {
                content_sid: sid.clone(),
                from: m.whatsapp_from.as_ref().map(|f| format!("whatsapp:{f}")),
            }),
        })
    }
}

#[async_trait]
impl SmsProvider for TwilioMessaging {
    fn name(&self) -> &'static str {
        self.client.provider()
    }

    /// Text, and WhatsApp when a content template is configured. Voice is another API.
    fn supports(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => true,
            Channel::Whatsapp => self.whatsapp.is_some(),
            Channel::Call => false,
        }
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        if !self.supports(msg.channel) {
            return Err(ProviderError::Unavailable { retry_after: None });
        }
        let masked = msg.to.masked();
        let whatsapp_to;
        let variables;
        let (ctx, mut form) = match (&self.whatsapp, msg.channel) {
            (Some(w), Channel::Whatsapp) => {
                whatsapp_to = format!("whatsapp:{}", msg.to.e164());
                // The code is the template's only variable; serde_json escapes nothing here
                // (digits), but builds the JSON rather than trusting a format string.
                variables = serde_json::json!({ "1": msg.code.expose() }).to_string();
                let mut form = vec![("To", whatsapp_to.as_str()), ("ContentSid", w.content_sid.as_str())];
                form.push(("ContentVariables", variables.as_str()));
                match (&w.from, &self.sender) {
                    (Some(from), _) => form.push(("From", from.as_str())),
                    (None, Sender::MessagingService(sid)) => form.push(("MessagingServiceSid", sid.as_str())),
                    // Refused by `validate`: a template without a sender.
                    (None, Sender::From(_)) => return Err(ProviderError::Unavailable { retry_after: None }),
                }
                (Ctx { op: "messaging.whatsapp", phone: Some(masked.as_str()) }, form)
            }
            _ => {
                let mut form = vec![("To", msg.to.e164()), ("Body", msg.text.as_str())];
                match &self.sender {
                    Sender::From(from) => form.push(("From", from)),
                    Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
                }
                (Ctx { op: "messaging.send", phone: Some(masked.as_str()) }, form)
            }
        };
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url));
        }
        let m: MessageResource =
            self.client.post_form(&self.messages_url, &form, ctx).await.map_err(|e| self.client.send_error(e, ctx))?;
        // A missing SID costs nothing here: the code is ours and checked locally.
        Ok(SendReceipt { provider_ref: m.sid, ..SendReceipt::default() })
    }

    async fn readiness(&self) -> Result<(), String> {
        self.client.readiness()
    }
}
