//! Sequences: the list, the editor (its steps are rows of a template and a wait, re-rendered on
//! the server to add, remove or move one, so it works without JavaScript), a sequence's
//! enrollments with a Stop button, and the lead page's "Add to a sequence" form with the lead's
//! enrollments. Members read sequences and add leads to them; managers and admins write them.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::{FieldError, Permission};
use serde::Deserialize;

use super::NoticeQuery;
use crate::email::sequences::{
    self, Enrolled, EnrollmentCursor, EnrollmentFilter, EnrollmentRow, SequenceInput, SequenceRow,
    StepInput, StepRow,
};
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::{decode_time_cursor, encode_time_cursor};
use crate::leads::api::display_number;
use crate::leads::web::{form_pairs, form_value};
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render, safe_next};

/// Enrollments on one page of a sequence.
const ENROLLMENTS_PAGE: i64 = 25;
/// Enrollments the lead page lists.
const LEAD_ENROLLMENTS: i64 = 20;
const MINUTES_PER_DAY: i64 = 24 * 60;

// ---- Words -----------------------------------------------------------------------------------

fn count(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A wait as (days, hours, minutes).
fn split_wait(minutes: i64) -> (i64, i64, i64) {
    let minutes = minutes.max(0);
    (
        minutes / MINUTES_PER_DAY,
        minutes % MINUTES_PER_DAY / 60,
        minutes % 60,
    )
}

/// A wait in words: "2 days", "1 day 4 hours", "30 minutes".
fn wait_words(minutes: i64) -> String {
    let (days, hours, minutes) = split_wait(minutes);
    [(days, "day"), (hours, "hour"), (minutes, "minute")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| count(n, unit))
        .collect::<Vec<_>>()
        .join(" ")
}

/// When each step goes out: "Right away, then 2 days later, then 1 day 4 hours later".
fn timeline(steps: &[StepRow]) -> String {
    let words: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(n, step)| match (n, step.delay_minutes) {
            (0, 0) => "Right away".to_owned(),
            (0, wait) => format!("{} after being added", wait_words(wait)),
            (_, 0) => "then right after".to_owned(),
            (_, wait) => format!("then {} later", wait_words(wait)),
        })
        .collect();
    let text = words.join(", ");
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "completed" => "Completed",
        "stopped" => "Stopped",
        _ => "Unknown",
    }
}

/// Why an enrollment stopped, in words.
fn stop_reason(reason: &str) -> &'static str {
    match reason {
        "replied" => "They replied",
        "stage_changed" => "Their stage changed",
        "unsubscribed" => "Unsubscribed or suppressed",
        "bounced" => "An email bounced",
        "archived" => "The lead was archived",
        "no_email" => "The lead lost its email address",
        "template_missing" => "A step's template was deleted",
        "manual" => "Stopped by hand",
        "automation" => "Stopped by an automation",
        _ => "Stopped",
    }
}

// ---- Views -----------------------------------------------------------------------------------

/// A sequence as the list shows it.
pub struct SequenceView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub steps: String,
    pub timeline: String,
    pub active: i64,
}

impl From<(SequenceRow, Vec<StepRow>)> for SequenceView {
    fn from((row, steps): (SequenceRow, Vec<StepRow>)) -> Self {
        SequenceView {
            steps: count(i64::try_from(steps.len()).unwrap_or(i64::MAX), "step"),
            timeline: timeline(&steps),
            id: row.id,
            name: row.name,
            enabled: row.enabled,
            active: row.active_enrollments,
        }
    }
}

/// One lead in one sequence, as a sequence's page and a lead's page list it.
pub struct EnrollmentView {
    pub id: String,
    pub status: String,
    pub status_label: &'static str,
    /// Why it stopped, in words; empty unless stopped.
    pub reason: &'static str,
    pub sequence_id: String,
    pub sequence_name: String,
    /// Empty for a lead that no longer exists.
    pub lead_id: String,
    /// "#00042 Ana Diaz".
    pub lead_label: String,
    pub added: String,
    pub added_exact: String,
    /// "2 of 3 sent".
    pub progress: String,
    /// What `when` is: "Next email", "Completed", "Stopped", or "Paused" (without a time).
    pub when_label: &'static str,
    pub when: String,
    pub when_exact: String,
    pub active: bool,
}

