//! Pages: Settings → Pipelines. A list with record counts, and one form per pipeline that edits
//! its labels, the ordered stages and the custom fields.
//!
//! Rows are posted as indexed names (`stages[3][label]`, `fields[0][required]`): checkboxes are
//! only sent when ticked, so repeated bare names could not be told apart by row. The order comes
//! from each row's `position` (which `app.js` renumbers after a drag), so it works without
//! JavaScript too. Errors from the service name rows by their index in the saved order
//! (`stages[2].key`), which is also the order the form is shown again in.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::crm::Picklist;
use meridian_core::pipeline::{FieldDef, FieldType, PipelineSpec, Stage, StageCategory};
use meridian_core::{FieldError, Permission, Role};
use serde::Deserialize;

use super::service::{self, PipelineChange};
use super::store::{self, Pipeline};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, render};

/// Colors offered to new stages in turn (the templates' palette).
const PALETTE: [&str; 9] = [
    "#3b82f6", "#8b5cf6", "#06b6d4", "#f59e0b", "#16a34a", "#ec4899", "#f97316", "#14b8a6",
    "#6b7280",
];
/// Row indexes above this are ignored: far more rows than a pipeline may hold.
const MAX_ROW_INDEX: usize = 999;

/// A lower-case key from a label ("Under review" → `under_review`), as `app.js` prefills it.
fn slug(label: &str) -> String {
    let mut key = String::new();
    for c in label.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c);
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    let key = key.trim_end_matches('_');
    let key = key.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
    key.chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('_')
        .to_owned()
}

/// Per-row field errors, by attribute (`key`, `label`, ...).
#[derive(Debug, Clone, Default)]
struct RowErrors(Vec<(String, String)>);

impl RowErrors {
    fn get(&self, attr: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| a == attr)
            .map(|(_, m)| m.as_str())
    }
}

/// A stage row as typed, so the form can be shown again exactly as sent.
#[derive(Debug, Clone, Default)]
struct StageRow {
    /// Saved before: its key is fixed (records refer to it).
    existing: bool,
    key: String,
    label: String,
    color: String,
    category: String,
    owner_role: String,
    sla_hours: String,
    return_stage: String,
    position: String,
    remove: bool,
    /// Records in this stage (edit page only), to explain why it cannot be removed.
    records: i64,
    errors: RowErrors,
}

impl StageRow {
    fn from_stage(stage: &Stage) -> StageRow {
        StageRow {
            existing: true,
            key: stage.key.clone(),
            label: stage.label.clone(),
            color: stage.color.clone(),
            category: stage.category.as_str().to_owned(),
            owner_role: stage
                .owner_role
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            sla_hours: stage.sla_hours.map(|h| h.to_string()).unwrap_or_default(),
            return_stage: stage.return_stage.clone().unwrap_or_default(),
            ..StageRow::default()
        }
    }

    fn blank(n: usize) -> StageRow {
        StageRow {
            color: PALETTE[n % PALETTE.len()].to_owned(),
            category: StageCategory::Open.as_str().to_owned(),
            ..StageRow::default()
        }
    }

    fn is_blank(&self) -> bool {
        !self.existing && self.key.trim().is_empty() && self.label.trim().is_empty()
    }

    fn set(&mut self, attr: &str, value: String) {
        match attr {
            "existing" => self.existing = value == "1",
            "key" => self.key = value,
            "label" => self.label = value,
            "color" => self.color = value,
            "category" => self.category = value,
            "owner_role" => self.owner_role = value,
            "sla_hours" => self.sla_hours = value,
            "return_stage" => self.return_stage = value,
            "position" => self.position = value,
            "remove" => self.remove = value == "1",
            _ => {}
        }
    }

    /// The stage this row describes; problems the form alone can see go to `errors`.
    fn build_stage(&mut self, i: usize, errors: &mut Vec<FieldError>) -> Stage {
        let mut fail = |attr: &str, message: &str| {
            errors.push(FieldError {
                field: format!("stages[{i}].{attr}"),
                message: message.to_owned(),
            });
        };
        if !self.existing && self.key.trim().is_empty() {
            self.key = slug(&self.label);
        }
        // An unset category is the default one, as in the API.
        let category = match self.category.trim() {
            "" => StageCategory::default(),
            text => StageCategory::parse(text).unwrap_or_else(|message| {
                fail("category", &message);
                StageCategory::default()
            }),
        };
        let owner_role = match self.owner_role.trim() {
            "" => None,
            role => role.parse::<Role>().ok().or_else(|| {
                fail("owner_role", "is not a role");
                None
            }),
        };
        let sla_hours = match self.sla_hours.trim() {
            "" => None,
            hours => hours.parse::<i64>().ok().or_else(|| {
                fail("sla_hours", "must be a whole number of hours");
                None
            }),
        };
        Stage {
            key: self.key.trim().to_owned(),
            label: self.label.clone(),
            color: self.color.clone(),
            category,
            owner_role,
            sla_hours,
            return_stage: Some(self.return_stage.trim().to_owned()).filter(|s| !s.is_empty()),
        }
    }
}

