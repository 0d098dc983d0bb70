use meridian_core::Role;
use meridian_core::crm::Picklist;
use meridian_core::pipeline::{FieldDef, FieldType, PipelineSpec, Stage, StageCategory};
use meridian_db::{TenantTx, sql};
use time::OffsetDateTime;

/// A stored pipeline: its identity and its whole configuration.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: String,
    pub position: i64,
    pub spec: PipelineSpec,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct PipelineRow {
    id: String,
    name: String,
    singular_label: String,
    plural_label: String,
    position: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct StageRow {
    pipeline_id: String,
    key: String,
    label: String,
    color: String,
    category: String,
    owner_role: Option<String>,
    sla_hours: Option<i64>,
    return_stage: Option<String>,
}

#[derive(sqlx::FromRow)]
struct FieldRow {
    pipeline_id: String,
    key: String,
    label: String,
    field_type: String,
    options: String,
    required: bool,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what}: {detail}").into())
}

impl StageRow {
    fn into_stage(self) -> sqlx::Result<Stage> {
        let owner_role = match self.owner_role {
            Some(role) => Some(role.parse::<Role>().map_err(|e| corrupt("owner_role", e))?),
            None => None,
        };
        Ok(Stage {
            category: StageCategory::parse(&self.category).map_err(|e| corrupt("category", e))?,
            key: self.key,
            label: self.label,
            color: self.color,
            owner_role,
            sla_hours: self.sla_hours,
            return_stage: self.return_stage,
        })
    }
}

impl FieldRow {
    fn into_field(self) -> sqlx::Result<FieldDef> {
        Ok(FieldDef {
            field_type: FieldType::parse(&self.field_type).map_err(|e| corrupt("field_type", e))?,
            options: serde_json::from_str(&self.options).map_err(|e| corrupt("options", e))?,
            key: self.key,
            label: self.label,
            required: self.required,
        })
    }
}

const PIPELINE_COLUMNS: &str =
    "id, name, singular_label, plural_label, position, created_at, updated_at";
const STAGE_COLUMNS: &str =
    "pipeline_id, key, label, color, category, owner_role, sla_hours, return_stage";
const FIELD_COLUMNS: &str = "pipeline_id, key, label, field_type, options, required";

/// Every pipeline of the organization, in display order, with stages and fields.
#[tracing::instrument(skip_all)]
pub async fn list(tx: &mut TenantTx) -> sqlx::Result<Vec<Pipeline>> {
    load(tx, None).await
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<Pipeline>> {
    Ok(load(tx, Some(id)).await?.into_iter().next())
}

async fn load(tx: &mut TenantTx, only: Option<&str>) -> sqlx::Result<Vec<Pipeline>> {
    let org_id = tx.org_id();
    let rows: Vec<PipelineRow> = tx
        .fetch_all(
            sql(format!(
                "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE org_id = $1 AND ($2 IS NULL OR id = $2) \
                 ORDER BY position, id"
            ))
            .bind(&org_id)
            .bind(only),
        )
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let stages: Vec<StageRow> = tx
        .fetch_all(
            sql(format!(
                "SELECT {STAGE_COLUMNS} FROM pipeline_stages WHERE org_id = $1 \
                 AND ($2 IS NULL OR pipeline_id = $2) ORDER BY pipeline_id, position"
            ))
            .bind(&org_id)
            .bind(only),
        )
        .await?;
    let fields: Vec<FieldRow> = tx
        .fetch_all(
            sql(format!(
                "SELECT {FIELD_COLUMNS} FROM pipeline_fields WHERE org_id = $1 \
                 AND ($2 IS NULL OR pipeline_id = $2) ORDER BY pipeline_id, position"
            ))
            .bind(&org_id)
            .bind(only),
        )
        .await?;
    let mut pipelines: Vec<Pipeline> = rows
        .into_iter()
        .map(|row| Pipeline {
            id: row.id,
            position: row.position,
            spec: PipelineSpec {
                name: row.name,
                singular_label: row.singular_label,
                plural_label: row.plural_label,
                stages: Vec::new(),
                fields: Vec::new(),
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect();
    for row in stages {
        if let Some(p) = pipelines.iter_mut().find(|p| p.id == row.pipeline_id) {
            p.spec.stages.push(row.into_stage()?);
        }
    }
    for row in fields {
        if let Some(p) = pipelines.iter_mut().find(|p| p.id == row.pipeline_id) {
            p.spec.fields.push(row.into_field()?);
        }
    }
    Ok(pipelines)
}

/// Stores a new pipeline (already validated) after the existing ones.
#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut TenantTx, spec: &PipelineSpec) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "INSERT INTO pipelines (org_id, id, name, singular_label, plural_label, position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, \
             (SELECT COALESCE(MAX(position), 0) + 1 FROM pipelines WHERE org_id = $1), $6, $6)",
        )
        .bind(&org_id)
        .bind(&id)
        .bind(&spec.name)
        .bind(&spec.singular_label)
        .bind(&spec.plural_label)
        .bind(now),
    )
    .await?;
    write_children(tx, &id, spec).await?;
    Ok(id)
}

/// Replaces a pipeline's labels, stages and fields. Callers have checked that no record sits in a
/// stage that disappears.
#[tracing::instrument(skip_all)]
pub async fn replace(tx: &mut TenantTx, id: &str, spec: &PipelineSpec) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE pipelines SET name = $3, singular_label = $4, plural_label = $5, updated_at = $6 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(&spec.name)
        .bind(&spec.singular_label)
        .bind(&spec.plural_label)
        .bind(meridian_db::now()),
    )
    .await?;
    for table in ["pipeline_stages", "pipeline_fields"] {
        tx.execute(
            sql(format!(
                "DELETE FROM {table} WHERE org_id = $1 AND pipeline_id = $2"
            ))
            .bind(&org_id)
            .bind(id),
        )
        .await?;
    }
    write_children(tx, id, spec).await
}

async fn write_children(tx: &mut TenantTx, id: &str, spec: &PipelineSpec) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    for (position, stage) in (0_i64..).zip(&spec.stages) {
        tx.execute(
            sql(format!(
                "INSERT INTO pipeline_stages (org_id, {STAGE_COLUMNS}, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&org_id)
            .bind(id)
            .bind(&stage.key)
            .bind(&stage.label)
            .bind(&stage.color)
            .bind(stage.category.as_str())
            .bind(stage.owner_role.map(|r| r.as_str()))
            .bind(stage.sla_hours)
            .bind(stage.return_stage.as_deref())
            .bind(position),
        )
        .await?;
    }
    for (position, field) in (0_i64..).zip(&spec.fields) {
        tx.execute(
            sql(format!(
                "INSERT INTO pipeline_fields (org_id, {FIELD_COLUMNS}, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(&org_id)
            .bind(id)
            .bind(&field.key)
            .bind(&field.label)
            .bind(field.field_type.as_str())
            .bind(serde_json::to_string(&field.options).unwrap_or_else(|_| "[]".to_owned()))
            .bind(field.required)
            .bind(position),
        )
        .await?;
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM pipelines WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageCount {
    pub stage: String,
    pub count: i64,
}

/// How many records (archived included) sit in each stage of a pipeline.
#[tracing::instrument(skip_all)]
pub async fn count_by_stage(tx: &mut TenantTx, pipeline_id: &str) -> sqlx::Result<Vec<StageCount>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT stage, COUNT(*) AS count FROM leads WHERE org_id = $1 AND pipeline_id = $2 \
             GROUP BY stage",
        )
        .bind(&org_id)
        .bind(pipeline_id),
    )
    .await
}