impl EnrollmentView {
    /// `steps` and `enabled` are the sequence's now.
    fn new(e: EnrollmentRow, steps: usize, enabled: bool) -> Self {
        let steps = i64::try_from(steps).unwrap_or(i64::MAX).max(e.steps_sent);
        let active = e.status == "active";
        let (when_label, at) = match e.status.as_str() {
            "active" if enabled => ("Next email", e.next_run_at),
            "active" => ("Paused", None),
            "completed" => ("Completed", e.finished_at),
            _ => ("Stopped", e.finished_at),
        };
        let lead_label = match e.lead_number {
            Some(number) => format!(
                "#{} {}",
                display_number(number),
                e.lead_name.as_deref().unwrap_or_default().trim()
            )
            .trim()
            .to_owned(),
            None => "A deleted lead".to_owned(),
        };
        EnrollmentView {
            status_label: status_label(&e.status),
            reason: if e.status == "stopped" {
                stop_reason(e.stop_reason.as_deref().unwrap_or_default())
            } else {
                ""
            },
            lead_id: if e.lead_number.is_some() {
                e.lead_id
            } else {
                String::new()
            },
            lead_label,
            added: relative(e.created_at),
            added_exact: exact(e.created_at),
            progress: format!("{} of {steps} sent", e.steps_sent),
            when_label,
            when: at.map(relative).unwrap_or_default(),
            when_exact: at.map(exact).unwrap_or_default(),
            active,
            id: e.id,
            status: e.status,
            sequence_id: e.sequence_id,
            sequence_name: e.sequence_name,
        }
    }
}

// ---- The list --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "email_sequences.html")]
struct SequencesPage {
    shell: Shell,
    tab: &'static str,
    sequences: Vec<SequenceView>,
}

pub async fn list_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let rows = sequences::list(&state, &web.ctx).await?;
    let mut shell = web.shell(&state, "Email sequences", "email").await?;
    shell.notice = (q.notice.as_deref() == Some("deleted"))
        .then(|| "Sequence deleted. The emails it already sent stay in the outbox.".to_owned());
    Ok(render(&SequencesPage {
        shell,
        tab: "sequences",
        sequences: rows.into_iter().map(SequenceView::from).collect(),
    }))
}

// ---- The editor ------------------------------------------------------------------------------

/// One step as typed: the wait stays text, so a typo comes back as it was typed.
#[derive(Debug, Default)]
struct StepForm {
    template_id: String,
    days: String,
    hours: String,
    minutes: String,
    template_error: Option<String>,
    wait_error: Option<String>,
    /// The step's template is not among the organization's (deleted since).
    template_missing: bool,
    /// The step just added or moved, to put the keyboard focus on.
    focus: bool,
}

impl StepForm {
    fn waiting(minutes: i64, template_id: String) -> Self {
        let (days, hours, minutes) = split_wait(minutes);
        StepForm {
            template_id,
            days: days.to_string(),
            hours: hours.to_string(),
            minutes: minutes.to_string(),
            ..StepForm::default()
        }
    }

    /// The wait in minutes, or why it is not one.
    fn wait(&self) -> Result<i64, &'static str> {
        let part = |text: &str| -> Result<i64, &'static str> {
            match text.trim() {
                "" => Ok(0),
                text => text
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or("days, hours and minutes are whole numbers, 0 or more"),
            }
        };
        let too_long = "the wait can be a year at most";
        let days = part(&self.days)?.checked_mul(MINUTES_PER_DAY);
        let hours = part(&self.hours)?.checked_mul(60);
        let minutes = part(&self.minutes)?;
        days.zip(hours)
            .and_then(|(d, h)| d.checked_add(h)?.checked_add(minutes))
            .filter(|total| *total <= sequences::MAX_DELAY_MINUTES)
            .ok_or(too_long)
    }
}

/// The editor's fields as typed (or as stored).
#[derive(Debug, Default)]
struct SequenceForm {
    name: String,
    enabled: bool,
    steps: Vec<StepForm>,
}

impl SequenceForm {
    fn stored(row: &SequenceRow, steps: &[StepRow]) -> Self {
        SequenceForm {
            name: row.name.clone(),
            enabled: row.enabled,
            steps: steps
                .iter()
                .map(|s| StepForm::waiting(s.delay_minutes, s.template_id.clone()))
                .collect(),
        }
    }

    /// A new sequence: on, with one step sent right away.
    fn blank() -> Self {
        SequenceForm {
            name: String::new(),
            enabled: true,
            steps: vec![StepForm::waiting(0, String::new())],
        }
    }

