//! `/v1/verifications`: send, check, cancel.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use otpgate_api::{
    ChannelName, CheckStatus, CheckVerificationRequest, CheckVerificationResponse, ErrorBody, SendVerificationRequest,
    UserView, VerificationResponse,
};
use otpgate_core::clock::ceil_secs;
use otpgate_core::{Fingerprint, OtpError, PhoneNumber, SendRequest, VerificationId};

use super::AppState;
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotency::{Begin, SEND_SCOPE};
use crate::time_fmt::rfc3339;

fn parse_phone(state: &AppState, input: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(input, state.default_region).map_err(|e| ApiError::from(OtpError::InvalidPhone(e)))
}

/// BCP 47 in practice: letters, digits and hyphens, at most 35 characters.
fn valid_locale(locale: &str) -> bool {
    (1..=35).contains(&locale.len())
        && locale
            .split('-')
            .all(|part| !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Send a code, or resend it to the phone's live verification.
#[utoipa::path(
    post,
    path = "/v1/verifications",
    tag = "verifications",
    request_body = SendVerificationRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$", description = "1–255 printable ASCII characters. A retry with the same key and request within 24 h gets the first answer (with `Idempotent-Replayed: true`) and sends nothing; the same key with another request is `400 invalid_request`.")),
    responses(
        (status = 201, description = "A new verification", body = VerificationResponse),
        (status = 200, description = "A resend of the phone's live verification (same id)", body = VerificationResponse),
        (status = 400, description = "invalid_request", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_phone, unsupported_region, undeliverable", body = ErrorBody),
        (status = 429, description = "rate_limited (with Retry-After)", body = ErrorBody),
        (status = 503, description = "provider_unavailable, service_unavailable", body = ErrorBody),
    )
)]
pub async fn send_verification(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendVerificationRequest>,
) -> Result<Response, ApiError> {
    let phone = parse_phone(&state, &req.phone)?;
    if let Some(locale) = &req.locale
        && !valid_locale(locale)
    {
        return Err(ApiError::invalid_request("The locale must be a language tag like en or pt-BR.").field("locale"));
    }
    let channel = req.channel.unwrap_or(ChannelName::Sms).into();
    let send_req = SendRequest { phone, channel, locale: req.locale, client_ip, bot_token: req.bot_token };
    let idempotency = &state.idempotency;
    let fingerprint = || {
        Fingerprint::of(&[
            send_req.phone.e164().as_bytes(),
            send_req.channel.as_str().as_bytes(),
            send_req.locale.as_deref().unwrap_or_default().as_bytes(),
        ])
    };
    let held = match idempotency.begin(&headers, SEND_SCOPE, fingerprint).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(held) => held,
    };
    let result = send(&state, send_req).await.map(IntoResponse::into_response);
    idempotency.finish(held, result).await
}

/// The send itself, behind the idempotency check.
async fn send(state: &AppState, req: SendRequest) -> Result<(StatusCode, Json<VerificationResponse>), ApiError> {
    let phone = req.phone.clone();
    let sent = state.service.send(req).await?;
    let v = &sent.verification;
    let body = VerificationResponse {
        id: v.id.to_string(),
        status: v.status.into(),
        phone: phone.masked(),
        channel: v.channel.into(),
        expires_at: rfc3339(v.expires_at),
        expires_in: ceil_secs(sent.expires_in),
        resend_in: ceil_secs(sent.resend_in),
        attempts_left: v.attempts_left(),
    };
    let status = if sent.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(body)))
}

/// Check a code. Succeeds once per verification.
#[utoipa::path(
    post,
    path = "/v1/verifications/check",
    tag = "verifications",
    request_body = CheckVerificationRequest,
    responses(
        (status = 200, description = "Approved; the verification is used up", body = CheckVerificationResponse),
        (status = 400, description = "invalid_request (including a code that is not N ASCII digits)", body = ErrorBody),
        (status = 404, description = "verification_not_found", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_phone, invalid_code (with attempts_left)", body = ErrorBody),
        (status = 429, description = "too_many_attempts, rate_limited", body = ErrorBody),
        (status = 503, description = "service_unavailable", body = ErrorBody),
    )
)]
pub async fn check_verification(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(req): ApiJson<CheckVerificationRequest>,
) -> Result<Json<CheckVerificationResponse>, ApiError> {
    let phone = parse_phone(&state, &req.phone)?;
    let approved = state.service.check(&phone, &req.code, client_ip).await?;
    // Approvals per provider and country, beside the sends of each: the conversion of a route.
    // The provider is the tag of the stored reference (`vonage:…`); test numbers and sends
    // from before routes have none.
    let provider =
        approved.verification().provider_ref.as_deref().and_then(otpgate_sms::router::sender_of).unwrap_or("unknown");
    metrics::counter!(
        "otpgate_approvals_total",
        "provider" => provider.to_owned(),
        "country" => phone.region().unwrap_or("ZZ").to_owned(),
    )
    .increment(1);
    let Some(sessions) = &state.sessions else {
        return Ok(Json(CheckVerificationResponse { status: CheckStatus::Approved, user: None, session: None }));
    };
    let (user, created, session) = sessions.issue_for_approved(approved).await.map_err(OtpError::from)?.into_parts();
    Ok(Json(CheckVerificationResponse {
        status: CheckStatus::Approved,
        user: Some(UserView { id: user.id.to_string(), phone: user.phone, created }),
        session: Some(super::sessions::session_view(session)),
    }))
}

/// Cancel a verification. Unknown or finished ids also answer 204: nothing to learn from it.
#[utoipa::path(
    delete,
    path = "/v1/verifications/{id}",
    tag = "verifications",
    params(("id" = String, Path, description = "The verification id (`vf_…`)")),
    responses(
        (status = 204, description = "Cancelled, or nothing to cancel"),
        (status = 503, description = "service_unavailable", body = ErrorBody),
    )
)]
pub async fn cancel_verification(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(id) = VerificationId::parse(&id) {
        state.service.cancel(&id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::valid_locale;

    #[test]
    fn locales() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(valid_locale(ok), "{ok}");
        }
        for bad in ["", "en_US", "-en", "en-", "a".repeat(36).as_str(), "ünï", "en--US", "abcdefghi"] {
            assert!(!valid_locale(bad), "{bad}");
        }
    }
}
