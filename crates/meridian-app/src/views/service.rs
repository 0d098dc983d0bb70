use meridian_core::validation::required_text;
use meridian_core::{Permission, Validation};
use serde_json::{Map, Value};

use super::store::{self, ViewFields, ViewRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::leads::query::{COLUMNS, ListQuery, PARAMS};
use crate::state::AppState;

pub const MAX_VIEWS_NAME: usize = 80;

/// A view as sent by a client; on update, missing parts stay.
#[derive(Debug, Default)]
pub struct ViewInput {
    pub name: Option<String>,
    pub shared: Option<bool>,
    pub pipeline_id: Option<Option<String>>,
    pub filters: Option<Map<String, Value>>,
    pub sort: Option<String>,
    pub columns: Option<Vec<String>>,
}

fn person(ctx: &Ctx) -> AppResult<&str> {
    ctx.user_id().ok_or_else(|| {
        AppError::Forbidden("Saved views belong to people; API keys cannot have them.".to_owned())
    })
}

fn may_change(ctx: &Ctx, view: &ViewRow, me: &str) -> AppResult<()> {
    if view.owner_id == me || (view.shared && ctx.role.allows(Permission::LeadsManage)) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only the view's owner (or a manager, for shared views) can change it.".to_owned(),
        ))
    }
}

async fn validate(
    state: &AppState,
    ctx: &Ctx,
    base: ViewFields,
    input: ViewInput,
) -> AppResult<ViewFields> {
    let mut v = Validation::new();
    let mut out = base;
    if let Some(name) = &input.name
        && let Some(name) = v.check("name", required_text(name, 1, MAX_VIEWS_NAME))
    {
        out.name = name;
    }
    if let Some(shared) = input.shared {
        if shared && !ctx.role.allows(Permission::LeadsManage) {
            v.add(
                "shared",
                "only managers and above can share views with the organization",
            );
        }
        out.shared = shared;
    }
    if let Some(pipeline) = input.pipeline_id {
        out.pipeline_id = pipeline.filter(|p| !p.is_empty());
    }
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let pipeline = match &out.pipeline_id {
        Some(id) => match pipelines.iter().find(|p| &p.id == id) {
            Some(p) => Some(p),
            None => {
                v.add("pipeline_id", "is not a pipeline of this organization");
                None
            }
        },
        None => None,
    };
    if let Some(filters) = &input.filters {
        let mut params = Vec::new();
        for (key, value) in filters {
            let allowed = (PARAMS.contains(&key.as_str())
                && !["limit", "cursor", "view_id", "format", "sort"].contains(&key.as_str()))
                || key.starts_with("cf.");
            match value.as_str() {
                Some(text) if allowed => params.push((key.clone(), text.to_owned())),
                Some(_) => v.add(&format!("filters.{key}"), "is not a list filter"),
                None => v.add(&format!("filters.{key}"), "must be a string"),
            }
        }
        let fields = pipeline.map(|p| p.spec.fields.clone()).unwrap_or_default();
        if let Err(errors) = ListQuery::parse(&params, Some("me"), &fields) {
            for e in errors {
                v.add(&format!("filters.{}", e.field), e.message);
            }
        }
        out.filters = Value::Object(filters.clone()).to_string();
    }
    if let Some(sort) = &input.sort {
        if !sort.is_empty()
            && let Err(errors) = ListQuery::parse(&[("sort".to_owned(), sort.clone())], None, &[])
        {
            for e in errors {
                v.add("sort", e.message);
            }
        }
        out.sort = sort.clone();
    }
    if let Some(columns) = &input.columns {
        let custom: Vec<String> = pipeline
            .map(|p| {
                p.spec
                    .fields
                    .iter()
                    .map(|f| format!("custom_fields.{}", f.key))
                    .collect()
            })
            .unwrap_or_default();
        for (i, column) in columns.iter().enumerate() {
            if !COLUMNS.iter().any(|(c, _)| c == column) && !custom.contains(column) {
                v.add(&format!("columns[{i}]"), "is not a column of the lead list");
            }
        }
        out.columns = serde_json::to_string(columns).unwrap_or_else(|_| "[]".to_owned());
    }
    v.finish().map_err(AppError::Validation)?;
    Ok(out)
}

pub async fn create(state: &AppState, ctx: &Ctx, input: ViewInput) -> AppResult<ViewRow> {
    ctx.require(Permission::LeadsRead)?;
    let me = person(ctx)?.to_owned();
    if input.name.is_none() {
        return Err(AppError::field("name", "is required"));
    }
    let base = ViewFields {
        name: String::new(),
        shared: false,
        pipeline_id: None,
        filters: "{}".to_owned(),
        sort: String::new(),
        columns: "[]".to_owned(),
    };
    let fields = validate(state, ctx, base, input).await?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let view = store::insert(&mut tx, &me, &fields).await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn list(state: &AppState, ctx: &Ctx) -> AppResult<Vec<ViewRow>> {
    ctx.require(Permission::LeadsRead)?;
    let Some(me) = ctx.user_id() else {
        return Ok(Vec::new());
    };
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let views = store::list_visible(&mut tx, me).await?;
    tx.commit().await?;
    Ok(views)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<ViewRow> {
    ctx.require(Permission::LeadsRead)?;
    let me = person(ctx)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let view = store::find_visible(&mut tx, id, me)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(view)
}

pub async fn update(state: &AppState, ctx: &Ctx, id: &str, input: ViewInput) -> AppResult<ViewRow> {
    let view = get(state, ctx, id).await?;
    let me = person(ctx)?;
    may_change(ctx, &view, me)?;
    let base = ViewFields {
        name: view.name.clone(),
        shared: view.shared,
        pipeline_id: view.pipeline_id.clone(),
        filters: view.filters.clone(),
        sort: view.sort.clone(),
        columns: view.columns.clone(),
    };
    let fields = validate(state, ctx, base, input).await?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let view = store::update(&mut tx, id, &fields).await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    let view = get(state, ctx, id).await?;
    may_change(ctx, &view, person(ctx)?)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    store::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