    /// The form as posted: each step row sends its four fields, in order.
    fn posted(pairs: &[(String, String)]) -> Self {
        let all = |name: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let (templates, days, hours, minutes) = (
            all("step_template"),
            all("step_days"),
            all("step_hours"),
            all("step_minutes"),
        );
        let rows = templates
            .len()
            .max(days.len())
            .max(hours.len())
            .max(minutes.len());
        let at = |list: &[String], n: usize| list.get(n).cloned().unwrap_or_default();
        SequenceForm {
            name: form_value(pairs, "name").unwrap_or_default().to_owned(),
            enabled: form_value(pairs, "enabled").is_some(),
            steps: (0..rows)
                .map(|n| StepForm {
                    template_id: at(&templates, n),
                    days: at(&days, n),
                    hours: at(&hours, n),
                    minutes: at(&minutes, n),
                    ..StepForm::default()
                })
                .collect(),
        }
    }

    /// Adds, removes or moves a step for `intent` (`add_step`, `remove:N`, `up:N`, `down:N`).
    /// Returns false for any other intent (save).
    fn rearrange(&mut self, intent: &str) -> bool {
        let (verb, n) = match intent.split_once(':') {
            Some((verb, n)) => (verb, n.parse::<usize>().ok()),
            None => (intent, None),
        };
        let len = self.steps.len();
        let focus = match (verb, n) {
            ("add_step", _) => {
                let wait = if len == 0 { 0 } else { MINUTES_PER_DAY };
                self.steps.push(StepForm::waiting(wait, String::new()));
                Some(len)
            }
            ("remove", Some(n)) if n < len => {
                self.steps.remove(n);
                None
            }
            ("up", Some(n)) if n > 0 && n < len => {
                self.steps.swap(n - 1, n);
                Some(n - 1)
            }
            ("down", Some(n)) if n + 1 < len => {
                self.steps.swap(n, n + 1);
                Some(n + 1)
            }
            ("remove" | "up" | "down", _) => None,
            _ => return false,
        };
        if let Some(step) = focus.and_then(|n| self.steps.get_mut(n)) {
            step.focus = true;
        }
        true
    }

