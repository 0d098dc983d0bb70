use meridian_db::{TenantTx, sql};
use time::OffsetDateTime;

use crate::http::pagination::PageRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRow {
    pub id: String,
    pub lead_id: String,
    pub author_id: Option<String>,
    pub author_label: String,
    pub body_html: String,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, lead_id, author_id, author_label, body_html, created_at";

pub struct NewNote<'a> {
    pub lead_id: &'a str,
    pub author_id: Option<&'a str>,
    pub author_label: &'a str,
    pub body_html: &'a str,
    pub body_text: &'a str,
}

#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, note: NewNote<'_>) -> sqlx::Result<NoteRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO notes (org_id, id, lead_id, author_id, author_label, body_html, body_text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(&org_id)
        .bind(meridian_db::new_id())
        .bind(note.lead_id)
        .bind(note.author_id)
        .bind(note.author_label)
        .bind(note.body_html)
        .bind(note.body_text)
        .bind(meridian_db::now()),
    )
    .await
}

/// A lead's notes, newest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut TenantTx,
    lead_id: &str,
    page: &PageRequest,
) -> sqlx::Result<Vec<NoteRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {COLUMNS} FROM notes WHERE org_id = $1 AND lead_id = $2 AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(&org_id)
        .bind(lead_id)
        .bind(page.after_key(0))
        .bind(page.fetch_limit()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<NoteRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {COLUMNS} FROM notes WHERE org_id = $1 AND id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM notes WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// Moves a merged duplicate's notes to the primary lead.
#[tracing::instrument(skip_all)]
pub async fn reassign(tx: &mut TenantTx, from: &str, to: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE notes SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2")
            .bind(&org_id)
            .bind(from)
            .bind(to),
    )
    .await
    .map(|_| ())
}
