use meridian_db::{Arg, TenantTx, sql};
use time::OffsetDateTime;

use crate::leads::query::{SqlBuilder, escape_like, hidden_condition};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub lead_id: Option<String>,
    pub title: String,
    pub description: String,
    pub task_type: String,
    pub due_at: Option<OffsetDateTime>,
    pub assignee_id: Option<String>,
    pub created_by: Option<String>,
    pub completed_at: Option<OffsetDateTime>,
    pub completed_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
    pub assignee_name: Option<String>,
}

const SELECT: &str = "SELECT t.id, t.lead_id, t.title, t.description, t.task_type, t.due_at, \
    t.assignee_id, t.created_by, t.completed_at, t.completed_by, t.created_at, t.updated_at, \
    l.number AS lead_number, l.first_name || ' ' || l.last_name AS lead_name, u.name AS assignee_name \
    FROM tasks t LEFT JOIN leads l ON l.org_id = t.org_id AND l.id = t.lead_id \
    LEFT JOIN users u ON u.id = t.assignee_id";

/// The editable part of a task, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFields {
    pub title: String,
    pub description: String,
    pub task_type: String,
    pub due_at: Option<OffsetDateTime>,
    pub assignee_id: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    tx: &mut TenantTx,
    lead_id: Option<&str>,
    fields: &TaskFields,
    created_by: Option<&str>,
) -> sqlx::Result<String> {
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    tx.execute(
        sql(
            "INSERT INTO tasks (org_id, id, lead_id, title, description, task_type, due_at, assignee_id, \
             created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&org_id)
        .bind(&id)
        .bind(lead_id)
        .bind(&fields.title)
        .bind(&fields.description)
        .bind(&fields.task_type)
        .bind(fields.due_at)
        .bind(fields.assignee_id.as_deref())
        .bind(created_by)
        .bind(meridian_db::now()),
    )
    .await?;
    Ok(id)
}

#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<TaskRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!("{SELECT} WHERE t.org_id = $1 AND t.id = $2"))
            .bind(&org_id)
            .bind(id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn update(tx: &mut TenantTx, id: &str, fields: &TaskFields) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE tasks SET title = $3, description = $4, task_type = $5, due_at = $6, assignee_id = $7, \
             updated_at = $8 WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(&fields.title)
        .bind(&fields.description)
        .bind(&fields.task_type)
        .bind(fields.due_at)
        .bind(fields.assignee_id.as_deref())
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Marks a task done (`by` set) or open again (`by` None).
#[tracing::instrument(skip_all)]
pub async fn set_completed(tx: &mut TenantTx, id: &str, by: Option<&str>) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "UPDATE tasks SET completed_at = $3, completed_by = $4, updated_at = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(by.map(|_| now))
        .bind(by)
        .bind(now),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM tasks WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// Moves a merged duplicate's tasks to the primary lead.
#[tracing::instrument(skip_all)]
pub async fn reassign(tx: &mut TenantTx, from: &str, to: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE tasks SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2")
            .bind(&org_id)
            .bind(from)
            .bind(to),
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Done,
    All,
}

/// Filters of the task list.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    pub search: Option<String>,
    pub assignee: Option<crate::leads::query::Assignee>,
    pub lead_id: Option<String>,
    pub status: Status,
    pub due_before: Option<OffsetDateTime>,
    pub due_after: Option<OffsetDateTime>,
    /// Stages the caller may not see: their leads' tasks are hidden too.
    pub hidden: Vec<(String, Vec<String>)>,
}

fn where_clause(org_id: String, filter: &TaskFilter) -> SqlBuilder {
    let mut b = SqlBuilder::new();
    let org = b.push(Arg::Text(Some(org_id)));
    b.condition(format!("t.org_id = {org}"));
    match filter.status {
        Status::Open => b.condition("t.completed_at IS NULL".to_owned()),
        Status::Done => b.condition("t.completed_at IS NOT NULL".to_owned()),
        Status::All => {}
    }
    if let Some(q) = &filter.search {
        let p = b.text(&format!("%{}%", escape_like(&q.to_lowercase())));
        b.condition(format!(
            "(lower(t.title) LIKE {p} ESCAPE '\\' OR lower(t.description) LIKE {p} ESCAPE '\\')"
        ));
    }
    match &filter.assignee {
        Some(crate::leads::query::Assignee::User(id)) => {
            let p = b.text(id);
            b.condition(format!("t.assignee_id = {p}"));
        }
        Some(crate::leads::query::Assignee::Unassigned) => {
            b.condition("t.assignee_id IS NULL".to_owned())
        }
        None => {}
    }
    if let Some(lead) = &filter.lead_id {
        let p = b.text(lead);
        b.condition(format!("t.lead_id = {p}"));
    }
    if let Some(t) = filter.due_before {
        let p = b.push(Arg::Time(Some(t)));
        b.condition(format!("t.due_at < {p}"));
    }
    if let Some(t) = filter.due_after {
        let p = b.push(Arg::Time(Some(t)));
        b.condition(format!("t.due_at >= {p}"));
    }
    if let Some(hidden) = hidden_condition(&mut b, &filter.hidden) {
        b.condition(format!("(l.id IS NULL OR {hidden})"));
    }
    b
}

/// Where a task page ends: the last task's sort key and id.
pub type TaskCursor = (OffsetDateTime, String);

/// Tasks with a due time come first, soonest first; then tasks without one, newest first.
const NO_DUE: OffsetDateTime = time::macros::datetime!(9999-12-31 0:00 UTC);

/// One page of tasks, ordered by due time (tasks without one last), then id.
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut TenantTx,
    filter: &TaskFilter,
    after: Option<TaskCursor>,
    limit: i64,
) -> sqlx::Result<Vec<TaskRow>> {
    let mut b = where_clause(tx.org_id(), filter);
    let no_due = b.push(Arg::Time(Some(NO_DUE)));
    let due = format!("COALESCE(t.due_at, {no_due})");
    let keyset = match after {
        Some((at, id)) => {
            let a = b.push(Arg::Time(Some(at)));
            let i = b.text(&id);
            format!(" AND ({due} > {a} OR ({due} = {a} AND t.id > {i}))")
        }
        None => String::new(),
    };
    let text = format!(
        "{SELECT} WHERE {}{keyset} ORDER BY {due}, t.id LIMIT {limit}",
        b.conditions()
    );
    tx.fetch_all(b.into_sql(text)).await
}

/// The sort key of a task in [`list`] order.
pub fn sort_key(task: &TaskRow) -> OffsetDateTime {
    task.due_at.unwrap_or(NO_DUE)
}

/// Open tasks, and how many of them are overdue, among those the filter allows.
#[tracing::instrument(skip_all)]
pub async fn count_open(tx: &mut TenantTx, filter: &TaskFilter) -> sqlx::Result<(i64, i64)> {
    let mut b = where_clause(tx.org_id(), filter);
    let now = b.push(Arg::Time(Some(meridian_db::now())));
    let text = format!(
        "SELECT COUNT(*) AS open, COALESCE(SUM(CASE WHEN t.due_at < {now} THEN 1 ELSE 0 END), 0) AS overdue \
         FROM tasks t LEFT JOIN leads l ON l.org_id = t.org_id AND l.id = t.lead_id WHERE {}",
        b.conditions()
    );
    tx.fetch_one(b.into_sql(text)).await
}
