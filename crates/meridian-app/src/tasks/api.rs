use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::service::{self, TaskInput};
use super::store::{self, Status, TaskCursor, TaskFilter, TaskRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor};
use crate::leads::query::Assignee;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskOut {
    pub id: String,
    pub lead_id: Option<String>,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    pub assignee_id: Option<String>,
    pub assignee_name: Option<String>,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub completed_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<TaskRow> for TaskOut {
    fn from(t: TaskRow) -> Self {
        TaskOut {
            id: t.id,
            lead_id: t.lead_id,
            lead_number: t.lead_number,
            lead_name: t.lead_name,
            title: t.title,
            description: t.description,
            task_type: t.task_type,
            due_at: t.due_at,
            assignee_id: t.assignee_id,
            assignee_name: t.assignee_name,
            created_by: t.created_by,
            completed_at: t.completed_at,
            completed_by: t.completed_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

fn present_time<'de, D>(deserializer: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: Deserializer<'de>,
{
    time::serde::rfc3339::option::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub title: Option<String>,
    pub description: Option<String>,
    /// call, email, meeting, follow_up (default) or other.
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    /// RFC 3339; `null` clears.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>)]
    pub due_at: Option<Option<OffsetDateTime>>,
    /// Default on create: you. `null` unassigns.
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub assignee_id: Option<Option<String>>,
    /// Create only: the lead the task is about.
    pub lead_id: Option<String>,
}

impl TaskRequest {
    fn into_input(self) -> (Option<String>, TaskInput) {
        (
            self.lead_id,
            TaskInput {
                title: self.title,
                description: self.description,
                task_type: self.task_type,
                due_at: self.due_at,
                assignee_id: self.assignee_id,
            },
        )
    }
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = TaskRequest,
    responses((status = 201, body = TaskOut), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<TaskRequest>,
) -> AppResult<(StatusCode, axum::Json<TaskOut>)> {
    let (lead_id, input) = body.into_input();
    let task = service::create(&state, &ctx, lead_id.as_deref(), input).await?;
    Ok((StatusCode::CREATED, axum::Json(task.into())))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<TaskOut>> {
    Ok(axum::Json(service::get(&state, &ctx, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskRequest,
    responses((status = 200, body = TaskOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<TaskRequest>,
) -> AppResult<axum::Json<TaskOut>> {
    let (lead_id, input) = body.into_input();
    if lead_id.is_some() {
        return Err(AppError::field(
            "lead_id",
            "cannot be changed; create a new task instead",
        ));
    }
    Ok(axum::Json(
        service::update(&state, &ctx, &id, input).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = Problem)))]
pub async fn complete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<TaskOut>> {
    Ok(axum::Json(
        service::set_done(&state, &ctx, &id, true).await?.into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/uncomplete", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = Problem)))]
pub async fn uncomplete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<TaskOut>> {
    Ok(axum::Json(
        service::set_done(&state, &ctx, &id, false).await?.into(),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct TaskQuery {
    /// Words in the title or description.
    pub q: Option<String>,
    /// A user id, `me` or `unassigned`.
    pub assignee: Option<String>,
    pub lead_id: Option<String>,
    /// `open` (default), `done` or `all`.
    pub status: Option<String>,
    /// RFC 3339.
    pub due_before: Option<String>,
    /// RFC 3339.
    pub due_after: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A parsed task list request: the filter, the page position and the page size.
pub fn parse_query(
    query: &TaskQuery,
    ctx: &Ctx,
) -> AppResult<(TaskFilter, Option<TaskCursor>, i64)> {
    let mut v = meridian_core::Validation::new();
    let time = |v: &mut meridian_core::Validation, name: &str, value: &Option<String>| {
        value.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
            v.check(
                name,
                OffsetDateTime::parse(s, &Rfc3339)
                    .map_err(|_| "must be an RFC 3339 time".to_owned()),
            )
        })
    };
    let status = match query.status.as_deref().unwrap_or("open") {
        "open" | "" => Status::Open,
        "done" => Status::Done,
        "all" => Status::All,
        _ => {
            v.add("status", "must be open, done or all");
            Status::Open
        }
    };
    let assignee = match query
        .assignee
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some("unassigned") => Some(Assignee::Unassigned),
        Some("me") => match ctx.user_id() {
            Some(me) => Some(Assignee::User(me.to_owned())),
            None => {
                v.add("assignee", "me needs a signed-in person, not an API key");
                None
            }
        },
        Some(id) => Some(Assignee::User(id.to_owned())),
    };
    let filter = TaskFilter {
        search: query
            .q
            .clone()
            .filter(|q| !q.trim().is_empty())
            .map(|q| q.trim().to_owned()),
        assignee,
        lead_id: query.lead_id.clone().filter(|s| !s.is_empty()),
        status,
        due_before: time(&mut v, "due_before", &query.due_before),
        due_after: time(&mut v, "due_after", &query.due_after),
        hidden: Vec::new(),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        v.add("limit", format!("must be between 1 and {MAX_LIMIT}"));
    }
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => match decode_cursor(cursor).as_deref() {
            Some([at, id]) => match OffsetDateTime::parse(at, &Rfc3339) {
                Ok(at) => Some((at, id.clone())),
                Err(_) => {
                    v.add("cursor", "is not a cursor this server returned");
                    None
                }
            },
            _ => {
                v.add("cursor", "is not a cursor this server returned");
                None
            }
        },
    };
    v.finish().map_err(AppError::Validation)?;
    Ok((filter, after, limit))
}

/// Tasks by due time (soonest first, undated last). Filters: `q`, `assignee` (`me`, `unassigned`
/// or a user id), `lead_id`, `status` (`open`, `done`, `all`), `due_before`, `due_after`.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = inline(Page<TaskOut>)), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<TaskQuery>,
) -> AppResult<axum::Json<Page<TaskOut>>> {
    let (filter, after, limit) = parse_query(&query, &ctx)?;
    let mut rows = service::list(&state, &ctx, filter, after, limit + 1).await?;
    let next_cursor = if rows.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|t| {
            let at = store::sort_key(t).format(&Rfc3339).unwrap_or_default();
            encode_cursor(&[&at, &t.id])
        })
    } else {
        None
    };
    Ok(axum::Json(Page {
        items: rows.into_iter().map(TaskOut::from).collect(),
        next_cursor,
    }))
}
