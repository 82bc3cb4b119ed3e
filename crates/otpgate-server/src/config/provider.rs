//! `[provider]`: which SMS provider sends, in failover order.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Records messages in the dev inbox (`GET /dev/inbox`); sends nothing.
    Demo,
    /// Twilio Verify: Twilio makes, sends and checks the code (`provider.twilio.verify`).
    TwilioVerify,
    /// Twilio Programmable Messaging: otpgate makes the code and sends its own text
    /// (`provider.twilio.messaging`).
    TwilioMessaging,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Unset: `demo` in development; required in production (unless `failover` is set).
    pub kind: Option<ProviderKind>,
    /// Ordered providers: the next one sends only when the one before is unavailable (never
    /// when it rejects a number). Overrides `kind` when not empty.
    pub failover: Vec<ProviderKind>,
    /// The Twilio account, for `twilio-verify` and `twilio-messaging`.
    pub twilio: Option<otpgate_sms::TwilioConfig>,
}
