//! Webhooks: outbound subscriptions that receive events signed per Standard Webhooks (retried
//! for a day, disabled when the endpoint is gone or keeps failing, every attempt logged, any
//! delivery replayable), and inbound lead capture (public forms and their endpoint).
//!
//! Features report events with [`emit`] inside the transaction of the change. Today:
//! `lead.created` (the leads service's create: the API, the new-lead page, inbound forms and the
//! demo data; imports do not emit per row), `lead.stage_changed` (stage moves, handoff accept and
//! deny, moves to another pipeline, one event per lead in bulk actions) and `task.completed`.

pub mod api;
pub mod deliver;
pub mod events;
pub mod forms;
pub mod inbound;
pub mod service;
pub mod signing;
pub mod store;
pub mod web;

use axum::Router;
use axum::routing::{get, post};

pub use events::{EventType, emit};

use crate::state::AppState;

/// How the server appears in the audit log when it acts on its own (disabling an endpoint).
pub const SYSTEM_ACTOR: &str = "Meridian";

/// The webhook and inbound-form endpoints under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(api::list).post(api::create))
        .route(
            "/webhooks/{id}",
            get(api::get).patch(api::update).delete(api::delete),
        )
        .route("/webhooks/{id}/rotate-secret", post(api::rotate_secret))
        .route("/webhooks/{id}/deliveries", get(api::deliveries))
        .route("/webhook-deliveries/{id}", get(api::delivery))
        .route("/webhook-deliveries/{id}/replay", post(api::replay))
        .route(
            "/inbound-forms",
            get(api::list_forms).post(api::create_form),
        )
        .route(
            "/inbound-forms/{id}",
            get(api::get_form)
                .patch(api::update_form)
                .delete(api::delete_form),
        )
        .route(
            "/inbound/{form_key}",
            post(inbound::submit).options(inbound::preflight),
        )
}

/// The hosted form page (no sign-in: the key in the address names the form).
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/forms/{form_key}", get(inbound::hosted))
}

/// Settings → Webhooks and Settings → Inbound forms.
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/settings/webhooks",
            get(web::page).post(web::create_submit),
        )
        .route(
            "/settings/webhooks/{id}",
            get(web::detail).post(web::update_submit),
        )
        .route("/settings/webhooks/{id}/enable", post(web::enable_submit))
        .route("/settings/webhooks/{id}/disable", post(web::disable_submit))
        .route(
            "/settings/webhooks/{id}/rotate",
            get(web::rotate_confirm).post(web::rotate_submit),
        )
        .route(
            "/settings/webhooks/{id}/delete",
            get(web::delete_confirm).post(web::delete_submit),
        )
        .route(
            "/settings/webhook-deliveries/{id}/replay",
            post(web::replay_submit),
        )
        .route(
            "/settings/inbound-forms",
            get(web::forms_page).post(web::form_create_submit),
        )
        .route(
            "/settings/inbound-forms/{id}",
            get(web::form_detail).post(web::form_update_submit),
        )
        .route(
            "/settings/inbound-forms/{id}/delete",
            get(web::form_delete_confirm).post(web::form_delete_submit),
        )
}
