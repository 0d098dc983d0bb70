//! Page: tasks, mine or everyone's, grouped by when they are due (overdue, today, tomorrow, this
//! week, later, undated), with an add form, completion in place and deletion behind a
//! confirmation. Every action is a plain form POST; `app.js` only makes completion instant.
//!
//! Grouping and times follow the viewer's clock: the browser reports its UTC offset in the
//! `tz_offset` cookie (set by `app.js`), and UTC is used until it has.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_core::crm::{Picklist, TaskType};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::api::{TaskQuery, parse_query};
use super::service::{self, TaskInput};
use super::store::{self, TaskRow};
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::{PageRequest, decode_cursor, encode_cursor};
use crate::leads::api::display_number;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, initials, relative, render};

/// Open tasks shown on one page; more are behind "Show more".
const OPEN_PAGE: i64 = 200;
/// Completed tasks shown on one page when "Show completed" is on.
const DONE_PAGE: i64 = 50;
/// The cookie in which the browser reports its offset from UTC, in minutes east.
const TZ_COOKIE: &str = "tz_offset";

/// The viewer's offset from UTC, as their browser last reported it (UTC until then).
pub fn viewer_offset(headers: &HeaderMap) -> UtcOffset {
    crate::auth::cookies::read_cookie(headers, TZ_COOKIE)
        .and_then(parse_offset)
        .unwrap_or(UtcOffset::UTC)
}

/// Minutes east of UTC, as `-new Date().getTimezoneOffset()` gives them.
fn parse_offset(minutes: &str) -> Option<UtcOffset> {
    let minutes: i32 = minutes.trim().parse().ok()?;
    // Real offsets lie within -12:00..+14:00; anything far outside is not a clock.
    if minutes.abs() > 18 * 60 {
        return None;
    }
    UtcOffset::from_whole_seconds(minutes * 60).ok()
}

fn offset_label(offset: UtcOffset) -> String {
    if offset == UtcOffset::UTC {
        return "UTC".to_owned();
    }
    let text = offset
        .format(format_description!(
            "[offset_hour sign:mandatory]:[offset_minute]"
        ))
        .unwrap_or_default();
    format!("UTC{text}")
}

/// An exact time for a title attribute, on the viewer's clock ("Mon 3 Feb 2025, 14:30 UTC+01:00").
fn exact_local(t: OffsetDateTime, offset: UtcOffset) -> String {
    let text = t
        .to_offset(offset)
        .format(format_description!(
            "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute]"
        ))
        .unwrap_or_default();
    format!("{text} {}", offset_label(offset))
}

/// How far ahead "in 3 d" stays readable; later due times show their date instead.
const RELATIVE_HORIZON: Duration = Duration::days(14);

/// A due time for the list: relative while near ("in 3 h", "2 d ago"), else its date.
fn due_text(due: OffsetDateTime, now: OffsetDateTime, offset: UtcOffset) -> String {
    if due - now <= RELATIVE_HORIZON {
        return relative(due);
    }
    let local = due.to_offset(offset);
    let text = if local.year() == now.to_offset(offset).year() {
        local.format(format_description!("[day padding:none] [month repr:short]"))
    } else {
        local.format(format_description!(
            "[day padding:none] [month repr:short] [year]"
        ))
    };
    text.unwrap_or_default()
}

/// Where a task sits on the page, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Overdue,
    Today,
    Tomorrow,
    ThisWeek,
    Later,
    Undated,
}

impl Bucket {
    const ALL: [Bucket; 6] = [
        Bucket::Overdue,
        Bucket::Today,
        Bucket::Tomorrow,
        Bucket::ThisWeek,
        Bucket::Later,
        Bucket::Undated,
    ];

