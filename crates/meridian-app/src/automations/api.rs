use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::definition::Definition;
use super::service::{self, AutomationInput, GALLERY};
use super::store::{AutomationRow, RunRow, StepRow, VersionRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AutomationOut {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The current version's number; runs record the version they ran.
    pub version: i64,
    pub definition: Definition,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl TryFrom<AutomationRow> for AutomationOut {
    type Error = AppError;
    fn try_from(a: AutomationRow) -> Result<Self, AppError> {
        Ok(AutomationOut {
            definition: serde_json::from_str(&a.definition)
                .map_err(|e| AppError::Internal(e.into()))?,
            id: a.id,
            name: a.name,
            enabled: a.enabled,
            version: a.version,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationRequest {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    /// Trigger, conditions and actions; a change makes a new version.
    pub definition: Option<Value>,
}

/// Reads the definition, naming what does not fit (an unknown trigger or action type, a missing
/// field) in a 422.
fn input(body: AutomationRequest) -> AppResult<AutomationInput> {
    let definition = match body.definition {
        None => None,
        Some(value) => Some(
            serde_path_to_error::deserialize::<_, Definition>(value).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." || path.is_empty() {
                    "definition".to_owned()
                } else {
                    format!("definition.{path}")
                };
                AppError::field(&field, e.into_inner().to_string())
            })?,
        ),
    };
    Ok(AutomationInput {
        name: body.name,
        enabled: body.enabled,
        definition,
    })
}

#[utoipa::path(get, path = "/api/v1/automations", tag = "automations",
    responses((status = 200, body = inline(Page<AutomationOut>)), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<Page<AutomationOut>>> {
    let items = service::list(&state, &ctx)
        .await?
        .into_iter()
        .map(AutomationOut::try_from)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(axum::Json(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/automations", tag = "automations", request_body = AutomationRequest,
    responses((status = 201, body = AutomationOut), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<AutomationRequest>,
) -> AppResult<(StatusCode, axum::Json<AutomationOut>)> {
    let row = service::create(&state, &ctx, input(body)?).await?;
    Ok((StatusCode::CREATED, axum::Json(row.try_into()?)))
}

#[utoipa::path(get, path = "/api/v1/automations/{id}", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = AutomationOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<AutomationOut>> {
    Ok(axum::Json(
        service::get(&state, &ctx, &id).await?.try_into()?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/automations/{id}", tag = "automations", params(("id" = String, Path)),
    request_body = AutomationRequest,
    responses((status = 200, body = AutomationOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<AutomationRequest>,
) -> AppResult<axum::Json<AutomationOut>> {
    Ok(axum::Json(
        service::update(&state, &ctx, &id, input(body)?)
            .await?
            .try_into()?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/automations/{id}", tag = "automations", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionOut {
    pub version: i64,
    pub definition: Value,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<VersionRow> for VersionOut {
    fn from(v: VersionRow) -> Self {
        VersionOut {
            version: v.version,
            definition: serde_json::from_str(&v.definition).unwrap_or(Value::Null),
            created_by: v.created_by,
            created_at: v.created_at,
        }
    }
}

/// Every version of the definition, newest first.
#[utoipa::path(get, path = "/api/v1/automations/{id}/versions", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = inline(Page<VersionOut>)), (status = 404, body = Problem)))]
pub async fn versions(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Page<VersionOut>>> {
    let rows = service::versions(&state, &ctx, &id).await?;
    Ok(axum::Json(Page {
        items: rows.into_iter().map(VersionOut::from).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepOut {
    pub seq: i64,
    /// The instruction's position in the compiled actions.
    pub position: i64,
    pub action: String,
    /// succeeded or failed.
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    pub attempt: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub duration_ms: i64,
}

impl From<StepRow> for StepOut {
    fn from(s: StepRow) -> Self {
        StepOut {
            duration_ms: i64::try_from((s.finished_at - s.started_at).whole_milliseconds())
                .unwrap_or(i64::MAX),
            seq: s.seq,
            position: s.pc,
            action: s.action,
            status: s.status,
            output: serde_json::from_str(&s.output).unwrap_or(Value::Null),
            error: s.error,
            attempt: s.attempt,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunOut {
    pub id: String,
    pub automation_id: String,
    pub automation_name: String,
    /// The version of the definition it ran.
    pub version: i64,
    pub lead_id: Option<String>,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
    /// The triggering event.
    pub event: Value,
    /// The automation whose change caused it, if any.
    pub caused_by: Option<String>,
    /// queued, waiting, succeeded, skipped (conditions did not hold) or failed.
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resume_at: Option<OffsetDateTime>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Present on a single run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepOut>>,
}

impl From<RunRow> for RunOut {
    fn from(r: RunRow) -> Self {
        RunOut {
            id: r.id,
            automation_id: r.automation_id,
            automation_name: r.automation_name,
            version: r.version,
            lead_id: r.lead_id,
            lead_number: r.lead_number,
            lead_name: r.lead_name,
            event: serde_json::from_str(&r.event).unwrap_or(Value::Null),
            caused_by: r.caused_by,
            status: r.status,
            resume_at: r.resume_at,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            steps: None,
        }
    }
}

fn with_steps((run, steps): (RunRow, Vec<StepRow>)) -> RunOut {
    RunOut {
        steps: Some(steps.into_iter().map(StepOut::from).collect()),
        ..run.into()
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RunQuery {
    /// queued, waiting, succeeded, skipped or failed.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The automation's runs, newest first.
#[utoipa::path(get, path = "/api/v1/automations/{id}/runs", tag = "automations",
    params(("id" = String, Path), RunQuery),
    responses((status = 200, body = inline(Page<RunOut>)), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn runs(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
) -> AppResult<axum::Json<Page<RunOut>>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !["queued", "waiting", "succeeded", "skipped", "failed"].contains(&s)
    {
        return Err(AppError::field(
            "status",
            "must be queued, waiting, succeeded, skipped or failed",
        ));
    }
    let rows = service::runs(
        &state,
        &ctx,
        &id,
        status,
        page.after_time()?,
        page.fetch_limit(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |r| time_cursor(r.created_at, &r.id)).map(RunOut::from),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualRunRequest {
    /// Up to 500 leads.
    pub lead_ids: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ManualRunResult {
    pub lead_id: String,
    /// 202 started; 404 no such lead.
    pub status: u16,
    pub run_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ManualRunResponse {
    pub results: Vec<ManualRunResult>,
}

/// Runs the automation on selected leads now (whatever its trigger).
#[utoipa::path(post, path = "/api/v1/automations/{id}/runs", tag = "automations",
    params(("id" = String, Path)), request_body = ManualRunRequest,
    responses((status = 200, body = ManualRunResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn run_manually(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<ManualRunRequest>,
) -> AppResult<axum::Json<ManualRunResponse>> {
    let results = service::run_manually(&state, &ctx, &id, &body.lead_ids).await?;
    Ok(axum::Json(ManualRunResponse {
        results: results
            .into_iter()
            .map(|(lead_id, outcome)| match outcome {
                Ok(run) => ManualRunResult {
                    lead_id,
                    status: 202,
                    run_id: Some(run),
                    error: None,
                },
                Err(error) => ManualRunResult {
                    lead_id,
                    status: 404,
                    run_id: None,
                    error: Some(error),
                },
            })
            .collect(),
    }))
}

/// One run with each step's status, output, error and timing.
#[utoipa::path(get, path = "/api/v1/automation-runs/{id}", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = Problem)))]
pub async fn run(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<RunOut>> {
    Ok(axum::Json(with_steps(
        service::run(&state, &ctx, &id).await?,
    )))
}

/// Runs a failed run again from the step that failed.
#[utoipa::path(post, path = "/api/v1/automation-runs/{id}/retry", tag = "automations", params(("id" = String, Path)),
    responses((status = 200, body = RunOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<RunOut>> {
    Ok(axum::Json(with_steps(
        service::retry(&state, &ctx, &id).await?,
    )))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GalleryOut {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

/// Ready-made automations.
#[utoipa::path(get, path = "/api/v1/automations/gallery", tag = "automations",
    responses((status = 200, body = inline(Page<GalleryOut>))))]
pub async fn gallery(ctx: Ctx) -> AppResult<axum::Json<Page<GalleryOut>>> {
    ctx.require(meridian_core::Permission::AutomationsManage)?;
    Ok(axum::Json(Page {
        items: GALLERY
            .iter()
            .map(|g| GalleryOut {
                key: g.key,
                name: g.name,
                description: g.description,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Creates a gallery automation, turned off so it can be reviewed first.
#[utoipa::path(post, path = "/api/v1/automations/gallery/{key}", tag = "automations", params(("key" = String, Path)),
    responses((status = 201, body = AutomationOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create_from_gallery(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(key): Path<String>,
) -> AppResult<(StatusCode, axum::Json<AutomationOut>)> {
    let row = service::create_from_gallery(&state, &ctx, &key).await?;
    Ok((StatusCode::CREATED, axum::Json(row.try_into()?)))
}
