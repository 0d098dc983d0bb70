//! The lead page: header with stage, assignee, priority and lifecycle actions; tabs Overview
//! (inline edit), Notes, Tasks, Emails (the lead's messages and a form to write to them) and
//! Activity.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_core::crm::{ActivityKind, LeadSource, Picklist, TaskType};
use serde_json::Value;

use super::form::LeadForm;
use super::{
    StageBadge, display_value, form_pairs, form_value, full_name, source_label, stage_badge,
};
use crate::email::render::Rendered;
use crate::email::web::sequences::{EnrollForm, LeadSequences};
use crate::email::web::{Compose, Composed, MessageView};
use crate::http::error::AppError;
use crate::http::pagination::PageRequest;
use crate::leads::activity::ActivityRow;
use crate::leads::api::{display_number, query_pairs};
use crate::leads::service::{self, Action};
use crate::orgs::web::ConfirmPage;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::tasks::service::TaskInput;
use crate::tasks::store::{Status, TaskFilter, TaskRow};
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

pub struct NoteView {
    pub id: String,
    pub author: String,
    pub body_html: String,
    pub when: String,
    pub when_exact: String,
    pub deletable: bool,
}

pub struct TaskView {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub due: String,
    pub due_exact: String,
    pub overdue: bool,
    pub done: bool,
    pub assignee: String,
}

pub struct ActivityView {
    pub actor: String,
    pub summary: String,
    pub details: Vec<String>,
    pub when: String,
    pub when_exact: String,
    pub kind: String,
}

pub struct StageOption {
    pub key: String,
    pub label: String,
    pub allowed: bool,
}

#[derive(Template)]
#[template(path = "lead_detail.html")]
struct DetailPage {
    shell: Shell,
    id: String,
    number: String,
    name: String,
    stage: StageBadge,
    stage_since: String,
    pipeline_id: String,
    plural: String,
    singular: String,
    assignee_id: String,
    assignee: String,
    is_priority: bool,
    /// People (not API keys) may watch a lead; how many do, and whether the viewer does.
    can_watch: bool,
    watching: bool,
    watchers: usize,
    archived: bool,
    tags: Vec<String>,
    email: String,
    phone: String,
    created: String,
    created_exact: String,
    facts: Vec<(String, String)>,
    tab: String,
    stages: Vec<StageOption>,
    members: Vec<(String, String)>,
    move_targets: Vec<(String, String)>,
    can_write: bool,
    can_manage: bool,
    can_decide_handoff: bool,
    form: LeadForm,
    sources: Vec<(&'static str, &'static str)>,
    notes: Vec<NoteView>,
    tasks: Vec<TaskView>,
    task_types: Vec<(&'static str, &'static str)>,
    activity: Vec<ActivityView>,
    /// The signed-in person's id (new tasks default to them).
    me: String,
    errors: FormErrors,
    /// Whether the viewer may email the lead (and read its messages).
    can_email: bool,
    emails: Vec<MessageView>,
    more_emails: bool,
    /// Templates to start an email from, as (id, name); loaded for the Emails tab only.
    templates: Vec<(String, String)>,
    compose: Compose,
    /// The email form's draft rendered for this lead.
    preview: Option<Rendered>,
    /// The lead's sequences and the form to add it to one; loaded for the Emails tab only.
    sequences: LeadSequences,
}

fn notice_text(key: Option<&str>) -> Option<String> {
    Some(
        match key? {
            "created" => "Created.",
            "saved" => "Changes saved.",
            "stage" => "Stage changed.",
            "assigned" => "Assignment saved.",
            "priority" => "Priority updated.",
            "watching" => "You are watching it: its stage changes will notify you.",
            "unwatched" => "You stopped watching it.",
            "archived" => "Archived. It no longer shows in the default list.",
            "restored" => "Restored to the stage it had.",
            "moved" => "Moved to the other pipeline.",
            "accepted" => "Handoff accepted; it is assigned to you.",
            "denied" => "Handoff denied; it went back with your reason.",
            "note" => "Note added.",
            "note_deleted" => "Note deleted.",
            "task" => "Task added.",
            "task_done" => "Task updated.",
            "enrolled" => "Added to the sequence. Its emails go out on schedule.",
            _ => return None,
        }
        .to_owned(),
    )
}