    fn key(self) -> &'static str {
        match self {
            Bucket::Overdue => "overdue",
            Bucket::Today => "today",
            Bucket::Tomorrow => "tomorrow",
            Bucket::ThisWeek => "week",
            Bucket::Later => "later",
            Bucket::Undated => "undated",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Bucket::Overdue => "Overdue",
            Bucket::Today => "Today",
            Bucket::Tomorrow => "Tomorrow",
            Bucket::ThisWeek => "This week",
            Bucket::Later => "Later",
            Bucket::Undated => "No due date",
        }
    }

    /// Overdue means past its due time, not merely due earlier today. Weeks start on Monday.
    fn of(due: Option<OffsetDateTime>, now: OffsetDateTime, offset: UtcOffset) -> Bucket {
        let Some(due) = due else {
            return Bucket::Undated;
        };
        if due < now {
            return Bucket::Overdue;
        }
        let local = now.to_offset(offset);
        let today = local.replace_time(time::Time::MIDNIGHT);
        let tomorrow = today + Duration::days(1);
        let day_after = today + Duration::days(2);
        let next_monday =
            today + Duration::days(7 - i64::from(local.weekday().number_days_from_monday()));
        if due < tomorrow {
            Bucket::Today
        } else if due < day_after {
            Bucket::Tomorrow
        } else if due < next_monday {
            Bucket::ThisWeek
        } else {
            Bucket::Later
        }
    }
}

/// One task as the list (and the dashboard) shows it.
pub struct TaskView {
    pub id: String,
    pub title: String,
    pub type_label: String,
    pub done: bool,
    pub overdue: bool,
    /// Relative due time ("in 3 h"); empty without a due time.
    pub due: String,
    pub due_exact: String,
    pub due_title: String,
    pub lead_id: Option<String>,
    pub lead_number: String,
    pub lead_name: String,
    pub assignee: String,
    pub assignee_initials: String,
    pub can_delete: bool,
}

/// Whether `ctx` may delete `task`: the same rule as `service::delete`, to offer the action only
/// where it works.
fn may_delete(ctx: &Ctx, task: &TaskRow) -> bool {
    let me = ctx.user_id();
    let involved =
        me.is_some() && (task.created_by.as_deref() == me || task.assignee_id.as_deref() == me);
    ctx.role.allows(Permission::LeadsWrite)
        && (involved || ctx.role.allows(Permission::LeadsManage))
}

impl TaskView {
    pub fn new(task: TaskRow, ctx: &Ctx, now: OffsetDateTime, offset: UtcOffset) -> TaskView {
        let can_delete = may_delete(ctx, &task);
        let done = task.completed_at.is_some();
        let assignee = task.assignee_name.clone().unwrap_or_default();
        TaskView {
            type_label: TaskType::parse(&task.task_type)
                .map_or_else(|_| task.task_type.clone(), |t| t.label().to_owned()),
            done,
            overdue: !done && task.due_at.is_some_and(|d| d < now),
            due: task
                .due_at
                .map(|d| due_text(d, now, offset))
                .unwrap_or_default(),
            due_exact: task
                .due_at
                .and_then(|d| d.format(&Rfc3339).ok())
                .unwrap_or_default(),
            due_title: task
                .due_at
                .map(|d| exact_local(d, offset))
                .unwrap_or_default(),
            lead_number: task.lead_number.map(display_number).unwrap_or_default(),
            lead_name: task.lead_name.clone().unwrap_or_default(),
            lead_id: task.lead_id,
            assignee_initials: initials(&assignee),
            assignee,
            can_delete,
            id: task.id,
            title: task.title,
        }
    }
}

struct TaskGroup {
    key: &'static str,
    label: &'static str,
    tasks: Vec<TaskView>,
}

/// The add form's values, kept when it is shown again with errors.
struct TaskForm {
    title: String,
    task_type: String,
    due: String,
    assignee_id: String,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    shell: Shell,
    scope: &'static str,
    show_done: bool,
    groups: Vec<TaskGroup>,
    more_href: Option<String>,
    completed: Vec<TaskView>,
    more_done_href: Option<String>,
    /// A task just completed without JavaScript: (id, title), with an undo button.
    undo: Option<(String, String)>,
    can_write: bool,
    form: TaskForm,
    errors: FormErrors,
    types: Vec<(&'static str, &'static str)>,
    members: Vec<(String, String)>,
    tz_label: String,
}

/// Which tasks and which toggle state a page or a form post is about.
#[derive(Debug, Clone, Copy)]
struct View {
    all: bool,
    show_done: bool,
}

impl View {
    fn parse(scope: Option<&str>, done: Option<&str>) -> View {
        View {
            all: scope == Some("all"),
            show_done: matches!(done, Some("1" | "on" | "true")),
        }
    }