    /// What the service takes, or the steps whose wait is not a number.
    fn input(&self) -> Result<SequenceInput, Vec<FieldError>> {
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut errors = Vec::new();
        for (n, step) in self.steps.iter().enumerate() {
            match step.wait() {
                Ok(delay_minutes) => steps.push(StepInput {
                    template_id: step.template_id.clone(),
                    delay_minutes,
                }),
                Err(message) => errors.push(FieldError {
                    field: format!("steps[{n}].delay_minutes"),
                    message: message.to_owned(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SequenceInput {
            name: Some(self.name.clone()),
            enabled: Some(self.enabled),
            steps: Some(steps),
        })
    }

    /// Puts the errors about a step (`steps[1].template_id`) next to it; returns the others.
    fn place_errors(&mut self, errors: FormErrors) -> FormErrors {
        let mut rest = Vec::new();
        for error in errors.fields {
            let step = error
                .field
                .strip_prefix("steps[")
                .and_then(|path| path.split_once("]."))
                .and_then(|(n, field)| Some((n.parse::<usize>().ok()?, field)));
            match step {
                Some((n, "template_id")) if n < self.steps.len() => {
                    let step = &mut self.steps[n];
                    step.template_error = Some(if step.template_id.is_empty() {
                        "choose a template".to_owned()
                    } else {
                        error.message
                    });
                }
                Some((n, "delay_minutes")) if n < self.steps.len() => {
                    self.steps[n].wait_error = Some(if error.message.contains("between") {
                        "the wait can be a year at most".to_owned()
                    } else {
                        error.message
                    });
                }
                _ => rest.push(error),
            }
        }
        FormErrors {
            fields: rest,
            general: errors.general,
        }
    }
}

#[derive(Template)]
#[template(path = "email_sequence.html")]
struct EditorPage {
    shell: Shell,
    tab: &'static str,
    /// None for a new sequence.
    id: Option<String>,
    action: String,
    form: SequenceForm,
    errors: FormErrors,
    templates: Vec<(String, String)>,
    can_manage: bool,
    updated: String,
    updated_exact: String,
    active: i64,
    enrollments: Vec<EnrollmentView>,
    older_href: Option<String>,
    newest_href: Option<String>,
}

/// What the editor page shows besides the form.
struct Editing<'a> {
    /// The sequence as stored, with its number of steps.
    existing: Option<(&'a SequenceRow, usize)>,
    form: SequenceForm,
    errors: FormErrors,
    notice: Option<String>,
    /// The page of enrollments to show (none: the newest).
    cursor: Option<String>,
}

fn parse_cursor(cursor: &str) -> Result<EnrollmentCursor, AppError> {
    decode_time_cursor(cursor)
}

fn cursor_of(e: &EnrollmentRow) -> String {
    encode_time_cursor(e.created_at, &e.id)
}

async fn editor_response(state: &AppState, web: &WebCtx, editing: Editing<'_>) -> WebResult {
    let ctx = &web.ctx;
    let Editing {
        existing,
        mut form,
        errors,
        notice,
        cursor,
    } = editing;
    let templates = super::template_choices(state, ctx).await?;
    for step in &mut form.steps {
        step.template_missing = !step.template_id.is_empty()
            && !templates.iter().any(|(id, _)| *id == step.template_id);
    }
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let errors = form.place_errors(errors);
    let (mut enrollments, mut older_href, mut newest_href) = (Vec::new(), None, None);
    if let Some((row, steps)) = existing {
        let before = cursor.as_deref().map(parse_cursor).transpose()?;
        let filter = EnrollmentFilter {
            sequence_id: Some(row.id.clone()),
            ..EnrollmentFilter::default()
        };
        let mut rows =
            sequences::enrollments(state, ctx, &filter, before, ENROLLMENTS_PAGE + 1).await?;
        let size = usize::try_from(ENROLLMENTS_PAGE).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            older_href = rows
                .last()
                .map(|e| format!("/email/sequences/{}?cursor={}", row.id, cursor_of(e)));
        }
        newest_href = cursor
            .is_some()
            .then(|| format!("/email/sequences/{}", row.id));
        enrollments = rows
            .into_iter()
            .map(|e| EnrollmentView::new(e, steps, row.enabled))
            .collect();
    }
    let row = existing.map(|(row, _)| row);
    let title = row.map_or("New sequence", |r| r.name.as_str());
    let mut shell = web.shell(state, title, "email").await?;
    shell.notice = notice;
    let id = row.map(|r| r.id.clone());
    let page = EditorPage {
        shell,
        tab: "sequences",
        action: id.as_ref().map_or_else(
            || "/email/sequences/new".to_owned(),
            |id| format!("/email/sequences/{id}"),
        ),
        id,
        form,
        errors,
        templates,
        can_manage: ctx.role.allows(Permission::EmailManage),
        updated: row.map(|r| relative(r.updated_at)).unwrap_or_default(),
        updated_exact: row.map(|r| exact(r.updated_at)).unwrap_or_default(),
        active: row.map_or(0, |r| r.active_enrollments),
        enrollments,
        older_href,
        newest_href,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn new_page(State(state): State<AppState>, web: WebCtx) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let editing = Editing {
        existing: None,
        form: SequenceForm::blank(),
        errors: FormErrors::default(),
        notice: None,
        cursor: None,
    };
    editor_response(&state, &web, editing).await
}

/// Saves the posted form with `save`, or shows it again rearranged or with why it was refused.
async fn submit(
    state: &AppState,
    web: &WebCtx,
    existing: Option<(&SequenceRow, usize)>,
    body: &Bytes,
) -> WebResult {
    let pairs = form_pairs(body);
    let mut form = SequenceForm::posted(&pairs);
    let editing = |form, errors| Editing {
        existing,
        form,
        errors,
        notice: None,
        cursor: None,
    };
    if form.rearrange(form_value(&pairs, "intent").unwrap_or_default()) {
        return editor_response(state, web, editing(form, FormErrors::default())).await;
    }
    let input = match form.input() {
        Ok(input) => input,
        Err(fields) => {
            let errors = FormErrors {
                fields,
                general: None,
            };
            return editor_response(state, web, editing(form, errors)).await;
        }
    };
    let saved = match existing {
        Some((row, _)) => sequences::update(state, &web.ctx, &row.id, input)
            .await
            .map(|(row, _)| format!("/email/sequences/{}?notice=saved", row.id)),
        None => sequences::create(state, &web.ctx, input)
            .await
            .map(|(row, _)| format!("/email/sequences/{}?notice=created", row.id)),
    };
    match saved {
        Ok(to) => Ok(Redirect::to(&to).into_response()),
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            editor_response(state, web, editing(form, errors)).await
        }
    }
}

pub async fn new_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    submit(&state, &web, None, &body).await
}

#[derive(Debug, Default, Deserialize)]
pub struct SequenceQuery {
    cursor: Option<String>,
    notice: Option<String>,
}

/// The notice after stopping an enrollment, on a sequence's page or a lead's.
pub fn stop_notice(key: &str) -> Option<&'static str> {
    match key {
        "sequence_stopped" => Some("Stopped. No more emails of this sequence go to them."),
        "sequence_ended" => Some("That enrollment had already ended."),
        _ => None,
    }
}

pub async fn edit_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<SequenceQuery>,
) -> WebResult {
    let (row, steps) = sequences::get(&state, &web.ctx, &id).await?;
    let notice = match q.notice.as_deref().unwrap_or_default() {
        "created" => Some("Sequence created. Add leads from the Emails tab of their page."),
        "saved" => Some("Sequence saved."),
        key => stop_notice(key),
    };
    let editing = Editing {
        existing: Some((&row, steps.len())),
        form: SequenceForm::stored(&row, &steps),
        errors: FormErrors::default(),
        notice: notice.map(str::to_owned),
        cursor: q.cursor,
    };
    editor_response(&state, &web, editing).await
}

