use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Kind;
use super::store::{self, NotificationRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationOut {
    pub id: String,
    /// lead_assigned, stage_changed, handoff_ready, handoff_accepted, handoff_denied,
    /// task_assigned, task_due_today, task_overdue, automation_failed, import_finished or
    /// webhook_disabled.
    pub kind: String,
    pub entity_type: String,
    pub entity_id: String,
    pub title: String,
    pub body: String,
    /// Where it leads in the web app.
    pub link: String,
    pub actor: Option<String>,
    pub read: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<NotificationRow> for NotificationOut {
    fn from(n: NotificationRow) -> Self {
        NotificationOut {
            id: n.id,
            kind: n.kind,
            entity_type: n.entity_type,
            entity_id: n.entity_id,
            title: n.title,
            body: n.body,
            link: n.link,
            actor: n.actor_label,
            read: n.read_at.is_some(),
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationOut>,
    pub next_cursor: Option<String>,
    pub unread_count: i64,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct NotificationQuery {
    /// Only unread ones.
    pub unread: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The person behind the request: notifications belong to people, not API keys.
pub fn person(ctx: &Ctx) -> AppResult<&str> {
    ctx.user_id().ok_or_else(|| {
        AppError::Forbidden("notifications belong to people, not API keys".to_owned())
    })
}

/// A page of the caller's notifications, newest first, and the unread count.
pub async fn page(
    state: &AppState,
    ctx: &Ctx,
    unread_only: bool,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<NotificationPage> {
    let user = person(ctx)?;
    let page = PageQuery {
        limit,
        cursor: cursor.map(str::to_owned),
    }
    .parse()?;
    let before = page.after_time()?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::list(&mut tx, user, unread_only, before, page.fetch_limit()).await?;
    let unread_count = store::unread_count(&mut tx, user).await?;
    tx.commit().await?;
    let Page { items, next_cursor } =
        Page::from_rows(rows, &page, |n| time_cursor(n.created_at, &n.id));
    Ok(NotificationPage {
        items: items.into_iter().map(NotificationOut::from).collect(),
        next_cursor,
        unread_count,
    })
}

#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = NotificationPage), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<NotificationQuery>,
) -> AppResult<axum::Json<NotificationPage>> {
    Ok(axum::Json(
        page(
            &state,
            &ctx,
            query.unread.unwrap_or(false),
            query.cursor.as_deref(),
            query.limit,
        )
        .await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadOut {
    pub unread_count: i64,
}

/// Marks one notification read (404 for another person's).
pub async fn mark_read(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<i64> {
    let user = person(ctx)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    if !store::mark_read(&mut tx, user, id).await? {
        return Err(AppError::NotFound);
    }
    let count = store::unread_count(&mut tx, user).await?;
    tx.commit().await?;
    super::live::changed(ctx.tenant.org_id(), user);
    Ok(count)
}

pub async fn mark_all_read(state: &AppState, ctx: &Ctx) -> AppResult<()> {
    let user = person(ctx)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    store::mark_all_read(&mut tx, user).await?;
    tx.commit().await?;
    super::live::changed(ctx.tenant.org_id(), user);
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/me/notifications/{id}/read", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = UnreadOut), (status = 404, body = Problem)))]
pub async fn read(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<UnreadOut>> {
    let unread_count = mark_read(&state, &ctx, &id).await?;
    Ok(axum::Json(UnreadOut { unread_count }))
}

#[utoipa::path(post, path = "/api/v1/me/notifications/read-all", tag = "notifications",
    responses((status = 200, body = UnreadOut)))]
pub async fn read_all(State(state): State<AppState>, ctx: Ctx) -> AppResult<axum::Json<UnreadOut>> {
    mark_all_read(&state, &ctx).await?;
    Ok(axum::Json(UnreadOut { unread_count: 0 }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingOut {
    pub kind: &'static str,
    pub label: &'static str,
    pub enabled: bool,
}

/// Every kind with the caller's choice (on unless turned off).
pub async fn current_settings(state: &AppState, ctx: &Ctx) -> AppResult<Vec<SettingOut>> {
    let user = person(ctx)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let off = store::disabled_kinds(&mut tx, user).await?;
    tx.commit().await?;
    Ok(Kind::ALL
        .into_iter()
        .map(|k| SettingOut {
            kind: k.as_str(),
            label: k.label(),
            enabled: !off.iter().any(|o| o == k.as_str()),
        })
        .collect())
}

/// Turns kinds on or off; kinds left out keep their setting.
pub async fn update_settings(
    state: &AppState,
    ctx: &Ctx,
    changes: &BTreeMap<String, bool>,
) -> AppResult<Vec<SettingOut>> {
    let user = person(ctx)?;
    let mut v = meridian_core::Validation::new();
    let kinds: Vec<(Kind, bool)> = changes
        .iter()
        .filter_map(|(name, on)| match Kind::parse(name) {
            Some(kind) => Some((kind, *on)),
            None => {
                v.add(name, "is not a kind of notification");
                None
            }
        })
        .collect();
    v.finish().map_err(AppError::Validation)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    for (kind, on) in kinds {
        store::set_enabled(&mut tx, user, kind, on).await?;
    }
    tx.commit().await?;
    current_settings(state, ctx).await
}

#[utoipa::path(get, path = "/api/v1/me/notification-settings", tag = "notifications",
    responses((status = 200, body = Vec<SettingOut>)))]
pub async fn settings(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<Vec<SettingOut>>> {
    Ok(axum::Json(current_settings(&state, &ctx).await?))
}

/// `{"task_overdue": false, ...}`: kinds left out keep their setting.
#[utoipa::path(put, path = "/api/v1/me/notification-settings", tag = "notifications",
    request_body = Object,
    responses((status = 200, body = Vec<SettingOut>), (status = 422, body = Problem)))]
pub async fn save_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<BTreeMap<String, bool>>,
) -> AppResult<axum::Json<Vec<SettingOut>>> {
    Ok(axum::Json(update_settings(&state, &ctx, &body).await?))
}
