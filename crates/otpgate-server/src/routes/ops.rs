//! Liveness, readiness and the generated OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otpgate_api::ReadinessView;
use serde_json::json;

use super::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers and the provider can send.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadinessView),
        (status = 503, description = "Not ready, with reasons", body = ReadinessView),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ReadinessView>) {
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
    let ready = reasons.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(ReadinessView { status: if ready { "ready" } else { "not_ready" }.into(), reasons }))
}
