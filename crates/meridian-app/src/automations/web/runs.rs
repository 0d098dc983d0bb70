//! An automation's run history (newest first, filtered by status, paged by cursor) and one run:
//! the event that started it, each step's outcome, and Retry for a failed run.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Fact, Lookups, NoticeQuery, RUN_STATUSES, action_label, facts, status_class, status_label,
    trigger_label,
};
use crate::automations::service;
use crate::automations::store::{RunRow, StepRow};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::{PageQuery, encode_cursor};
use crate::jobs::web::short_duration;
use crate::leads::api::display_number;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};

/// Runs on one page of the history.
const RUNS_PAGE: i64 = 50;

/// One run as the history lists it.
pub struct RunView {
    pub id: String,
    pub status: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub version: i64,
    /// Empty when the run is about no lead, or its lead was deleted.
    pub lead_id: String,
    /// "#00042 Ana Diaz", or why there is no link.
    pub lead_label: String,
    pub started: String,
    pub started_exact: String,
    /// Empty while it has not finished.
    pub finished: String,
    pub finished_exact: String,
    /// For a waiting run: when it carries on.
    pub resumes: String,
    pub resumes_exact: String,
    pub error: String,
}

impl From<&RunRow> for RunView {
    fn from(r: &RunRow) -> Self {
        let (lead_id, lead_label) = match (&r.lead_id, r.lead_number) {
            (Some(id), Some(number)) => (
                id.clone(),
                format!(
                    "#{} {}",
                    display_number(number),
                    r.lead_name.as_deref().unwrap_or_default().trim()
                )
                .trim()
                .to_owned(),
            ),
            (Some(_), None) => (String::new(), "A deleted lead".to_owned()),
            (None, _) => (String::new(), "No lead".to_owned()),
        };
        RunView {
            id: r.id.clone(),
            status: r.status.clone(),
            status_label: status_label(&r.status),
            status_class: status_class(&r.status),
            version: r.version,
            lead_id,
            lead_label,
            started: relative(r.created_at),
            started_exact: exact(r.created_at),
            finished: r.finished_at.map(relative).unwrap_or_default(),
            finished_exact: r.finished_at.map(exact).unwrap_or_default(),
            resumes: r.resume_at.map(relative).unwrap_or_default(),
            resumes_exact: r.resume_at.map(exact).unwrap_or_default(),
            error: r.error.clone().unwrap_or_default(),
        }
    }
}

/// One status filter above the history.
pub struct StatusFilter {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "automation_runs.html")]
struct RunsPage {
    shell: Shell,
    tab: &'static str,
    id: String,
    enabled: bool,
    filters: Vec<StatusFilter>,
    status: String,
    status_label: &'static str,
    runs: Vec<RunView>,
    older_href: Option<String>,
    newest_href: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    status: Option<String>,
    cursor: Option<String>,
}

fn runs_href(id: &str, status: &str) -> String {
    if status.is_empty() {
        format!("/automations/{id}/runs")
    } else {
        format!("/automations/{id}/runs?status={status}")
    }
}

pub async fn runs_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> WebResult {
    let automation = service::get(&state, &web.ctx, &id).await?;
    // An unknown status shows every run rather than none.
    let status = q
        .status
        .as_deref()
        .filter(|s| RUN_STATUSES.contains(s))
        .unwrap_or_default()
        .to_owned();
    let page = PageQuery {
        limit: Some(RUNS_PAGE),
        cursor: q.cursor.clone(),
    }
    .parse()?;
    let before = page.after_time()?;
    let filter = Some(status.as_str()).filter(|s| !s.is_empty());
    let mut rows = service::runs(&state, &web.ctx, &id, filter, before, page.fetch_limit()).await?;
    let size = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let next = if rows.len() > size {
        rows.truncate(size);
        rows.last()
            .map(|r| encode_cursor(&[&exact(r.created_at), &r.id]))
    } else {
        None
    };
    let base = runs_href(&id, &status);
    let join = if base.contains('?') { '&' } else { '?' };
    let filters = std::iter::once(("", "All"))
        .chain(RUN_STATUSES.iter().map(|s| (*s, status_label(s))))
        .map(|(s, label)| StatusFilter {
            label,
            href: runs_href(&id, s),
            active: s == status,
        })
        .collect();
    let page = RunsPage {
        shell: web.shell(&state, &automation.name, "automations").await?,
        tab: "runs",
        enabled: automation.enabled,
        filters,
        status_label: status_label(&status),
        runs: rows.iter().map(RunView::from).collect(),
        older_href: next.map(|c| format!("{base}{join}cursor={c}")),
        newest_href: q.cursor.is_some().then_some(base),
        status,
        id,
    };
    Ok(render(&page))
}