/// A custom-field row as typed.
#[derive(Debug, Clone, Default)]
struct FieldRow {
    existing: bool,
    key: String,
    label: String,
    field_type: String,
    /// Choices, comma-separated.
    options: String,
    required: bool,
    position: String,
    remove: bool,
    errors: RowErrors,
}

impl FieldRow {
    fn from_field(field: &FieldDef) -> FieldRow {
        FieldRow {
            existing: true,
            key: field.key.clone(),
            label: field.label.clone(),
            field_type: field.field_type.as_str().to_owned(),
            options: field.options.join(", "),
            required: field.required,
            ..FieldRow::default()
        }
    }

    fn blank() -> FieldRow {
        FieldRow {
            field_type: FieldType::Text.as_str().to_owned(),
            ..FieldRow::default()
        }
    }

    fn is_blank(&self) -> bool {
        !self.existing && self.key.trim().is_empty() && self.label.trim().is_empty()
    }

    fn set(&mut self, attr: &str, value: String) {
        match attr {
            "existing" => self.existing = value == "1",
            "key" => self.key = value,
            "label" => self.label = value,
            "field_type" => self.field_type = value,
            "options" => self.options = value,
            "required" => self.required = value == "1",
            "position" => self.position = value,
            "remove" => self.remove = value == "1",
            _ => {}
        }
    }

    fn build_field(&mut self, i: usize, errors: &mut Vec<FieldError>) -> FieldDef {
        if !self.existing && self.key.trim().is_empty() {
            self.key = slug(&self.label);
        }
        let field_type = match self.field_type.trim() {
            "" => FieldType::Text,
            text => FieldType::parse(text).unwrap_or_else(|message| {
                errors.push(FieldError {
                    field: format!("fields[{i}].field_type"),
                    message,
                });
                FieldType::Text
            }),
        };
        FieldDef {
            key: self.key.trim().to_owned(),
            label: self.label.clone(),
            field_type,
            options: self.options.split(',').map(str::to_owned).collect(),
            required: self.required,
        }
    }
}

/// Everything the edit form posts.
#[derive(Debug, Default)]
struct Submitted {
    name: String,
    singular_label: String,
    plural_label: String,
    stages: Vec<StageRow>,
    fields: Vec<FieldRow>,
}

/// `stages[3][label]` → (3, "label") for the list `stages`.
fn indexed<'a>(name: &'a str, list: &str) -> Option<(usize, &'a str)> {
    let rest = name.strip_prefix(list)?.strip_prefix('[')?;
    let (index, rest) = rest.split_once("][")?;
    let attr = rest.strip_suffix(']')?;
    let index: usize = index.parse().ok()?;
    (index <= MAX_ROW_INDEX).then_some((index, attr))
}

/// Rows in the order their positions give (ties and blanks keep the order they came in).
fn ordered<T>(rows: BTreeMap<usize, T>, position: impl Fn(&T) -> &str) -> Vec<T> {
    let mut rows: Vec<(i64, usize, T)> = rows
        .into_iter()
        .enumerate()
        .map(|(n, (_, row))| {
            let fallback = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1);
            let pos = position(&row).trim().parse().unwrap_or(fallback);
            (pos, n, row)
        })
        .collect();
    rows.sort_by_key(|(pos, n, _)| (*pos, *n));
    rows.into_iter().map(|(_, _, row)| row).collect()
}

fn parse_body(body: &Bytes) -> Submitted {
    let mut out = Submitted::default();
    let mut stages: BTreeMap<usize, StageRow> = BTreeMap::new();
    let mut fields: BTreeMap<usize, FieldRow> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "name" => out.name = value,
            "singular_label" => out.singular_label = value,
            "plural_label" => out.plural_label = value,
            other => {
                if let Some((i, attr)) = indexed(other, "stages") {
                    stages.entry(i).or_default().set(attr, value);
                } else if let Some((i, attr)) = indexed(other, "fields") {
                    fields.entry(i).or_default().set(attr, value);
                }
            }
        }
    }
    out.stages = ordered(stages, |r| &r.position)
        .into_iter()
        .filter(|r| !r.is_blank())
        .collect();
    out.fields = ordered(fields, |r| &r.position)
        .into_iter()
        .filter(|r| !r.is_blank())
        .collect();
    out
}

