//! The home page: where a new organization starts.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use serde::Deserialize;

use super::{MaybeSession, Shell, WebCtx, WebResult, render};
use crate::apikeys::store as key_store;
use crate::http::json::Query;
use crate::orgs::store as org_store;
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
    MaybeSession(ctx): MaybeSession,
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
    let members = org_store::count_members(&mut tx).await?;
    let pending_invites = org_store::count_live_invites(&mut tx).await?;
    let active_keys = key_store::count_active(&mut tx).await?;
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
