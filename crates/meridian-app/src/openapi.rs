//! The OpenAPI 3.1 description, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    apikeys, audit, auth, automations, email, imports, jobs, leads, notes, notifications, ops,
    orgs, pipelines, tasks, views,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Meridian API",
        description = "Multi-tenant marketing and lead operations. Authenticate with a bearer access token \
            (POST /api/v1/auth/login) or an API key. Lists are cursor-paginated; errors are RFC 9457 problem+json.",
    ),
    paths(
        auth::api::login, auth::api::refresh, auth::api::logout, auth::api::me, auth::api::register,
        auth::api::accept_invite, auth::api::change_password,
        orgs::api::get_org, orgs::api::update_org,
        orgs::api::list_members, orgs::api::update_member, orgs::api::remove_member,
        orgs::api::create_invite, orgs::api::list_invites, orgs::api::revoke_invite,
        apikeys::api::create, apikeys::api::list, apikeys::api::revoke,
        audit::api::list,
        pipelines::api::list, pipelines::api::create, pipelines::api::get, pipelines::api::update,
        pipelines::api::delete, pipelines::api::metadata,
        leads::api::list, leads::api::create, leads::api::get, leads::api::update, leads::api::delete,
        leads::api::stage, leads::api::assign, leads::api::priority, leads::api::archive,
        leads::api::restore, leads::api::move_pipeline, leads::api::accept, leads::api::deny,
        leads::api::handoff_queue, leads::api::activity, leads::api::history, leads::api::bulk,
        leads::api::merge, leads::api::stats, leads::watchers::get, leads::watchers::watch,
        leads::watchers::unwatch,
        notes::api::list, notes::api::create, notes::api::delete,
        tasks::api::create, tasks::api::get, tasks::api::update, tasks::api::delete,
        tasks::api::complete, tasks::api::uncomplete, tasks::api::list,
        views::api::list, views::api::create, views::api::update, views::api::delete,
        imports::api::upload, imports::api::validate, imports::api::commit, imports::api::get,
        imports::api::list, imports::api::errors_csv, leads::export::export,
        jobs::api::overview, jobs::api::get, jobs::api::retry, jobs::api::discard,
        email::api::list_templates, email::api::create_template, email::api::get_template,
        email::api::update_template, email::api::delete_template, email::api::preview,
        email::api::send_to_lead, email::api::list_messages, email::api::get_message,
        email::api::list_suppressions, email::api::add_suppression, email::api::remove_suppression,
        email::api::get_settings, email::api::put_settings,
        email::sequences_api::list, email::sequences_api::create, email::sequences_api::get,
        email::sequences_api::update, email::sequences_api::delete, email::sequences_api::enroll,
        email::sequences_api::list_enrollments, email::sequences_api::stop, email::sequences_api::reply,
        automations::api::list, automations::api::create, automations::api::get,
        automations::api::update, automations::api::delete, automations::api::versions,
        automations::api::runs, automations::api::run_manually, automations::api::run,
        automations::api::retry, automations::api::gallery, automations::api::create_from_gallery,
        notifications::api::list, notifications::api::read, notifications::api::read_all,
        notifications::api::settings, notifications::api::save_settings,
        crate::webhooks::api::list, crate::webhooks::api::create, crate::webhooks::api::get,
        crate::webhooks::api::update, crate::webhooks::api::delete, crate::webhooks::api::rotate_secret,
        crate::webhooks::api::deliveries, crate::webhooks::api::delivery, crate::webhooks::api::replay,
        crate::webhooks::api::list_forms, crate::webhooks::api::create_form, crate::webhooks::api::get_form,
        crate::webhooks::api::update_form, crate::webhooks::api::delete_form, crate::webhooks::inbound::submit,
        ops::health, ops::ready,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Sign in, tokens, the caller's identity"),
        (name = "organization", description = "The caller's organization"),
        (name = "members", description = "Members and invitations"),
        (name = "api-keys", description = "Keys for integrations"),
        (name = "audit", description = "Who changed what"),
        (name = "pipelines", description = "Pipelines, stages, custom fields and every picklist"),
        (name = "leads", description = "Leads, cases and intended parents: the records a team works"),
        (name = "notes", description = "Rich-text notes on a lead"),
        (name = "tasks", description = "Calls, emails, meetings and follow-ups"),
        (name = "imports", description = "Lead imports from CSV and XLSX: upload, map, dry run, commit"),
        (name = "jobs", description = "Background jobs: queue depth, throughput, latency, failures; retry and discard"),
        (name = "email", description = "Templates, sending to leads, the message log, suppressions and sending settings"),
        (name = "webhooks", description = "Outbound webhooks signed per Standard Webhooks, their delivery log and replays; inbound lead forms"),
        (name = "automations", description = "Triggers, conditions and actions; versions, runs and the gallery"),
        (name = "notifications", description = "The caller's in-app notifications and their settings"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token (mrd_at_…) or an API key (mrd_sk_…)"))
                    .build(),
            ),
        );
    }
}

pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