pub async fn edit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let (row, steps) = sequences::get(&state, &web.ctx, &id).await?;
    submit(&state, &web, Some((&row, steps.len())), &body).await
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let (row, _) = sequences::get(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Delete sequence", "email").await?;
    let active = match row.active_enrollments {
        0 => "Nobody is in it now. ".to_owned(),
        n => format!(
            "{} in it now will get none of its remaining emails. ",
            count(n, "lead")
        ),
    };
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Delete the sequence \u{201c}{}\u{201d}?", row.name),
        body: format!(
            "{active}Its enrollments are deleted with it; the emails it already sent stay in \
             the outbox. This cannot be undone."
        ),
        action: format!("/email/sequences/{id}/delete"),
        confirm_label: "Delete sequence".to_owned(),
        cancel_href: format!("/email/sequences/{id}"),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    sequences::delete(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/email/sequences?notice=deleted").into_response())
}

// ---- Stopping an enrollment ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct StopForm {
    /// The page to go back to (a local path).
    #[serde(default)]
    back: String,
}

/// Stops an enrollment by hand, from a sequence's page or a lead's, and goes back there.
pub async fn stop_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Form(form): Form<StopForm>,
) -> WebResult {
    let notice = match sequences::stop(&state, &web.ctx, &id).await {
        Ok(_) => "sequence_stopped",
        Err(AppError::Conflict(_)) => "sequence_ended",
        Err(other) => return Err(other.into()),
    };
    let back = safe_next(Some(&form.back));
    let join = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{join}notice={notice}")).into_response())
}

// ---- The lead page ---------------------------------------------------------------------------

/// The lead page's "Add to a sequence" form: the sequence chosen, and why the lead was not added.
#[derive(Debug, Default)]
pub struct EnrollForm {
    pub sequence_id: String,
    pub error: Option<String>,
}

/// What the lead page's Emails tab shows about sequences.
#[derive(Default)]
pub struct LeadSequences {
    /// Sequences a lead can be added to (on, with steps), as (id, name).
    pub choices: Vec<(String, String)>,
    pub enrollments: Vec<EnrollmentView>,
    /// The lead has more enrollments than are listed.
    pub more: bool,
    pub form: EnrollForm,
}

/// The lead's latest enrollments and the sequences it can be added to.
pub async fn lead_sequences(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    form: EnrollForm,
) -> Result<LeadSequences, AppError> {
    let all = sequences::list(state, ctx).await?;
    let filter = EnrollmentFilter {
        lead_id: Some(lead_id.to_owned()),
        ..EnrollmentFilter::default()
    };
    let mut rows = sequences::enrollments(state, ctx, &filter, None, LEAD_ENROLLMENTS + 1).await?;
    let shown = usize::try_from(LEAD_ENROLLMENTS).unwrap_or(usize::MAX);
    let more = rows.len() > shown;
    rows.truncate(shown);
    let enrollments = rows
        .into_iter()
        .map(|e| {
            let (steps, enabled) = all
                .iter()
                .find(|(s, _)| s.id == e.sequence_id)
                .map_or((0, false), |(s, steps)| (steps.len(), s.enabled));
            EnrollmentView::new(e, steps, enabled)
        })
        .collect();
    Ok(LeadSequences {
        choices: all
            .into_iter()
            .filter(|(s, steps)| s.enabled && !steps.is_empty())
            .map(|(s, _)| (s.id, s.name))
            .collect(),
        enrollments,
        more,
        form,
    })
}

