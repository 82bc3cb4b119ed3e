//! `GET|POST /v1/providers/{name}/receipts`: delivery receipts of the named provider — Vonage's
//! delivery receipts, Sinch's delivery reports, the webhook gateway's status callbacks, Twilio
//! Messaging's status callbacks. Each is believed only when it authenticates the way its
//! provider's configuration says (a signature, or HTTP Basic for Sinch); a receipt that does
//! not is answered 401 and logged as a security event, never counted. Believed receipts are
//! counted per provider, country and status (`otpgate_sms_delivery_total`): the conversion of a
//! route shows which provider fails a country.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use otpgate_api::{ErrorBody, ErrorCode};
use otpgate_core::OtpError;
use otpgate_sms::callback::{DeliveryReceipt, DeliveryStatus};
use otpgate_sms::vonage::SignatureMethod;
use secrecy::SecretString;

use super::AppState;
use crate::error::ApiError;

/// How one provider's receipts are authenticated.
#[derive(Clone)]
pub enum ReceiptAuth {
    /// Signed with the signature secret when one is set; otherwise Vonage cannot sign them and
    /// they are taken as they come (documented).
    Vonage { signature: Option<(SecretString, SignatureMethod)> },
    /// HTTP Basic with the pair provisioned at Sinch.
    Sinch { username: String, password: SecretString },
    /// Standard Webhooks signatures with the webhook's secret (or the previous one).
    Webhook { keys: Vec<Vec<u8>> },
    /// `X-Twilio-Signature` over the configured callback URL, with the auth token.
    Twilio { url: String, auth_token: SecretString },
}

