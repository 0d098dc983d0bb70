use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use meridian_core::crm::ActivityKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::activity::ActivityRow;
use super::input::LeadInput;
use super::service::{self, Action, Lead};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeadOut {
    pub id: String,
    pub number: i64,
    /// The number as people see it: `00042`.
    pub display_number: String,
    pub pipeline_id: String,
    pub stage: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub date_of_birth: Option<String>,
    pub source: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub meta_ad_id: Option<String>,
    pub meta_form_id: Option<String>,
    pub campaign_id: Option<String>,
    pub assigned_to: Option<String>,
    pub assignee_name: Option<String>,
    pub created_by: Option<String>,
    pub is_priority: bool,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub custom_fields: Value,
    #[serde(with = "time::serde::rfc3339::option")]
    pub archived_at: Option<OffsetDateTime>,
    pub archived_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub stage_entered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub fn display_number(number: i64) -> String {
    format!("{number:05}")
}

impl From<Lead> for LeadOut {
    fn from(lead: Lead) -> Self {
        let r = lead.row;
        LeadOut {
            display_number: display_number(r.number),
            custom_fields: serde_json::from_str(&r.custom_fields).unwrap_or(Value::Null),
            tags: lead.tags,
            id: r.id,
            number: r.number,
            pipeline_id: r.pipeline_id,
            stage: r.stage,
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            phone: r.phone,
            state: r.state,
            country: r.country,
            date_of_birth: r.date_of_birth,
            source: r.source,
            utm_source: r.utm_source,
            utm_medium: r.utm_medium,
            utm_campaign: r.utm_campaign,
            utm_content: r.utm_content,
            utm_term: r.utm_term,
            meta_ad_id: r.meta_ad_id,
            meta_form_id: r.meta_form_id,
            campaign_id: r.campaign_id,
            assigned_to: r.assigned_to,
            assignee_name: r.assignee_name,
            created_by: r.created_by,
            is_priority: r.is_priority,
            archived_at: r.archived_at,
            archived_by: r.archived_by,
            stage_entered_at: r.stage_entered_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Query-string pairs in order (repeated names and `cf.<key>` filters included).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn lead_page((leads, next): (Vec<Lead>, Option<String>)) -> Page<LeadOut> {
    Page {
        items: leads.into_iter().map(LeadOut::from).collect(),
        next_cursor: next,
    }
}

/// Lists leads. Filters: `pipeline_id`, `stage` (comma-separated), `assigned_to` (a user id, `me`
/// or `unassigned`), `source`, `tag`, `priority`, `archived` (`false` default, `true`, `all`),
/// `created_after`/`created_before`/`updated_after`/`updated_before` (RFC 3339), `q` (full-text
/// over name, email, phone and notes), `cf.<key>=value` (custom fields; needs `pipeline_id`).
/// `sort` is a column name, `-` prefixed for descending (default `-number`).
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads",
    params(
        ("pipeline_id" = Option<String>, Query), ("stage" = Option<String>, Query),
        ("assigned_to" = Option<String>, Query), ("source" = Option<String>, Query),
        ("tag" = Option<String>, Query), ("priority" = Option<bool>, Query),
        ("archived" = Option<String>, Query), ("created_after" = Option<String>, Query),
        ("created_before" = Option<String>, Query), ("updated_after" = Option<String>, Query),
        ("updated_before" = Option<String>, Query), ("q" = Option<String>, Query),
        ("sort" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, body = inline(Page<LeadOut>)), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> AppResult<axum::Json<Page<LeadOut>>> {
    let params = query_pairs(raw.as_deref());
    Ok(axum::Json(lead_page(
        service::list(&state, &ctx, &params).await?,
    )))
}

/// Creates a lead. Contact fields are normalized (E.164 phone, ISO state and country codes,
/// lower-case email); an email already used by an active lead answers 409 with `existing_id`.
#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", request_body = LeadInput,
    responses((status = 201, body = LeadOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<LeadInput>,
) -> AppResult<(StatusCode, axum::Json<LeadOut>)> {
    let lead = service::create(&state, &ctx, body).await?;
    Ok((StatusCode::CREATED, axum::Json(lead.into())))
}

#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = LeadOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<LeadOut>> {
    let (lead, _) = service::get(&state, &ctx, &id).await?;
    Ok(axum::Json(lead.into()))
}

/// Changes a lead's fields; fields left out stay, `null` clears. Stage, assignee, priority and
/// pipeline have their own endpoints.
#[utoipa::path(patch, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)),
    request_body = LeadInput,
    responses((status = 200, body = LeadOut), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<LeadInput>,
) -> AppResult<axum::Json<LeadOut>> {
    Ok(axum::Json(
        service::update(&state, &ctx, &id, body).await?.into(),
    ))
}

/// Deletes a lead with its notes, tasks and activity (managers and above).
#[utoipa::path(delete, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StageRequest {
    pub stage: String,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AssignRequest {
    /// `null` unassigns.
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PriorityRequest {
    pub is_priority: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MoveRequest {
    pub pipeline_id: String,
    pub stage: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DenyRequest {
    pub reason: String,
}

async fn act(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    action: Action,
) -> AppResult<axum::Json<LeadOut>> {
    Ok(axum::Json(
        service::act(state, ctx, id, action).await?.into(),
    ))
}

/// Moves a lead to another stage of its pipeline. Stages owned by another role answer 403 with
/// the reason.
#[utoipa::path(post, path = "/api/v1/leads/{id}/stage", tag = "leads", params(("id" = String, Path)),
    request_body = StageRequest,
    responses((status = 200, body = LeadOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn stage(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<StageRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    act(
        &state,
        &ctx,
        &id,
        Action::Stage {
            stage: body.stage,
            reason: body.reason,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/assign", tag = "leads", params(("id" = String, Path)),
    request_body = AssignRequest,
    responses((status = 200, body = LeadOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn assign(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<AssignRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    act(
        &state,
        &ctx,
        &id,
        Action::Assign {
            user_id: body.user_id,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/priority", tag = "leads", params(("id" = String, Path)),
    request_body = PriorityRequest,
    responses((status = 200, body = LeadOut), (status = 404, body = Problem)))]
pub async fn priority(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<PriorityRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    act(
        &state,
        &ctx,
        &id,
        Action::Priority {
            is_priority: body.is_priority,
        },
    )
    .await
}

/// Archives a lead; it leaves the default list and frees its email for another active lead.
#[utoipa::path(post, path = "/api/v1/leads/{id}/archive", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = LeadOut), (status = 404, body = Problem)))]
pub async fn archive(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<LeadOut>> {
    act(&state, &ctx, &id, Action::Archive).await
}

/// Restores an archived lead to the stage it had; 409 with `existing_id` when an active lead has
/// taken its email meanwhile.
#[utoipa::path(post, path = "/api/v1/leads/{id}/restore", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = LeadOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn restore(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<LeadOut>> {
    act(&state, &ctx, &id, Action::Restore).await
}

/// Moves a lead to a stage of another pipeline. Custom fields the other pipeline lacks are
/// dropped (kept in the activity event).
#[utoipa::path(post, path = "/api/v1/leads/{id}/move", tag = "leads", params(("id" = String, Path)),
    request_body = MoveRequest,
    responses((status = 200, body = LeadOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn move_pipeline(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<MoveRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    act(
        &state,
        &ctx,
        &id,
        Action::Move {
            pipeline_id: body.pipeline_id,
            stage: body.stage,
        },
    )
    .await
}

/// Accepts a handed-off lead: it moves to the stage after the handoff stage, assigned to you.
#[utoipa::path(post, path = "/api/v1/leads/{id}/accept", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, body = LeadOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn accept(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<LeadOut>> {
    act(&state, &ctx, &id, Action::Accept).await
}

/// Denies a handoff: the lead returns to the stage's return stage, with the reason in its history.
#[utoipa::path(post, path = "/api/v1/leads/{id}/deny", tag = "leads", params(("id" = String, Path)),
    request_body = DenyRequest,
    responses((status = 200, body = LeadOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn deny(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<DenyRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    act(
        &state,
        &ctx,
        &id,
        Action::Deny {
            reason: body.reason,
        },
    )
    .await
}

/// Leads waiting in handoff stages you may accept (the same filters as the list).
#[utoipa::path(get, path = "/api/v1/leads/handoff-queue", tag = "leads",
    responses((status = 200, body = inline(Page<LeadOut>))))]
pub async fn handoff_queue(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> AppResult<axum::Json<Page<LeadOut>>> {
    let params = query_pairs(raw.as_deref());
    Ok(axum::Json(lead_page(
        service::handoff_queue(&state, &ctx, &params).await?,
    )))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityOut {
    pub id: String,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub actor_label: String,
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<ActivityRow> for ActivityOut {
    fn from(row: ActivityRow) -> Self {
        ActivityOut {
            id: row.id,
            kind: row.kind,
            actor_user_id: row.actor_user_id,
            actor_label: row.actor_label,
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
            created_at: row.created_at,
        }
    }
}

async fn activity_page(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    kinds: &[ActivityKind],
    query: &PageQuery,
) -> AppResult<axum::Json<Page<ActivityOut>>> {
    let page = query.parse()?;
    let rows = service::activity(state, ctx, id, kinds, &page).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |a| vec![a.id.clone()]).map(ActivityOut::from),
    ))
}

/// Everything that happened to a lead, newest first.
#[utoipa::path(get, path = "/api/v1/leads/{id}/activity", tag = "leads", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = inline(Page<ActivityOut>)), (status = 404, body = Problem)))]
pub async fn activity(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<ActivityOut>>> {
    activity_page(&state, &ctx, &id, &[], &query).await
}

/// The lead's stage changes (with reasons), handoffs and pipeline moves, newest first.
#[utoipa::path(get, path = "/api/v1/leads/{id}/history", tag = "leads", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = inline(Page<ActivityOut>)), (status = 404, body = Problem)))]
pub async fn history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<ActivityOut>>> {
    activity_page(&state, &ctx, &id, &ActivityKind::STAGE_HISTORY, &query).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Assign,
    Stage,
    Archive,
    Restore,
    Tag,
    Untag,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BulkRequest {
    /// At most 500 lead ids.
    pub ids: Vec<String>,
    pub action: BulkAction,
    /// For `assign` (`null` unassigns).
    pub user_id: Option<String>,
    /// For `stage`.
    pub stage: Option<String>,
    pub reason: Option<String>,
    /// For `tag` and `untag`.
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkItemResult {
    pub id: String,
    pub ok: bool,
    /// The HTTP status this lead's change would have answered alone.
    pub status: u16,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResponse {
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<BulkItemResult>,
}

pub const MAX_BULK: usize = 500;

/// Applies one action to many leads. Each lead succeeds or fails on its own (in its own
/// transaction) and reports its own error.
#[utoipa::path(post, path = "/api/v1/leads/bulk", tag = "leads", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 422, body = Problem)))]
pub async fn bulk(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<BulkRequest>,
) -> AppResult<axum::Json<BulkResponse>> {
    let action = bulk_action(&body)?;
    let results = service::bulk(&state, &ctx, &body.ids, &action).await?;
    let results: Vec<BulkItemResult> = results
        .into_iter()
        .map(|(id, result)| match result {
            Ok(()) => BulkItemResult {
                id,
                ok: true,
                status: 200,
                error: None,
            },
            Err(e) => BulkItemResult {
                id,
                ok: false,
                status: e.status().as_u16(),
                error: Some(e.detail()),
            },
        })
        .collect();
    let succeeded = results.iter().filter(|r| r.ok).count();
    Ok(axum::Json(BulkResponse {
        succeeded,
        failed: results.len() - succeeded,
        results,
    }))
}

pub fn bulk_action(body: &BulkRequest) -> AppResult<Action> {
    if body.ids.is_empty() || body.ids.len() > MAX_BULK {
        return Err(AppError::field(
            "ids",
            format!("must list 1 to {MAX_BULK} leads"),
        ));
    }
    let tags = || {
        body.tags
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AppError::field("tags", "is required for this action"))
    };
    Ok(match body.action {
        BulkAction::Assign => Action::Assign {
            user_id: body.user_id.clone(),
        },
        BulkAction::Stage => Action::Stage {
            stage: body
                .stage
                .clone()
                .ok_or_else(|| AppError::field("stage", "is required for this action"))?,
            reason: body.reason.clone(),
        },
        BulkAction::Archive => Action::Archive,
        BulkAction::Restore => Action::Restore,
        BulkAction::Tag => Action::Tag {
            tags: tags()?,
            add: true,
        },
        BulkAction::Untag => Action::Tag {
            tags: tags()?,
            add: false,
        },
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MergeRequest {
    pub primary_id: String,
    pub duplicate_ids: Vec<String>,
}

/// Merges duplicates into a primary lead (managers and above): their notes, tasks, activity and
/// tags move to the primary, empty fields of the primary are filled from them, and the
/// duplicates are deleted.
#[utoipa::path(post, path = "/api/v1/leads/merge", tag = "leads", request_body = MergeRequest,
    responses((status = 200, body = LeadOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn merge(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<MergeRequest>,
) -> AppResult<axum::Json<LeadOut>> {
    let lead = service::merge(&state, &ctx, &body.primary_id, &body.duplicate_ids).await?;
    Ok(axum::Json(lead.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StageCountOut {
    pub pipeline_id: String,
    pub stage: String,
    pub label: String,
    pub color: String,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    /// Leads matching the filters (active only unless `archived` says otherwise).
    pub total: i64,
    /// In pipeline and stage order.
    pub by_stage: Vec<StageCountOut>,
    /// Since Monday 00:00 UTC.
    pub new_this_week: i64,
    /// Since the 1st of the month, 00:00 UTC.
    pub new_this_month: i64,
    /// Open tasks on leads you can see (and tasks without a lead).
    pub pending_tasks: i64,
    pub overdue_tasks: i64,
}

/// Totals for the dashboard. Takes the same filters as the list.
#[utoipa::path(get, path = "/api/v1/leads/stats", tag = "leads",
    responses((status = 200, body = StatsOut), (status = 422, body = Problem)))]
pub async fn stats(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
) -> AppResult<axum::Json<StatsOut>> {
    let params = query_pairs(raw.as_deref());
    let stats = service::stats(&state, &ctx, &params).await?;
    Ok(axum::Json(stats_out(stats)))
}

pub fn stats_out(stats: service::Stats) -> StatsOut {
    let mut by_stage = Vec::new();
    for pipeline in &stats.pipelines {
        for stage in &pipeline.spec.stages {
            let count = stats
                .by_stage
                .iter()
                .find(|s| s.pipeline_id == pipeline.id && s.stage == stage.key)
                .map_or(0, |s| s.count);
            if count > 0 {
                by_stage.push(StageCountOut {
                    pipeline_id: pipeline.id.clone(),
                    stage: stage.key.clone(),
                    label: stage.label.clone(),
                    color: stage.color.clone(),
                    count,
                });
            }
        }
    }
    StatsOut {
        total: stats.total,
        by_stage,
        new_this_week: stats.new_this_week,
        new_this_month: stats.new_this_month,
        pending_tasks: stats.open_tasks,
        overdue_tasks: stats.overdue_tasks,
    }
}