/// Adds lead `lead_id` to sequence `sequence_id`; `Err` says why it was not added.
pub async fn enroll_lead(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    sequence_id: &str,
) -> Result<Result<(), String>, AppError> {
    if sequence_id.is_empty() {
        return Ok(Err("Choose a sequence first.".to_owned()));
    }
    let results = match sequences::enroll(state, ctx, sequence_id, &[lead_id.to_owned()]).await {
        Ok(results) => results,
        Err(AppError::NotFound) => return Ok(Err("That sequence no longer exists.".to_owned())),
        Err(AppError::Conflict(reason)) => return Ok(Err(format!("Not added: {reason}."))),
        Err(other) => return Err(other),
    };
    Ok(match results.into_iter().next() {
        Some((_, Enrolled::Ok(_))) => Ok(()),
        Some((_, Enrolled::Refused { error, .. })) => Err(format!("Not added: {error}.")),
        None => Err("Not added.".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(delay_minutes: i64) -> StepRow {
        StepRow {
            position: 0,
            template_id: "t".into(),
            delay_minutes,
        }
    }

    #[test]
    fn waits_read_as_words() {
        assert_eq!(wait_words(2 * MINUTES_PER_DAY), "2 days");
        assert_eq!(wait_words(MINUTES_PER_DAY + 4 * 60), "1 day 4 hours");
        assert_eq!(wait_words(30), "30 minutes");
        assert_eq!(
            timeline(&[step(0), step(2 * MINUTES_PER_DAY), step(0)]),
            "Right away, then 2 days later, then right after"
        );
        assert_eq!(timeline(&[step(90)]), "1 hour 30 minutes after being added");
        assert_eq!(timeline(&[]), "");
    }

    #[test]
    fn typed_waits_become_minutes() {
        let typed = |days: &str, hours: &str, minutes: &str| StepForm {
            days: days.into(),
            hours: hours.into(),
            minutes: minutes.into(),
            ..StepForm::default()
        };
        assert_eq!(typed("2", "3", "").wait(), Ok(2 * MINUTES_PER_DAY + 180));
        assert_eq!(typed("", "", "").wait(), Ok(0));
        assert!(typed("1.5", "0", "0").wait().is_err());
        assert!(typed("0", "-1", "0").wait().is_err());
        assert!(typed("366", "0", "0").wait().is_err());
        assert!(typed("99999999999999999", "0", "0").wait().is_err());
        let back = StepForm::waiting(MINUTES_PER_DAY + 61, String::new());
        assert_eq!(
            (back.days, back.hours, back.minutes),
            ("1".into(), "1".into(), "1".into())
        );
    }

    #[test]
    fn steps_are_added_removed_and_moved() {
        let mut form = SequenceForm::blank();
        form.steps[0].template_id = "a".into();
        assert!(form.rearrange("add_step"));
        assert!(form.steps[1].focus && form.steps[1].days == "1");
        form.steps[1].template_id = "b".into();
        assert!(form.rearrange("up:1"));
        let order: Vec<&str> = form.steps.iter().map(|s| s.template_id.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
        assert!(form.rearrange("down:1"), "out of range: nothing moves");
        assert!(form.rearrange("remove:0"));
        assert_eq!(form.steps.len(), 1);
        assert_eq!(form.steps[0].template_id, "a");
        assert!(!form.rearrange("save"));
    }

    #[test]
    fn step_errors_go_next_to_their_step() {
        let mut form = SequenceForm::blank();
        form.rearrange("add_step");
        form.steps[1].template_id = "gone".into();
        let field = |field: &str, message: &str| FieldError {
            field: field.into(),
            message: message.into(),
        };
        let rest = form.place_errors(FormErrors {
            fields: vec![
                field("name", "is required"),
                field("steps[0].template_id", "no such template"),
                field("steps[1].template_id", "no such template"),
                field(
                    "steps[1].delay_minutes",
                    "must be between 0 and 525600 (a year)",
                ),
            ],
            general: None,
        });
        assert_eq!(rest.get("name"), Some("is required"));
        assert_eq!(rest.fields.len(), 1);
        assert_eq!(
            form.steps[0].template_error.as_deref(),
            Some("choose a template")
        );
        assert_eq!(
            form.steps[1].template_error.as_deref(),
            Some("no such template")
        );
        assert_eq!(
            form.steps[1].wait_error.as_deref(),
            Some("the wait can be a year at most")
        );
    }
}