/// The providers that take receipts, by name.
#[derive(Clone, Default)]
pub struct Receipts(BTreeMap<String, (&'static str, ReceiptAuth)>);

impl Receipts {
    /// Every provider whose configuration says how to believe its receipts: Vonage and
    /// webhooks always, Sinch with its callback pair, Twilio Messaging with a status-callback
    /// URL and the auth token.
    pub fn from_config(providers: &BTreeMap<String, otpgate_sms::ProviderConfig>) -> Receipts {
        use otpgate_sms::ProviderConfig as P;
        let mut out = BTreeMap::new();
        for (name, provider) in providers {
            let auth = match provider {
                P::Vonage(v) => {
                    Some(ReceiptAuth::Vonage { signature: v.signature_secret.clone().map(|s| (s, v.signature_method)) })
                }
                P::Sinch(s) => match (&s.callback_username, &s.callback_password) {
                    (Some(username), Some(password)) => {
                        Some(ReceiptAuth::Sinch { username: username.clone(), password: password.clone() })
                    }
                    _ => None,
                },
                P::Webhook(w) => Some(ReceiptAuth::Webhook {
                    keys: std::iter::once(&w.secret)
                        .chain(w.previous_secret.as_ref())
                        .filter_map(otpgate_sms::webhook::secret_key)
                        .collect(),
                }),
                P::TwilioMessaging(t) => {
                    match (t.messaging.as_ref().and_then(|m| m.status_callback_url.clone()), t.auth_token.clone()) {
                        (Some(url), Some(auth_token)) => Some(ReceiptAuth::Twilio { url, auth_token }),
                        _ => None,
                    }
                }
                P::Demo | P::TwilioVerify(_) => None,
            };
            if let Some(auth) = auth {
                out.insert(name.clone(), (otpgate_sms::router::intern(name), auth));
            }
        }
        Receipts(out)
    }
}

/// A delivery receipt from the named provider, in a body (Vonage: form or JSON; Sinch and the
/// webhook: JSON; Twilio: form).
#[utoipa::path(
    post,
    path = "/v1/providers/{name}/receipts",
    operation_id = "provider_receipt_post",
    tag = "providers",
    params(("name" = String, Path, description = "The provider's name in `[providers.NAME]`")),
    request_body(content_type = "application/json", description = "The vendor's delivery receipt, as the vendor sends it"),
    responses(
        (status = 204, description = "Accepted (and counted)"),
        (status = 400, description = "invalid_request: not a delivery receipt this provider sends", body = ErrorBody),
        (status = 401, description = "unauthorized: missing or wrong signature (or Basic credentials)", body = ErrorBody),
        (status = 404, description = "No provider of this name takes receipts", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
    )
)]
pub async fn receipt(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some((provider, auth)) = state.receipts.0.get(&name) else {
        return Err(ApiError::new(ErrorCode::NotFound, "Not found."));
    };
    let now_secs = state.clock_secs();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (authentic, receipts): (bool, Option<Vec<DeliveryReceipt>>) = match auth {
        ReceiptAuth::Vonage { signature } => {
            let params = vonage_params(query.as_deref(), &headers, &body);
            let authentic = match signature {
                Some((secret, method)) => otpgate_sms::vonage::verify_receipt(&params, secret, *method, now_secs),
                None => true,
            };
            (authentic, otpgate_sms::vonage::parse_receipt(&params).map(|r| vec![r]))
        }
        ReceiptAuth::Sinch { username, password } => (
            otpgate_sms::sinch::verify_callback_auth(header("authorization"), username, password),
            otpgate_sms::sinch::parse_delivery_report(&body),
        ),
        ReceiptAuth::Webhook { keys } => (
            otpgate_sms::webhook::verify_callback(
                keys,
                header("webhook-id").unwrap_or_default(),
                header("webhook-timestamp").unwrap_or_default(),
                header("webhook-signature").unwrap_or_default(),
                &body,
                now_secs,
            ),
            otpgate_sms::webhook::parse_status(&body).map(|r| vec![r]),
        ),
        ReceiptAuth::Twilio { url, auth_token } => {
            let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
            let signature = header("x-twilio-signature").unwrap_or_default();
            (
                otpgate_sms::callback::verify_signature(auth_token, url, &params, signature),
                otpgate_sms::callback::parse_status_callback(&params).map(|r| {
                    vec![DeliveryReceipt {
                        provider_ref: r.message_sid,
                        status: r.status,
                        country: r.country,
                        error_code: r.error_code,
                    }]
                }),
            )
        }
    };
    if !authentic {
        // A forged receipt would skew the conversion an operator routes by: a security event.
        metrics::counter!("otpgate_sms_receipts_refused_total", "provider" => *provider).increment(1);
        tracing::warn!(
            event = "sms.delivery",
            outcome = "forged",
            provider = *provider,
            "delivery receipt with a missing or wrong signature: refused"
        );
        return Err(OtpError::Unauthorized.into());
    }
    let Some(receipts) = receipts else {
        return Err(ApiError::invalid_request("This is not a delivery receipt this provider sends."));
    };
    for r in receipts {
        count(provider, &r);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A delivery receipt from the named provider in the query string (Vonage's `GET` callbacks):
/// the same handling as a posted one, with no body.
#[utoipa::path(
    get,
    path = "/v1/providers/{name}/receipts",
    operation_id = "provider_receipt_get",
    tag = "providers",
    params(("name" = String, Path, description = "The provider's name in `[providers.NAME]`")),
    responses(
        (status = 204, description = "Accepted (and counted)"),
        (status = 400, description = "invalid_request: not a delivery receipt this provider sends", body = ErrorBody),
        (status = 401, description = "unauthorized: missing or wrong signature", body = ErrorBody),
        (status = 404, description = "No provider of this name takes receipts", body = ErrorBody),
    )
)]
pub async fn receipt_in_query(
    state: State<AppState>,
    name: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    receipt(state, name, query, headers, Bytes::new()).await
}

/// Counts and logs one believed receipt (never the number: its country only).
pub(crate) fn count(provider: &'static str, r: &DeliveryReceipt) {
    let level_warn = matches!(r.status, DeliveryStatus::Undelivered | DeliveryStatus::Failed);
    if level_warn {
        tracing::warn!(event = "sms.delivery", provider, status = r.status.as_str(), country = %r.country, error_code = r.error_code, reference = r.provider_ref.as_deref().unwrap_or("-"));
    } else {
        tracing::info!(event = "sms.delivery", provider, status = r.status.as_str(), country = %r.country, reference = r.provider_ref.as_deref().unwrap_or("-"));
    }
    metrics::counter!(
        "otpgate_sms_delivery_total",
        "provider" => provider,
        "country" => r.country.clone(),
        "status" => r.status.as_str(),
    )
    .increment(1);
}

/// Vonage sends receipts as a query (GET), a form or a flat JSON object (POST), per the
/// dashboard's setting: all three as `(name, value)` strings, as its signature is made over.
fn vonage_params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> =
        query.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                params.push((k, v));
            }
        }
    } else if !body.is_empty() {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    params
}
