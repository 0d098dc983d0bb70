//! The events a subscription can listen to, their payloads, and [`emit`]: the one call a feature
//! makes, inside the transaction of the change it reports, so an event is queued exactly when the
//! change commits.

use meridian_db::TenantTx;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::store;
use crate::http::error::{AppError, AppResult};
use crate::leads::store::LeadRow;
use crate::tasks::store::TaskRow;

/// The job that delivers one event to one subscription.
pub const DELIVER_JOB: &str = "webhook.deliver";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    LeadCreated,
    LeadStageChanged,
    TaskCompleted,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        EventType::LeadCreated,
        EventType::LeadStageChanged,
        EventType::TaskCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LeadCreated => "lead.created",
            EventType::LeadStageChanged => "lead.stage_changed",
            EventType::TaskCompleted => "task.completed",
        }
    }

    /// What it means, for the settings page.
    pub fn description(self) -> &'static str {
        match self {
            EventType::LeadCreated => {
                "A lead is created (by a person, the API, an inbound form or the demo data)"
            }
            EventType::LeadStageChanged => {
                "A lead changes stage (moved, handoff accepted or denied, moved to another pipeline)"
            }
            EventType::TaskCompleted => "A task is marked done",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map_or(Value::Null, Value::String)
}

/// A lead as webhook payloads carry it: contact, attribution and custom fields, where it stands,
/// and who owns it. Tags, notes and the rest are one `GET /api/v1/leads/{id}` away.
pub fn lead(row: &LeadRow) -> Value {
    json!({
        "id": row.id,
        "number": row.number,
        "display_number": crate::leads::api::display_number(row.number),
        "pipeline_id": row.pipeline_id,
        "stage": row.stage,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "email": row.email,
        "phone": row.phone,
        "state": row.state,
        "country": row.country,
        "source": row.source,
        "utm_source": row.utm_source,
        "utm_medium": row.utm_medium,
        "utm_campaign": row.utm_campaign,
        "utm_content": row.utm_content,
        "utm_term": row.utm_term,
        "campaign_id": row.campaign_id,
        "assigned_to": row.assigned_to,
        "is_priority": row.is_priority,
        "custom_fields": serde_json::from_str::<Value>(&row.custom_fields).unwrap_or(Value::Null),
        "created_at": rfc3339(row.created_at),
    })
}

/// `lead.created`.
pub fn lead_created(row: &LeadRow) -> Value {
    json!({ "lead": lead(row) })
}

/// `lead.stage_changed`: `before` is the lead as it was; it now stands in `to_stage` of
/// `to_pipeline_id` (the same pipeline unless it was moved).
pub fn stage_changed(
    before: &LeadRow,
    to_pipeline_id: &str,
    to_stage: &str,
    reason: Option<&str>,
) -> Value {
    let mut now = lead(before);
    now["pipeline_id"] = json!(to_pipeline_id);
    now["stage"] = json!(to_stage);
    json!({
        "lead": now,
        "from_pipeline_id": before.pipeline_id,
        "from_stage": before.stage,
        "to_pipeline_id": to_pipeline_id,
        "to_stage": to_stage,
        "reason": reason,
    })
}

/// `task.completed`: `task` as it was before, completed now by `completed_by`.
pub fn task_completed(task: &TaskRow, completed_by: &str) -> Value {
    json!({
        "task": {
            "id": task.id,
            "lead_id": task.lead_id,
            "title": task.title,
            "description": task.description,
            "type": task.task_type,
            "due_at": task.due_at.map_or(Value::Null, rfc3339),
            "assignee_id": task.assignee_id,
            "created_by": task.created_by,
            "created_at": rfc3339(task.created_at),
            "completed_at": rfc3339(meridian_db::now()),
            "completed_by": completed_by,
        },
        "lead": task.lead_id.as_ref().map(|id| json!({
            "id": id,
            "number": task.lead_number,
            "name": task.lead_name,
        })),
    })
}

/// Queues `event` for every enabled subscription of the transaction's organization that listens
/// to it: one delivery row and one `webhook.deliver` job each, in the caller's transaction. An
/// organization without subscriptions pays one indexed query. The caller commits; runners pick
/// the jobs up at once on PostgreSQL (they listen for enqueues) and within a poll on SQLite.
pub async fn emit(tx: &mut TenantTx, event: EventType, data: Value) -> AppResult<()> {
    let subscriptions = store::listening(tx, event.as_str()).await?;
    if subscriptions.is_empty() {
        return Ok(());
    }
    let now = meridian_db::now();
    let body = json!({"type": event.as_str(), "timestamp": rfc3339(now), "data": data}).to_string();
    for subscription_id in subscriptions {
        let id = meridian_db::new_id();
        store::insert_delivery(tx, &id, &subscription_id, event.as_str(), &body, now).await?;
        // A new id has no job yet, so this always enqueues.
        enqueue(tx, &id).await?;
    }
    Ok(())
}

/// Sends one event to one subscription, whatever event types it listens to (an automation's
/// "call a webhook" step): signed, retried, logged and replayable like every delivery. Returns
/// the delivery's id.
pub async fn deliver_to(
    tx: &mut TenantTx,
    subscription_id: &str,
    event_type: &str,
    data: Value,
) -> AppResult<String> {
    let now = meridian_db::now();
    let body = json!({"type": event_type, "timestamp": rfc3339(now), "data": data}).to_string();
    let id = meridian_db::new_id();
    store::insert_delivery(tx, &id, subscription_id, event_type, &body, now).await?;
    enqueue(tx, &id).await?;
    Ok(id)
}

/// Enqueues the delivery job of `delivery_id`; false when one is already pending or running.
pub async fn enqueue(tx: &mut TenantTx, delivery_id: &str) -> AppResult<bool> {
    let job = crate::jobs::new_job(DELIVER_JOB, &json!({ "delivery": delivery_id }))
        .map_err(|e| AppError::Internal(e.into()))?
        .max_attempts(super::deliver::MAX_ATTEMPTS)
        .unique_key(delivery_id);
    Ok(crate::jobs::enqueue_for_tenant(tx, job).await?.is_some())
}
