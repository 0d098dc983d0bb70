use std::time::Duration;

use meridian_core::Role;
use meridian_db::{Arg, Db, Tenant, TenantTx, sql};
use time::OffsetDateTime;

use super::{Kind, Note};
use crate::leads::query::SqlBuilder;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub kind: String,
    pub entity_type: String,
    pub entity_id: String,
    pub title: String,
    pub body: String,
    pub link: String,
    pub actor_label: Option<String>,
    pub read_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

async fn enabled(tx: &mut TenantTx, user: &str, kind: Kind) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let row: Option<(bool,)> = tx
        .fetch_optional(
            sql("SELECT enabled FROM notification_settings WHERE org_id = $1 AND user_id = $2 AND kind = $3")
                .bind(&org_id)
                .bind(user)
                .bind(kind.as_str()),
        )
        .await?;
    Ok(row.is_none_or(|(on,)| on))
}

/// Writes the notification for `user` unless they turned its kind off or got the same kind about
/// the same thing within `window`. Returns whether it was written.
pub async fn insert_unless_recent(
    tx: &mut TenantTx,
    user: &str,
    note: &Note,
    window: Duration,
) -> sqlx::Result<bool> {
    if !enabled(tx, user, note.kind).await? {
        return Ok(false);
    }
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let recent = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM notifications WHERE org_id = $1 AND user_id = $2 AND kind = $3 \
                 AND entity_id = $4 AND created_at >= $5")
            .bind(&org_id)
            .bind(user)
            .bind(note.kind.as_str())
            .bind(&note.entity_id)
            .bind(meridian_db::jobs::minus(now, window)),
        )
        .await?;
    if recent > 0 {
        return Ok(false);
    }
    tx.execute(
        sql("INSERT INTO notifications (org_id, id, user_id, kind, entity_type, entity_id, title, body, link, \
             actor_label, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&org_id)
        .bind(meridian_db::new_id())
        .bind(user)
        .bind(note.kind.as_str())
        .bind(note.entity_type)
        .bind(&note.entity_id)
        .bind(&note.title)
        .bind(&note.body)
        .bind(&note.link)
        .bind(note.actor_label.as_deref())
        .bind(now),
    )
    .await?;
    Ok(true)
}

/// Active members with any of `roles`.
pub async fn members_with_roles(tx: &mut TenantTx, roles: &[Role]) -> sqlx::Result<Vec<String>> {
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    let list: Vec<String> = roles.iter().map(|r| b.text(r.as_str())).collect();
    let text = format!(
        "SELECT user_id FROM memberships WHERE org_id = {org} AND disabled = false AND role IN ({}) ORDER BY user_id",
        list.join(", ")
    );
    let rows: Vec<(String,)> = tx.fetch_all(b.into_sql(text)).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

pub type Cursor = (OffsetDateTime, String);

/// A person's notifications, newest first.
pub async fn list(
    tx: &mut TenantTx,
    user: &str,
    unread_only: bool,
    before: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<NotificationRow>> {
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    let u = b.text(user);
    b.condition(format!("org_id = {org} AND user_id = {u}"));
    if unread_only {
        b.condition("read_at IS NULL".to_owned());
    }
    if let Some((at, id)) = before {
        let t = b.push(Arg::Time(Some(at)));
        let i = b.text(&id);
        b.condition(format!(
            "(created_at < {t} OR (created_at = {t} AND id < {i}))"
        ));
    }
    let text = format!(
        "SELECT id, kind, entity_type, entity_id, title, body, link, actor_label, read_at, created_at \
         FROM notifications WHERE {} ORDER BY created_at DESC, id DESC LIMIT {limit}",
        b.conditions()
    );
    tx.fetch_all(b.into_sql(text)).await
}

/// One of the person's notifications.
pub async fn find(
    tx: &mut TenantTx,
    user: &str,
    id: &str,
) -> sqlx::Result<Option<NotificationRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql("SELECT id, kind, entity_type, entity_id, title, body, link, actor_label, read_at, created_at \
             FROM notifications WHERE org_id = $1 AND user_id = $2 AND id = $3")
        .bind(&org_id)
        .bind(user)
        .bind(id),
    )
    .await
}

