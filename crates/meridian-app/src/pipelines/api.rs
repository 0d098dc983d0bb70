use axum::extract::{Path, State};
use axum::http::StatusCode;
use meridian_core::Role;
use meridian_core::crm::{ActivityKind, LeadSource, Picklist, TaskType};
use meridian_core::pipeline::{FieldDef, FieldType, PipelineSpec, Stage, StageCategory};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{self, PipelineChange};
use super::store::Pipeline;
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::Json;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PipelineOut {
    pub id: String,
    pub name: String,
    pub singular_label: String,
    pub plural_label: String,
    pub position: i64,
    pub stages: Vec<Stage>,
    pub fields: Vec<FieldDef>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Pipeline> for PipelineOut {
    fn from(p: Pipeline) -> Self {
        PipelineOut {
            id: p.id,
            name: p.spec.name,
            singular_label: p.spec.singular_label,
            plural_label: p.spec.plural_label,
            position: p.position,
            stages: p.spec.stages,
            fields: p.spec.fields,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PipelineList {
    pub items: Vec<PipelineOut>,
    /// Always null: an organization has at most a handful of pipelines.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreatePipelineRequest {
    pub name: String,
    /// Default: the name without a trailing "s".
    pub singular_label: Option<String>,
    /// Default: the name.
    pub plural_label: Option<String>,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdatePipelineRequest {
    pub name: Option<String>,
    pub singular_label: Option<String>,
    pub plural_label: Option<String>,
    /// Replaces every stage, in this order. Stages holding records cannot be left out.
    pub stages: Option<Vec<Stage>>,
    /// Replaces every custom field, in this order.
    pub fields: Option<Vec<FieldDef>>,
}

/// The organization's pipelines with their stages and custom fields.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines",
    responses((status = 200, body = PipelineList)))]
pub async fn list(State(state): State<AppState>, ctx: Ctx) -> AppResult<axum::Json<PipelineList>> {
    let items = service::list(&state, &ctx).await?;
    Ok(axum::Json(PipelineList {
        items: items.into_iter().map(PipelineOut::from).collect(),
        next_cursor: None,
    }))
}

/// Creates a pipeline (admins).
#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", request_body = CreatePipelineRequest,
    responses((status = 201, body = PipelineOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<CreatePipelineRequest>,
) -> AppResult<(StatusCode, axum::Json<PipelineOut>)> {
    let plural = body.plural_label.unwrap_or_else(|| body.name.clone());
    let singular = body.singular_label.unwrap_or_else(|| {
        let trimmed = plural.trim();
        trimmed.strip_suffix('s').unwrap_or(trimmed).to_owned()
    });
    let spec = PipelineSpec {
        name: body.name,
        singular_label: singular,
        plural_label: plural,
        stages: body.stages,
        fields: body.fields,
    };
    let pipeline = service::create(&state, &ctx, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(pipeline.into())))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path)),
    responses((status = 200, body = PipelineOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<PipelineOut>> {
    Ok(axum::Json(service::get(&state, &ctx, &id).await?.into()))
}

/// Changes a pipeline's labels, stages or fields (admins). Removing a stage that holds records
/// answers 409 with the counts.
#[utoipa::path(patch, path = "/api/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path)),
    request_body = UpdatePipelineRequest,
    responses((status = 200, body = PipelineOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<UpdatePipelineRequest>,
) -> AppResult<axum::Json<PipelineOut>> {
    let change = PipelineChange {
        name: body.name,
        singular_label: body.singular_label,
        plural_label: body.plural_label,
        stages: body.stages,
        fields: body.fields,
    };
    Ok(axum::Json(
        service::update(&state, &ctx, &id, change).await?.into(),
    ))
}

/// Deletes an empty pipeline (admins); one with records answers 409 with the count.
#[utoipa::path(delete, path = "/api/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

fn choices<T: Picklist>() -> Vec<Choice> {
    T::ALL
        .iter()
        .map(|v| Choice {
            value: v.as_str(),
            label: v.label(),
        })
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Metadata {
    pub pipelines: Vec<PipelineOut>,
    pub sources: Vec<Choice>,
    pub roles: Vec<Choice>,
    pub task_types: Vec<Choice>,
    pub activity_types: Vec<Choice>,
    pub stage_categories: Vec<Choice>,
    pub field_types: Vec<Choice>,
}

/// Every picklist a client needs, so none is hard-coded.
#[utoipa::path(get, path = "/api/v1/metadata", tag = "pipelines",
    responses((status = 200, body = Metadata)))]
pub async fn metadata(State(state): State<AppState>, ctx: Ctx) -> AppResult<axum::Json<Metadata>> {
    let pipelines = service::list(&state, &ctx).await?;
    Ok(axum::Json(Metadata {
        pipelines: pipelines.into_iter().map(PipelineOut::from).collect(),
        sources: choices::<LeadSource>(),
        roles: Role::ALL
            .iter()
            .map(|r| Choice {
                value: r.as_str(),
                label: r.label(),
            })
            .collect(),
        task_types: choices::<TaskType>(),
        activity_types: choices::<ActivityKind>(),
        stage_categories: choices::<StageCategory>(),
        field_types: choices::<FieldType>(),
    }))
}
