//! `GET /dev/inbox`: what the demo provider "sent". Exists only with the demo provider outside
//! production; otherwise 404 like any unknown path.

use axum::Json;
use axum::extract::{Query, State};
use otpgate_api::{ErrorBody, ErrorCode, InboxMessageView, InboxView};
use otpgate_core::PhoneNumber;
use serde::Deserialize;

use super::AppState;
use crate::error::ApiError;
use crate::time_fmt::rfc3339;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InboxQuery {
    /// Only messages to this number (any accepted format).
    pub phone: Option<String>,
}

/// The demo provider's last messages, newest first (development only).
#[utoipa::path(
    get,
    path = "/dev/inbox",
    tag = "development",
    params(InboxQuery),
    responses(
        (status = 200, description = "Messages, newest first", body = InboxView),
        (status = 404, description = "Not in demo mode", body = ErrorBody),
        (status = 422, description = "invalid_phone: `phone` is not a valid number", body = ErrorBody),
    )
)]
pub async fn inbox(State(state): State<AppState>, Query(q): Query<InboxQuery>) -> Result<Json<InboxView>, ApiError> {
    let Some(inbox) = &state.inbox else {
        return Err(ApiError::new(ErrorCode::NotFound, "Not found."));
    };
    let to = match q.phone.as_deref() {
        Some(p) => Some(
            PhoneNumber::parse(p, state.default_region)
                .map_err(|e| ApiError::from(otpgate_core::OtpError::InvalidPhone(e)))?,
        ),
        None => None,
    };
    let messages = inbox
        .messages(to.as_ref().map(PhoneNumber::e164))
        .into_iter()
        .map(|m| InboxMessageView {
            to: m.to,
            channel: m.channel.into(),
            code: m.code,
            text: m.text,
            sent_at: rfc3339(m.sent_at),
        })
        .collect();
    Ok(Json(InboxView { messages }))
}
