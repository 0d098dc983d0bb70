//! Inbound lead-capture forms, the admin side: which pipeline and stage a form's leads start in,
//! which fields it collects, where the visitor goes afterwards; and what the form looks like (the
//! hosted page and the copy-paste snippet share one list of inputs).

use askama::Template;
use meridian_core::pipeline::FieldType;
use meridian_core::validation::required_text;
use meridian_core::{Permission, Validation};
use meridian_db::TenantTx;
use serde_json::json;

use super::service::check_url;
use super::store::{self, FormFields, FormRow};
use crate::audit::store::{self as audit, Entry};
use crate::auth::tokens::{hash_secret, new_secret};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::pipelines::store::Pipeline;
use crate::state::AppState;

pub const MAX_NAME: usize = 120;
pub const FORM_KEY_PREFIX: &str = "mrd_form_";
/// The field a person never sees and a bot fills in.
pub const HONEYPOT: &str = "website";
/// Attribution every form accepts (from hidden inputs or the page's query string).
pub const UTM_FIELDS: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
];
/// The lead fields a form may collect besides the pipeline's custom fields (`cf.<key>`): name,
/// label and input type.
pub const STANDARD_FIELDS: [(&str, &str, &str); 7] = [
    ("first_name", "First name", "text"),
    ("last_name", "Last name", "text"),
    ("email", "Email", "email"),
    ("phone", "Phone", "tel"),
    ("state", "State or province", "text"),
    ("country", "Country", "text"),
    ("date_of_birth", "Date of birth", "date"),
];
pub const DEFAULT_FIELDS: [&str; 4] = ["first_name", "last_name", "email", "phone"];

/// A form as a client sends it; on update, missing fields stay as they are (`null` clears the
/// optional ones).
#[derive(Debug, Default, Clone)]
pub struct FormInput {
    pub name: Option<String>,
    pub pipeline_id: Option<Option<String>>,
    pub stage: Option<Option<String>>,
    pub fields: Option<Vec<String>>,
    pub redirect_url: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// One input of the rendered form.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub label: String,
    /// An `<input type>`, or `select`, `multiselect`, `checkbox`.
    pub kind: &'static str,
    pub required: bool,
    pub options: Vec<String>,
}

/// A form with what its page shows.
#[derive(Debug, Clone)]
pub struct FormView {
    pub row: FormRow,
    pub inputs: Vec<Input>,
    /// The pipeline its leads go to (None: the organization has none left).
    pub pipeline: Option<Pipeline>,
}

/// Where a form's leads start: its own pipeline, or the organization's first.
pub fn pipeline_of<'a>(
    row_pipeline: Option<&str>,
    pipelines: &'a [Pipeline],
) -> Option<&'a Pipeline> {
    match row_pipeline {
        Some(id) => pipelines.iter().find(|p| p.id == id),
        None => pipelines.first(),
    }
}

fn custom_input(pipeline: Option<&Pipeline>, key: &str) -> Option<Input> {
    let def = pipeline?.spec.fields.iter().find(|f| f.key == key)?;
    let kind = match def.field_type {
        FieldType::Text => "text",
        FieldType::Number => "number",
        FieldType::Date => "date",
        FieldType::Select => "select",
        FieldType::MultiSelect => "multiselect",
        FieldType::Boolean => "checkbox",
        FieldType::Url => "url",
        FieldType::Email => "email",
        FieldType::Phone => "tel",
    };
    Some(Input {
        name: format!("cf.{key}"),
        label: def.label.clone(),
        kind,
        required: def.required,
        options: def.options.clone(),
    })
}

/// The inputs for `fields`, in order; a custom field the pipeline no longer has is left out.
pub fn inputs(fields: &[String], pipeline: Option<&Pipeline>) -> Vec<Input> {
    fields
        .iter()
        .filter_map(|name| match name.strip_prefix("cf.") {
            Some(key) => custom_input(pipeline, key),
            None => STANDARD_FIELDS
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(n, label, kind)| Input {
                    name: (*n).to_owned(),
                    label: (*label).to_owned(),
                    kind,
                    required: *n == "first_name",
                    options: Vec::new(),
                }),
        })
        .collect()
}

