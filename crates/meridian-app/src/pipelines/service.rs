use meridian_core::Permission;
use meridian_core::pipeline::{FieldDef, OrgTemplate, PipelineSpec, Stage};
use meridian_db::TenantTx;
use serde_json::json;

use super::store::{self, Pipeline};
use crate::audit::store::{self as audit, Entry};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub const MAX_PIPELINES: usize = 20;

/// Creates a new organization's pipelines from its template (in the creating transaction).
pub async fn install_template(tx: &mut TenantTx, template: OrgTemplate) -> AppResult<()> {
    for spec in template.pipelines() {
        store::insert(tx, &spec).await?;
    }
    Ok(())
}

pub async fn list(state: &AppState, ctx: &Ctx) -> AppResult<Vec<Pipeline>> {
    ctx.require(Permission::LeadsRead)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let pipelines = store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(pipelines)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<Pipeline> {
    ctx.require(Permission::LeadsRead)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let pipeline = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(pipeline)
}

/// Loads a pipeline inside a caller's transaction (404 when it is not this organization's).
pub async fn load(tx: &mut TenantTx, id: &str) -> AppResult<Pipeline> {
    store::find(tx, id).await?.ok_or(AppError::NotFound)
}

fn name_taken(error: &sqlx::Error) -> Option<AppError> {
    meridian_db::unique_violation(error)
        .map(|_| AppError::field("name", "is used by another pipeline"))
}

pub async fn create(state: &AppState, ctx: &Ctx, spec: PipelineSpec) -> AppResult<Pipeline> {
    ctx.require(Permission::PipelinesManage)?;
    let spec = spec.validated().map_err(AppError::Validation)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    if store::list(&mut tx).await?.len() >= MAX_PIPELINES {
        return Err(AppError::Conflict(format!(
            "An organization can have at most {MAX_PIPELINES} pipelines."
        )));
    }
    let id = match store::insert(&mut tx, &spec).await {
        Ok(id) => id,
        Err(e) => return Err(name_taken(&e).unwrap_or_else(|| e.into())),
    };
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "pipeline.created",
            target_type: "pipeline",
            target_id: Some(&id),
            target_label: Some(&spec.name),
            before: None,
            after: Some(summary(&spec)),
        },
    )
    .await?;
    let pipeline = load(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(pipeline)
}

/// A partial change: omitted parts stay as they are; `stages` and `fields`, when sent, replace
/// the whole list (keys identify stages, so a renamed label keeps its records).
#[derive(Debug, Default)]
pub struct PipelineChange {
    pub name: Option<String>,
    pub singular_label: Option<String>,
    pub plural_label: Option<String>,
    pub stages: Option<Vec<Stage>>,
    pub fields: Option<Vec<FieldDef>>,
}

pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    change: PipelineChange,
) -> AppResult<Pipeline> {
    ctx.require(Permission::PipelinesManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let before = load(&mut tx, id).await?;
    let mut spec = before.spec.clone();
    if let Some(name) = change.name {
        spec.name = name;
    }
    if let Some(label) = change.singular_label {
        spec.singular_label = label;
    }
    if let Some(label) = change.plural_label {
        spec.plural_label = label;
    }
    if let Some(stages) = change.stages {
        spec.stages = stages;
    }
    if let Some(fields) = change.fields {
        spec.fields = fields;
    }
    let spec = spec.validated().map_err(AppError::Validation)?;
    let occupied = store::count_by_stage(&mut tx, id).await?;
    let stranded: Vec<String> = occupied
        .iter()
        .filter(|c| spec.stage(&c.stage).is_none())
        .map(|c| format!("{} record(s) in \"{}\"", c.count, c.stage))
        .collect();
    if !stranded.is_empty() {
        return Err(AppError::Conflict(format!(
            "Move the records out of the stages you are removing first: {}.",
            stranded.join(", ")
        )));
    }
    if let Err(e) = store::replace(&mut tx, id, &spec).await {
        return Err(name_taken(&e).unwrap_or_else(|| e.into()));
    }
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "pipeline.updated",
            target_type: "pipeline",
            target_id: Some(id),
            target_label: Some(&spec.name),
            before: Some(summary(&before.spec)),
            after: Some(summary(&spec)),
        },
    )
    .await?;
    let pipeline = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(pipeline)
}

pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::PipelinesManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let pipeline = load(&mut tx, id).await?;
    let records: i64 = store::count_by_stage(&mut tx, id)
        .await?
        .iter()
        .map(|c| c.count)
        .sum();
    if records > 0 {
        return Err(AppError::Conflict(format!(
            "This pipeline holds {records} record(s); move them to another pipeline first."
        )));
    }
    if store::list(&mut tx).await?.len() <= 1 {
        return Err(AppError::Conflict(
            "An organization needs at least one pipeline.".to_owned(),
        ));
    }
    store::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "pipeline.deleted",
            target_type: "pipeline",
            target_id: Some(id),
            target_label: Some(&pipeline.spec.name),
            before: Some(summary(&pipeline.spec)),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn summary(spec: &PipelineSpec) -> serde_json::Value {
    json!({
        "name": spec.name,
        "labels": [spec.singular_label, spec.plural_label],
        "stages": spec.stages.iter().map(|s| &s.key).collect::<Vec<_>>(),
        "fields": spec.fields.iter().map(|f| &f.key).collect::<Vec<_>>(),
    })
}
