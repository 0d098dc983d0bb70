use axum::extract::{Query, State};
use meridian_core::Permission;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::{self, AuditRow};
use crate::http::ctx::Ctx;
use crate::http::error::AppResult;
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub actor: AuditActor,
    pub action: String,
    pub target: AuditTarget,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditActor {
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub label: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
}

fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        AuditEntry {
            id: row.id,
            actor: AuditActor {
                user_id: row.actor_user_id,
                api_key_id: row.actor_api_key_id,
                label: row.actor_label,
            },
            action: row.action,
            target: AuditTarget {
                kind: row.target_type,
                id: row.target_id,
                label: row.target_label,
            },
            before: parse_json(row.before_json),
            after: parse_json(row.after_json),
            client_ip: row.client_ip,
            request_id: row.request_id,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only entries with this action, e.g. `member.role_changed`.
    pub action: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Loads one page of the audit log (shared by the API and the web page).
pub async fn load_page(
    state: &AppState,
    ctx: &Ctx,
    query: &AuditQuery,
) -> AppResult<Page<AuditEntry>> {
    ctx.require(Permission::AuditRead)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let action = query.action.as_deref().filter(|a| !a.is_empty());
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::list(&mut tx, &page, action).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, &page, |r| vec![r.id.clone()]).map(AuditEntry::from))
}

/// The organization's audit log, newest first (admins).
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = inline(Page<AuditEntry>)), (status = 403, body = crate::http::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<AuditQuery>,
) -> AppResult<axum::Json<Page<AuditEntry>>> {
    load_page(&state, &ctx, &query).await.map(axum::Json)
}