fn view(row: FormRow, pipelines: &[Pipeline]) -> FormView {
    let pipeline = pipeline_of(row.pipeline_id.as_deref(), pipelines).cloned();
    FormView {
        inputs: inputs(&row.fields(), pipeline.as_ref()),
        pipeline,
        row,
    }
}

async fn apply(
    tx: &mut TenantTx,
    base: FormFields,
    input: &FormInput,
    creating: bool,
    own_id: Option<&str>,
) -> AppResult<FormFields> {
    let mut v = Validation::new();
    let mut out = base;
    match (&input.name, creating) {
        (Some(name), _) => {
            if let Some(name) = v.check("name", required_text(name, 1, MAX_NAME)) {
                if let Some(existing) = store::form_named(tx, &name).await?
                    && Some(existing.as_str()) != own_id
                {
                    v.add("name", "another form has this name");
                }
                out.name = name;
            }
        }
        (None, true) => v.add("name", "is required"),
        (None, false) => {}
    }
    if let Some(pipeline_id) = &input.pipeline_id {
        out.pipeline_id = pipeline_id.clone().filter(|p| !p.trim().is_empty());
    }
    if let Some(stage) = &input.stage {
        out.stage = stage.clone().filter(|s| !s.trim().is_empty());
    }
    if let Some(fields) = &input.fields {
        out.fields = Vec::new();
        for field in fields {
            let field = field.trim().to_owned();
            if !out.fields.contains(&field) {
                out.fields.push(field);
            }
        }
    }
    if let Some(url) = &input.redirect_url {
        out.redirect_url = match url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => v.check("redirect_url", check_url(url)),
            None => None,
        };
    }
    if let Some(enabled) = input.enabled {
        out.enabled = enabled;
    }
    let pipelines = crate::pipelines::store::list(tx).await?;
    let pipeline = pipeline_of(out.pipeline_id.as_deref(), &pipelines);
    match (pipeline, &out.pipeline_id) {
        (None, Some(_)) => v.add("pipeline_id", "is not a pipeline of this organization"),
        (None, None) => v.add("pipeline_id", "create a pipeline first"),
        (Some(pipeline), _) => {
            if let Some(stage) = &out.stage
                && pipeline.spec.stage(stage).is_none()
            {
                v.add(
                    "stage",
                    format!("{stage:?} is not a stage of this pipeline"),
                );
            }
            for (i, field) in out.fields.iter().enumerate() {
                let known = match field.strip_prefix("cf.") {
                    Some(key) => pipeline.spec.fields.iter().any(|f| f.key == key),
                    None => STANDARD_FIELDS.iter().any(|(n, _, _)| n == field),
                };
                if !known {
                    v.add(
                        &format!("fields[{i}]"),
                        format!(
                            "{field:?} is not a lead field; use first_name, last_name, email, phone, \
                             state, country, date_of_birth or cf.<custom field key>"
                        ),
                    );
                }
            }
            for def in pipeline.spec.fields.iter().filter(|f| f.required) {
                let name = format!("cf.{}", def.key);
                if !out.fields.contains(&name) {
                    v.add(
                        "fields",
                        format!("must include {name}: the pipeline requires it"),
                    );
                }
            }
        }
    }
    if !out.fields.iter().any(|f| f == "first_name") {
        v.add("fields", "must include first_name: every lead has one");
    }
    v.finish().map_err(AppError::Validation)?;
    Ok(out)
}

async fn load(tx: &mut TenantTx, id: &str) -> AppResult<FormRow> {
    store::find_form(tx, id).await?.ok_or(AppError::NotFound)
}

