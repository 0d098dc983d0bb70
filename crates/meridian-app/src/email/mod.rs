//! Email: per-organization templates rendered in a sandboxed engine, one-off emails from a lead's
//! page, delivery as background jobs (SMTP or `.eml` files), the message log, unsubscribe links
//! and the suppression list that nothing is ever sent to.

pub mod api;
pub mod deliver;
pub mod render;
pub mod service;
pub mod store;
pub mod transport;
pub mod unsubscribe;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The email endpoints under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/email/templates",
            get(api::list_templates).post(api::create_template),
        )
        .route(
            "/email/templates/{id}",
            get(api::get_template)
                .patch(api::update_template)
                .delete(api::delete_template),
        )
        .route("/email/preview", post(api::preview))
        .route("/email/messages", get(api::list_messages))
        .route("/email/messages/{id}", get(api::get_message))
        .route(
            "/email/suppressions",
            get(api::list_suppressions).post(api::add_suppression),
        )
        .route(
            "/email/suppressions/{email}",
            axum::routing::delete(api::remove_suppression),
        )
        .route(
            "/email/settings",
            get(api::get_settings).put(api::put_settings),
        )
        .route("/leads/{id}/emails", post(api::send_to_lead))
}

/// The public unsubscribe page (no sign-in: the signed token is the credential).
pub fn public_routes() -> Router<AppState> {
    Router::new().route(
        "/unsubscribe/{token}",
        get(unsubscribe::page).post(unsubscribe::submit),
    )
}
