//! Webhook subscriptions as the API and pages use them: create (the secret is returned once),
//! change, enable and disable, rotate the secret, delete; the delivery log and replays. Every
//! change is audited; only owners and admins (`webhooks.manage`) may do any of it.

use meridian_core::{Permission, Validation};
use meridian_db::TenantTx;
use serde_json::json;

use super::events::{self, EventType};
use super::signing;
use super::store::{
    self, AttemptRow, DeliveryCursor, DeliveryRow, SubscriptionFields, SubscriptionRow,
};
use crate::audit::store::{self as audit, Entry};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::secrets::{self, Purpose};
use crate::state::AppState;

pub const MAX_URL: usize = 2000;
pub const MAX_DESCRIPTION: usize = 200;

/// A subscription as a client sends it; on update, missing fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionInput {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// An `http` or `https` address with a host, without credentials (they would show in every list
/// and log; receivers authenticate requests by the signature).
pub fn check_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".to_owned());
    }
    if text.chars().count() > MAX_URL {
        return Err(format!("must be at most {MAX_URL} characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with https:// or http://".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_owned());
    }
    Ok(url.to_string())
}

fn check_event_types(v: &mut Validation, types: &[String]) -> Vec<String> {
    let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, t) in types.iter().enumerate() {
        match EventType::parse(t.trim()) {
            Some(event) => {
                if !out.iter().any(|o| o == event.as_str()) {
                    out.push(event.as_str().to_owned());
                }
            }
            None => v.add(
                &format!("event_types[{i}]"),
                format!("{t:?} is not an event type; use {}", known.join(", ")),
            ),
        }
    }
    if types.is_empty() {
        v.add("event_types", "choose at least one event type");
    }
    out
}

