//! Pipelines: each organization's workflows, with stages (ordered, role-owned, handoff) and typed
//! custom fields; the rules themselves live in `meridian_core::pipeline`.

pub mod api;
pub mod service;
pub mod store;
pub mod web;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(api::list).post(api::create))
        .route(
            "/pipelines/{id}",
            get(api::get).patch(api::update).delete(api::delete),
        )
        .route("/metadata", get(api::metadata))
}

/// The Settings → Pipelines pages (merged into the web router).
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/settings/pipelines", get(web::list_page))
        .route(
            "/settings/pipelines/new",
            get(web::new_page).post(web::create_submit),
        )
        .route(
            "/settings/pipelines/{id}",
            get(web::edit_page).post(web::edit_submit),
        )
        .route(
            "/settings/pipelines/{id}/delete",
            get(web::delete_confirm).post(web::delete_submit),
        )
}
