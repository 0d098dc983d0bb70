//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use meridian_db::jobs::{self, JobStatus};
use meridian_db::{Db, Migrator};
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

/// Prometheus text exposition: request counts and latency by route, pool usage, and the job
/// queue of every organization.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = state.db.pool_state();
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("meridian_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("meridian_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    let mut body = state.metrics.render();
    body.push_str(&job_metrics(&state.db).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The job queue as read at this scrape, written out directly rather than through the
/// process-wide recorder: a gauge kept there would go on showing a kind's last count after its
/// jobs are gone, and every app sharing the process would report the others' queues.
async fn job_metrics(db: &Db) -> String {
    let counts = async {
        let mut tx = db.queue_read().await?;
        let counts = jobs::open_counts(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(counts)
    }
    .await;
    let mut out = String::from(
        "# HELP meridian_job_metrics_up Whether the job counts below could be read at this scrape.\n\
         # TYPE meridian_job_metrics_up gauge\n",
    );
    let counts = match counts {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "reading the job queue for /metrics");
            out.push_str("meridian_job_metrics_up 0\n");
            return out;
        }
    };
    let depth: i64 = counts
        .iter()
        .filter(|c| JobStatus::parse(&c.status).is_some_and(JobStatus::is_waiting))
        .map(|c| c.count)
        .sum();
    out.push_str(&format!(
        "meridian_job_metrics_up 1\n\
         # HELP meridian_job_queue_depth Jobs waiting to run (scheduled, available or retrying), all organizations.\n\
         # TYPE meridian_job_queue_depth gauge\n\
         meridian_job_queue_depth {depth}\n\
         # HELP meridian_jobs Unfinished and dead jobs by kind and status, all organizations.\n\
         # TYPE meridian_jobs gauge\n"
    ));
    for count in counts {
        out.push_str(&format!(
            "meridian_jobs{{kind=\"{}\",status=\"{}\"}} {}\n",
            label_value(&count.kind),
            label_value(&count.status),
            count.count
        ));
    }
    out
}

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("email.send"), "email.send");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
