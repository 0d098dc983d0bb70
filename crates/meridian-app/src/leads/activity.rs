//! The append-only activity log of a lead. Every change writes its event in the same transaction
//! as the change, so the log can never disagree with the record.

use meridian_core::crm::{ActivityKind, Picklist};
use meridian_db::{TenantTx, sql};
use serde_json::Value;
use time::OffsetDateTime;

use crate::http::ctx::Ctx;
use crate::http::pagination::PageRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: String,
    pub lead_id: String,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub actor_label: String,
    pub data: String,
    pub created_at: OffsetDateTime,
}

/// Records one event about `lead_id`, done by `ctx`.
#[tracing::instrument(skip_all, fields(kind = kind.as_str()))]
pub async fn record(
    tx: &mut TenantTx,
    ctx: &Ctx,
    lead_id: &str,
    kind: ActivityKind,
    data: Value,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO lead_activity (org_id, id, lead_id, kind, actor_user_id, actor_label, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&org_id)
        .bind(meridian_db::new_id())
        .bind(lead_id)
        .bind(kind.as_str())
        .bind(ctx.user_id())
        .bind(ctx.actor_label())
        .bind(data.to_string())
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// A lead's events, newest first; `kinds` narrows them (the stage history).
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut TenantTx,
    lead_id: &str,
    kinds: &[ActivityKind],
    page: &PageRequest,
) -> sqlx::Result<Vec<ActivityRow>> {
    let org_id = tx.org_id();
    let kind_filter = if kinds.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
        format!(" AND kind IN ({})", names.join(", "))
    };
    tx.fetch_all(
        sql(format!(
            "SELECT id, lead_id, kind, actor_user_id, actor_label, data, created_at FROM lead_activity \
             WHERE org_id = $1 AND lead_id = $2 AND ($3 IS NULL OR id < $3){kind_filter} \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(&org_id)
        .bind(lead_id)
        .bind(page.after_key(0))
        .bind(page.fetch_limit()),
    )
    .await
}

/// Moves a merged duplicate's events to the primary lead.
#[tracing::instrument(skip_all)]
pub async fn reassign(tx: &mut TenantTx, from: &str, to: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE lead_activity SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2")
            .bind(&org_id)
            .bind(from)
            .bind(to),
    )
    .await
    .map(|_| ())
}
