//! Page: Settings → Operations. The organization's background jobs at a glance (queue depth by
//! status, throughput and enqueue-to-start latency over the last hour, a table by kind) and the
//! failures, each with Retry and Discard (behind a confirmation).

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_db::jobs::{Job, JobStatus};
use serde::Deserialize;

use super::service::{self, Overview};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};

/// Failures listed on the page.
const FAILURES_SHOWN: i64 = 50;
/// Characters of an error shown in the table (the whole text is in the cell's title).
const ERROR_PREVIEW_CHARS: usize = 240;

pub struct KindView {
    pub kind: String,
    pub waiting: i64,
    pub running: i64,
    pub succeeded_last_hour: i64,
    pub retrying: i64,
    pub dead: i64,
}

pub struct FailureView {
    pub id: String,
    pub kind: String,
    /// `retrying` or `dead`.
    pub status: String,
    pub attempts: String,
    pub error: String,
    pub error_full: String,
    pub when: String,
    pub when_exact: String,
    /// For a retrying job, when it runs next.
    pub next_run: String,
}

fn preview(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let cut = first_line.char_indices().nth(ERROR_PREVIEW_CHARS);
    match cut {
        Some((at, _)) => format!("{}\u{2026}", &first_line[..at]),
        None if first_line.len() < text.trim_end().len() => format!("{first_line}\u{2026}"),
        None => first_line.to_owned(),
    }
}

impl From<Job> for FailureView {
    fn from(job: Job) -> Self {
        let failed_at = job.finished_at.unwrap_or(job.run_at);
        let error_full = job.last_error.clone().unwrap_or_default();
        let next_run = match job.status() {
            Some(JobStatus::Retrying) => relative(job.run_at),
            _ => String::new(),
        };
        FailureView {
            attempts: format!("{} of {}", job.attempts, job.max_attempts),
            error: preview(&error_full),
            error_full,
            when: relative(failed_at),
            when_exact: exact(failed_at),
            next_run,
            id: job.id,
            kind: job.kind,
            status: job.status,
        }
    }
}

/// "12 ms", "1.4 s", "3 min", "2.5 h".
pub fn short_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage {
    shell: Shell,
    error: Option<String>,
    has_jobs: bool,
    waiting: i64,
    available: i64,
    scheduled: i64,
    retrying: i64,
    running: i64,
    dead: i64,
    succeeded_last_hour: i64,
    per_minute: String,
    latency_p50: String,
    latency_p95: String,
    latency_samples: usize,
    kinds: Vec<KindView>,
    failures: Vec<FailureView>,
}

impl OperationsPage {
    fn new(shell: Shell, error: Option<String>, o: Overview) -> Self {
        let s = o.statuses;
        let per_minute = o.succeeded_last_hour as f64 / 60.0;
        OperationsPage {
            shell,
            error,
            has_jobs: s.total() > 0 || o.succeeded_last_hour > 0,
            waiting: s.waiting(),
            available: s.available,
            scheduled: s.scheduled,
            retrying: s.retrying,
            running: s.running,
            dead: s.dead,
            succeeded_last_hour: o.succeeded_last_hour,
            per_minute: if per_minute >= 10.0 {
                format!("{per_minute:.0}")
            } else {
                format!("{per_minute:.1}")
            },
            latency_p50: o.latency.p50.map(short_duration).unwrap_or_default(),
            latency_p95: o.latency.p95.map(short_duration).unwrap_or_default(),
            latency_samples: o.latency.samples,
            kinds: o
                .kinds
                .iter()
                .map(|k| KindView {
                    kind: k.kind.clone(),
                    waiting: k.statuses.waiting(),
                    running: k.statuses.running,
                    succeeded_last_hour: k.succeeded_last_hour,
                    retrying: k.statuses.retrying,
                    dead: k.statuses.dead,
                })
                .collect(),
            failures: o.failures.into_iter().map(FailureView::from).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct OperationsQuery {
    notice: Option<String>,
}

async fn page_response(
    state: &AppState,
    web: &WebCtx,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> WebResult {
    let overview = service::overview(&state.db, &web.ctx, FAILURES_SHOWN).await?;
    let mut shell = web.shell(state, "Operations", "operations").await?;
    shell.notice = notice;
    let page = OperationsPage::new(shell, error, overview);
    Ok((status, render(&page)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<OperationsQuery>,
) -> WebResult {
    let notice = match q.notice.as_deref() {
        Some("retried") => Some("Job queued to run again.".to_owned()),
        Some("discarded") => Some("Job discarded. It will not run.".to_owned()),
        _ => None,
    };
    page_response(&state, &web, notice, None, StatusCode::OK).await
}

pub async fn retry_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    match service::retry(&state.db, &web.ctx, &id).await {
        Ok(_) => Ok(Redirect::to("/settings/operations?notice=retried").into_response()),
        Err(AppError::Conflict(detail)) => {
            page_response(&state, &web, None, Some(detail), StatusCode::CONFLICT).await
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn discard_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(Permission::JobsManage)?;
    let job = service::get(&state.db, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Discard job", "operations").await?;
    let short: String = job
        .id
        .chars()
        .skip(job.id.len().saturating_sub(8))
        .collect();
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Discard this {} job?", job.kind),
        body: format!(
            "Job \u{2026}{short} ({}, {} attempts) is deleted and will never run. Whatever it was \
             meant to do (an email, a webhook, an automation step) does not happen. This cannot \
             be undone.",
            job.status, job.attempts
        ),
        action: format!("/settings/operations/jobs/{id}/discard"),
        confirm_label: "Discard job".to_owned(),
        cancel_href: "/settings/operations".to_owned(),
    }))
}

pub async fn discard_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    match service::discard(&state.db, &web.ctx, &id).await {
        Ok(_) => Ok(Redirect::to("/settings/operations?notice=discarded").into_response()),
        Err(AppError::Conflict(detail)) => {
            page_response(&state, &web, None, Some(detail), StatusCode::CONFLICT).await
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_micros(12_600)), "12 ms");
        assert_eq!(short_duration(Duration::from_millis(1_440)), "1.4 s");
        assert_eq!(short_duration(Duration::from_secs(180)), "3 min");
        assert_eq!(short_duration(Duration::from_secs(9_000)), "2.5 h");
    }

    #[test]
    fn errors_are_previewed_on_one_line() {
        assert_eq!(preview("boom"), "boom");
        assert_eq!(preview("first\nsecond"), "first\u{2026}");
        let long = "x".repeat(ERROR_PREVIEW_CHARS + 5);
        assert_eq!(
            preview(&long).chars().count(),
            ERROR_PREVIEW_CHARS + 1,
            "cut with an ellipsis"
        );
    }
}
