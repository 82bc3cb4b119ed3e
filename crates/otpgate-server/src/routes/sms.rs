//! `POST /v1/sms/status`: Twilio Messaging's delivery receipts. Only calls signed with the
//! account's auth token over the exact configured URL are believed; each outcome is counted by
//! country (undelivered texts are both a support signal and an SMS-pumping signal).

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use otpgate_api::ErrorBody;
use otpgate_core::OtpError;

use super::AppState;
use crate::error::ApiError;

/// Where Twilio reports delivery, and the token its signatures are made with.
#[derive(Clone)]
pub struct StatusCallback {
    pub url: String,
    pub auth_token: secrecy::SecretString,
}

/// Delivery receipt from Twilio Messaging (form-encoded, signed with `X-Twilio-Signature`).
#[utoipa::path(
    post,
    path = "/v1/sms/status",
    tag = "providers",
    request_body(content_type = "application/x-www-form-urlencoded", description = "Twilio's status-callback form"),
    responses(
        (status = 204, description = "Accepted"),
        (status = 400, description = "invalid_request: the form cannot be read", body = ErrorBody),
        (status = 401, description = "unauthorized: missing or wrong signature", body = ErrorBody),
        (status = 404, description = "Status callbacks are not configured", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: not application/x-www-form-urlencoded", body = ErrorBody),
    )
)]
pub async fn status_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<StatusCode, ApiError> {
    let Some(callback) = &state.status_callback else {
        return Err(ApiError::new(otpgate_api::ErrorCode::NotFound, "Not found."));
    };
    let Form(params) = form.map_err(form_error)?;
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !otpgate_sms::callback::verify_signature(&callback.auth_token, &callback.url, &params, signature) {
        tracing::warn!(event = "sms.delivery", outcome = "forged", "status callback with a missing or wrong signature");
        return Err(OtpError::Unauthorized.into());
    }
    if let Some(report) = otpgate_sms::callback::parse_status_callback(&params) {
        // The `[provider]` table's Twilio Messaging, named by its kind as in the send metrics.
        let receipt = otpgate_sms::callback::DeliveryReceipt {
            provider_ref: report.message_sid,
            status: report.status,
            country: report.country,
            error_code: report.error_code,
        };
        super::receipts::count("twilio-messaging", &receipt);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// axum's own form rejections are plain text; answer in the API's error shape instead.
fn form_error(rejection: FormRejection) -> ApiError {
    use otpgate_api::ErrorCode;
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The request body must be sent with Content-Type: application/x-www-form-urlencoded.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large."),
        _ => ApiError::invalid_request("The request body is not a readable form."),
    }
}
