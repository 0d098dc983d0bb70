//! The home page: where a new organization starts.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_db::sql;
use serde::Deserialize;

use super::{Shell, WebCtx, WebResult, render};
use crate::http::ctx::Ctx;
use crate::http::json::Query;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    shell: Shell,
    members: i64,
    pending_invites: i64,
    active_keys: i64,
    first_name: String,
}

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    notice: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ctx: Option<Ctx>,
    Query(q): Query<HomeQuery>,
) -> WebResult {
    let Some(ctx) = ctx else {
        return Ok(Redirect::to("/login").into_response());
    };
    let web = WebCtx {
        ctx,
        theme: super::theme_from(&headers),
        path: "/".to_owned(),
    };
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let org_id = tx.org_id();
    let members = tx
        .fetch_count(sql("SELECT COUNT(*) FROM memberships WHERE org_id = $1").bind(&org_id))
        .await?;
    let pending_invites = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM invites WHERE org_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2")
                .bind(&org_id)
                .bind(meridian_db::now()),
        )
        .await?;
    let active_keys = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL")
                .bind(&org_id),
        )
        .await?;
    tx.commit().await?;
    let mut shell = web.shell(&state, "Home", "home").await?;
    if q.notice.as_deref() == Some("welcome") {
        shell.notice = Some("Welcome to Meridian! Your organization is ready.".to_owned());
    }
    let can_see_keys = web.ctx.role.allows(Permission::ApiKeysManage);
    Ok(render(&HomePage {
        first_name: shell
            .user_name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned(),
        shell,
        members,
        pending_invites,
        active_keys: if can_see_keys { active_keys } else { 0 },
    }))
}
