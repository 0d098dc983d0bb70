use meridian_db::{TenantTx, sql};
use serde_json::Value;
use time::OffsetDateTime;

use crate::http::ctx::Ctx;
use crate::http::pagination::PageRequest;

/// One audited change, described by the service that makes it.
pub struct Entry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub target_label: Option<&'a str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: String,
    pub actor_user_id: Option<String>,
    pub actor_api_key_id: Option<String>,
    pub actor_label: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub target_label: Option<String>,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Records an entry for an action taken by `ctx`.
#[tracing::instrument(skip_all, fields(action = entry.action))]
pub async fn record(tx: &mut TenantTx, ctx: &Ctx, entry: Entry<'_>) -> sqlx::Result<()> {
    record_as(
        tx,
        ctx.user_id(),
        ctx.api_key_id(),
        &ctx.actor_label(),
        &ctx.client,
        entry,
    )
    .await
}

/// How a person appears as an actor: `Name <email>`.
pub fn person_label(name: &str, email: &str) -> String {
    format!("{name} <{email}>")
}

/// Records an entry whose actor is a person acting outside a request context (creating an
/// organization, accepting an invitation).
pub async fn record_by_user(
    tx: &mut TenantTx,
    user: &crate::auth::store::UserRow,
    client: &crate::http::client::ClientInfo,
    entry: Entry<'_>,
) -> sqlx::Result<()> {
    let label = person_label(&user.name, &user.email);
    record_as(tx, Some(&user.id), None, &label, client, entry).await
}

/// Records an entry for an actor that is not a request context (setup, CLI, invite acceptance).
#[tracing::instrument(skip_all, fields(action = entry.action))]
pub async fn record_as(
    tx: &mut TenantTx,
    actor_user_id: Option<&str>,
    actor_api_key_id: Option<&str>,
    actor_label: &str,
    client: &crate::http::client::ClientInfo,
    entry: Entry<'_>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("INSERT INTO audit_log (org_id, id, actor_user_id, actor_api_key_id, actor_label, action, \
             target_type, target_id, target_label, before_json, after_json, client_ip, request_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
        .bind(org_id)
        .bind(meridian_db::new_id())
        .bind(actor_user_id)
        .bind(actor_api_key_id)
        .bind(actor_label)
        .bind(entry.action)
        .bind(entry.target_type)
        .bind(entry.target_id)
        .bind(entry.target_label)
        .bind(entry.before.map(|v| v.to_string()))
        .bind(entry.after.map(|v| v.to_string()))
        .bind(client.ip.as_deref())
        .bind(client.request_id.as_deref())
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Newest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut TenantTx,
    page: &PageRequest,
    action: Option<&str>,
) -> sqlx::Result<Vec<AuditRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql("SELECT id, actor_user_id, actor_api_key_id, actor_label, action, target_type, target_id, \
             target_label, before_json, after_json, client_ip, request_id, created_at \
             FROM audit_log WHERE org_id = $1 AND ($2 IS NULL OR id < $2) AND ($3 IS NULL OR action = $3) \
             ORDER BY id DESC LIMIT $4")
        .bind(org_id)
        .bind(page.after_key(0))
        .bind(action)
        .bind(page.fetch_limit()),
    )
    .await
}