fn stage_label(pipeline: &Pipeline, key: Option<&str>) -> String {
    match key {
        Some(key) => stage_badge(Some(pipeline), key).label,
        None => "—".to_owned(),
    }
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "empty".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "empty".to_owned(),
        Some(other) => display_value(other),
    }
}

fn describe(row: &ActivityRow, pipeline: &Pipeline, members: &[(String, String)]) -> ActivityView {
    let data: Value = serde_json::from_str(&row.data).unwrap_or(Value::Null);
    let s = |k: &str| data.get(k).and_then(Value::as_str);
    let member = |id: Option<&str>| {
        id.and_then(|id| members.iter().find(|(m, _)| m == id))
            .map_or_else(|| "someone".to_owned(), |(_, name)| name.clone())
    };
    let mut details = Vec::new();
    let summary = match ActivityKind::parse(&row.kind) {
        Ok(ActivityKind::LeadCreated) => {
            format!("created it in {}", stage_label(pipeline, s("stage")))
        }
        Ok(ActivityKind::InfoEdited) => {
            if let Some(changes) = data.get("changes").and_then(Value::as_object) {
                for (field, change) in changes {
                    details.push(format!(
                        "{}: {} → {}",
                        field.trim_start_matches("custom_fields.").replace('_', " "),
                        text_of(change.get("from")),
                        text_of(change.get("to"))
                    ));
                }
            }
            "edited the details".to_owned()
        }
        Ok(ActivityKind::StageChanged) => {
            if let Some(reason) = s("reason") {
                details.push(format!("Reason: {reason}"));
            }
            format!(
                "moved it from {} to {}",
                stage_label(pipeline, s("from")),
                stage_label(pipeline, s("to"))
            )
        }
        Ok(ActivityKind::Assigned) => format!("assigned it to {}", member(s("to"))),
        Ok(ActivityKind::Unassigned) => format!("unassigned {}", s("from_name").unwrap_or("it")),
        Ok(ActivityKind::PriorityChanged) => {
            if data.get("is_priority") == Some(&Value::Bool(true)) {
                "marked it as a priority".to_owned()
            } else {
                "removed the priority mark".to_owned()
            }
        }
        Ok(ActivityKind::Archived) => "archived it".to_owned(),
        Ok(ActivityKind::Restored) => "restored it".to_owned(),
        Ok(ActivityKind::MovedPipeline) => format!(
            "moved it from {} to {} ({})",
            s("from_pipeline").unwrap_or("another pipeline"),
            s("to_pipeline").unwrap_or("another pipeline"),
            s("to").unwrap_or("")
        ),
        Ok(ActivityKind::HandoffAccepted) => {
            format!(
                "accepted the handoff; now in {}",
                stage_label(pipeline, s("to"))
            )
        }
        Ok(ActivityKind::HandoffDenied) => {
            if let Some(reason) = s("reason") {
                details.push(format!("Reason: {reason}"));
            }
            format!(
                "denied the handoff; back to {}",
                stage_label(pipeline, s("to"))
            )
        }
        Ok(ActivityKind::NoteAdded) => {
            if let Some(excerpt) = s("excerpt") {
                details.push(excerpt.to_owned());
            }
            "added a note".to_owned()
        }
        Ok(ActivityKind::NoteDeleted) => "deleted a note".to_owned(),
        Ok(ActivityKind::TaskCreated) => format!("created the task “{}”", s("title").unwrap_or("")),
        Ok(ActivityKind::TaskCompleted) => {
            format!("completed the task “{}”", s("title").unwrap_or(""))
        }
        Ok(ActivityKind::Imported) => "imported it".to_owned(),
        Ok(ActivityKind::Merged) => {
            let count = data
                .get("merged")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("merged {count} duplicate(s) into it")
        }
        Ok(ActivityKind::EmailReplied) => {
            if let Some(snippet) = s("snippet").filter(|t| !t.is_empty()) {
                details.push(snippet.to_owned());
            }
            format!(
                "replied by email from {}",
                s("from").unwrap_or("their address")
            )
        }
        Ok(ActivityKind::SequenceStarted) => {
            format!("started the sequence “{}”", s("sequence").unwrap_or(""))
        }
        Ok(ActivityKind::SequenceStopped) => {
            format!("stopped the sequence “{}”", s("sequence").unwrap_or(""))
        }
        Ok(ActivityKind::EmailQueued) => format!(
            "emailed {}: “{}”",
            s("to").unwrap_or("them"),
            s("subject").unwrap_or("")
        ),
        Err(_) => row.kind.replace('_', " "),
    };
    ActivityView {
        actor: row
            .actor_label
            .split(" <")
            .next()
            .unwrap_or(&row.actor_label)
            .to_owned(),
        summary,
        details,
        when: relative(row.created_at),
        when_exact: exact(row.created_at),
        kind: row.kind.clone(),
    }
}

