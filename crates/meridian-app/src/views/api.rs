use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::service::{self, ViewInput};
use super::store::ViewRow;
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::Json;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViewOut {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub shared: bool,
    pub pipeline_id: Option<String>,
    /// List parameters, as `GET /api/v1/leads` takes them.
    #[schema(value_type = Object)]
    pub filters: Value,
    pub sort: String,
    pub columns: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ViewRow> for ViewOut {
    fn from(v: ViewRow) -> Self {
        ViewOut {
            filters: serde_json::from_str(&v.filters).unwrap_or(Value::Null),
            columns: serde_json::from_str(&v.columns).unwrap_or_default(),
            id: v.id,
            owner_id: v.owner_id,
            name: v.name,
            shared: v.shared,
            pipeline_id: v.pipeline_id,
            sort: v.sort,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViewList {
    pub items: Vec<ViewOut>,
    /// Always null: a person has at most a few hundred views.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewRequest {
    pub name: Option<String>,
    /// Shared with the whole organization (managers and above).
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub pipeline_id: Option<Option<String>>,
    /// List filters by parameter name (`stage`, `assigned_to`, `q`, `cf.<key>`, ...).
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
    /// A list sort such as `-created_at`.
    pub sort: Option<String>,
    /// Columns shown, in order.
    pub columns: Option<Vec<String>>,
}

impl From<ViewRequest> for ViewInput {
    fn from(r: ViewRequest) -> Self {
        ViewInput {
            name: r.name,
            shared: r.shared,
            pipeline_id: r.pipeline_id,
            filters: r.filters,
            sort: r.sort,
            columns: r.columns,
        }
    }
}

/// Your saved views and those shared with the organization.
#[utoipa::path(get, path = "/api/v1/views", tag = "leads", responses((status = 200, body = ViewList)))]
pub async fn list(State(state): State<AppState>, ctx: Ctx) -> AppResult<axum::Json<ViewList>> {
    let items = service::list(&state, &ctx).await?;
    Ok(axum::Json(ViewList {
        items: items.into_iter().map(ViewOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/views", tag = "leads", request_body = ViewRequest,
    responses((status = 201, body = ViewOut), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<ViewRequest>,
) -> AppResult<(StatusCode, axum::Json<ViewOut>)> {
    let view = service::create(&state, &ctx, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(view.into())))
}

#[utoipa::path(patch, path = "/api/v1/views/{id}", tag = "leads", params(("id" = String, Path)),
    request_body = ViewRequest,
    responses((status = 200, body = ViewOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<ViewRequest>,
) -> AppResult<axum::Json<ViewOut>> {
    Ok(axum::Json(
        service::update(&state, &ctx, &id, body.into())
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/views/{id}", tag = "leads", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
