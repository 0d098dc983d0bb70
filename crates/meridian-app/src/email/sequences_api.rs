use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::sequences::{
    self, Enrolled, EnrollmentFilter, EnrollmentRow, Reply, SequenceInput, SequenceRow, StepInput,
    StepRow,
};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepOut {
    pub position: i64,
    pub template_id: String,
    pub delay_minutes: i64,
}

impl From<StepRow> for StepOut {
    fn from(s: StepRow) -> Self {
        StepOut {
            position: s.position,
            template_id: s.template_id,
            delay_minutes: s.delay_minutes,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SequenceOut {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub steps: Vec<StepOut>,
    pub active_enrollments: i64,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<(SequenceRow, Vec<StepRow>)> for SequenceOut {
    fn from((s, steps): (SequenceRow, Vec<StepRow>)) -> Self {
        SequenceOut {
            id: s.id,
            name: s.name,
            enabled: s.enabled,
            steps: steps.into_iter().map(StepOut::from).collect(),
            active_enrollments: s.active_enrollments,
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceRequest {
    pub name: Option<String>,
    /// Off: nothing is sent and no one can be enrolled; turning it on sends what came due.
    pub enabled: Option<bool>,
    /// The whole list (replaces the steps on update).
    pub steps: Option<Vec<StepInput>>,
}

impl From<SequenceRequest> for SequenceInput {
    fn from(r: SequenceRequest) -> Self {
        SequenceInput {
            name: r.name,
            enabled: r.enabled,
            steps: r.steps,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/email/sequences", tag = "email",
    responses((status = 200, body = inline(Page<SequenceOut>))))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<Page<SequenceOut>>> {
    let rows = sequences::list(&state, &ctx).await?;
    Ok(axum::Json(Page {
        items: rows.into_iter().map(SequenceOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/email/sequences", tag = "email", request_body = SequenceRequest,
    responses((status = 201, body = SequenceOut), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<SequenceRequest>,
) -> AppResult<(StatusCode, axum::Json<SequenceOut>)> {
    let created = sequences::create(&state, &ctx, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/email/sequences/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 200, body = SequenceOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<SequenceOut>> {
    Ok(axum::Json(sequences::get(&state, &ctx, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/email/sequences/{id}", tag = "email", params(("id" = String, Path)),
    request_body = SequenceRequest,
    responses((status = 200, body = SequenceOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<SequenceRequest>,
) -> AppResult<axum::Json<SequenceOut>> {
    Ok(axum::Json(
        sequences::update(&state, &ctx, &id, body.into())
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/email/sequences/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    sequences::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollmentOut {
    pub id: String,
    pub sequence_id: String,
    pub sequence_name: String,
    pub lead_id: String,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
    /// active, completed or stopped.
    pub status: String,
    /// replied, stage_changed, unsubscribed, bounced, archived, no_email, template_missing or
    /// manual.
    pub stop_reason: Option<String>,
    /// The step sent next (from 0), and when.
    pub next_position: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    pub steps_sent: i64,
    pub enrolled_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<EnrollmentRow> for EnrollmentOut {
    fn from(e: EnrollmentRow) -> Self {
        EnrollmentOut {
            id: e.id,
            sequence_id: e.sequence_id,
            sequence_name: e.sequence_name,
            lead_id: e.lead_id,
            lead_number: e.lead_number,
            lead_name: e.lead_name,
            status: e.status,
            stop_reason: e.stop_reason,
            next_position: e.next_position,
            next_run_at: e.next_run_at,
            steps_sent: e.steps_sent,
            enrolled_by: e.enrolled_by,
            created_at: e.created_at,
            finished_at: e.finished_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// Up to 500 leads.
    pub lead_ids: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollResult {
    pub lead_id: String,
    /// 201 enrolled; 404 no such lead; 409 already enrolled; 422 no address, suppressed or
    /// archived.
    pub status: u16,
    pub enrollment: Option<EnrollmentOut>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollResponse {
    pub results: Vec<EnrollResult>,
}

/// Enrolls leads; each lead succeeds or reports its own error.
#[utoipa::path(post, path = "/api/v1/email/sequences/{id}/enrollments", tag = "email",
    params(("id" = String, Path)), request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn enroll(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<EnrollRequest>,
) -> AppResult<axum::Json<EnrollResponse>> {
    let results = sequences::enroll(&state, &ctx, &id, &body.lead_ids).await?;
    Ok(axum::Json(EnrollResponse {
        results: results
            .into_iter()
            .map(|(lead_id, outcome)| match outcome {
                Enrolled::Ok(row) => EnrollResult {
                    lead_id,
                    status: 201,
                    enrollment: Some((*row).into()),
                    error: None,
                },
                Enrolled::Refused { status, error } => EnrollResult {
                    lead_id,
                    status,
                    enrollment: None,
                    error: Some(error),
                },
            })
            .collect(),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct EnrollmentQuery {
    pub sequence_id: Option<String>,
    pub lead_id: Option<String>,
    /// active, completed or stopped.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Enrollments, newest first.
#[utoipa::path(get, path = "/api/v1/email/enrollments", tag = "email", params(EnrollmentQuery),
    responses((status = 200, body = inline(Page<EnrollmentOut>)), (status = 422, body = Problem)))]
pub async fn list_enrollments(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<EnrollmentQuery>,
) -> AppResult<axum::Json<Page<EnrollmentOut>>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !["active", "completed", "stopped"].contains(&s.as_str())
    {
        return Err(AppError::field(
            "status",
            "must be active, completed or stopped",
        ));
    }
    let filter = EnrollmentFilter {
        sequence_id: query.sequence_id.clone().filter(|s| !s.is_empty()),
        lead_id: query.lead_id.clone().filter(|s| !s.is_empty()),
        status,
    };
    let rows = sequences::enrollments(
        &state,
        &ctx,
        &filter,
        page.after_time()?,
        page.fetch_limit(),
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |e| time_cursor(e.created_at, &e.id)).map(EnrollmentOut::from),
    ))
}

#[utoipa::path(post, path = "/api/v1/email/enrollments/{id}/stop", tag = "email", params(("id" = String, Path)),
    responses((status = 200, body = EnrollmentOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn stop(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<EnrollmentOut>> {
    Ok(axum::Json(sequences::stop(&state, &ctx, &id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The sender's address.
    pub from: String,
    /// The Message-ID the reply answers (its `In-Reply-To` header).
    pub in_reply_to: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplyOut {
    pub lead_id: String,
    /// Sequences the reply stopped.
    pub sequences_stopped: u64,
}

/// Records a lead's reply (for a mail provider's inbound hook or an integration): it goes on the
/// lead's activity and stops the lead's sequences.
#[utoipa::path(post, path = "/api/v1/email/replies", tag = "email", request_body = ReplyRequest,
    responses((status = 200, body = ReplyOut), (status = 422, body = Problem)))]
pub async fn reply(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<ReplyRequest>,
) -> AppResult<axum::Json<ReplyOut>> {
    let (lead_id, stopped) = sequences::record_reply(
        &state,
        &ctx,
        &Reply {
            from: body.from,
            in_reply_to: body.in_reply_to,
            subject: body.subject,
            text: body.text,
        },
    )
    .await?;
    Ok(axum::Json(ReplyOut {
        lead_id,
        sequences_stopped: stopped,
    }))
}
