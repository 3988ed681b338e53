//! Probes: `/healthz` (the process serves) and `/readyz` (both upstreams serve).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;

use super::AppState;

/// `GET /healthz`: 200 while the process serves HTTP, whatever the upstreams do; restarting
/// the gateway would not bring them back.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when both upstreams answer the gRPC health check with SERVING, else 503
/// naming the ones that do not. Cached for `READY_CACHE`.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let report = state.readiness.check().await;
    let status = if report.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}