fn task_view(t: TaskRow) -> TaskView {
    let now = meridian_db::now();
    TaskView {
        overdue: t.completed_at.is_none() && t.due_at.is_some_and(|d| d < now),
        due: t.due_at.map(relative).unwrap_or_default(),
        due_exact: t.due_at.map(exact).unwrap_or_default(),
        done: t.completed_at.is_some(),
        kind: TaskType::parse(&t.task_type)
            .map_or_else(|_| t.task_type.clone(), |k| k.label().to_owned()),
        assignee: t.assignee_name.unwrap_or_default(),
        id: t.id,
        title: t.title,
    }
}

/// Renders the lead page (also after a failed form, with its errors and typed values).
pub async fn detail_response(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    tab: &str,
    errors: FormErrors,
    typed: Option<&[(String, String)]>,
    notice: Option<String>,
) -> WebResult {
    let page = PageParts {
        tab,
        errors,
        typed,
        notice,
        compose: Compose::default(),
        preview: None,
        enroll: EnrollForm::default(),
    };
    render_detail(state, web, id, page).await
}

/// What a render of the lead page shows besides the lead.
struct PageParts<'a> {
    tab: &'a str,
    errors: FormErrors,
    typed: Option<&'a [(String, String)]>,
    notice: Option<String>,
    compose: Compose,
    preview: Option<Rendered>,
    enroll: EnrollForm,
}

