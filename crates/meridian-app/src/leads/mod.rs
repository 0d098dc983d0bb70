//! Leads (or cases, or intended parents: the pipeline names them): the record a team works all
//! day, with normalization, stage rules, handoff, activity, bulk actions and merge.

pub mod activity;
pub mod api;
pub mod export;
pub mod input;
pub mod query;
pub mod service;
pub mod store;
pub mod watchers;
pub mod web;

pub use web::web_routes;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;
use crate::{notes, tasks};

/// Leads, their notes and tasks under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/leads", get(api::list).post(api::create))
        .route("/leads/stats", get(api::stats))
        .route("/leads/handoff-queue", get(api::handoff_queue))
        .route("/leads/bulk", post(api::bulk))
        .route("/leads/merge", post(api::merge))
        .route("/leads/{id}/watchers", get(watchers::get))
        .route(
            "/leads/{id}/watchers/me",
            axum::routing::put(watchers::watch).delete(watchers::unwatch),
        )
        .route(
            "/leads/{id}",
            get(api::get).patch(api::update).delete(api::delete),
        )
        .route("/leads/{id}/stage", post(api::stage))
        .route("/leads/{id}/assign", post(api::assign))
        .route("/leads/{id}/priority", post(api::priority))
        .route("/leads/{id}/archive", post(api::archive))
        .route("/leads/{id}/restore", post(api::restore))
        .route("/leads/{id}/move", post(api::move_pipeline))
        .route("/leads/{id}/accept", post(api::accept))
        .route("/leads/{id}/deny", post(api::deny))
        .route("/leads/{id}/activity", get(api::activity))
        .route("/leads/{id}/history", get(api::history))
        .route(
            "/leads/{id}/notes",
            get(notes::api::list).post(notes::api::create),
        )
        .route("/notes/{id}", axum::routing::delete(notes::api::delete))
        .route("/tasks", get(tasks::api::list).post(tasks::api::create))
        .route(
            "/tasks/{id}",
            get(tasks::api::get)
                .patch(tasks::api::update)
                .delete(tasks::api::delete),
        )
        .route("/tasks/{id}/complete", post(tasks::api::complete))
        .route("/tasks/{id}/uncomplete", post(tasks::api::uncomplete))
}