/// A form's settings as the audit log keeps them.
fn settings(row: &FormRow) -> serde_json::Value {
    json!({
        "pipeline_id": row.pipeline_id, "stage": row.stage, "fields": row.fields(),
        "enabled": row.enabled, "redirect_url": row.redirect_url,
    })
}

fn entry<'a>(action: &'a str, row: &'a FormRow) -> Entry<'a> {
    Entry {
        action,
        target_type: "inbound_form",
        target_id: Some(&row.id),
        target_label: Some(&row.name),
        before: None,
        after: Some(settings(row)),
    }
}

pub async fn create(state: &AppState, ctx: &Ctx, input: FormInput) -> AppResult<FormView> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let base = FormFields {
        name: String::new(),
        pipeline_id: None,
        stage: None,
        fields: DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        redirect_url: None,
        enabled: true,
    };
    let fields = apply(&mut tx, base, &input, true, None).await?;
    let key = new_form_key();
    let id = store::insert_form(&mut tx, &fields, &key, &hash_secret(&key), ctx.user_id()).await?;
    let row = load(&mut tx, &id).await?;
    audit::record(&mut tx, ctx, entry("inbound_form.created", &row)).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(view(row, &pipelines))
}

/// A new form key: 22 random base64url characters (132 bits), short enough for an address. It is
/// public (it is in the form's address); being unguessable is what keeps forms from being found.
fn new_form_key() -> String {
    let token = new_secret(FORM_KEY_PREFIX);
    token[..FORM_KEY_PREFIX.len() + 22].to_owned()
}

pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<FormView>> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::forms(&mut tx, after, limit).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| view(r, &pipelines)).collect())
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<FormView> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = load(&mut tx, id).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(view(row, &pipelines))
}

pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    input: FormInput,
) -> AppResult<FormView> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let before = load(&mut tx, id).await?;
    let base = FormFields {
        name: before.name.clone(),
        pipeline_id: before.pipeline_id.clone(),
        stage: before.stage.clone(),
        fields: before.fields(),
        redirect_url: before.redirect_url.clone(),
        enabled: before.enabled,
    };
    let fields = apply(&mut tx, base.clone(), &input, false, Some(id)).await?;
    let row = if fields == base {
        before
    } else {
        store::update_form(&mut tx, id, &fields).await?;
        let row = load(&mut tx, id).await?;
        audit::record(
            &mut tx,
            ctx,
            Entry {
                before: Some(settings(&before)),
                ..entry("inbound_form.updated", &row)
            },
        )
        .await?;
        row
    };
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(view(row, &pipelines))
}

/// Deletes a form; its leads stay. Its address stops accepting submissions at once.
pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::WebhooksManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let row = load(&mut tx, id).await?;
    store::delete_form(&mut tx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            before: Some(settings(&row)),
            after: None,
            ..entry("inbound_form.deleted", &row)
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Where the form posts.
pub fn endpoint_url(state: &AppState, form_key: &str) -> String {
    format!("{}/api/v1/inbound/{form_key}", state.config.public_url)
}

/// The hosted page of the form.
pub fn page_url(state: &AppState, form_key: &str) -> String {
    format!("{}/forms/{form_key}", state.config.public_url)
}

#[derive(Template)]
#[template(path = "inbound_snippet.html")]
struct Snippet<'a> {
    action: String,
    inputs: &'a [Input],
    utm_fields: &'a [&'static str],
    honeypot: &'static str,
}

/// A `<form>` to paste into any web page: plain HTML posting to the form's address, with the
/// honeypot kept off screen by an inline style (the host page has none of Meridian's CSS).
pub fn snippet(state: &AppState, form: &FormView) -> String {
    Snippet {
        action: endpoint_url(state, &form.row.form_key),
        inputs: &form.inputs,
        utm_fields: &UTM_FIELDS,
        honeypot: HONEYPOT,
    }
    .render()
    .unwrap_or_else(|error| {
        tracing::error!(%error, "rendering a form snippet failed");
        String::new()
    })
}
