//! The editor page: name and on/off, the trigger, the conditions and the ordered steps as a form
//! (or the whole definition as JSON when it has if/else branches), the version history, and
//! deleting behind a confirmation. Every button posts to the same handler, which re-renders the
//! form (add, move, remove, update) or saves it through the service.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::crm::{Picklist, TaskType};
use meridian_core::pipeline::{FieldDef, FieldType};
use meridian_core::{FieldError, Permission, Role};

use super::form::{EditorForm, has_branches, parse_definition, pretty};
use super::list::LastRun;
use super::rows::sentence;
use super::{
    ACTIONS, Lookups, MAX_LISTED, NoticeQuery, TRIGGERS, count_actions, lead_field_label,
    status_class, status_label, steps_text,
};
use crate::automations::definition::Definition;
use crate::automations::service::{self, AutomationInput, LEAD_FIELDS};
use crate::automations::store::AutomationRow;
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

/// Comparisons, as the condition rows offer them.
const OPS: [(&str, &str); 8] = [
    ("equals", "is"),
    ("not_equals", "is not"),
    ("contains", "contains"),
    ("in", "is one of"),
    ("greater_than", "is more than"),
    ("less_than", "is less than"),
    ("is_empty", "is empty"),
    ("is_not_empty", "is not empty"),
];

const UNITS: [(&str, &str); 3] = [("minutes", "minutes"), ("hours", "hours"), ("days", "days")];

/// Fields the page shows errors next to; refusals of anything else are listed above the form.
const PLACED: [&str; 9] = [
    "name",
    "definition.trigger.form_id",
    "definition.trigger.cron",
    "definition.trigger.stage",
    "definition.trigger.pipeline_id",
    "definition.trigger.from",
    "definition.trigger.to",
    "definition.trigger.field",
    "definition.actions",
];

pub struct PipelineChoice {
    pub id: String,
    pub name: String,
    /// (key, label)
    pub stages: Vec<(String, String)>,
}

/// Everything the form's selects offer.
pub struct Choices {
    pub triggers: [(&'static str, &'static str); 8],
    pub actions: [(&'static str, &'static str); 12],
    pub ops: [(&'static str, &'static str); 8],
    pub units: [(&'static str, &'static str); 3],
    pub pipelines: Vec<PipelineChoice>,
    /// Lead fields conditions and the field trigger compare: (name, label).
    pub lead_fields: Vec<(String, String)>,
    /// Custom fields as conditions name them: (`custom_fields.KEY`, label).
    pub custom_fields: Vec<(String, String)>,
    /// Custom fields a step sets: (KEY, label).
    pub custom_keys: Vec<(String, String)>,
    /// Date custom fields a wait can end at: (`custom_fields.KEY`, label).
    pub date_fields: Vec<(String, String)>,
    pub templates: Vec<(String, String)>,
    pub sequences: Vec<(String, String)>,
    /// Webhook endpoints: (id, description or address).
    pub webhooks: Vec<(String, String)>,
    /// Inbound forms: (id, name).
    pub forms: Vec<(String, String)>,
    pub members: Vec<(String, String)>,
    pub roles: Vec<(&'static str, &'static str)>,
    pub task_types: Vec<(&'static str, &'static str)>,
    defs: Vec<FieldDef>,
    region: String,
    lookups: Lookups,
}