fn apply(
    base: SubscriptionFields,
    input: &SubscriptionInput,
    creating: bool,
) -> AppResult<SubscriptionFields> {
    let mut v = Validation::new();
    let mut out = base;
    match (&input.url, creating) {
        (Some(url), _) => {
            if let Some(url) = v.check("url", check_url(url)) {
                out.url = url;
            }
        }
        (None, true) => v.add("url", "is required"),
        (None, false) => {}
    }
    if let Some(description) = &input.description {
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION {
            v.add(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        out.description = description.to_owned();
    }
    match (&input.event_types, creating) {
        (Some(types), _) => out.event_types = check_event_types(&mut v, types),
        (None, true) => v.add("event_types", "is required"),
        (None, false) => {}
    }
    v.finish().map_err(AppError::Validation)?;
    Ok(out)
}

async fn load(tx: &mut TenantTx, id: &str) -> AppResult<SubscriptionRow> {
    store::find_subscription(tx, id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn seal(
    tx: &mut TenantTx,
    state: &AppState,
    secret: &str,
    replace: Option<&str>,
) -> AppResult<String> {
    secrets::store(
        tx,
        &state.config.secrets,
        Purpose::WebhookSigning,
        secret,
        replace,
    )
    .await
    .map_err(|e| AppError::Internal(e.into()))
}

fn entry<'a>(action: &'a str, row: &'a SubscriptionRow, after: serde_json::Value) -> Entry<'a> {
    Entry {
        action,
        target_type: "webhook",
        target_id: Some(&row.id),
        target_label: Some(&row.url),
        before: None,
        after: Some(after),
    }
}

/// Creates a subscription with a fresh secret. Returns it and the secret, which is not shown
/// again.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    input: SubscriptionInput,
) -> AppResult<(SubscriptionRow, String)> {
    ctx.require(Permission::WebhooksManage)?;
    let base = SubscriptionFields {
        url: String::new(),
        description: String::new(),
        event_types: Vec::new(),
    };
    let fields = apply(base, &input, true)?;
    let secret = signing::new_secret();
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let secret_id = seal(&mut tx, state, &secret, None).await?;
    let id = store::insert_subscription(&mut tx, &fields, &secret_id, ctx.user_id()).await?;
    if input.enabled == Some(false) {
        store::set_enabled(&mut tx, &id, false, None).await?;
    }
    let row = load(&mut tx, &id).await?;
    audit::record(
        &mut tx,
        ctx,
        entry(
            "webhook.created",
            &row,
            json!({"url": row.url, "event_types": fields.event_types}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((row, secret))
}

pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<SubscriptionRow>> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::subscriptions(&mut tx, after, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<SubscriptionRow> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// Changes a subscription. Enabling one the server disabled clears its failure record.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    input: SubscriptionInput,
) -> AppResult<SubscriptionRow> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let before = load(&mut tx, id).await?;
    let base = SubscriptionFields {
        url: before.url.clone(),
        description: before.description.clone(),
        event_types: before.event_types(),
    };
    let fields = apply(base.clone(), &input, false)?;
    if fields != base {
        store::update_subscription(&mut tx, id, &fields).await?;
    }
    let toggled = match input.enabled {
        Some(enabled) => store::set_enabled(&mut tx, id, enabled, None).await?,
        None => false,
    };
    let row = load(&mut tx, id).await?;
    if fields != base || toggled {
        audit::record(
            &mut tx,
            ctx,
            Entry {
                before: Some(json!({"url": before.url, "event_types": base.event_types, "enabled": before.enabled})),
                ..entry(
                    "webhook.updated",
                    &row,
                    json!({"url": row.url, "event_types": fields.event_types, "enabled": row.enabled}),
                )
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row)
}

/// Replaces the signing secret; the new one is returned once and signs every later attempt.
pub async fn rotate_secret(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> AppResult<(SubscriptionRow, String)> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let before = load(&mut tx, id).await?;
    let secret = signing::new_secret();
    seal(&mut tx, state, &secret, Some(&before.secret_id)).await?;
    let row = load(&mut tx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        entry(
            "webhook.secret_rotated",
            &row,
            json!({"secret_hint": row.secret_hint}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((row, secret))
}

/// Deletes a subscription with its secret and delivery log.
pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let row = load(&mut tx, id).await?;
    store::delete_subscription(&mut tx, id).await?;
    secrets::delete(&mut tx, &row.secret_id).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            before: Some(json!({"url": row.url, "event_types": row.event_types()})),
            after: None,
            ..entry("webhook.deleted", &row, json!(null))
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A page of a subscription's deliveries, newest first.
pub async fn deliveries(
    state: &AppState,
    ctx: &Ctx,
    subscription_id: &str,
    before: Option<DeliveryCursor>,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    load(&mut tx, subscription_id).await?;
    let rows = store::deliveries(&mut tx, subscription_id, before, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// A delivery with every attempt.
pub async fn delivery(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> AppResult<(DeliveryRow, Vec<AttemptRow>)> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = store::find_delivery(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let attempts = store::attempts(&mut tx, id).await?;
    tx.commit().await?;
    Ok((row, attempts))
}

/// Sends a delivery again: the same event, body and `webhook-id`, with a fresh timestamp and
/// signature and a new retry schedule.
pub async fn replay(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<DeliveryRow> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let delivery = store::find_delivery(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let subscription = load(&mut tx, &delivery.subscription_id).await?;
    if !subscription.enabled {
        return Err(AppError::Conflict(
            "The endpoint is disabled; enable it before replaying its deliveries.".to_owned(),
        ));
    }
    let busy = || {
        AppError::Conflict(
            "This delivery is already queued; it is sent at its next attempt.".to_owned(),
        )
    };
    if delivery.status == "pending" {
        return Err(busy());
    }
    store::requeue(&mut tx, id).await?;
    if !events::enqueue(&mut tx, id).await? {
        return Err(busy());
    }
    audit::record(
        &mut tx,
        ctx,
        Entry {
            target_type: "webhook_delivery",
            target_id: Some(id),
            ..entry(
                "webhook.delivery_replayed",
                &subscription,
                json!({"event_type": delivery.event_type, "previous_status": delivery.status}),
            )
        },
    )
    .await?;
    let row = store::find_delivery(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    crate::jobs::wake();
    Ok(row)
}
