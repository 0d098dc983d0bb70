//! Watching a lead: people other than its owner who want to hear of its stage changes.

use axum::extract::{Path, State};
use meridian_core::Permission;
use meridian_db::{TenantTx, sql};
use serde::Serialize;

use super::service;
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::state::AppState;

/// The lead's watchers' user ids.
pub async fn user_ids(tx: &mut TenantTx, lead_id: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT w.user_id FROM lead_watchers w JOIN memberships m \
                 ON m.org_id = w.org_id AND m.user_id = w.user_id AND m.disabled = false \
                 WHERE w.org_id = $1 AND w.lead_id = $2 ORDER BY w.user_id")
            .bind(&org_id)
            .bind(lead_id),
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Watcher {
    pub user_id: String,
    pub name: String,
}

/// Starts (`on`) or stops watching `lead_id` as the signed-in person; returns the watchers.
pub async fn set(state: &AppState, ctx: &Ctx, lead_id: &str, on: bool) -> AppResult<Vec<Watcher>> {
    ctx.require(Permission::LeadsRead)?;
    let user = ctx.user_id().ok_or_else(|| {
        AppError::Forbidden("only people can watch leads, not API keys".to_owned())
    })?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    service::visible(&mut tx, ctx, lead_id).await?;
    let org_id = tx.org_id();
    if on {
        tx.execute(
            sql("INSERT INTO lead_watchers (org_id, lead_id, user_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING")
            .bind(&org_id)
            .bind(lead_id)
            .bind(user)
            .bind(meridian_db::now()),
        )
        .await?;
    } else {
        tx.execute(
            sql("DELETE FROM lead_watchers WHERE org_id = $1 AND lead_id = $2 AND user_id = $3")
                .bind(&org_id)
                .bind(lead_id)
                .bind(user),
        )
        .await?;
    }
    let watchers = listed(&mut tx, lead_id).await?;
    tx.commit().await?;
    Ok(watchers)
}

async fn listed(tx: &mut TenantTx, lead_id: &str) -> sqlx::Result<Vec<Watcher>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT w.user_id, u.name FROM lead_watchers w JOIN users u ON u.id = w.user_id \
             WHERE w.org_id = $1 AND w.lead_id = $2 ORDER BY u.name, w.user_id",
        )
        .bind(&org_id)
        .bind(lead_id),
    )
    .await
}

/// The lead's watchers.
pub async fn list(state: &AppState, ctx: &Ctx, lead_id: &str) -> AppResult<Vec<Watcher>> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    service::visible(&mut tx, ctx, lead_id).await?;
    let watchers = listed(&mut tx, lead_id).await?;
    tx.commit().await?;
    Ok(watchers)
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/watchers", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Watcher>), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Vec<Watcher>>> {
    Ok(axum::Json(list(&state, &ctx, &id).await?))
}

/// Watch the lead: its stage changes notify you.
#[utoipa::path(put, path = "/api/v1/leads/{id}/watchers/me", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Watcher>), (status = 404, body = Problem)))]
pub async fn watch(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Vec<Watcher>>> {
    Ok(axum::Json(set(&state, &ctx, &id, true).await?))
}

#[utoipa::path(delete, path = "/api/v1/leads/{id}/watchers/me", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Watcher>), (status = 404, body = Problem)))]
pub async fn unwatch(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Vec<Watcher>>> {
    Ok(axum::Json(set(&state, &ctx, &id, false).await?))
}
