//! In-app notifications: what happened that a person should know, written in the same
//! transaction as the change that caused it, deduplicated (the same kind about the same thing for
//! the same person within an hour is one notification), filtered by each person's settings, and
//! pushed live to the web app's bell over server-sent events.

pub mod api;
pub mod live;
pub mod store;
pub mod web;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use meridian_core::Role;
use meridian_db::TenantTx;

use crate::jobs::{Entry, JobContext, Recurrence, Registry};
use crate::leads::store::LeadRow;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;

/// Every kind of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LeadAssigned,
    StageChanged,
    HandoffReady,
    HandoffAccepted,
    HandoffDenied,
    TaskAssigned,
    TaskDueToday,
    TaskOverdue,
    AutomationFailed,
    AutomationMessage,
    ImportFinished,
    WebhookDisabled,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::LeadAssigned,
        Kind::StageChanged,
        Kind::HandoffReady,
        Kind::HandoffAccepted,
        Kind::HandoffDenied,
        Kind::TaskAssigned,
        Kind::TaskDueToday,
        Kind::TaskOverdue,
        Kind::AutomationFailed,
        Kind::AutomationMessage,
        Kind::ImportFinished,
        Kind::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LeadAssigned => "lead_assigned",
            Kind::StageChanged => "stage_changed",
            Kind::HandoffReady => "handoff_ready",
            Kind::HandoffAccepted => "handoff_accepted",
            Kind::HandoffDenied => "handoff_denied",
            Kind::TaskAssigned => "task_assigned",
            Kind::TaskDueToday => "task_due_today",
            Kind::TaskOverdue => "task_overdue",
            Kind::AutomationFailed => "automation_failed",
            Kind::AutomationMessage => "automation_message",
            Kind::ImportFinished => "import_finished",
            Kind::WebhookDisabled => "webhook_disabled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::LeadAssigned => "A lead is assigned to me",
            Kind::StageChanged => "A lead I own or watch changes stage",
            Kind::HandoffReady => "A handoff is waiting for my role",
            Kind::HandoffAccepted => "A lead I handed off is accepted",
            Kind::HandoffDenied => "A lead I handed off is denied",
            Kind::TaskAssigned => "A task is assigned to me",
            Kind::TaskDueToday => "My task is due today",
            Kind::TaskOverdue => "My task is overdue",
            Kind::AutomationFailed => "An automation failed (admins)",
            Kind::AutomationMessage => "An automation sends me a message",
            Kind::ImportFinished => "My import finished",
            Kind::WebhookDisabled => "A webhook endpoint was disabled (admins)",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One notification's content.
#[derive(Debug, Clone)]
pub struct Note {
    pub kind: Kind,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub title: String,
    pub body: String,
    /// Where it leads in the web app.
    pub link: String,
    pub actor_label: Option<String>,
}

/// How long the same kind about the same thing for the same person stays one notification.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(3600);

/// Notifies `users` in the caller's transaction: not the person who acted, not people who turned
/// the kind off, and not twice within `window`. Returns how many were written.
pub async fn notify(
    tx: &mut TenantTx,
    users: &[String],
    actor: Option<&str>,
    note: &Note,
    window: Duration,
) -> sqlx::Result<usize> {
    let mut sent = 0;
    let mut seen = Vec::new();
    for user in users {
        if Some(user.as_str()) == actor || seen.contains(&user) {
            continue;
        }
        seen.push(user);
        if store::insert_unless_recent(tx, user, note, window).await? {
            live::changed(&tx.org_id(), user);
            sent += 1;
        }
    }
    Ok(sent)
}

fn lead_label(lead: &LeadRow) -> String {
    let name = format!("{} {}", lead.first_name, lead.last_name);
    format!(
        "#{} {}",
        crate::leads::api::display_number(lead.number),
        name.trim()
    )
}

