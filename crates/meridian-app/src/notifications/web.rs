//! Pages: the notifications list (open one to mark it read and go where it points, or mark all
//! read) and Settings → Notifications (which kinds a person gets).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::api::{self, NotificationPage, SettingOut};
use super::store;
use crate::http::json::Query;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(page))
        .route("/notifications/read-all", post(read_all))
        .route("/notifications/{id}/open", post(open))
        .route(
            "/settings/notifications",
            get(settings_page).post(settings_submit),
        )
}

pub struct ItemView {
    pub id: String,
    pub title: String,
    pub body: String,
    pub actor: String,
    pub read: bool,
    pub when: String,
    pub when_exact: String,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    shell: Shell,
    unread_only: bool,
    unread_count: i64,
    items: Vec<ItemView>,
    next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub show: Option<String>,
    pub cursor: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<ListQuery>,
) -> WebResult {
    let unread_only = q.show.as_deref() == Some("unread");
    let NotificationPage {
        items,
        next_cursor,
        unread_count,
    } = api::page(&state, &web.ctx, unread_only, q.cursor.as_deref(), None).await?;
    let shell = web.shell(&state, "Notifications", "notifications").await?;
    Ok(render(&NotificationsPage {
        shell,
        unread_only,
        unread_count,
        items: items
            .into_iter()
            .map(|n| ItemView {
                when: relative(n.created_at),
                when_exact: exact(n.created_at),
                id: n.id,
                title: n.title,
                body: n.body,
                actor: n.actor.unwrap_or_default(),
                read: n.read,
            })
            .collect(),
        next_cursor,
    }))
}

/// Marks the notification read and goes where it points.
pub async fn open(State(state): State<AppState>, web: WebCtx, Path(id): Path<String>) -> WebResult {
    let user = api::person(&web.ctx)?.to_owned();
    api::mark_read(&state, &web.ctx, &id).await?;
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let link = store::find(&mut tx, &user, &id)
        .await?
        .map(|n| n.link)
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .unwrap_or_else(|| "/notifications".to_owned());
    tx.commit().await?;
    Ok(Redirect::to(&link).into_response())
}

pub async fn read_all(State(state): State<AppState>, web: WebCtx) -> WebResult {
    api::mark_all_read(&state, &web.ctx).await?;
    Ok(Redirect::to("/notifications").into_response())
}

#[derive(Template)]
#[template(path = "notification_settings.html")]
struct SettingsPage {
    shell: Shell,
    settings: Vec<SettingOut>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

pub async fn settings_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let settings = api::current_settings(&state, &web.ctx).await?;
    let mut shell = web
        .shell(&state, "Notification settings", "notification-settings")
        .await?;
    if q.notice.as_deref() == Some("saved") {
        shell.notice = Some("Notification settings saved.".to_owned());
    }
    Ok(render(&SettingsPage { shell, settings }))
}

/// The form sends the checked kinds; every kind not sent is turned off.
pub async fn settings_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<Vec<(String, String)>>,
) -> WebResult {
    let on: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "kind")
        .map(|(_, v)| v.as_str())
        .collect();
    let changes: BTreeMap<String, bool> = super::Kind::ALL
        .into_iter()
        .map(|k| (k.as_str().to_owned(), on.contains(&k.as_str())))
        .collect();
    api::update_settings(&state, &web.ctx, &changes).await?;
    Ok(Redirect::to("/settings/notifications?notice=saved").into_response())
}
