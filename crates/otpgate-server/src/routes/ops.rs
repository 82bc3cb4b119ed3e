//! Liveness, readiness and the generated OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use otpgate_api::{ProviderReadinessView, ReadinessStatus, ReadinessView};
use serde_json::json;

use super::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// How much `/readyz` says on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadinessDetail {
    /// The reasons too (breaker open, credentials rejected): the admin listener, or the only
    /// listener when there is none.
    Reasons,
    /// `{"status": …}` only: the public listener when an admin listener exists.
    StatusOnly,
}

/// Readiness: the store answers and the provider can send. With `http.admin_listen` in force
/// the public port answers `{"status"}` only; the reasons are on the admin listener.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadinessView),
        (status = 503, description = "Not ready, with reasons (only `status` on the public port when `http.admin_listen` is set)", body = ReadinessView),
    )
)]
pub async fn readyz(State(state): State<AppState>, Extension(detail): Extension<ReadinessDetail>) -> Response {
    let (status, view) = readiness(&state).await;
    match detail {
        ReadinessDetail::Reasons => (status, Json(view)).into_response(),
        ReadinessDetail::StatusOnly => (status, Json(json!({ "status": view.status }))).into_response(),
    }
}

async fn readiness(state: &AppState) -> (StatusCode, ReadinessView) {
    let mut reasons = Vec::new();
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store unavailable");
            reasons.push("store unavailable".to_owned());
        }
        Err(_) => reasons.push("store did not answer in time".to_owned()),
    }
    if let Err(reason) = state.provider.readiness().await {
        reasons.push(format!("provider {}: {reason}", state.provider.name()));
    }
    // Per provider, whether or not its routes still have another: an operator sees that Vonage
    // is out of credit while Twilio carries India for it.
    let providers = match &state.router {
        Some(router) => router
            .provider_readiness()
            .await
            .into_iter()
            .map(|(name, state)| ProviderReadinessView {
                name: name.to_owned(),
                status: if state.is_ok() { "ready" } else { "not_ready" }.into(),
                reason: state.err(),
            })
            .collect(),
        None => Vec::new(),
    };
    let ready = reasons.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status_word = if ready { ReadinessStatus::Ready } else { ReadinessStatus::NotReady };
    (status, ReadinessView { status: status_word, reasons, providers })
}