/// Notifies about a lead's change: a new owner, a stage change for its owner, a handoff for the
/// role that owns the new stage, an accepted or denied handoff for the person who handed it off.
pub async fn lead_changed(
    tx: &mut TenantTx,
    actor: &crate::http::ctx::Ctx,
    before: &LeadRow,
    after: &LeadRow,
    pipeline: &Pipeline,
    handoff: Option<bool>,
) -> sqlx::Result<()> {
    let me = actor.user_id();
    let label = lead_label(after);
    let link = format!("/leads/{}", after.id);
    let by = Some(actor.actor_label());
    let note = |kind, title: String, body: String| Note {
        kind,
        entity_type: "lead",
        entity_id: after.id.clone(),
        title,
        body,
        link: link.clone(),
        actor_label: by.clone(),
    };
    if let Some(owner) = &after.assigned_to
        && after.assigned_to != before.assigned_to
    {
        let n = note(
            Kind::LeadAssigned,
            format!("{label} is yours"),
            format!("{} assigned it to you.", actor.actor_label()),
        );
        notify(tx, std::slice::from_ref(owner), me, &n, DEDUPE_WINDOW).await?;
    }
    if after.stage == before.stage && after.pipeline_id == before.pipeline_id {
        return Ok(());
    }
    let stage_label = pipeline
        .spec
        .stage(&after.stage)
        .map_or_else(|| after.stage.clone(), |s| s.label.clone());
    match handoff {
        Some(accepted) => {
            if let Some(previous) = &before.assigned_to {
                let (kind, verb) = if accepted {
                    (Kind::HandoffAccepted, "accepted")
                } else {
                    (Kind::HandoffDenied, "denied")
                };
                let n = note(
                    kind,
                    format!("Handoff of {label} {verb}"),
                    format!(
                        "{} {verb} it; it is now in {stage_label}.",
                        actor.actor_label()
                    ),
                );
                notify(tx, std::slice::from_ref(previous), me, &n, DEDUPE_WINDOW).await?;
            }
        }
        None => {
            // Its owner and the people watching it.
            let mut people: Vec<String> = after.assigned_to.iter().cloned().collect();
            people.extend(crate::leads::watchers::user_ids(tx, &after.id).await?);
            let n = note(
                Kind::StageChanged,
                format!("{label} moved to {stage_label}"),
                format!("{} moved it.", actor.actor_label()),
            );
            notify(tx, &people, me, &n, DEDUPE_WINDOW).await?;
        }
    }
    if let Some(stage) = pipeline.spec.stage(&after.stage)
        && stage.is_handoff()
        && let Some(role) = stage.owner_role
    {
        let members = store::members_with_roles(tx, &[role]).await?;
        let n = note(
            Kind::HandoffReady,
            format!("{label} is waiting in {stage_label}"),
            format!("{} handed it off to {}.", actor.actor_label(), role.label()),
        );
        notify(tx, &members, me, &n, DEDUPE_WINDOW).await?;
    }
    Ok(())
}

/// Tells the organization's owners and admins.
async fn alert_admins(tx: &mut TenantTx, note: &Note) -> sqlx::Result<()> {
    let admins = store::members_with_roles(tx, &[Role::Owner, Role::Admin]).await?;
    notify(tx, &admins, None, note, DEDUPE_WINDOW).await?;
    Ok(())
}

/// Tells the organization's owners and admins that an automation gave up.
pub async fn automation_failed(
    tx: &mut TenantTx,
    automation_id: &str,
    name: &str,
    error: &str,
) -> sqlx::Result<()> {
    let note = Note {
        kind: Kind::AutomationFailed,
        entity_type: "automation",
        entity_id: automation_id.to_owned(),
        title: format!("Automation “{name}” failed"),
        body: error.chars().take(500).collect(),
        link: format!("/automations/{automation_id}"),
        actor_label: None,
    };
    alert_admins(tx, &note).await
}

/// Tells the organization's owners and admins that the server disabled a webhook endpoint.
pub async fn webhook_disabled(
    tx: &mut TenantTx,
    webhook_id: &str,
    url: &str,
    reason: &str,
) -> sqlx::Result<()> {
    let note = Note {
        kind: Kind::WebhookDisabled,
        entity_type: "webhook",
        entity_id: webhook_id.to_owned(),
        title: format!("Webhook to {url} disabled"),
        body: reason.chars().take(500).collect(),
        link: format!("/settings/webhooks/{webhook_id}"),
        actor_label: None,
    };
    alert_admins(tx, &note).await
}

/// The notification pages.
pub fn web_routes() -> Router<AppState> {
    web::routes()
}

/// The endpoints under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/me/notifications", get(api::list))
        .route("/me/notifications/stream", get(live::stream))
        .route("/me/notifications/read-all", post(api::read_all))
        .route("/me/notifications/{id}/read", post(api::read))
        .route(
            "/me/notification-settings",
            get(api::settings).put(api::save_settings),
        )
}

/// Daily: tasks due today or overdue, for their assignees.
pub const DUE_TASKS_JOB: &str = "notifications.due_tasks";

pub fn register(registry: &mut Registry) {
    registry.register(DUE_TASKS_JOB, |ctx: JobContext, _| async move {
        let sent = store::notify_due_tasks(&ctx.db).await?;
        if sent > 0 {
            tracing::info!(notifications = sent, "task due notifications sent");
        }
        Ok(())
    });
}

/// At 06:00 UTC, before the working day.
pub fn schedule() -> Vec<Entry> {
    match Recurrence::cron("0 6 * * *") {
        Ok(daily) => vec![Entry::new(DUE_TASKS_JOB, daily)],
        Err(error) => {
            tracing::error!(%error, "the task notifications' schedule does not parse");
            Vec::new()
        }
    }
}
