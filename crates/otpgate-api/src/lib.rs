//! otpgate's wire types: what goes over HTTP, exactly as the README's API table and the served
//! `/openapi.json` name it. Serde and schema derives only; no behaviour, no storage, so clients
//! can depend on this crate alone. With the `domain` feature (the server's), `From` impls between
//! these names and `otpgate-core`'s types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[cfg(feature = "domain")]
mod domain;

/// Delivery channel of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelName {
    Sms,
    Whatsapp,
    Call,
}

/// `POST /v1/verifications`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendVerificationRequest {
    /// E.164 preferred (`+14155550100`); national formats only with a server `default_region`.
    #[schema(example = "+14155550100", max_length = 64, pattern = r"^ *\+?[0-9 ().-]+$")]
    pub phone: String,
    /// Default `sms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    /// BCP 47 tag picking the message template (`en`, `pt-BR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "en", max_length = 35, pattern = "^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$")]
    pub locale: Option<String>,
    /// A bot-check challenge token (Turnstile, hCaptcha, reCAPTCHA), when the server requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub bot_token: Option<String>,
}

/// Where a verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatusName {
    /// Waiting for its code.
    Pending,
    Approved,
    Canceled,
    /// Took its maximum of wrong codes.
    Dead,
    /// Ended without a result (its code expired, or it was replaced).
    Expired,
}

/// A verification as the client sees it. Never contains the code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerificationResponse {
    #[schema(example = "vf_2b7Jm0cWQ5kq3n8Xa1ab")]
    pub id: String,
    /// `pending` for a verification waiting for its code.
    #[schema(example = "pending")]
    pub status: VerificationStatusName,
    /// Masked: `+1******0100`.
    #[schema(example = "+1******0100")]
    pub phone: String,
    pub channel: ChannelName,
    /// RFC 3339, UTC.
    #[schema(example = "2026-11-24T10:02:00Z")]
    pub expires_at: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Seconds until a resend is allowed.
    pub resend_in: u64,
    pub attempts_left: u32,
}

/// `POST /v1/verifications/check`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckVerificationRequest {
    #[schema(example = "+14155550100", max_length = 64, pattern = r"^ *\+?[0-9 ().-]+$")]
    pub phone: String,
    /// Exactly the configured number of ASCII digits, as a JSON string.
    #[schema(example = "123456", pattern = "^[0-9]{4,10}$")]
    pub code: String,
}

/// The signed-in user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    #[schema(example = "usr_6fJ2kq9Xb0aZ1mN3pQ7r")]
    pub id: String,
    /// E.164.
    #[schema(example = "+14155550100")]
    pub phone: String,
    /// True when this approval created the user.
    pub created: bool,
}

/// Tokens issued after an approval or a refresh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// What a successful check says: always `approved` (every other outcome is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Approved,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckVerificationResponse {
    /// `approved`.
    #[schema(example = "approved")]
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
}

/// `POST /v1/sessions/refresh` and `POST /v1/sessions/revoke`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenRequest {
    #[schema(example = "rt_3kTq9Xb0aZ1mN3pQ7r6fJ2kq9Xb0aZ1m")]
    pub refresh_token: String,
}

/// `POST /v1/sessions/refresh` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshResponse {
    pub session: SessionView,
}

/// `GET /v1/me`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    #[schema(example = "usr_6fJ2kq9Xb0aZ1mN3pQ7r")]
    pub id: String,
    /// E.164.
    #[schema(example = "+14155550100")]
    pub phone: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Every error code the API answers with; see the error table in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidPhone,
    UnsupportedRegion,
    Undeliverable,
    InvalidCode,
    VerificationNotFound,
    TooManyAttempts,
    RateLimited,
    Unauthorized,
    ProviderUnavailable,
    ServiceUnavailable,
    Internal,
    /// No such path (added beside the table: unknown routes).
    NotFound,
    /// The path exists, the method does not (added beside the table).
    MethodNotAllowed,
}

