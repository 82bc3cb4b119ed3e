//! The operator side of the subject's rights: `otpgate users export +…` (everything held about a
//! number, as JSON) and `otpgate users delete +…` (erase it). The user's own erasure is
//! `DELETE /v1/me`.
//!
//! What is held about a number, and so what both commands cover: the user row and their refresh
//! tokens (durable store), verifications (hot store, kept `retention.verification_hours` after
//! they end), and limit counters (keyed by an HMAC of the number, gone once spent). Stored
//! `Idempotency-Key` answers carry only the masked number and expire within a day; logs carry
//! only masked numbers.

use otpgate_core::privacy::{HotRecords, UserRecords, phone_limit_keys};
use otpgate_core::{CodeHasher, PhoneNumber, StoreError};
use serde_json::{Value, json};

use crate::config::{Config, ConfigError};
use crate::stores::OpenError;
use crate::time_fmt::rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("not a phone number: {0}")]
    Phone(otpgate_core::PhoneError),
}

struct Opened {
    stores: crate::stores::Stores,
    phone: PhoneNumber,
    limit_keys: Vec<String>,
}

async fn open(config: &Config, phone: &str) -> Result<Opened, PrivacyError> {
    let phone = PhoneNumber::parse(phone, config.region()).map_err(PrivacyError::Phone)?;
    let hasher =
        CodeHasher::new(&crate::keys::hmac_key(config)?).map_err(|e| ConfigError::key("secrets.hmac_key", e))?;
    let limit_keys = phone_limit_keys(&hasher, &phone);
    let stores = crate::stores::open(config).await?;
    Ok(Opened { stores, phone, limit_keys })
}

/// Everything held about `phone`, as the JSON `otpgate users export` prints. Never a code or
/// token digest.
pub async fn export(config: &Config, phone: &str) -> Result<Value, PrivacyError> {
    let o = open(config, phone).await?;
    let user = o.stores.sessions.export_user_by_phone(&o.phone).await?;
    let hot = o.stores.verifications.export_phone(&o.phone, &o.limit_keys).await?;
    Ok(render(&o.phone, user.as_ref(), &hot, config))
}

/// Erases `phone`: the user, their refresh tokens, every verification and the limit counters.
pub async fn erase(config: &Config, phone: &str) -> Result<Value, PrivacyError> {
    let o = open(config, phone).await?;
    // The hot store first (so its counts are its own), but the user goes even if it fails: the
    // error is reported after.
    let hot = o.stores.verifications.delete_phone(&o.phone, &o.limit_keys).await;
    let user = o.stores.sessions.delete_user_by_phone(&o.phone).await?;
    let hot = hot?;
    tracing::info!(
        event = "privacy.erase",
        phone = %o.phone.masked(),
        user_deleted = user.is_some(),
        verifications = hot.verifications,
        limits = hot.limits,
        "erased a phone number (operator)"
    );
    Ok(json!({
        "phone": o.phone.masked(),
        "user_deleted": user.map(|u| u.id.to_string()),
        "verifications_deleted": hot.verifications,
        "limits_deleted": hot.limits,
    }))
}

fn render(phone: &PhoneNumber, user: Option<&UserRecords>, hot: &HotRecords, config: &Config) -> Value {
    let opt = |t: Option<otpgate_core::Timestamp>| t.map(rfc3339);
    json!({
        "phone": phone.e164(),
        "user": user.map(|u| json!({
            "id": u.id,
            "phone": u.phone,
            "created_at": rfc3339(u.created_at),
            "refresh_tokens": u.refresh_tokens.iter().map(|t| json!({
                "family": t.family,
                "channel": t.channel,
                "issued_at": rfc3339(t.issued_at),
                "expires_at": rfc3339(t.expires_at),
                "used_at": opt(t.used_at),
                "revoked_at": opt(t.revoked_at),
            })).collect::<Vec<_>>(),
        })),
        "verifications": hot.verifications.iter().map(|v| json!({
            "id": v.id,
            "channel": v.channel,
            "status": v.status,
            "attempts": v.attempts,
            "sends": v.sends,
            "created_at": rfc3339(v.created_at),
            "expires_at": rfc3339(v.expires_at),
            "ended_at": opt(v.ended_at),
            "provider_ref": v.provider_ref,
        })).collect::<Vec<_>>(),
        "rate_limits": hot.limits.iter().map(|l| json!({
            "key": l.key,
            "refilled_at": rfc3339(l.refilled_at),
        })).collect::<Vec<_>>(),
        "retention": {
            "verifications": format!("deleted {} h after they end", config.retention.verification_hours),
            "rate_limits": "deleted once spent",
            "user": "kept until the account is deleted (DELETE /v1/me or otpgate users delete)",
            "refresh_tokens": "deleted when they expire",
        },
    })
}