/// The spec the form describes (removed rows left out), and the problems only the form sees.
fn build_spec(form: &mut Submitted) -> (PipelineSpec, Vec<FieldError>) {
    let mut errors = Vec::new();
    let stages = form
        .stages
        .iter_mut()
        .filter(|r| !r.remove)
        .enumerate()
        .map(|(i, row)| row.build_stage(i, &mut errors))
        .collect();
    let fields = form
        .fields
        .iter_mut()
        .filter(|r| !r.remove)
        .enumerate()
        .map(|(i, row)| row.build_field(i, &mut errors))
        .collect();
    let spec = PipelineSpec {
        name: form.name.clone(),
        singular_label: form.singular_label.clone(),
        plural_label: form.plural_label.clone(),
        stages,
        fields,
    };
    (spec, errors)
}

/// Hands row errors (`stages[2].key`) to their rows and returns the rest (name, labels, lists).
fn distribute(form: &mut Submitted, errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut rest = Vec::new();
    for error in errors {
        let target = if let Some((i, attr)) = row_error(&error.field, "stages") {
            form.stages
                .iter_mut()
                .filter(|r| !r.remove)
                .nth(i)
                .map(|r| (&mut r.errors, attr))
        } else if let Some((i, attr)) = row_error(&error.field, "fields") {
            form.fields
                .iter_mut()
                .filter(|r| !r.remove)
                .nth(i)
                .map(|r| (&mut r.errors, attr))
        } else {
            None
        };
        match target {
            Some((row, attr)) => row.0.push((attr.to_owned(), error.message)),
            None => rest.push(error),
        }
    }
    rest
}

/// `stages[2].key` → (2, "key").
fn row_error<'a>(field: &'a str, list: &str) -> Option<(usize, &'a str)> {
    let rest = field.strip_prefix(list)?.strip_prefix('[')?;
    let (index, attr) = rest.split_once("].")?;
    Some((index.parse().ok()?, attr))
}

#[derive(Template)]
#[template(path = "pipeline_edit.html")]
struct EditPage {
    shell: Shell,
    /// Where the form posts.
    action: String,
    is_new: bool,
    form: Submitted,
    errors: FormErrors,
    /// How many inputs need fixing, for the summary above the form.
    error_count: usize,
    blank_stage: StageRow,
    blank_field: FieldRow,
    /// (key, label) of every stage in the form, for the return-stage selects.
    stage_choices: Vec<(String, String)>,
    categories: Vec<(&'static str, &'static str)>,
    roles: Vec<(&'static str, &'static str)>,
    field_types: Vec<(&'static str, &'static str)>,
}

fn form_page(
    shell: Shell,
    action: String,
    is_new: bool,
    form: Submitted,
    errors: FormErrors,
) -> EditPage {
    let error_count = errors.fields.len()
        + form.stages.iter().map(|r| r.errors.0.len()).sum::<usize>()
        + form.fields.iter().map(|r| r.errors.0.len()).sum::<usize>();
    let stage_choices = form
        .stages
        .iter()
        .filter(|r| !r.remove && !r.key.trim().is_empty())
        .map(|r| (r.key.trim().to_owned(), r.label.clone()))
        .collect();
    EditPage {
        shell,
        action,
        is_new,
        blank_stage: StageRow::blank(form.stages.len()),
        blank_field: FieldRow::blank(),
        form,
        errors,
        error_count,
        stage_choices,
        categories: StageCategory::ALL
            .iter()
            .map(|c| (c.as_str(), c.label()))
            .collect(),
        roles: Role::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
        field_types: FieldType::ALL
            .iter()
            .map(|t| (t.as_str(), t.label()))
            .collect(),
    }
}

/// Record counts per stage of a pipeline.
async fn stage_counts(
    state: &AppState,
    web: &WebCtx,
    id: &str,
) -> Result<Vec<store::StageCount>, AppError> {
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let counts = store::count_by_stage(&mut tx, id).await?;
    tx.commit().await?;
    Ok(counts)
}

fn with_counts(rows: &mut [StageRow], counts: &[store::StageCount]) {
    for row in rows {
        row.records = counts
            .iter()
            .find(|c| c.stage == row.key)
            .map_or(0, |c| c.count);
    }
}

