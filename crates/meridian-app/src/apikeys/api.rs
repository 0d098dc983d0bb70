use axum::extract::{Path, State};
use axum::http::StatusCode;
use meridian_core::Permission;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{self, CreateInput};
use super::store::{self, ApiKeyRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, PageRequest};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The key's first characters, to recognize it.
    pub prefix: String,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        ApiKey {
            id: row.id,
            name: row.name,
            role: row.role,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    /// The key itself. It is shown only in this response; store it now.
    pub secret: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// The role the key acts with (at most your own).
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Creates an API key (admins). The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<CreateApiKeyRequest>,
) -> AppResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    let (row, secret) = service::create(
        &state,
        &ctx,
        CreateInput {
            name: body.name,
            role: body.role,
            expires_at: body.expires_at,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            id: row.id,
            name: row.name,
            role: row.role,
            prefix: row.prefix,
            secret,
            expires_at: row.expires_at,
        }),
    ))
}

pub async fn load_page(state: &AppState, ctx: &Ctx, page: &PageRequest) -> AppResult<Page<ApiKey>> {
    ctx.require(Permission::ApiKeysManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::list(&mut tx, page).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |k| vec![k.id.clone()]).map(ApiKey::from))
}

/// The organization's API keys, newest first (admins). Secrets are never returned.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(PageQuery),
    responses((status = 200, body = inline(Page<ApiKey>)), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<ApiKey>>> {
    let page = query.parse()?;
    load_page(&state, &ctx, &page).await.map(axum::Json)
}

/// Revokes an API key (admins); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::revoke(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
