//! Email: per-organization templates rendered in a sandboxed engine, one-off emails from a lead's
//! page, delivery as background jobs (SMTP or `.eml` files), the message log, unsubscribe links
//! and the suppression list that nothing is ever sent to.

pub mod api;
pub mod compose;
pub mod deliver;
pub mod render;
pub mod sequences;
pub mod sequences_api;
pub mod service;
pub mod store;
pub mod transport;
pub mod unsubscribe;
pub mod web;

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
        .route(
            "/email/sequences",
            get(sequences_api::list).post(sequences_api::create),
        )
        .route(
            "/email/sequences/{id}",
            get(sequences_api::get)
                .patch(sequences_api::update)
                .delete(sequences_api::delete),
        )
        .route(
            "/email/sequences/{id}/enrollments",
            post(sequences_api::enroll),
        )
        .route("/email/enrollments", get(sequences_api::list_enrollments))
        .route("/email/enrollments/{id}/stop", post(sequences_api::stop))
        .route("/email/replies", post(sequences_api::reply))
}

/// The public unsubscribe page (no sign-in: the signed token is the credential).
pub fn public_routes() -> Router<AppState> {
    Router::new().route(
        "/unsubscribe/{token}",
        get(unsubscribe::page).post(unsubscribe::submit),
    )
}

/// The email pages: templates, the outbox, the suppression list and Settings → Email. (The lead
/// page's Emails tab posts to the lead's own action route.)
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/email/templates", get(web::templates::list_page))
        .route(
            "/email/templates/new",
            get(web::templates::new_page).post(web::templates::new_submit),
        )
        .route(
            "/email/templates/{id}",
            get(web::templates::edit_page).post(web::templates::edit_submit),
        )
        .route(
            "/email/templates/{id}/delete",
            get(web::templates::delete_confirm).post(web::templates::delete_submit),
        )
        .route("/email/outbox", get(web::outbox::page))
        .route("/email/outbox/{id}", get(web::outbox::message_page))
        .route(
            "/email/suppressions",
            get(web::suppressions::page).post(web::suppressions::add_submit),
        )
        .route(
            "/email/suppressions/remove",
            get(web::suppressions::remove_confirm).post(web::suppressions::remove_submit),
        )
        .route(
            "/settings/email",
            get(web::settings::page).post(web::settings::submit),
        )
        .merge(web::sequence_routes())
}
