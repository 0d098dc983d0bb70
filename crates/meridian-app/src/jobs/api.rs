//! `/api/v1/jobs`: the organization's background jobs for its admins (counts, queue depth,
//! throughput, latency, failures) with retry and discard.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{self, KindSummary, Latency, Overview, StatusCounts};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::Query;
use crate::state::AppState;
use meridian_db::jobs::Job;

/// Failures returned when `limit` is not given.
pub const DEFAULT_FAILURES: i64 = 20;
/// The most failures one call returns.
pub const MAX_FAILURES: i64 = 100;

/// A background job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobOut {
    pub id: String,
    /// What the job does, e.g. `email.send`.
    pub kind: String,
    /// `scheduled`, `available`, `running`, `succeeded`, `retrying` or `dead`.
    pub status: String,
    /// Lower runs first.
    pub priority: i64,
    /// Attempts made so far (counted when a worker starts one).
    pub attempts: i64,
    pub max_attempts: i64,
    pub unique_key: Option<String>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it may run (next); for a dead job, when it died.
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    /// When its last attempt started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When its last attempt ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The job's input (only in `GET /jobs/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

impl JobOut {
    fn summary(job: Job) -> JobOut {
        JobOut {
            id: job.id,
            kind: job.kind,
            status: job.status,
            priority: job.priority,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            unique_key: job.unique_key,
            last_error: job.last_error,
            run_at: job.run_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            created_at: job.created_at,
            payload: None,
        }
    }

    fn detail(job: Job) -> JobOut {
        let payload = serde_json::from_str(&job.payload)
            .unwrap_or_else(|_| serde_json::Value::String(job.payload.clone()));
        JobOut {
            payload: Some(payload),
            ..JobOut::summary(job)
        }
    }
}

/// Jobs by status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusCountsOut {
    pub scheduled: i64,
    pub available: i64,
    pub running: i64,
    pub succeeded: i64,
    pub retrying: i64,
    pub dead: i64,
}

impl From<StatusCounts> for StatusCountsOut {
    fn from(s: StatusCounts) -> Self {
        StatusCountsOut {
            scheduled: s.scheduled,
            available: s.available,
            running: s.running,
            succeeded: s.succeeded,
            retrying: s.retrying,
            dead: s.dead,
        }
    }
}

/// Jobs of one kind in one status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobCountOut {
    pub kind: String,
    pub status: String,
    pub count: i64,
}

/// One kind of job: its queue and its throughput.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KindOut {
    pub kind: String,
    /// Scheduled, available and retrying.
    pub waiting: i64,
    pub running: i64,
    pub retrying: i64,
    pub dead: i64,
    /// Succeeded jobs still kept (they are deleted after the retention period).
    pub succeeded: i64,
    /// Succeeded in the last hour.
    pub succeeded_last_hour: i64,
}

impl From<&KindSummary> for KindOut {
    fn from(k: &KindSummary) -> Self {
        KindOut {
            kind: k.kind.clone(),
            waiting: k.statuses.waiting(),
            running: k.statuses.running,
            retrying: k.statuses.retrying,
            dead: k.statuses.dead,
            succeeded: k.statuses.succeeded,
            succeeded_last_hour: k.succeeded_last_hour,
        }
    }
}

fn millis(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0)
}

/// Throughput and enqueue-to-start latency over the last hour.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastHourOut {
    /// Jobs that succeeded.
    pub succeeded: i64,
    /// Attempts that finished (succeeded or failed) and were measured for latency.
    pub latency_samples: usize,
    /// Median wait between a job being due and a worker starting it, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile of that wait, in milliseconds.
    pub latency_p95_ms: Option<f64>,
}

impl LastHourOut {
    fn new(succeeded: i64, latency: Latency) -> Self {
        LastHourOut {
            succeeded,
            latency_samples: latency.samples,
            latency_p50_ms: millis(latency.p50),
            latency_p95_ms: millis(latency.p95),
        }
    }
}

/// The organization's queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobsOverview {
    /// Jobs waiting to run: scheduled, available and retrying.
    pub queue_depth: i64,
    pub by_status: StatusCountsOut,
    /// Every (kind, status) pair that has jobs.
    pub counts: Vec<JobCountOut>,
    /// By kind, in kind order.
    pub kinds: Vec<KindOut>,
    pub last_hour: LastHourOut,
    /// Retrying and dead jobs with their last error, newest failure first (at most `limit`).
    pub recent_failures: Vec<JobOut>,
}

impl From<Overview> for JobsOverview {
    fn from(o: Overview) -> Self {
        JobsOverview {
            queue_depth: o.statuses.waiting(),
            by_status: o.statuses.into(),
            counts: o
                .counts
                .into_iter()
                .map(|c| JobCountOut {
                    kind: c.kind,
                    status: c.status,
                    count: c.count,
                })
                .collect(),
            kinds: o.kinds.iter().map(KindOut::from).collect(),
            last_hour: LastHourOut::new(o.succeeded_last_hour, o.latency),
            recent_failures: o.failures.into_iter().map(JobOut::summary).collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct JobsQuery {
    /// Recent failures to return, 1 to 100 (default 20).
    pub limit: Option<i64>,
}

impl JobsQuery {
    pub fn failures_limit(&self) -> AppResult<i64> {
        let limit = self.limit.unwrap_or(DEFAULT_FAILURES);
        if !(1..=MAX_FAILURES).contains(&limit) {
            return Err(AppError::field(
                "limit",
                format!("must be between 1 and {MAX_FAILURES}"),
            ));
        }
        Ok(limit)
    }
}

/// The organization's background jobs (admins): counts by kind and status, queue depth,
/// throughput and enqueue-to-start latency over the last hour, and the latest failures.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = JobsOverview), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn overview(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<JobsQuery>,
) -> AppResult<axum::Json<JobsOverview>> {
    let limit = query.failures_limit()?;
    let overview = service::overview(&state.db, &ctx, limit).await?;
    Ok(axum::Json(overview.into()))
}

/// One job, with its payload (admins).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobOut), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<JobOut>> {
    let job = service::get(&state.db, &ctx, &id).await?;
    Ok(axum::Json(JobOut::detail(job)))
}

/// Runs a dead or retrying job again now (admins); a dead job out of attempts gets one more.
/// A job in another state, or a unique job with another copy waiting, answers 409.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobOut), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<JobOut>> {
    let job = service::retry(&state.db, &ctx, &id).await?;
    Ok(axum::Json(JobOut::summary(job)))
}

/// Deletes a scheduled, available, retrying or dead job so it never runs (admins). A running or
/// succeeded job answers 409.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/discard", tag = "jobs", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn discard(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::discard(&state.db, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_limit_is_bounded() {
        let q = |limit| JobsQuery { limit };
        assert_eq!(q(None).failures_limit().ok(), Some(DEFAULT_FAILURES));
        assert_eq!(q(Some(100)).failures_limit().ok(), Some(100));
        assert!(q(Some(0)).failures_limit().is_err());
        assert!(q(Some(101)).failures_limit().is_err());
    }

    #[test]
    fn latency_is_in_milliseconds_to_a_tenth() {
        assert_eq!(millis(Some(Duration::from_micros(12_345))), Some(12.3));
        assert_eq!(millis(None), None);
    }
}