pub async fn unread_count(tx: &mut TenantTx, user: &str) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql("SELECT COUNT(*) FROM notifications WHERE org_id = $1 AND user_id = $2 AND read_at IS NULL")
            .bind(&org_id)
            .bind(user),
    )
    .await
}

/// Marks one of the person's notifications read; false when it is not theirs.
pub async fn mark_read(tx: &mut TenantTx, user: &str, id: &str) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let exists = tx
        .fetch_count(
            sql(
                "SELECT COUNT(*) FROM notifications WHERE org_id = $1 AND user_id = $2 AND id = $3",
            )
            .bind(&org_id)
            .bind(user)
            .bind(id),
        )
        .await?;
    if exists == 0 {
        return Ok(false);
    }
    tx.execute(
        sql("UPDATE notifications SET read_at = $4 WHERE org_id = $1 AND user_id = $2 AND id = $3 AND read_at IS NULL")
            .bind(&org_id)
            .bind(user)
            .bind(id)
            .bind(meridian_db::now()),
    )
    .await?;
    Ok(true)
}

pub async fn mark_all_read(tx: &mut TenantTx, user: &str) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE notifications SET read_at = $3 WHERE org_id = $1 AND user_id = $2 AND read_at IS NULL")
            .bind(&org_id)
            .bind(user)
            .bind(meridian_db::now()),
    )
    .await
}

/// The kinds the person turned off.
pub async fn disabled_kinds(tx: &mut TenantTx, user: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT kind FROM notification_settings WHERE org_id = $1 AND user_id = $2 AND enabled = false")
                .bind(&org_id)
                .bind(user),
        )
        .await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}

pub async fn set_enabled(tx: &mut TenantTx, user: &str, kind: Kind, on: bool) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM notification_settings WHERE org_id = $1 AND user_id = $2 AND kind = $3")
            .bind(&org_id)
            .bind(user)
            .bind(kind.as_str()),
    )
    .await?;
    tx.execute(
        sql("INSERT INTO notification_settings (org_id, user_id, kind, enabled, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&org_id)
            .bind(user)
            .bind(kind.as_str())
            .bind(on)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// The daily pass: each organization's open tasks with an assignee that are due today (UTC) or
/// overdue, one notification per task and day. Returns how many were written.
pub async fn notify_due_tasks(db: &Db) -> anyhow::Result<usize> {
    let mut tx = db.global().await?;
    let org_ids = crate::orgs::store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let now = meridian_db::now();
    let today_end = (now.date() + time::Duration::days(1))
        .midnight()
        .assume_utc();
    let mut sent = 0;
    for org_id in org_ids {
        let tenant = Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await?;
        let due: Vec<(String, String, String, OffsetDateTime, Option<String>)> = tx
            .fetch_all(
                sql("SELECT id, assignee_id, title, due_at, lead_id FROM tasks WHERE org_id = $1 \
                     AND completed_at IS NULL AND assignee_id IS NOT NULL AND due_at IS NOT NULL AND due_at < $2")
                .bind(&org_id)
                .bind(today_end),
            )
            .await?;
        for (task_id, assignee, title, due_at, lead_id) in due {
            let overdue = due_at < now;
            let note = Note {
                kind: if overdue {
                    Kind::TaskOverdue
                } else {
                    Kind::TaskDueToday
                },
                entity_type: "task",
                entity_id: task_id,
                title: if overdue {
                    format!("Overdue: {title}")
                } else {
                    format!("Due today: {title}")
                },
                body: String::new(),
                link: lead_id.map_or_else(|| "/tasks".to_owned(), |l| format!("/leads/{l}")),
                actor_label: None,
            };
            // Once a day per task, however often the pass runs.
            sent += super::notify(
                &mut tx,
                &[assignee],
                None,
                &note,
                Duration::from_secs(20 * 3600),
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(sent)
}
