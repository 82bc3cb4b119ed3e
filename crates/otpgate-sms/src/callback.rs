//! Twilio Messaging status callbacks: checking `X-Twilio-Signature`, and reading a delivery
//! report down to what the server may count (status, country, error code — never the number).
//!
//! Twilio signs `url + concat(sorted(key + value))` with HMAC-SHA1 keyed by the account's auth
//! token, base64-encoded. The URL must be the one Twilio called, exactly as configured in
//! `MessagingConfig::status_callback_url`.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use otpgate_core::PhoneNumber;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;

use crate::config::is_sid;

/// Whether `signature` (the `X-Twilio-Signature` header) signs `url` and the form `params`.
/// A missing or malformed header is simply `false`; the comparison is constant time.
pub fn verify_signature(auth_token: &SecretString, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    // Sorting by key, then value, matches Twilio's libraries for repeated keys too.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.verify_slice(&given).is_ok()
}

/// Twilio's `MessageStatus`, reduced to what we count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Accepted, queued, sending or sent: not final yet.
    InFlight,
    Delivered,
    /// The carrier gave up (a support signal, and a pumping signal when it clusters).
    Undelivered,
    /// Twilio could not send it at all.
    Failed,
    Other,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Undelivered => "undelivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Other => "other",
        }
    }

    /// Whether this is the last report Twilio sends for the message.
    pub fn is_final(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Undelivered | DeliveryStatus::Failed)
    }
}

/// One delivery report, safe to put in a metric label or a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub status: DeliveryStatus,
    /// ISO 3166-1 alpha-2 region of the recipient, `ZZ` when unknown.
    pub country: String,
    /// Twilio's error code for undelivered and failed messages (e.g. 30003, 30007).
    pub error_code: Option<u32>,
    /// The message SID, for correlating with the send's log line.
    pub message_sid: Option<String>,
}

/// One delivery receipt from any vendor, reduced to what the server may count and log: the
/// vendor's reference of the message (its message id, batch id), the status, the recipient's
/// country and the vendor's error code — never the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The vendor's id of what it sent (the `provider_ref` its send returned), when it is
    /// shaped like one.
    pub provider_ref: Option<String>,
    pub status: DeliveryStatus,
    /// ISO 3166-1 alpha-2 region of the recipient, `ZZ` when unknown.
    pub country: String,
    /// The vendor's error code for a message that was not delivered.
    pub error_code: Option<u32>,
}

/// The region of an E.164 number, `ZZ` when there is none or it cannot be read.
pub(crate) fn country_of(e164: Option<&str>) -> String {
    e164.and_then(|to| PhoneNumber::from_e164(to).ok())
        .and_then(|p| p.region().map(str::to_owned))
        .unwrap_or_else(|| "ZZ".to_owned())
}

/// Reads a status-callback form. `None` when it has no `MessageStatus` (not a status callback).
/// Call only after `verify_signature` passed.
pub fn parse_status_callback(params: &[(String, String)]) -> Option<DeliveryReport> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let status = match get("MessageStatus").or_else(|| get("SmsStatus"))? {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" => DeliveryStatus::InFlight,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" => DeliveryStatus::Undelivered,
        "failed" | "canceled" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Other,
    };
    let country = country_of(get("To"));
    Some(DeliveryReport {
        status,
        country,
        error_code: get("ErrorCode").and_then(|c| c.trim().parse().ok()),
        // Only a SID-shaped value: this string lands in logs.
        message_sid: get("MessageSid").filter(|s| is_sid(s, "SM") || is_sid(s, "MM")).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Twilio's documented example (Security > Validating requests): token `12345`.
    fn documented_example() -> (SecretString, &'static str, Vec<(String, String)>) {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"), // example value from Twilio's docs
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        (SecretString::from("12345"), "https://mycompany.com/myapp.php?foo=1&bar=2", params)
    }

    #[test]
    fn accepts_twilios_documented_example() {
        let (token, url, params) = documented_example();
        assert!(verify_signature(&token, url, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
        // Order of the form does not matter; Twilio sorts.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(verify_signature(&token, url, &reversed, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
    }

    #[test]
    fn rejects_forged_unsigned_or_altered_calls() {
        let (token, url, params) = documented_example();
        let good = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(!verify_signature(&token, url, &params, ""));
        assert!(!verify_signature(&token, url, &params, "not base64!"));
        assert!(!verify_signature(&token, url, &params, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(!verify_signature(&SecretString::from("54321"), url, &params, good));
        assert!(!verify_signature(&token, "https://mycompany.com/myapp.php?foo=1&bar=3", &params, good));
        let mut altered = params.clone();
        altered[2].1 = "9999".into();
        assert!(!verify_signature(&token, url, &altered, good));
        let mut extra = params;
        extra.push(("ErrorCode".into(), "30003".into()));
        assert!(!verify_signature(&token, url, &extra, good));
    }

    #[test]
    fn parses_a_delivery_report_to_country_level() {
        let report = parse_status_callback(&pairs(&[
            ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), // fake test SID
            ("MessageStatus", "undelivered"),
            ("To", "+442071838750"),
            ("ErrorCode", "30003"),
        ]))
        .unwrap();
        assert_eq!(report.status, DeliveryStatus::Undelivered);
        assert!(report.status.is_final());
        assert_eq!(report.country, "GB");
        assert_eq!(report.error_code, Some(30003));
        assert!(report.message_sid.is_some());
        assert!(!format!("{report:?}").contains("2071838750"), "the number never leaves the parser");
    }

    #[test]
    fn odd_reports_degrade_safely() {
        assert!(parse_status_callback(&pairs(&[("To", "+14155550100")])).is_none());
        let r =
            parse_status_callback(&pairs(&[("MessageStatus", "sent"), ("To", "garbage"), ("MessageSid", "<script>")]))
                .unwrap();
        assert_eq!(
            (r.status, r.country.as_str(), r.error_code, r.message_sid),
            (DeliveryStatus::InFlight, "ZZ", None, None)
        );
    }
}