    fn scope(self) -> &'static str {
        if self.all { "all" } else { "mine" }
    }

    fn href(self) -> String {
        let done = if self.show_done { "&done=1" } else { "" };
        format!("/tasks?scope={}{done}", self.scope())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TasksQuery {
    scope: Option<String>,
    done: Option<String>,
    cursor: Option<String>,
    done_cursor: Option<String>,
    notice: Option<String>,
    task: Option<String>,
}

/// One page of tasks in list order (a cursor from this page's links), and the next cursor.
async fn load(
    state: &AppState,
    ctx: &Ctx,
    view: View,
    status: &str,
    cursor: Option<String>,
    limit: i64,
) -> Result<(Vec<TaskRow>, Option<String>), AppError> {
    let query = TaskQuery {
        assignee: (!view.all).then(|| "me".to_owned()),
        status: Some(status.to_owned()),
        cursor,
        ..TaskQuery::default()
    };
    // parse_query checks the API's page-size bound; the page asks for its own size below.
    let (filter, after, _) = parse_query(&query, ctx)?;
    let mut rows = service::list(state, ctx, filter, after, limit + 1).await?;
    let size = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if rows.len() > size {
        rows.truncate(size);
        rows.last().map(|t| {
            let at = store::sort_key(t).format(&Rfc3339).unwrap_or_default();
            encode_cursor(&[&at, &t.id])
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// The organization's active members as (user id, name), for the assignee select.
async fn active_members(state: &AppState, ctx: &Ctx) -> Result<Vec<(String, String)>, AppError> {
    let mut members = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    // Members come in pages of 100; 50 pages bounds the work should a huge org ever appear.
    for _ in 0..50 {
        let rows = crate::orgs::service::list_members(state, ctx, &page).await?;
        members.extend(
            rows.items
                .into_iter()
                .filter(|m| !m.disabled)
                .map(|m| (m.user_id, m.name)),
        );
        match rows.next_cursor.as_deref().and_then(decode_cursor) {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    Ok(members)
}

async fn page_response(
    state: &AppState,
    web: &WebCtx,
    headers: &HeaderMap,
    view: View,
    q: TasksQuery,
    form: TaskForm,
    errors: FormErrors,
) -> WebResult {
    let ctx = &web.ctx;
    let offset = viewer_offset(headers);
    let now = OffsetDateTime::now_utc();
    let (open, next) = load(state, ctx, view, "open", q.cursor.clone(), OPEN_PAGE).await?;
    let mut groups: Vec<TaskGroup> = Bucket::ALL
        .iter()
        .map(|b| TaskGroup {
            key: b.key(),
            label: b.label(),
            tasks: Vec::new(),
        })
        .collect();
    for task in open {
        let bucket = Bucket::of(task.due_at, now, offset);
        if let Some(group) = groups.iter_mut().find(|g| g.key == bucket.key()) {
            group.tasks.push(TaskView::new(task, ctx, now, offset));
        }
    }
    groups.retain(|g| !g.tasks.is_empty());
    let base_href = view.href();
    let (completed, more_done_href) = if view.show_done {
        let (rows, next) = load(state, ctx, view, "done", q.done_cursor, DONE_PAGE).await?;
        let more = next.map(|c| {
            let open_cursor = q
                .cursor
                .as_deref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            format!("{base_href}{open_cursor}&done_cursor={c}")
        });
        let views = rows
            .into_iter()
            .map(|t| TaskView::new(t, ctx, now, offset))
            .collect();
        (views, more)
    } else {
        (Vec::new(), None)
    };
    let undo = match (q.notice.as_deref(), q.task.as_deref()) {
        (Some("done"), Some(id)) => service::get(state, ctx, id)
            .await
            .ok()
            .filter(|t| t.completed_at.is_some())
            .map(|t| (t.id, t.title)),
        _ => None,
    };
    let can_write = ctx.role.allows(Permission::LeadsWrite);
    let members = if can_write {
        active_members(state, ctx).await?
    } else {
        Vec::new()
    };
    let mut shell = web.shell(state, "Tasks", "tasks").await?;
    shell.notice = match q.notice.as_deref() {
        Some("created") => Some("Task added.".to_owned()),
        Some("reopened") => Some("Task reopened.".to_owned()),
        Some("deleted") => Some("Task deleted.".to_owned()),
        _ => None,
    };
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = TasksPage {
        shell,
        scope: view.scope(),
        show_done: view.show_done,
        more_href: next.map(|c| format!("{base_href}&cursor={c}")),
        groups,
        completed,
        more_done_href,
        undo,
        can_write,
        form,
        errors,
        types: TaskType::ALL
            .iter()
            .map(|t| (t.as_str(), t.label()))
            .collect(),
        members,
        tz_label: offset_label(offset),
    };
    Ok((status, render(&page)).into_response())
}

fn blank_form(ctx: &Ctx) -> TaskForm {
    TaskForm {
        title: String::new(),
        task_type: TaskType::FollowUp.as_str().to_owned(),
        due: String::new(),
        assignee_id: ctx.user_id().unwrap_or_default().to_owned(),
    }
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    headers: HeaderMap,
    Query(q): Query<TasksQuery>,
) -> WebResult {
    let view = View::parse(q.scope.as_deref(), q.done.as_deref());
    let form = blank_form(&web.ctx);
    page_response(&state, &web, &headers, view, q, form, FormErrors::default()).await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    task_type: String,
    /// A `datetime-local` value on the viewer's clock.
    #[serde(default)]
    due: String,
    /// The viewer's offset at the entered time, filled in by `app.js`.
    #[serde(default)]
    tz_offset: String,
    #[serde(default)]
    assignee_id: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    show_done: Option<String>,
}

/// Reads a `datetime-local` value ("2025-01-31T14:30"), on the clock of `offset`.
fn parse_due(text: &str, offset: UtcOffset) -> Result<Option<OffsetDateTime>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Browsers send minutes, sometimes seconds; a text fallback may use a space.
    let formats = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    formats
        .iter()
        .find_map(|f| PrimitiveDateTime::parse(text, f).ok())
        .map(|t| Some(t.assume_offset(offset)))
        .ok_or_else(|| AppError::field("due", "must be a date and time like 2025-01-31 14:30"))
}

pub async fn create_submit(
    State(state): State<AppState>,
    web: WebCtx,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> WebResult {
    let view = View::parse(form.scope.as_deref(), form.show_done.as_deref());
    let offset = parse_offset(&form.tz_offset).unwrap_or_else(|| viewer_offset(&headers));
    let result = match parse_due(&form.due, offset) {
        Ok(due_at) => {
            let input = TaskInput {
                title: Some(form.title.clone()),
                task_type: Some(form.task_type.clone()),
                due_at: Some(due_at),
                assignee_id: Some(Some(form.assignee_id.clone()).filter(|a| !a.is_empty())),
                ..TaskInput::default()
            };
            service::create(&state, &web.ctx, None, input).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("{}&notice=created", view.href())).into_response()),
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            let kept = TaskForm {
                title: form.title,
                task_type: form.task_type,
                due: form.due,
                assignee_id: form.assignee_id,
            };
            let q = TasksQuery::default();
            page_response(&state, &web, &headers, view, q, kept, errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ToggleForm {
    /// `1` completes the task, `0` reopens it.
    #[serde(default)]
    done: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    show_done: Option<String>,
}

/// Scripts ask for JSON so the row can change in place; forms get a redirect back to the list.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

pub async fn toggle_submit(
    State(state): State<AppState>,
    web: WebCtx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ToggleForm>,
) -> WebResult {
    let done = form.done == "1";
    let task = service::set_done(&state, &web.ctx, &id, done).await?;
    if wants_json(&headers) {
        return Ok(axum::Json(serde_json::json!({
            "id": task.id,
            "done": task.completed_at.is_some(),
        }))
        .into_response());
    }
    let view = View::parse(form.scope.as_deref(), form.show_done.as_deref());
    let to = if done {
        format!("{}&notice=done&task={}", view.href(), task.id)
    } else {
        format!("{}&notice=reopened", view.href())
    };
    Ok(Redirect::to(&to).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct BackQuery {
    scope: Option<String>,
    done: Option<String>,
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<BackQuery>,
) -> WebResult {
    let task = service::get(&state, &web.ctx, &id).await?;
    if !may_delete(&web.ctx, &task) {
        return Err(AppError::Forbidden(
            "Only the task's creator, its assignee or a manager can delete it.".to_owned(),
        )
        .into());
    }
    let view = View::parse(q.scope.as_deref(), q.done.as_deref());
    let on_lead = match (task.lead_number, &task.lead_name) {
        (Some(number), Some(name)) => format!(" on #{} {name}", display_number(number)),
        _ => String::new(),
    };
    let shell = web.shell(&state, "Delete task", "tasks").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Delete \u{201c}{}\u{201d}?", task.title),
        body: format!(
            "The task{on_lead} disappears for everyone. This cannot be undone; to keep it, mark it done instead."
        ),
        action: format!(
            "/tasks/{id}/delete?scope={}{}",
            view.scope(),
            if view.show_done { "&done=1" } else { "" }
        ),
        confirm_label: "Delete task".to_owned(),
        cancel_href: view.href(),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<BackQuery>,
) -> WebResult {
    service::delete(&state, &web.ctx, &id).await?;
    let view = View::parse(q.scope.as_deref(), q.done.as_deref());
    Ok(Redirect::to(&format!("{}&notice=deleted", view.href())).into_response())
}

/// The next `limit` open tasks assigned to the viewer, soonest first (for the dashboard).
pub async fn due_soon(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    limit: i64,
) -> Result<Vec<TaskView>, AppError> {
    let view = View {
        all: false,
        show_done: false,
    };
    let (rows, _) = load(state, ctx, view, "open", None, limit).await?;
    let now = OffsetDateTime::now_utc();
    let offset = viewer_offset(headers);
    Ok(rows
        .into_iter()
        .map(|t| TaskView::new(t, ctx, now, offset))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    #[test]
    fn buckets_follow_the_viewers_calendar() {
        // A Wednesday evening in New York, already Thursday in UTC.
        let now = datetime!(2025-01-30 01:00 UTC);
        let ny = offset!(-5);
        let at = |t: OffsetDateTime| Bucket::of(Some(t), now, ny);
        assert_eq!(at(datetime!(2025-01-30 00:30 UTC)), Bucket::Overdue);
        assert_eq!(at(datetime!(2025-01-30 04:00 UTC)), Bucket::Today);
        assert_eq!(at(datetime!(2025-01-30 06:00 UTC)), Bucket::Tomorrow);
        assert_eq!(at(datetime!(2025-02-01 12:00 UTC)), Bucket::ThisWeek);
        assert_eq!(at(datetime!(2025-02-03 06:00 UTC)), Bucket::Later);
        assert_eq!(Bucket::of(None, now, ny), Bucket::Undated);
        // The same instant in UTC is already Thursday.
        assert_eq!(
            Bucket::of(Some(datetime!(2025-01-30 06:00 UTC)), now, UtcOffset::UTC),
            Bucket::Today
        );
    }

    #[test]
    fn sunday_has_no_rest_of_the_week() {
        let now = datetime!(2025-02-02 10:00 UTC);
        let at = |t: OffsetDateTime| Bucket::of(Some(t), now, UtcOffset::UTC);
        assert_eq!(at(datetime!(2025-02-03 09:00 UTC)), Bucket::Tomorrow);
        assert_eq!(at(datetime!(2025-02-04 09:00 UTC)), Bucket::Later);
    }

    #[test]
    fn far_due_times_show_their_date() {
        let now = datetime!(2025-01-30 12:00 UTC);
        assert_eq!(
            due_text(datetime!(2025-03-06 09:00 UTC), now, UtcOffset::UTC),
            "6 Mar"
        );
        assert_eq!(
            due_text(datetime!(2026-03-06 09:00 UTC), now, UtcOffset::UTC),
            "6 Mar 2026"
        );
        // Near ones stay relative to the real clock.
        let real = OffsetDateTime::now_utc();
        let soon = real + Duration::days(3) + Duration::minutes(5);
        assert_eq!(due_text(soon, real, UtcOffset::UTC), "in 3 d");
    }

    #[test]
    fn due_times_are_read_on_the_viewers_clock() {
        let due = parse_due("2025-01-31T14:30", offset!(+1)).expect("parses");
        assert_eq!(due, Some(datetime!(2025-01-31 13:30 UTC)));
        assert_eq!(parse_due("  ", UtcOffset::UTC).expect("blank"), None);
        assert!(parse_due("tomorrow", UtcOffset::UTC).is_err());
        assert_eq!(parse_offset("-300"), Some(offset!(-5)));
        assert_eq!(parse_offset("100000"), None);
        assert_eq!(offset_label(offset!(+5:30)), "UTC+05:30");
    }
}
