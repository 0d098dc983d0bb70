//! Automations: a trigger (a lead created, a stage change, a field change, an assignment, a task
//! coming due, or a person running it), conditions on the lead, and ordered actions (email,
//! sequences, tasks, assignment with round-robin, stage, tags, fields, waits and branches). Every
//! change of the definition is a new version; every run is recorded with each step's outcome.

pub mod api;
pub mod definition;
pub mod engine;
pub mod service;
pub mod store;
pub mod web;

use axum::Router;
use axum::routing::{get, post};

use crate::jobs::{Entry, JobContext, Recurrence, Registry};
use crate::state::AppState;

/// The automation endpoints under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/automations", get(api::list).post(api::create))
        .route("/automations/gallery", get(api::gallery))
        .route("/automations/gallery/{key}", post(api::create_from_gallery))
        .route(
            "/automations/{id}",
            get(api::get).patch(api::update).delete(api::delete),
        )
        .route("/automations/{id}/versions", get(api::versions))
        .route(
            "/automations/{id}/runs",
            get(api::runs).post(api::run_manually),
        )
        .route("/automation-runs/{id}", get(api::run))
        .route("/automation-runs/{id}/retry", post(api::retry))
}

/// The automation pages.
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/automations", get(web::list::page))
        .route(
            "/automations/new",
            get(web::editor::new_page).post(web::editor::new_submit),
        )
        .route(
            "/automations/gallery/{key}",
            post(web::list::gallery_submit),
        )
        .route(
            "/automations/{id}",
            get(web::editor::edit_page).post(web::editor::edit_submit),
        )
        .route("/automations/{id}/toggle", post(web::list::toggle_submit))
        .route(
            "/automations/{id}/delete",
            get(web::editor::delete_confirm).post(web::editor::delete_submit),
        )
        .route("/automations/{id}/runs", get(web::runs::runs_page))
        .route("/automation-runs/{id}", get(web::runs::run_page))
        .route("/automation-runs/{id}/retry", post(web::runs::retry_submit))
}

/// Finds tasks due soon or overdue and fires `task_due` automations (daily).
pub const DUE_TASKS_JOB: &str = "automations.due_tasks";

/// Starts the runs of `schedule` automations whose cron ticked (every minute).
pub const SCHEDULE_JOB: &str = "automations.schedule";

/// Registers the run handler, the schedule pass and the daily task check.
pub fn register(registry: &mut Registry, config: &crate::config::AppConfig) {
    engine::register(registry, config);
    registry.register(SCHEDULE_JOB, |ctx: JobContext, _| async move {
        let started = service::scheduled(&ctx.db).await?;
        if started > 0 {
            tracing::info!(runs = started, "scheduled automations started");
        }
        Ok(())
    });
    registry.register(DUE_TASKS_JOB, |ctx: JobContext, _| async move {
        let started = service::due_tasks(&ctx.db).await?;
        if started > 0 {
            tracing::info!(tasks = started, "task reminders checked");
        }
        Ok(())
    });
}

/// The schedule pass every minute, and the daily task check at 07:00 UTC.
pub fn schedule() -> Vec<Entry> {
    let mut entries = vec![Entry::new(
        SCHEDULE_JOB,
        Recurrence::Every(std::time::Duration::from_secs(60)),
    )];
    match Recurrence::cron("0 7 * * *") {
        Ok(daily) => entries.push(Entry::new(DUE_TASKS_JOB, daily)),
        Err(error) => tracing::error!(%error, "the task check's schedule does not parse"),
    }
    entries
}
