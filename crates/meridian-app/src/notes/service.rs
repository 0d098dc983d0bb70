use meridian_core::Permission;
use meridian_core::crm::ActivityKind;
use serde_json::json;

use super::sanitize::clean_note;
use super::store::{self, NewNote, NoteRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::http::pagination::PageRequest;
use crate::leads::{activity, service as leads, store as lead_store};
use crate::state::AppState;

const EXCERPT_CHARS: usize = 140;

pub async fn add(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    body_html: &str,
) -> AppResult<NoteRow> {
    ctx.require(Permission::LeadsWrite)?;
    let (html, text) = clean_note(body_html).map_err(|m| AppError::field("body_html", m))?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let (lead, _) = leads::visible(&mut tx, ctx, lead_id).await?;
    let note = store::insert(
        &mut tx,
        NewNote {
            lead_id,
            author_id: ctx.user_id(),
            author_label: &ctx.actor_label(),
            body_html: &html,
            body_text: &text,
        },
    )
    .await?;
    lead_store::refresh_search_text(&mut tx, &lead).await?;
    let excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    activity::record(
        &mut tx,
        ctx,
        lead_id,
        ActivityKind::NoteAdded,
        json!({"note_id": note.id, "excerpt": excerpt}),
    )
    .await?;
    tx.commit().await?;
    Ok(note)
}

pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    page: &PageRequest,
) -> AppResult<Vec<NoteRow>> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    leads::visible(&mut tx, ctx, lead_id).await?;
    let notes = store::list(&mut tx, lead_id, page).await?;
    tx.commit().await?;
    Ok(notes)
}

/// Deletes a note: its author may, and so may managers and above.
pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let note = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let (lead, _) = leads::visible(&mut tx, ctx, &note.lead_id).await?;
    let is_author = note.author_id.is_some() && note.author_id.as_deref() == ctx.user_id();
    if !is_author && !ctx.role.allows(Permission::LeadsManage) {
        return Err(AppError::Forbidden(
            "Only the note's author or a manager can delete it.".to_owned(),
        ));
    }
    store::delete(&mut tx, id).await?;
    lead_store::refresh_search_text(&mut tx, &lead).await?;
    activity::record(
        &mut tx,
        ctx,
        &note.lead_id,
        ActivityKind::NoteDeleted,
        json!({"note_id": id, "author": note.author_label}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