struct PipelineView {
    id: String,
    name: String,
    singular_label: String,
    plural_label: String,
    /// (label, color) of each stage, in order.
    stages: Vec<(String, String)>,
    fields: usize,
    records: i64,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct ListPage {
    shell: Shell,
    pipelines: Vec<PipelineView>,
    alert: Option<String>,
}

async fn list_response(
    state: &AppState,
    web: &WebCtx,
    notice: Option<String>,
    alert: Option<String>,
) -> WebResult {
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let stored: Vec<Pipeline> = store::list(&mut tx).await?;
    let mut pipelines = Vec::with_capacity(stored.len());
    for p in stored {
        let records = store::count_by_stage(&mut tx, &p.id)
            .await?
            .iter()
            .map(|c| c.count)
            .sum();
        pipelines.push(PipelineView {
            stages: p
                .spec
                .stages
                .iter()
                .map(|s| (s.label.clone(), s.color.clone()))
                .collect(),
            fields: p.spec.fields.len(),
            records,
            id: p.id,
            name: p.spec.name,
            singular_label: p.spec.singular_label,
            plural_label: p.spec.plural_label,
        });
    }
    tx.commit().await?;
    let mut shell = web.shell(state, "Pipelines", "pipelines").await?;
    shell.notice = notice;
    let status = if alert.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        render(&ListPage {
            shell,
            pipelines,
            alert,
        }),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
    saved: Option<String>,
}

pub async fn list_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let notice = (q.notice.as_deref() == Some("deleted")).then(|| "Pipeline deleted.".to_owned());
    list_response(&state, &web, notice, None).await
}

/// A starting point for a new pipeline: a typical open → won / lost flow, to rename or remove.
fn starter_form() -> Submitted {
    let stage = |key: &str, label: &str, color: &str, category: StageCategory| StageRow {
        key: key.to_owned(),
        label: label.to_owned(),
        color: color.to_owned(),
        category: category.as_str().to_owned(),
        ..StageRow::default()
    };
    Submitted {
        stages: vec![
            stage("new", "New", "#3b82f6", StageCategory::Open),
            stage("in_progress", "In progress", "#f59e0b", StageCategory::Open),
            stage("won", "Won", "#16a34a", StageCategory::Won),
            stage("lost", "Lost", "#6b7280", StageCategory::Lost),
        ],
        ..Submitted::default()
    }
}

pub async fn new_page(State(state): State<AppState>, web: WebCtx) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let shell = web.shell(&state, "New pipeline", "pipelines").await?;
    let page = form_page(
        shell,
        "/settings/pipelines/new".to_owned(),
        true,
        starter_form(),
        FormErrors::default(),
    );
    Ok(render(&page))
}

/// Shows the form again with the service's (or the form's own) objections.
async fn refused(
    state: &AppState,
    web: &WebCtx,
    id: Option<&str>,
    mut form: Submitted,
    error: AppError,
) -> WebResult {
    let status = error.status();
    let mut errors = FormErrors::from_error(error)?;
    errors.fields = distribute(&mut form, std::mem::take(&mut errors.fields));
    if let Some(id) = id {
        with_counts(&mut form.stages, &stage_counts(state, web, id).await?);
    }
    let (title, action) = match id {
        Some(id) => ("Edit pipeline", format!("/settings/pipelines/{id}")),
        None => ("New pipeline", "/settings/pipelines/new".to_owned()),
    };
    let shell = web.shell(state, title, "pipelines").await?;
    let page = form_page(shell, action, id.is_none(), form, errors);
    Ok((status, render(&page)).into_response())
}

/// Validates what the form alone can check; on success, the spec to save.
fn checked(form: &mut Submitted) -> Result<PipelineSpec, AppError> {
    let (spec, mut errors) = build_spec(form);
    if errors.is_empty() {
        return Ok(spec);
    }
    // Report everything at once: the form's own findings plus the spec's rules.
    if let Err(more) = spec.validated() {
        errors.extend(more);
    }
    Err(AppError::Validation(errors))
}

