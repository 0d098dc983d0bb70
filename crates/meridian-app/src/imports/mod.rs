//! Lead imports: upload a CSV or XLSX file, map its columns to lead fields (custom fields
//! included; the mapping is remembered per pipeline for the same headers), check it with a dry
//! run that reports every problem by row and column, then commit it in the background in
//! checkpointed chunks that survive a crash. Exports live with the leads (`leads::export`).

pub mod api;
pub mod mapping;
pub mod parse;
pub mod plan;
pub mod service;
pub mod store;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::leads;
use crate::state::AppState;

/// Largest upload accepted (413 above it). A million leads with a dozen columns make a CSV of
/// 100 to 200 MB; the whole file is held in memory while it is decoded.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// Imports and the lead export under `/api/v1` (the upload itself is in [`upload_routes`]).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/imports", get(api::list))
        .route("/imports/{id}", get(api::get))
        .route("/imports/{id}/validate", post(api::validate))
        .route("/imports/{id}/commit", post(api::commit))
        .route("/imports/{id}/errors.csv", get(api::errors_csv))
        .route("/leads/export", get(leads::export::export))
}

/// The import wizard's pages (the upload form posts to [`upload_routes`]).
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/leads/import", get(web::page))
        .route("/leads/import/{id}", get(web::detail))
        .route("/leads/import/{id}/validate", post(web::validate_submit))
        .route("/leads/import/{id}/commit", post(web::commit_submit))
}

/// The two upload endpoints (API and web form), with their own body limit. They are merged
/// outside the app-wide body limit and CSRF guard (which would refuse or buffer a large
/// multipart body); [`api::read_upload`] checks the CSRF token of cookie sessions itself.
pub fn upload_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/imports", post(api::upload))
        .route("/leads/import", post(web::upload_submit))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(axum::middleware::from_fn(
            crate::http::middleware::track_metrics,
        ))
}
