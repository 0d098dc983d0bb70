use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service;
use super::store::NoteRow;
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoteOut {
    pub id: String,
    pub lead_id: String,
    pub author_id: Option<String>,
    pub author_label: String,
    /// Sanitized HTML: p, br, strong, em, ul, ol, li, a (rel="noopener noreferrer"), blockquote.
    pub body_html: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<NoteRow> for NoteOut {
    fn from(n: NoteRow) -> Self {
        NoteOut {
            id: n.id,
            lead_id: n.lead_id,
            author_id: n.author_id,
            author_label: n.author_label,
            body_html: n.body_html,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NoteRequest {
    /// Rich text, 2 to 4000 characters of text; anything outside the allow-list is removed.
    pub body_html: String,
}

/// A lead's notes, newest first.
#[utoipa::path(get, path = "/api/v1/leads/{id}/notes", tag = "notes", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = inline(Page<NoteOut>)), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<NoteOut>>> {
    let page = query.parse()?;
    let rows = service::list(&state, &ctx, &id, &page).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |n| vec![n.id.clone()]).map(NoteOut::from),
    ))
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/notes", tag = "notes", params(("id" = String, Path)),
    request_body = NoteRequest,
    responses((status = 201, body = NoteOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<NoteRequest>,
) -> AppResult<(StatusCode, axum::Json<NoteOut>)> {
    let note = service::add(&state, &ctx, &id, &body.body_html).await?;
    Ok((StatusCode::CREATED, axum::Json(note.into())))
}

/// Deletes a note (its author, or a manager and above).
#[utoipa::path(delete, path = "/api/v1/notes/{id}", tag = "notes", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
