use meridian_db::{Db, TenantTx, sql};
use time::OffsetDateTime;

use crate::http::pagination::PageRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyCredential {
    pub org_id: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub org_name: String,
}

const COLUMNS: &str =
    "id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at";

pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub created_by: Option<&'a str>,
    pub expires_at: Option<OffsetDateTime>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, key: NewApiKey<'_>) -> sqlx::Result<ApiKeyRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO api_keys (org_id, id, name, role, prefix, token_hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(org_id)
        .bind(meridian_db::new_id())
        .bind(key.name)
        .bind(key.role)
        .bind(key.prefix)
        .bind(key.token_hash)
        .bind(key.created_by)
        .bind(meridian_db::now())
        .bind(key.expires_at),
    )
    .await
}

/// Newest first; revoked keys are listed too (with `revoked_at`), so the history stays visible.
#[tracing::instrument(skip_all)]
pub async fn list(tx: &mut TenantTx, page: &PageRequest) -> sqlx::Result<Vec<ApiKeyRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.after_key(0))
        .bind(page.fetch_limit()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<ApiKeyRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn revoke(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(org_id)
            .bind(id)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Reads a key by its hash, in one statement (see `Db::find_credential`).
#[tracing::instrument(skip_all)]
pub async fn find_credential(db: &Db, token_hash: &str) -> sqlx::Result<Option<ApiKeyCredential>> {
    db.find_credential(
        token_hash,
        "SELECT k.org_id, k.id, k.name, k.role, k.expires_at, k.revoked_at, k.last_used_at, \
         o.name AS org_name FROM api_keys k JOIN organizations o ON o.id = k.org_id \
         WHERE k.token_hash = $1",
        "credential_api_key",
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn touch(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE api_keys SET last_used_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Keys that still work (not revoked, not expired).
#[tracing::instrument(skip_all)]
pub async fn count_active(tx: &mut TenantTx) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql(
            "SELECT COUNT(*) FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(org_id)
        .bind(meridian_db::now()),
    )
    .await
}
