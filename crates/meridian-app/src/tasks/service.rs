use meridian_core::Permission;
use meridian_core::Validation;
use meridian_core::crm::{ActivityKind, Picklist, TaskType};
use meridian_core::validation::required_text;
use meridian_db::TenantTx;
use serde_json::json;
use time::OffsetDateTime;

use super::store::{self, TaskFields, TaskFilter, TaskRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::leads::{activity, service as leads, store as lead_store};
use crate::state::AppState;
use crate::webhooks::{EventType, events};

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 4000;

/// A task as sent by a client; on update, missing fields stay as they are.
#[derive(Debug, Default)]
pub struct TaskInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub task_type: Option<String>,
    /// `Some(None)` clears the due time.
    pub due_at: Option<Option<OffsetDateTime>>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<String>>,
}

async fn apply(
    tx: &mut TenantTx,
    base: TaskFields,
    input: &TaskInput,
    creating: bool,
) -> AppResult<TaskFields> {
    let mut v = Validation::new();
    let mut out = base;
    match (&input.title, creating) {
        (Some(title), _) => {
            if let Some(title) = v.check("title", required_text(title, 1, MAX_TITLE)) {
                out.title = title;
            }
        }
        (None, true) => v.add("title", "is required"),
        (None, false) => {}
    }
    if let Some(description) = &input.description {
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION {
            v.add(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        out.description = description.to_owned();
    }
    if let Some(task_type) = &input.task_type
        && let Some(t) = v.check("type", TaskType::parse(task_type))
    {
        out.task_type = t.as_str().to_owned();
    }
    if let Some(due) = input.due_at {
        out.due_at = due.map(meridian_db::truncate_to_micros);
    }
    if let Some(assignee) = &input.assignee_id {
        if let Some(user) = assignee
            && lead_store::is_active_member(tx, user).await?.is_none()
        {
            v.add(
                "assignee_id",
                "is not an active member of this organization",
            );
        }
        out.assignee_id = assignee.clone();
    }
    v.finish().map_err(AppError::Validation)?;
    Ok(out)
}

/// Loads a task the caller may see: a task on a lead they cannot see is not found.
async fn visible(tx: &mut TenantTx, ctx: &Ctx, id: &str) -> AppResult<TaskRow> {
    ctx.require(Permission::LeadsRead)?;
    let task = store::find(tx, id).await?.ok_or(AppError::NotFound)?;
    if let Some(lead) = &task.lead_id {
        leads::visible(tx, ctx, lead).await?;
    }
    Ok(task)
}

pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    lead_id: Option<&str>,
    input: TaskInput,
) -> AppResult<TaskRow> {
    ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    if let Some(lead) = lead_id {
        leads::visible(&mut tx, ctx, lead)
            .await
            .map_err(|_| AppError::field("lead_id", "is not a lead you can see"))?;
    }
    let base = TaskFields {
        title: String::new(),
        description: String::new(),
        task_type: TaskType::FollowUp.as_str().to_owned(),
        due_at: None,
        assignee_id: ctx.user_id().map(str::to_owned),
    };
    let fields = apply(&mut tx, base, &input, true).await?;
    let id = store::insert(&mut tx, lead_id, &fields, ctx.user_id()).await?;
    if let Some(lead) = lead_id {
        activity::record(
            &mut tx,
            ctx,
            lead,
            ActivityKind::TaskCreated,
            json!({"task_id": id, "title": fields.title, "due_at": fields.due_at.map(|d| d.unix_timestamp())}),
        )
        .await?;
    }
    let task = store::find(&mut tx, &id).await?.ok_or(AppError::NotFound)?;
    task_assigned(&mut tx, ctx, &task).await?;
    tx.commit().await?;
    Ok(task)
}

/// Tells a task's assignee it is theirs (unless they gave it to themselves).
pub async fn task_assigned(tx: &mut TenantTx, ctx: &Ctx, task: &TaskRow) -> AppResult<()> {
    let Some(assignee) = &task.assignee_id else {
        return Ok(());
    };
    let note = crate::notifications::Note {
        kind: crate::notifications::Kind::TaskAssigned,
        entity_type: "task",
        entity_id: task.id.clone(),
        title: format!("Task for you: {}", task.title),
        body: task
            .lead_name
            .as_deref()
            .map(|name| format!("On {}", name.trim()))
            .unwrap_or_default(),
        link: task
            .lead_id
            .as_deref()
            .map_or_else(|| "/tasks".to_owned(), |l| format!("/leads/{l}")),
        actor_label: Some(ctx.actor_label()),
    };
    crate::notifications::notify(
        tx,
        std::slice::from_ref(assignee),
        ctx.user_id(),
        &note,
        crate::notifications::DEDUPE_WINDOW,
    )
    .await?;
    Ok(())
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<TaskRow> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let task = visible(&mut tx, ctx, id).await?;
    tx.commit().await?;
    Ok(task)
}

pub async fn update(state: &AppState, ctx: &Ctx, id: &str, input: TaskInput) -> AppResult<TaskRow> {
    ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let task = visible(&mut tx, ctx, id).await?;
    let base = TaskFields {
        title: task.title.clone(),
        description: task.description.clone(),
        task_type: task.task_type.clone(),
        due_at: task.due_at,
        assignee_id: task.assignee_id.clone(),
    };
    let fields = apply(&mut tx, base.clone(), &input, false).await?;
    if fields != base {
        store::update(&mut tx, id, &fields).await?;
    }
    let task = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if fields.assignee_id != base.assignee_id {
        task_assigned(&mut tx, ctx, &task).await?;
    }
    tx.commit().await?;
    Ok(task)
}

/// Completes (`done`) or reopens a task; completing records `task_completed` on its lead.
pub async fn set_done(state: &AppState, ctx: &Ctx, id: &str, done: bool) -> AppResult<TaskRow> {
    ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let task = visible(&mut tx, ctx, id).await?;
    if task.completed_at.is_some() != done {
        let by = ctx
            .user_id()
            .map(str::to_owned)
            .unwrap_or_else(|| ctx.actor_label());
        store::set_completed(&mut tx, id, done.then_some(by.as_str())).await?;
        if done && let Some(lead) = &task.lead_id {
            activity::record(
                &mut tx,
                ctx,
                lead,
                ActivityKind::TaskCompleted,
                json!({"task_id": id, "title": task.title}),
            )
            .await?;
        }
        if done {
            let data = events::task_completed(&task, &by);
            crate::webhooks::emit(&mut tx, EventType::TaskCompleted, data).await?;
        }
    }
    let task = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(task)
}

/// Deletes a task: its creator or assignee may, and so may managers and above.
pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let task = visible(&mut tx, ctx, id).await?;
    let me = ctx.user_id();
    let involved =
        me.is_some() && (task.created_by.as_deref() == me || task.assignee_id.as_deref() == me);
    if !involved && !ctx.role.allows(Permission::LeadsManage) {
        return Err(AppError::Forbidden(
            "Only the task's creator, its assignee or a manager can delete it.".to_owned(),
        ));
    }
    store::delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// One page of tasks and the position after its last one.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    mut filter: TaskFilter,
    after: Option<super::store::TaskCursor>,
    limit: i64,
) -> AppResult<Vec<TaskRow>> {
    ctx.require(Permission::LeadsRead)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    filter.hidden = leads::hidden_stages(ctx, &pipelines);
    let rows = store::list(&mut tx, &filter, after, limit).await?;
    tx.commit().await?;
    Ok(rows)
}