impl Choices {
    async fn load(state: &AppState, ctx: &Ctx) -> Result<Choices, AppError> {
        let lookups = Lookups::load(state, ctx).await?;
        let templates = crate::email::web::template_choices(state, ctx).await?;
        let sequences = crate::email::sequences::list(state, ctx)
            .await?
            .into_iter()
            .map(|(s, _)| (s.id, s.name))
            .collect();
        let mut tx = state.db.tenant_read(&ctx.tenant).await?;
        let region = crate::leads::store::org_region(&mut tx).await?;
        let webhooks = crate::webhooks::store::subscriptions(&mut tx, None, MAX_LISTED)
            .await?
            .into_iter()
            .map(|w| {
                let label = if w.description.trim().is_empty() {
                    w.url
                } else {
                    w.description
                };
                (w.id, label)
            })
            .collect();
        tx.commit().await?;
        let mut defs: Vec<FieldDef> = Vec::new();
        for def in lookups.pipelines.iter().flat_map(|p| p.spec.fields.iter()) {
            if !defs.iter().any(|d| d.key == def.key) {
                defs.push(def.clone());
            }
        }
        let prefixed = |d: &FieldDef| (format!("custom_fields.{}", d.key), d.label.clone());
        Ok(Choices {
            triggers: TRIGGERS,
            actions: ACTIONS,
            ops: OPS,
            units: UNITS,
            pipelines: lookups
                .pipelines
                .iter()
                .map(|p| PipelineChoice {
                    id: p.id.clone(),
                    name: p.spec.name.clone(),
                    stages: p
                        .spec
                        .stages
                        .iter()
                        .map(|s| (s.key.clone(), s.label.clone()))
                        .collect(),
                })
                .collect(),
            lead_fields: LEAD_FIELDS
                .iter()
                .map(|f| ((*f).to_owned(), lead_field_label(f).unwrap_or(f).to_owned()))
                .collect(),
            custom_fields: defs.iter().map(prefixed).collect(),
            custom_keys: defs
                .iter()
                .map(|d| (d.key.clone(), d.label.clone()))
                .collect(),
            date_fields: defs
                .iter()
                .filter(|d| d.field_type == FieldType::Date)
                .map(prefixed)
                .collect(),
            templates,
            sequences,
            webhooks,
            forms: lookups.forms.clone(),
            members: lookups.members.clone(),
            roles: Role::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
            task_types: TaskType::ALL
                .iter()
                .map(|t| (t.as_str(), t.label()))
                .collect(),
            defs,
            region,
            lookups,
        })
    }
}

/// The side panel of a saved automation.
pub struct Status {
    pub runs_href: String,
    pub enabled: bool,
    pub version: i64,
    pub updated: String,
    pub updated_exact: String,
    pub last: Option<LastRun>,
}

pub struct VersionView {
    pub version: i64,
    pub current: bool,
    pub when: String,
    pub when_exact: String,
    pub who: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "automation_edit.html")]
struct EditorPage {
    shell: Shell,
    tab: &'static str,
    /// None for a new automation.
    id: Option<String>,
    action: String,
    form: EditorForm,
    errors: FormErrors,
    /// How many refusals the page shows.
    problem_count: usize,
    /// Refusals no field shows, as "where: what".
    unplaced: Vec<String>,
    /// The id of the part of the page with the first refusal (empty when none is marked).
    first_problem: String,
    /// The definition as JSON instead of the form's sections.
    json_mode: bool,
    /// The stored definition has branches, which only the JSON editor edits.
    branches: bool,
    /// Refusals of the JSON, as "where: what".
    json_errors: Vec<String>,
    choices: Choices,
    status: Option<Status>,
    versions: Vec<VersionView>,
}

/// What the page shows besides the choices.
struct Editing<'a> {
    existing: Option<&'a AutomationRow>,
    form: EditorForm,
    errors: Vec<FieldError>,
    json_mode: bool,
    notice: Option<String>,
}

fn stored_definition(row: &AutomationRow) -> Result<Definition, AppError> {
    serde_json::from_str(&row.definition).map_err(|e| AppError::Internal(e.into()))
}