pub async fn create_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let mut form = parse_body(&body);
    // As in the API, blank labels follow the name ("Partners" → "Partner" / "Partners").
    if form.plural_label.trim().is_empty() {
        form.plural_label = form.name.trim().to_owned();
    }
    if form.singular_label.trim().is_empty() {
        let plural = form.plural_label.trim();
        form.singular_label = plural.strip_suffix('s').unwrap_or(plural).to_owned();
    }
    let result = match checked(&mut form) {
        Ok(spec) => service::create(&state, &web.ctx, spec).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(pipeline) => Ok(Redirect::to(&format!(
            "/settings/pipelines/{}?saved=created",
            pipeline.id
        ))
        .into_response()),
        Err(error) => refused(&state, &web, None, form, error).await,
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let pipeline = service::get(&state, &web.ctx, &id).await?;
    let mut form = Submitted {
        name: pipeline.spec.name.clone(),
        singular_label: pipeline.spec.singular_label.clone(),
        plural_label: pipeline.spec.plural_label.clone(),
        stages: pipeline
            .spec
            .stages
            .iter()
            .map(StageRow::from_stage)
            .collect(),
        fields: pipeline
            .spec
            .fields
            .iter()
            .map(FieldRow::from_field)
            .collect(),
    };
    with_counts(&mut form.stages, &stage_counts(&state, &web, &id).await?);
    let mut shell = web.shell(&state, &pipeline.spec.name, "pipelines").await?;
    shell.notice = match q.saved.as_deref() {
        Some("created") => Some("Pipeline created.".to_owned()),
        Some(_) => Some("Pipeline saved.".to_owned()),
        None => None,
    };
    let page = form_page(
        shell,
        format!("/settings/pipelines/{id}"),
        false,
        form,
        FormErrors::default(),
    );
    Ok(render(&page))
}

pub async fn edit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let mut form = parse_body(&body);
    let result = match checked(&mut form) {
        Ok(spec) => {
            let change = PipelineChange {
                name: Some(spec.name),
                singular_label: Some(spec.singular_label),
                plural_label: Some(spec.plural_label),
                stages: Some(spec.stages),
                fields: Some(spec.fields),
            };
            service::update(&state, &web.ctx, &id, change).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/settings/pipelines/{id}?saved=1")).into_response()),
        Err(error) => refused(&state, &web, Some(&id), form, error).await,
    }
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(Permission::PipelinesManage)?;
    let pipeline = service::get(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Delete pipeline", "pipelines").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!(
            "Delete the \u{201c}{}\u{201d} pipeline?",
            pipeline.spec.name
        ),
        body: format!(
            "Its {} stages and {} custom fields go away, and it leaves the sidebar for everyone. Only an empty pipeline can be deleted. This cannot be undone.",
            pipeline.spec.stages.len(),
            pipeline.spec.fields.len()
        ),
        action: format!("/settings/pipelines/{id}/delete"),
        confirm_label: "Delete pipeline".to_owned(),
        cancel_href: "/settings/pipelines".to_owned(),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    match service::delete(&state, &web.ctx, &id).await {
        Ok(()) => Ok(Redirect::to("/settings/pipelines?notice=deleted").into_response()),
        Err(AppError::Conflict(message)) => list_response(&state, &web, None, Some(message)).await,
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_keys() {
        assert_eq!(slug("Under review"), "under_review");
        assert_eq!(slug("  2nd call!! "), "nd_call");
        assert_eq!(slug("Ça va"), "a_va");
        assert_eq!(slug("***"), "");
        assert!(meridian_core::pipeline::is_key(&slug(&"Long ".repeat(20))));
    }

    #[test]
    fn rows_follow_positions_and_drop_blanks() {
        let body = Bytes::from(
            "name=Deals&stages%5B0%5D%5Blabel%5D=First&stages%5B0%5D%5Bposition%5D=2\
             &stages%5B1%5D%5Blabel%5D=Second&stages%5B1%5D%5Bposition%5D=1\
             &stages%5B2%5D%5Blabel%5D=&stages%5B2%5D%5Bkey%5D=\
             &fields%5B0%5D%5Blabel%5D=Size&fields%5B0%5D%5Brequired%5D=1",
        );
        let mut form = parse_body(&body);
        let labels: Vec<&str> = form.stages.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["Second", "First"]);
        let (spec, errors) = build_spec(&mut form);
        assert!(errors.is_empty());
        assert_eq!(spec.stages[0].key, "second");
        assert!(spec.fields[0].required);
    }

    #[test]
    fn errors_find_their_rows_past_removed_ones() {
        let mut form = Submitted {
            stages: vec![
                StageRow {
                    remove: true,
                    ..StageRow::default()
                },
                StageRow::default(),
            ],
            ..Submitted::default()
        };
        let rest = distribute(
            &mut form,
            vec![
                FieldError {
                    field: "stages[0].key".to_owned(),
                    message: "is bad".to_owned(),
                },
                FieldError {
                    field: "name".to_owned(),
                    message: "is required".to_owned(),
                },
            ],
        );
        assert_eq!(form.stages[1].errors.get("key"), Some("is bad"));
        assert!(form.stages[0].errors.get("key").is_none());
        assert_eq!(rest.len(), 1);
    }
}
