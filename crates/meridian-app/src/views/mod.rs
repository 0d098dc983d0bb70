//! Saved list views: a named set of lead-list filters, sort and columns, personal or shared with
//! the organization.

pub mod api;
pub mod service;
pub mod store;

use axum::Router;
use axum::routing::{get, patch};

use crate::state::AppState;

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/views", get(api::list).post(api::create))
        .route("/views/{id}", patch(api::update).delete(api::delete))
}
