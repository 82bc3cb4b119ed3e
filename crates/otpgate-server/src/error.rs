//! The HTTP edge of errors: every failure becomes the one JSON envelope of the README's error table, mapped from
//! the domain's `OtpError` in exactly one `match`. 5xx bodies are opaque; their cause goes to the
//! log with the request id.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use otpgate_api::{ErrorBody, ErrorCode, ErrorDetail};
use otpgate_core::OtpError;
use otpgate_core::clock::ceil_secs;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub attempts_left: Option<u32>,
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), retry_after: None, attempts_left: None, field: None }
    }

    pub fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn internal() -> Self {
        ApiError::new(
            ErrorCode::Internal,
            "Something went wrong on our side. Please try again; if it keeps happening, quote the request id.",
        )
    }
}

fn wait_phrase(d: Duration) -> String {
    let secs = ceil_secs(d).max(1);
    if secs == 1 { "1 second".to_owned() } else { format!("{secs} seconds") }
}

impl From<OtpError> for ApiError {
    fn from(e: OtpError) -> Self {
        match e {
            OtpError::InvalidRequest { field, reason } => {
                ApiError { field, ..ApiError::invalid_request(format!("The request is not valid: {reason}.")) }
            }
            OtpError::InvalidPhone(_) => ApiError::new(
                ErrorCode::InvalidPhone,
                "That doesn't look like a valid phone number. Include the country code, like +14155550100.",
            )
            .field("phone"),
            OtpError::UnsupportedRegion => {
                ApiError::new(ErrorCode::UnsupportedRegion, "We can't send codes to this number or country.")
                    .field("phone")
            }
            OtpError::Undeliverable => ApiError::new(
                ErrorCode::Undeliverable,
                "We can't deliver a code to this number. Try a mobile number or another channel.",
            )
            .field("phone"),
            OtpError::InvalidCode { attempts_left } => ApiError {
                attempts_left: Some(attempts_left),
                ..ApiError::new(
                    ErrorCode::InvalidCode,
                    match attempts_left {
                        1 => "That code is not right. You have 1 attempt left.".to_owned(),
                        n => format!("That code is not right. You have {n} attempts left."),
                    },
                )
                .field("code")
            },
            OtpError::VerificationNotFound => ApiError::new(
                ErrorCode::VerificationNotFound,
                "There is no active code for this number. It may have expired or been used; request a new one.",
            ),
            OtpError::TooManyAttempts => {
                ApiError::new(ErrorCode::TooManyAttempts, "Too many wrong codes. Request a new code to try again.")
            }
            OtpError::RateLimited { retry_after, .. } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    ErrorCode::RateLimited,
                    format!("Too many requests. Try again in {}.", wait_phrase(retry_after)),
                )
            },
            OtpError::ProviderUnavailable { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(
                    ErrorCode::ProviderUnavailable,
                    format!(
                        "We couldn't send a code right now. Nothing was sent; try again in {}.",
                        wait_phrase(retry_after)
                    ),
                )
            },
            OtpError::StoreUnavailable(cause) => {
                tracing::error!(cause = %cause, "store unavailable");
                ApiError {
                    retry_after: Some(Duration::from_secs(5)),
                    ..ApiError::new(
                        ErrorCode::ServiceUnavailable,
                        "The service is temporarily unavailable. Please try again shortly.",
                    )
                }
            }
            OtpError::Unauthorized => ApiError::new(
                ErrorCode::Unauthorized,
                "Your session is missing, invalid or expired. Please sign in again.",
            ),
            OtpError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after.map(|d| ceil_secs(d).max(1));
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                retry_after,
                attempts_left: self.attempts_left,
                field: self.field.map(str::to_owned),
                request_id: crate::request_id::current(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