impl ErrorCode {
    /// The HTTP status that goes with each code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InvalidPhone
            | ErrorCode::UnsupportedRegion
            | ErrorCode::Undeliverable
            | ErrorCode::InvalidCode => 422,
            ErrorCode::VerificationNotFound | ErrorCode::NotFound => 404,
            ErrorCode::TooManyAttempts | ErrorCode::RateLimited => 429,
            ErrorCode::Unauthorized => 401,
            ErrorCode::ProviderUnavailable | ErrorCode::ServiceUnavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::MethodNotAllowed => 405,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Safe to show to an end user.
    pub message: String,
    /// Seconds; also sent as `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    /// The request field that is wrong, for the client to focus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub request_id: String,
}

/// `{ "error": { … } }`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One message in the demo provider's inbox (`GET /dev/inbox`, development only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxMessageView {
    pub to: String,
    pub channel: ChannelName,
    pub code: String,
    pub text: String,
    pub sent_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboxView {
    /// Newest first.
    pub messages: Vec<InboxMessageView>,
}

/// `ready` or `not_ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Ready,
    NotReady,
}

/// `/readyz` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadinessView {
    /// `ready` or `not_ready`.
    pub status: ReadinessStatus,
    /// What is wrong, when not ready (no secrets, no internal addresses).
    pub reasons: Vec<String>,
    /// Each SMS provider by name, ready or not and why (credentials refused, out of credit,
    /// breaker open). A provider can be down while its routes are still served by the next one,
    /// so this can list problems while `status` is `ready`. Empty when not known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderReadinessView>,
}

/// One SMS provider in `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderReadinessView {
    /// The name in `[providers.NAME]` (the kind, with the `[provider]` table).
    pub name: String,
    /// `ready` or `not_ready`.
    pub status: String,
    /// Why not, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialise_as_the_table_names_them() {
        let names: Vec<String> = [
            ErrorCode::InvalidRequest,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::InvalidPhone,
            ErrorCode::VerificationNotFound,
            ErrorCode::TooManyAttempts,
            ErrorCode::ProviderUnavailable,
            ErrorCode::ServiceUnavailable,
        ]
        .iter()
        .map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_owned())
        .collect();
        assert_eq!(
            names,
            [
                "invalid_request",
                "unsupported_media_type",
                "payload_too_large",
                "invalid_phone",
                "verification_not_found",
                "too_many_attempts",
                "provider_unavailable",
                "service_unavailable"
            ]
        );
    }

    #[test]
    fn statuses_serialise_as_before_they_were_enums() {
        let name = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        let statuses: Vec<String> = [
            VerificationStatusName::Pending,
            VerificationStatusName::Approved,
            VerificationStatusName::Canceled,
            VerificationStatusName::Dead,
            VerificationStatusName::Expired,
        ]
        .iter()
        .map(|s| name(serde_json::to_value(s).unwrap()))
        .collect();
        assert_eq!(statuses, ["pending", "approved", "canceled", "dead", "expired"]);
        assert_eq!(name(serde_json::to_value(CheckStatus::Approved).unwrap()), "approved");
        let readiness =
            [ReadinessStatus::Ready, ReadinessStatus::NotReady].map(|s| name(serde_json::to_value(s).unwrap()));
        assert_eq!(readiness, ["ready", "not_ready"]);
    }

    #[test]
    fn requests_refuse_unknown_fields_and_wrong_types() {
        assert!(
            serde_json::from_str::<CheckVerificationRequest>(r#"{"phone":"+1","code":"1","verified":true}"#).is_err()
        );
        assert!(serde_json::from_str::<CheckVerificationRequest>(r#"{"phone":"+1","code":123456}"#).is_err());
        assert!(serde_json::from_str::<CheckVerificationRequest>(r#"{"phone":"+1","code":"1","code":"2"}"#).is_err());
        assert!(serde_json::from_str::<SendVerificationRequest>(r#"{"phone":"+1","channel":"fax"}"#).is_err());
    }
}
