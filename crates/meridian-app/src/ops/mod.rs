//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use meridian_db::Migrator;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::state::AppState;

/// The process-wide metrics recorder (the `metrics` facade allows one per process; several apps
/// in one test process share it).
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub migrations: &'static str,
}

/// Readiness: the database answers and its schema matches this binary.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = state.db.ping().await.is_ok();
    let migrations = if database_ok {
        match Migrator::status(&state.db).await {
            Ok(status) if status.is_current() => "current",
            Ok(status) if status.is_newer_than_binary() => "newer_than_binary",
            Ok(_) => "pending",
            Err(_) => "unknown",
        }
    } else {
        "unknown"
    };
    let ok = database_ok && migrations == "current";
    let body = Readiness {
        status: if ok { "ready" } else { "not_ready" },
        database: if database_ok { "ok" } else { "unreachable" },
        migrations,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// Prometheus text exposition: request counts and latency by route, pool usage.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = state.db.pool_state();
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("meridian_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("meridian_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