async fn side_panel(
    state: &AppState,
    ctx: &Ctx,
    row: &AutomationRow,
    lookups: &Lookups,
) -> Result<(Status, Vec<VersionView>), AppError> {
    let last = service::runs(state, ctx, &row.id, None, None, 1)
        .await?
        .into_iter()
        .next()
        .map(|run| LastRun {
            status_label: status_label(&run.status),
            status_class: status_class(&run.status),
            when: relative(run.created_at),
            when_exact: exact(run.created_at),
            id: run.id,
        });
    let versions = service::versions(state, ctx, &row.id)
        .await?
        .into_iter()
        .map(|v| {
            let summary = serde_json::from_str::<Definition>(&v.definition)
                .map(|d| {
                    format!(
                        "{} \u{00b7} {}",
                        lookups.summary(&d.trigger),
                        steps_text(count_actions(&d.actions))
                    )
                })
                .unwrap_or_default();
            VersionView {
                current: v.version == row.version,
                when: relative(v.created_at),
                when_exact: exact(v.created_at),
                who: v
                    .created_by
                    .as_deref()
                    .map_or_else(|| "An API key".to_owned(), |id| lookups.member(id)),
                version: v.version,
                summary,
            }
        })
        .collect();
    let status = Status {
        runs_href: format!("/automations/{}/runs", row.id),
        enabled: row.enabled,
        version: row.version,
        updated: relative(row.updated_at),
        updated_exact: exact(row.updated_at),
        last,
    };
    Ok((status, versions))
}

async fn editor_response(
    state: &AppState,
    web: &WebCtx,
    choices: Choices,
    editing: Editing<'_>,
) -> WebResult {
    let Editing {
        existing,
        mut form,
        errors,
        json_mode,
        notice,
    } = editing;
    let problem_count = errors.len();
    let (mut json_errors, mut unplaced) = (Vec::new(), Vec::new());
    let mut placed = Vec::new();
    let rest = if json_mode {
        errors
    } else {
        form.distribute(errors)
    };
    for error in rest {
        // A path (`actions[1].stage: …`) reads as written in the JSON; a bare message as a sentence.
        let shown = match error.field.as_str() {
            "" | "definition" | "definition_json" => sentence(&error.message),
            field => format!(
                "{}: {}",
                field.strip_prefix("definition.").unwrap_or(field),
                error.message
            ),
        };
        if json_mode && error.field.starts_with("definition") {
            json_errors.push(shown);
        } else if PLACED.contains(&error.field.as_str()) {
            placed.push(FieldError {
                message: sentence(&error.message),
                ..error
            });
        } else {
            unplaced.push(shown);
        }
    }
    let marked = |field: &str| placed.iter().any(|e| e.field.starts_with(field));
    let first_problem = if json_mode && !json_errors.is_empty() {
        "json".to_owned()
    } else if marked("name") {
        "auto-name".to_owned()
    } else if marked("definition.trigger") {
        "trigger".to_owned()
    } else if form.rules.iter().any(|r| r.errors.any()) {
        "conditions".to_owned()
    } else if let Some(i) = form.actions.iter().position(|a| a.errors.any()) {
        format!("step-{i}")
    } else if marked("definition.actions") {
        "actions".to_owned()
    } else {
        String::new()
    };
    if !json_mode {
        form.json = pretty(&form.definition(&choices.defs, &choices.region).0);
    }
    let branches = match existing {
        Some(row) => has_branches(&stored_definition(row)?),
        None => false,
    };
    let (status, versions) = match existing {
        Some(row) => {
            let (status, versions) = side_panel(state, &web.ctx, row, &choices.lookups).await?;
            (Some(status), versions)
        }
        None => (None, Vec::new()),
    };
    let title = existing.map_or("New automation", |a| a.name.as_str());
    let mut shell = web.shell(state, title, "automations").await?;
    shell.notice = notice;
    let id = existing.map(|a| a.id.clone());
    let code = if problem_count > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = EditorPage {
        shell,
        tab: "editor",
        action: id.as_ref().map_or_else(
            || "/automations/new".to_owned(),
            |id| format!("/automations/{id}"),
        ),
        id,
        form,
        errors: FormErrors {
            fields: placed,
            general: None,
        },
        problem_count,
        unplaced,
        first_problem,
        json_mode,
        branches,
        json_errors,
        choices,
        status,
        versions,
    };
    Ok((code, render(&page)).into_response())
}

pub async fn new_page(State(state): State<AppState>, web: WebCtx) -> WebResult {
    web.ctx.require(Permission::AutomationsManage)?;
    let choices = Choices::load(&state, &web.ctx).await?;
    let editing = Editing {
        existing: None,
        form: EditorForm::blank(),
        errors: Vec::new(),
        json_mode: false,
        notice: None,
    };
    editor_response(&state, &web, choices, editing).await
}

