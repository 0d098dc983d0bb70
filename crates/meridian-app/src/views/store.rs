use meridian_db::{TenantTx, sql};
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ViewRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub shared: bool,
    pub pipeline_id: Option<String>,
    /// JSON object of list parameters.
    pub filters: String,
    pub sort: String,
    /// JSON array of column names.
    pub columns: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str =
    "id, owner_id, name, shared, pipeline_id, filters, sort, columns, created_at, updated_at";

/// The view's editable content, validated.
pub struct ViewFields {
    pub name: String,
    pub shared: bool,
    pub pipeline_id: Option<String>,
    pub filters: String,
    pub sort: String,
    pub columns: String,
}

#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, owner_id: &str, view: &ViewFields) -> sqlx::Result<ViewRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO saved_views (org_id, id, owner_id, name, shared, pipeline_id, filters, sort, columns, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        ))
        .bind(&org_id)
        .bind(meridian_db::new_id())
        .bind(owner_id)
        .bind(&view.name)
        .bind(view.shared)
        .bind(view.pipeline_id.as_deref())
        .bind(&view.filters)
        .bind(&view.sort)
        .bind(&view.columns)
        .bind(meridian_db::now()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn update(tx: &mut TenantTx, id: &str, view: &ViewFields) -> sqlx::Result<ViewRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "UPDATE saved_views SET name = $3, shared = $4, pipeline_id = $5, filters = $6, sort = $7, \
             columns = $8, updated_at = $9 WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(&org_id)
        .bind(id)
        .bind(&view.name)
        .bind(view.shared)
        .bind(view.pipeline_id.as_deref())
        .bind(&view.filters)
        .bind(&view.sort)
        .bind(&view.columns)
        .bind(meridian_db::now()),
    )
    .await
}

/// A view `user_id` may see: their own, or one shared with the organization.
#[tracing::instrument(skip_all)]
pub async fn find_visible(
    tx: &mut TenantTx,
    id: &str,
    user_id: &str,
) -> sqlx::Result<Option<ViewRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {COLUMNS} FROM saved_views WHERE org_id = $1 AND id = $2 AND (shared OR owner_id = $3)"
        ))
        .bind(&org_id)
        .bind(id)
        .bind(user_id),
    )
    .await
}

/// Views `user_id` may use, by name: their own and the shared ones.
#[tracing::instrument(skip_all)]
pub async fn list_visible(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<Vec<ViewRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {COLUMNS} FROM saved_views WHERE org_id = $1 AND (shared OR owner_id = $2) \
             ORDER BY lower(name), id LIMIT 200"
        ))
        .bind(&org_id)
        .bind(user_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM saved_views WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}