/// One step of a run.
pub struct StepView {
    pub n: i64,
    pub action: &'static str,
    pub status: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub output: Vec<Fact>,
    pub error: String,
    pub attempt: i64,
    pub duration: String,
    pub at: String,
    pub at_exact: String,
}

fn step_view(lookups: &Lookups, lead: &str, s: &StepRow) -> StepView {
    let output: Value = serde_json::from_str(&s.output).unwrap_or(Value::Null);
    let took = (s.finished_at - s.started_at)
        .try_into()
        .unwrap_or(std::time::Duration::ZERO);
    StepView {
        n: s.seq + 1,
        action: action_label(&s.action),
        status: s.status.clone(),
        status_label: status_label(&s.status),
        status_class: status_class(&s.status),
        output: facts(lookups, &s.action, lead, &output),
        error: s.error.clone().unwrap_or_default(),
        attempt: s.attempt,
        duration: short_duration(took),
        at: relative(s.started_at),
        at_exact: exact(s.started_at),
    }
}

#[derive(Template)]
#[template(path = "automation_run.html")]
struct RunPage {
    shell: Shell,
    automation_id: String,
    automation_name: String,
    run: RunView,
    trigger: &'static str,
    event: Vec<Fact>,
    /// The automation whose change started this run: (link, name).
    caused_by: Option<(String, String)>,
    steps: Vec<StepView>,
    /// Why a retry was refused.
    error: Option<String>,
}

async fn run_response(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    notice: Option<String>,
    error: Option<String>,
    code: StatusCode,
) -> WebResult {
    let (run, steps) = service::run(state, &web.ctx, id).await?;
    let lookups = Lookups::load(state, &web.ctx).await?;
    let event: Value = serde_json::from_str(&run.event).unwrap_or(Value::Null);
    let trigger = event
        .get("trigger")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let caused_by = match &run.caused_by {
        Some(other) => Some(match service::get(state, &web.ctx, other).await {
            Ok(a) => (format!("/automations/{}", a.id), a.name),
            Err(AppError::NotFound) => (String::new(), "a deleted automation".to_owned()),
            Err(e) => return Err(e.into()),
        }),
        None => None,
    };
    let view = RunView::from(&run);
    let title = if view.lead_id.is_empty() {
        "Run".to_owned()
    } else {
        format!("Run on {}", view.lead_label)
    };
    let mut shell = web.shell(state, &title, "automations").await?;
    shell.notice = notice;
    let page = RunPage {
        shell,
        trigger: trigger_label(&trigger),
        event: facts(
            &lookups,
            &trigger,
            &view.lead_id,
            event.get("data").unwrap_or(&Value::Null),
        ),
        caused_by,
        steps: steps
            .iter()
            .map(|s| step_view(&lookups, &view.lead_id, s))
            .collect(),
        run: view,
        automation_id: run.automation_id,
        automation_name: run.automation_name,
        error,
    };
    Ok((code, render(&page)).into_response())
}

pub async fn run_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let notice = (q.notice.as_deref() == Some("retried"))
        .then(|| "Retrying from the step that failed.".to_owned());
    run_response(&state, &web, &id, notice, None, StatusCode::OK).await
}

pub async fn retry_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    match service::retry(&state, &web.ctx, &id).await {
        Ok(_) => Ok(Redirect::to(&format!("/automation-runs/{id}?notice=retried")).into_response()),
        Err(AppError::Conflict(detail)) => {
            let error = format!("{}.", super::rows::sentence(&detail));
            run_response(&state, &web, &id, None, Some(error), StatusCode::CONFLICT).await
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_links_keep_the_filter() {
        assert_eq!(runs_href("a1", ""), "/automations/a1/runs");
        assert_eq!(
            runs_href("a1", "failed"),
            "/automations/a1/runs?status=failed"
        );
    }
}
