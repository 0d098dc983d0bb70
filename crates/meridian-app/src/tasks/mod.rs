//! Tasks: calls, emails, meetings and follow-ups, on a lead or standalone, with an assignee and a
//! due time.

pub mod api;
pub mod service;
pub mod store;
pub mod web;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The task pages (merged into the web router).
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(web::page).post(web::create_submit))
        .route("/tasks/{id}/toggle", post(web::toggle_submit))
        .route(
            "/tasks/{id}/delete",
            get(web::delete_confirm).post(web::delete_submit),
        )
}