pub async fn new_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    submit(&state, &web, None, &body).await
}

pub async fn edit_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let row = service::get(&state, &web.ctx, &id).await?;
    let definition = stored_definition(&row)?;
    let choices = Choices::load(&state, &web.ctx).await?;
    let notice = match q.notice.as_deref() {
        Some("created") => Some("Automation created.".to_owned()),
        Some("saved") => Some("Automation saved.".to_owned()),
        Some("gallery") => Some(
            "Created from the gallery, turned off: review it, then turn it on and save.".to_owned(),
        ),
        _ => None,
    };
    let editing = Editing {
        existing: Some(&row),
        form: EditorForm::from_definition(&row.name, row.enabled, &definition),
        errors: Vec::new(),
        json_mode: has_branches(&definition),
        notice,
    };
    editor_response(&state, &web, choices, editing).await
}

pub async fn edit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let row = service::get(&state, &web.ctx, &id).await?;
    submit(&state, &web, Some(&row), &body).await
}

/// Re-renders the form after a row change, or saves it (as a form or as JSON).
async fn submit(
    state: &AppState,
    web: &WebCtx,
    existing: Option<&AutomationRow>,
    body: &[u8],
) -> WebResult {
    web.ctx.require(Permission::AutomationsManage)?;
    let choices = Choices::load(state, &web.ctx).await?;
    let mut form = EditorForm::parse(body);
    let intent = std::mem::take(&mut form.intent);
    let json_mode = intent == "save_json";
    if form.apply(&intent) {
        let editing = Editing {
            existing,
            form,
            errors: Vec::new(),
            json_mode: false,
            notice: None,
        };
        return editor_response(state, web, choices, editing).await;
    }
    let definition = if json_mode {
        parse_definition(&form.json).map_err(|e| vec![e])
    } else {
        form.drop_blank_rules();
        let (definition, problems) = form.definition(&choices.defs, &choices.region);
        if problems.is_empty() {
            Ok(definition)
        } else {
            Err(problems)
        }
    };
    let errors = match definition {
        Err(mut problems) => {
            if form.name.trim().is_empty() {
                problems.push(FieldError {
                    field: "name".to_owned(),
                    message: "is required".to_owned(),
                });
            }
            problems
        }
        Ok(definition) => {
            let input = AutomationInput {
                name: Some(form.name.clone()),
                enabled: Some(form.enabled),
                definition: Some(definition),
            };
            let saved = match existing {
                None => service::create(state, &web.ctx, input)
                    .await
                    .map(|row| (row.id, "created")),
                Some(row) => service::update(state, &web.ctx, &row.id, input)
                    .await
                    .map(|row| (row.id, "saved")),
            };
            match saved {
                Ok((id, notice)) => {
                    return Ok(
                        Redirect::to(&format!("/automations/{id}?notice={notice}")).into_response()
                    );
                }
                Err(AppError::Validation(fields)) => fields,
                Err(other) => {
                    let general = FormErrors::from_error(other)?.general.unwrap_or_default();
                    // Not about a field: listed above the form.
                    vec![FieldError {
                        field: String::new(),
                        message: general,
                    }]
                }
            }
        }
    };
    let editing = Editing {
        existing,
        form,
        errors,
        json_mode,
        notice: None,
    };
    editor_response(state, web, choices, editing).await
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let row = service::get(&state, &web.ctx, &id).await?;
    let shell = web
        .shell(&state, "Delete automation", "automations")
        .await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Delete the automation \u{201c}{}\u{201d}?", row.name),
        body: "It stops at once: runs that are queued or waiting do not go on, and its versions \
               and run history are deleted with it. What its runs already did (emails sent, tasks \
               created) stays. This cannot be undone."
            .to_owned(),
        action: format!("/automations/{id}/delete"),
        confirm_label: "Delete automation".to_owned(),
        cancel_href: format!("/automations/{id}"),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    service::delete(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/automations?notice=deleted").into_response())
}