async fn render_detail(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    parts: PageParts<'_>,
) -> WebResult {
    let PageParts {
        tab,
        errors,
        typed,
        notice,
        compose,
        preview,
        enroll,
    } = parts;
    let ctx = &web.ctx;
    let (lead, pipeline) = service::get(state, ctx, id).await?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let members = crate::leads::store::assignable_members(&mut tx).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let watchers = crate::leads::watchers::user_ids(&mut tx, id).await?;
    tx.commit().await?;
    let page = PageRequest {
        limit: 100,
        after: None,
    };
    let notes = crate::notes::service::list(state, ctx, id, &page).await?;
    let activity = service::activity(state, ctx, id, &[], &page).await?;
    let tasks = crate::tasks::service::list(
        state,
        ctx,
        TaskFilter {
            search: None,
            assignee: None,
            lead_id: Some(id.to_owned()),
            status: Status::All,
            due_before: None,
            due_after: None,
            hidden: Vec::new(),
        },
        None,
        100,
    )
    .await?;
    let can_email = ctx.role.allows(Permission::EmailSend);
    let (emails, more_emails) = if can_email {
        crate::email::web::lead_messages(state, ctx, id).await?
    } else {
        (Vec::new(), false)
    };
    let templates = if can_email && tab == "emails" {
        crate::email::web::template_choices(state, ctx).await?
    } else {
        Vec::new()
    };
    let sequences = if can_email && tab == "emails" {
        crate::email::web::sequences::lead_sequences(state, ctx, id, enroll).await?
    } else {
        LeadSequences::default()
    };
    let row = &lead.row;
    let stage_def = pipeline.spec.stage(&row.stage);
    let in_handoff = stage_def.is_some_and(|s| s.is_handoff());
    let can_write = ctx.role.allows(Permission::LeadsWrite);
    let form = match typed {
        Some(pairs) => LeadForm::from_pairs(pairs, &pipeline.spec),
        None => LeadForm::from_lead(row, &lead.tags, &pipeline.spec),
    };
    let custom: serde_json::Map<String, Value> =
        serde_json::from_str(&row.custom_fields).unwrap_or_default();
    let mut facts: Vec<(String, String)> = vec![
        ("Phone".to_owned(), row.phone.clone().unwrap_or_default()),
        ("Email".to_owned(), row.email.clone().unwrap_or_default()),
        (
            "Location".to_owned(),
            [row.state.clone(), row.country.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "Date of birth".to_owned(),
            row.date_of_birth.clone().unwrap_or_default(),
        ),
        ("Source".to_owned(), source_label(&row.source)),
        (
            "Campaign".to_owned(),
            [
                row.utm_source.clone(),
                row.utm_campaign.clone(),
                row.campaign_id.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
        ),
    ];
    for field in &pipeline.spec.fields {
        facts.push((
            field.label.clone(),
            custom
                .get(&field.key)
                .map(display_value)
                .unwrap_or_default(),
        ));
    }
    let me = ctx.user_id();
    let mut shell = web
        .shell(state, &full_name(&row.first_name, &row.last_name), "leads")
        .await?;
    shell.active_pipeline = pipeline.id.clone();
    let status = if errors.any() || compose.errors.any() || sequences.form.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = DetailPage {
        id: row.id.clone(),
        number: display_number(row.number),
        name: full_name(&row.first_name, &row.last_name),
        stage: stage_badge(Some(&pipeline), &row.stage),
        stage_since: relative(row.stage_entered_at),
        pipeline_id: pipeline.id.clone(),
        plural: pipeline.spec.plural_label.clone(),
        singular: pipeline.spec.singular_label.clone(),
        assignee_id: row.assigned_to.clone().unwrap_or_default(),
        assignee: row.assignee_name.clone().unwrap_or_default(),
        is_priority: row.is_priority,
        can_watch: ctx.user_id().is_some(),
        watching: ctx
            .user_id()
            .is_some_and(|me| watchers.iter().any(|w| w == me)),
        watchers: watchers.len(),
        archived: row.archived_at.is_some(),
        tags: lead.tags.clone(),
        email: row.email.clone().unwrap_or_default(),
        phone: row.phone.clone().unwrap_or_default(),
        created: relative(row.created_at),
        created_exact: exact(row.created_at),
        facts,
        tab: tab.to_owned(),
        stages: pipeline
            .spec
            .stages
            .iter()
            .map(|s| StageOption {
                key: s.key.clone(),
                label: s.label.clone(),
                allowed: pipeline
                    .spec
                    .check_move(ctx.role, &row.stage, &s.key)
                    .is_ok(),
            })
            .collect(),
        move_targets: pipelines
            .iter()
            .filter(|p| p.id != pipeline.id)
            .flat_map(|p| {
                p.spec
                    .stages
                    .iter()
                    .filter(|s| ctx.role.may_work_stage(s.owner_role))
                    .map(|s| {
                        (
                            format!("{}:{}", p.id, s.key),
                            format!("{} → {}", p.spec.name, s.label),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        can_write,
        can_manage: ctx.role.allows(Permission::LeadsManage),
        can_decide_handoff: can_write
            && in_handoff
            && pipeline.spec.accept_target(ctx.role, &row.stage).is_ok(),
        form,
        sources: LeadSource::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        notes: notes
            .into_iter()
            .map(|n| NoteView {
                deletable: can_write
                    && (ctx.role.allows(Permission::LeadsManage)
                        || (n.author_id.is_some() && n.author_id.as_deref() == me)),
                author: n
                    .author_label
                    .split(" <")
                    .next()
                    .unwrap_or(&n.author_label)
                    .to_owned(),
                when: relative(n.created_at),
                when_exact: exact(n.created_at),
                id: n.id,
                body_html: n.body_html,
            })
            .collect(),
        tasks: tasks.into_iter().map(task_view).collect(),
        task_types: TaskType::ALL
            .iter()
            .map(|t| (t.as_str(), t.label()))
            .collect(),
        activity: activity
            .iter()
            .map(|a| describe(a, &pipeline, &members))
            .collect(),
        members,
        me: me.unwrap_or_default().to_owned(),
        errors,
        can_email,
        emails,
        more_emails,
        templates,
        compose,
        preview,
        sequences,
        shell: {
            shell.notice = notice;
            shell
        },
    };
    let response = (status, render(&page)).into_response();
    Ok(if tab == "emails" {
        crate::email::web::with_email_frames(response)
    } else {
        response
    })
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let params = query_pairs(raw.as_deref());
    let can_email = web.ctx.role.allows(Permission::EmailSend);
    let tab = form_value(&params, "tab")
        .filter(|tab| {
            ["notes", "tasks", "activity"].contains(tab) || (can_email && *tab == "emails")
        })
        .unwrap_or("overview");
    let notice = match form_value(&params, "notice") {
        Some("emailed") => Some(
            crate::email::web::queued_notice(&state, &web.ctx, &id, form_value(&params, "message"))
                .await?,
        ),
        Some(key) if key.starts_with("sequence_") => {
            crate::email::web::sequences::stop_notice(key).map(str::to_owned)
        }
        key => notice_text(key),
    };
    detail_response(&state, &web, &id, tab, FormErrors::default(), None, notice).await
}

/// Shows a refused action on the lead page (403 with the reason, 409, 422) instead of an error
/// page, so the person sees why and stays where they were.
async fn refused(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    tab: &str,
    error: AppError,
) -> WebResult {
    let errors = match error {
        AppError::Forbidden(reason) => FormErrors {
            fields: Vec::new(),
            general: Some(reason),
        },
        AppError::Duplicate { detail, .. } => FormErrors {
            fields: Vec::new(),
            general: Some(detail),
        },
        other => FormErrors::from_error(other)?,
    };
    let mut errors = errors;
    if errors.general.is_none() && !errors.fields.is_empty() {
        errors.general = Some(
            errors
                .fields
                .iter()
                .map(|f| format!("{} {}", f.field.replace('_', " "), f.message))
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    detail_response(state, web, id, tab, errors, None, None).await
}

/// The header's actions: stage, assign, priority, archive/restore, move, accept/deny; and the
/// Emails tab's form (`action=email`), which previews or sends.
pub async fn action_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let text = |name: &str| {
        form_value(&pairs, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (action, notice) = match form_value(&pairs, "action").unwrap_or("") {
        "stage" => (
            Action::Stage {
                stage: text("stage").unwrap_or_default(),
                reason: text("reason"),
            },
            "stage",
        ),
        "assign" => (
            Action::Assign {
                user_id: text("user_id"),
            },
            "assigned",
        ),
        "priority" => (
            Action::Priority {
                is_priority: form_value(&pairs, "value") == Some("true"),
            },
            "priority",
        ),
        "archive" => (Action::Archive, "archived"),
        "restore" => (Action::Restore, "restored"),
        "move" => {
            let target = text("target").unwrap_or_default();
            let (pipeline_id, stage) = target.split_once(':').unwrap_or(("", ""));
            (
                Action::Move {
                    pipeline_id: pipeline_id.to_owned(),
                    stage: stage.to_owned(),
                },
                "moved",
            )
        }
        "accept" => (Action::Accept, "accepted"),
        "watch" => {
            let on = form_value(&pairs, "value") == Some("true");
            crate::leads::watchers::set(&state, &web.ctx, &id, on).await?;
            let notice = if on { "watching" } else { "unwatched" };
            return Ok(Redirect::to(&format!("/leads/{id}?notice={notice}")).into_response());
        }
        "email" => return email_submit(&state, &web, &id, &pairs).await,
        "enroll" => return enroll_submit(&state, &web, &id, &pairs).await,
        "deny" => (
            Action::Deny {
                reason: text("reason").unwrap_or_default(),
            },
            "denied",
        ),
        _ => return Err(AppError::field("action", "is not an action of this page").into()),
    };
    match service::act(&state, &web.ctx, &id, action).await {
        Ok(lead) => {
            // After a handoff the record may belong to another role now: go back to the list.
            let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
            let still_visible = service::visible(&mut tx, &web.ctx, &id).await.is_ok();
            tx.commit().await?;
            if still_visible {
                Ok(Redirect::to(&format!("/leads/{id}?notice={notice}")).into_response())
            } else {
                Ok(Redirect::to(&format!(
                    "/leads?pipeline_id={}&notice=handed_off",
                    lead.row.pipeline_id
                ))
                .into_response())
            }
        }
        Err(
            e @ (AppError::Forbidden(_)
            | AppError::Validation(_)
            | AppError::Conflict(_)
            | AppError::Duplicate { .. }),
        ) => refused(&state, &web, &id, "overview", e).await,
        Err(other) => Err(other.into()),
    }
}

/// The Emails tab's form: Preview renders the draft for this lead and shows the form again with
/// what was typed; Send queues the email and comes back with a notice naming the address.
async fn email_submit(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    pairs: &[(String, String)],
) -> WebResult {
    let text = |name: &str| form_value(pairs, name).unwrap_or_default().to_owned();
    let compose = Compose {
        template_id: text("template_id"),
        subject: text("subject"),
        body_html: text("body_html").replace("\r\n", "\n"),
        errors: FormErrors::default(),
    };
    let send = form_value(pairs, "intent") == Some("send");
    match crate::email::web::compose(state, &web.ctx, id, compose, send).await? {
        Composed::Queued(message) => Ok(Redirect::to(&format!(
            "/leads/{id}?tab=emails&notice=emailed&message={message}"
        ))
        .into_response()),
        Composed::Shown { compose, preview } => {
            let page = PageParts {
                tab: "emails",
                errors: FormErrors::default(),
                typed: None,
                notice: None,
                compose,
                preview,
                enroll: EnrollForm::default(),
            };
            render_detail(state, web, id, page).await
        }
    }
}

/// The Emails tab's "Add to a sequence" form: back with a notice, or with why the lead was not
/// added (no address, suppressed, already in it ...) next to the form.
async fn enroll_submit(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    pairs: &[(String, String)],
) -> WebResult {
    let sequence_id = form_value(pairs, "sequence_id").unwrap_or_default().trim();
    match crate::email::web::sequences::enroll_lead(state, &web.ctx, id, sequence_id).await? {
        Ok(()) => {
            Ok(Redirect::to(&format!("/leads/{id}?tab=emails&notice=enrolled")).into_response())
        }
        Err(reason) => {
            let page = PageParts {
                tab: "emails",
                errors: FormErrors::default(),
                typed: None,
                notice: None,
                compose: Compose::default(),
                preview: None,
                enroll: EnrollForm {
                    sequence_id: sequence_id.to_owned(),
                    error: Some(reason),
                },
            };
            render_detail(state, web, id, page).await
        }
    }
}

pub async fn note_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let body = form_value(&pairs, "body_html")
        .unwrap_or("")
        .replace("\r\n", "\n");
    // The editor (JavaScript) sends HTML; the plain textarea sends text, whose blank lines
    // become paragraphs and whose angle brackets stay text.
    let html = if form_value(&pairs, "format") == Some("html") {
        body
    } else {
        body.split("\n\n")
            .filter(|p| !p.trim().is_empty())
            .map(|p| format!("<p>{}</p>", escape_html(p.trim()).replace('\n', "<br>")))
            .collect()
    };
    match crate::notes::service::add(&state, &web.ctx, &id, &html).await {
        Ok(_) => Ok(Redirect::to(&format!("/leads/{id}?tab=notes&notice=note")).into_response()),
        Err(e @ AppError::Validation(_)) => refused(&state, &web, &id, "notes", e).await,
        Err(other) => Err(other.into()),
    }
}

pub async fn note_delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path((id, note_id)): Path<(String, String)>,
) -> WebResult {
    match crate::notes::service::delete(&state, &web.ctx, &note_id).await {
        Ok(()) => {
            Ok(Redirect::to(&format!("/leads/{id}?tab=notes&notice=note_deleted")).into_response())
        }
        Err(e @ AppError::Forbidden(_)) => refused(&state, &web, &id, "notes", e).await,
        Err(other) => Err(other.into()),
    }
}

pub async fn task_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let text = |name: &str| {
        form_value(&pairs, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let due = match text("due_at") {
        Some(local) => match parse_local_time(&local) {
            Some(t) => Some(Some(t)),
            None => {
                return refused(
                    &state,
                    &web,
                    &id,
                    "tasks",
                    AppError::field("due_at", "must be a date and time"),
                )
                .await;
            }
        },
        None => None,
    };
    let input = TaskInput {
        title: Some(form_value(&pairs, "title").unwrap_or("").to_owned()),
        description: text("description"),
        task_type: text("type"),
        due_at: due,
        assignee_id: Some(text("assignee_id")),
    };
    match crate::tasks::service::create(&state, &web.ctx, Some(&id), input).await {
        Ok(_) => Ok(Redirect::to(&format!("/leads/{id}?tab=tasks&notice=task")).into_response()),
        Err(e @ AppError::Validation(_)) => refused(&state, &web, &id, "tasks", e).await,
        Err(other) => Err(other.into()),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `datetime-local` inputs send `2026-05-01T14:30` without a zone; they are read as UTC.
pub fn parse_local_time(input: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(input, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

pub async fn task_toggle_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path((id, task_id)): Path<(String, String)>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let done = form_value(&pairs, "done") == Some("true");
    crate::tasks::service::set_done(&state, &web.ctx, &task_id, done).await?;
    Ok(Redirect::to(&format!("/leads/{id}?tab=tasks&notice=task_done")).into_response())
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(Permission::LeadsManage)?;
    let (lead, pipeline) = service::get(&state, &web.ctx, &id).await?;
    let name = full_name(&lead.row.first_name, &lead.row.last_name);
    let page = ConfirmPage {
        shell: web
            .shell(&state, &format!("Delete {name}"), "leads")
            .await?,
        heading: format!(
            "Delete {} #{}?",
            pipeline.spec.singular_label.to_lowercase(),
            display_number(lead.row.number)
        ),
        body: format!(
            "{name} and their notes, tasks and activity will be deleted for good. Archive instead if you may need them again."
        ),
        action: format!("/leads/{id}/delete"),
        confirm_label: "Delete for good".to_owned(),
        cancel_href: format!("/leads/{id}"),
    };
    Ok(render(&page))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let (lead, _) = service::get(&state, &web.ctx, &id).await?;
    service::delete(&state, &web.ctx, &id).await?;
    Ok(Redirect::to(&format!(
        "/leads?pipeline_id={}&notice=deleted",
        lead.row.pipeline_id
    ))
    .into_response())
}
