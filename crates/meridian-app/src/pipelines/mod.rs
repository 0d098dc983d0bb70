//! Pipelines: each organization's workflows, with stages (ordered, role-owned, handoff) and typed
//! custom fields; the rules themselves live in `meridian_core::pipeline`.

pub mod api;
pub mod service;
pub mod store;

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
