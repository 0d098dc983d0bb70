use meridian_db::{Arg, TenantTx, sql};
use serde_json::Value;
use time::OffsetDateTime;

use super::engine::Event;
use crate::leads::query::SqlBuilder;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AutomationRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub trigger_type: String,
    pub version: i64,
    pub definition: String,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const AUTOMATION_SELECT: &str = "SELECT a.id, a.name, a.enabled, a.trigger_type, a.version, \
    v.definition, a.created_by, a.created_at, a.updated_at FROM automations a \
    JOIN automation_versions v ON v.org_id = a.org_id AND v.automation_id = a.id AND v.version = a.version";

pub async fn find(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<AutomationRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{AUTOMATION_SELECT} WHERE a.org_id = $1 AND a.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

pub async fn list(tx: &mut TenantTx) -> sqlx::Result<Vec<AutomationRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "{AUTOMATION_SELECT} WHERE a.org_id = $1 ORDER BY lower(a.name), a.id"
        ))
        .bind(&org_id),
    )
    .await
}

/// The enabled automations with this trigger type: what every business write asks, so it reads
/// one index range.
pub async fn enabled_with_trigger(
    tx: &mut TenantTx,
    trigger: &str,
) -> sqlx::Result<Vec<AutomationRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "{AUTOMATION_SELECT} WHERE a.org_id = $1 AND a.trigger_type = $2 AND a.enabled ORDER BY a.id"
        ))
        .bind(&org_id)
        .bind(trigger),
    )
    .await
}

pub async fn name_taken(tx: &mut TenantTx, name: &str, own_id: Option<&str>) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT id FROM automations WHERE org_id = $1 AND lower(name) = lower($2)")
                .bind(&org_id)
                .bind(name),
        )
        .await?;
    Ok(row.is_some_and(|(id,)| Some(id.as_str()) != own_id))
}

pub async fn insert(
    tx: &mut TenantTx,
    id: &str,
    name: &str,
    enabled: bool,
    trigger_type: &str,
    created_by: Option<&str>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("INSERT INTO automations (org_id, id, name, enabled, trigger_type, version, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7)")
        .bind(&org_id)
        .bind(id)
        .bind(name)
        .bind(enabled)
        .bind(trigger_type)
        .bind(created_by)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Records a new version of the definition and makes it current. Returns its number.
pub async fn add_version(
    tx: &mut TenantTx,
    id: &str,
    definition: &str,
    trigger_type: &str,
    created_by: Option<&str>,
) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let (version,): (i64,) = tx
        .fetch_one(
            sql("SELECT COALESCE(MAX(version), 0) + 1 FROM automation_versions WHERE org_id = $1 AND automation_id = $2")
                .bind(&org_id)
                .bind(id),
        )
        .await?;
    tx.execute(
        sql("INSERT INTO automation_versions (org_id, automation_id, version, definition, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&org_id)
        .bind(id)
        .bind(version)
        .bind(definition)
        .bind(created_by)
        .bind(now),
    )
    .await?;
    tx.execute(
        sql("UPDATE automations SET version = $3, trigger_type = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id)
            .bind(version)
            .bind(trigger_type)
            .bind(now),
    )
    .await?;
    Ok(version)
}

pub async fn set_name_enabled(
    tx: &mut TenantTx,
    id: &str,
    name: &str,
    enabled: bool,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE automations SET name = $3, enabled = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id)
            .bind(name)
            .bind(enabled)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM automations WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

pub async fn version(tx: &mut TenantTx, id: &str, version: i64) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT definition FROM automation_versions WHERE org_id = $1 AND automation_id = $2 AND version = $3")
                .bind(&org_id)
                .bind(id)
                .bind(version),
        )
        .await?;
    Ok(row.map(|(d,)| d))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub definition: String,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
}

pub async fn versions(tx: &mut TenantTx, id: &str) -> sqlx::Result<Vec<VersionRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT version, definition, created_by, created_at FROM automation_versions \
             WHERE org_id = $1 AND automation_id = $2 ORDER BY version DESC",
        )
        .bind(&org_id)
        .bind(id),
    )
    .await
}

// ---- Runs ----------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub automation_id: String,
    pub version: i64,
    pub lead_id: Option<String>,
    pub event: String,
    pub caused_by: Option<String>,
    pub status: String,
    pub pc: i64,
    pub resume_at: Option<OffsetDateTime>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub automation_name: String,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
}

const RUN_SELECT: &str = "SELECT r.id, r.automation_id, r.version, r.lead_id, r.event, r.caused_by, \
    r.status, r.pc, r.resume_at, r.error, r.created_at, r.updated_at, r.finished_at, \
    a.name AS automation_name, l.number AS lead_number, l.first_name || ' ' || l.last_name AS lead_name \
    FROM automation_runs r JOIN automations a ON a.org_id = r.org_id AND a.id = r.automation_id \
    LEFT JOIN leads l ON l.org_id = r.org_id AND l.id = r.lead_id";

/// A run about to be recorded.
pub struct NewRun<'a> {
    pub id: &'a str,
    pub automation_id: &'a str,
    pub version: i64,
    pub event: &'a Event,
    pub caused_by: Option<&'a str>,
    pub dedupe_key: Option<&'a str>,
    pub status: &'a str,
}

/// Records a run; false when a run with the same dedupe key exists already.
pub async fn insert_run(tx: &mut TenantTx, run: &NewRun<'_>) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let event = serde_json::json!({
        "trigger": run.event.trigger, "lead_id": run.event.lead_id, "data": run.event.data,
    });
    let inserted = tx
        .execute(
            sql("INSERT INTO automation_runs (org_id, id, automation_id, version, lead_id, event, caused_by, \
                 dedupe_key, status, pc, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10) ON CONFLICT DO NOTHING")
            .bind(&org_id)
            .bind(run.id)
            .bind(run.automation_id)
            .bind(run.version)
            .bind(&run.event.lead_id)
            .bind(event.to_string())
            .bind(run.caused_by)
            .bind(run.dedupe_key)
            .bind(run.status)
            .bind(meridian_db::now()),
        )
        .await?;
    Ok(inserted > 0)
}

pub async fn find_run(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<RunRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!("{RUN_SELECT} WHERE r.org_id = $1 AND r.id = $2"))
            .bind(&org_id)
            .bind(id),
    )
    .await
}

/// Runs of one automation, newest first, before a position.
pub async fn runs(
    tx: &mut TenantTx,
    automation_id: &str,
    status: Option<&str>,
    before: Option<(OffsetDateTime, String)>,
    limit: i64,
) -> sqlx::Result<Vec<RunRow>> {
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    b.condition(format!("r.org_id = {org}"));
    let a = b.text(automation_id);
    b.condition(format!("r.automation_id = {a}"));
    if let Some(status) = status {
        let s = b.text(status);
        b.condition(format!("r.status = {s}"));
    }
    if let Some((at, id)) = before {
        let t = b.push(Arg::Time(Some(at)));
        let i = b.text(&id);
        b.condition(format!(
            "(r.created_at < {t} OR (r.created_at = {t} AND r.id < {i}))"
        ));
    }
    let text = format!(
        "{RUN_SELECT} WHERE {} ORDER BY r.created_at DESC, r.id DESC LIMIT {limit}",
        b.conditions()
    );
    tx.fetch_all(b.into_sql(text)).await
}

/// Runs of `automation_id` for `lead_id` since `since` that automations' own changes caused.
pub async fn caused_runs_since(
    tx: &mut TenantTx,
    automation_id: &str,
    lead_id: &str,
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql("SELECT COUNT(*) FROM automation_runs WHERE org_id = $1 AND automation_id = $2 AND lead_id = $3 \
             AND created_at >= $4 AND caused_by IS NOT NULL")
        .bind(&org_id)
        .bind(automation_id)
        .bind(lead_id)
        .bind(since),
    )
    .await
}

/// Moves a run to instruction `pc` with `status` (queued to carry on now, waiting until
/// `resume_at`).
pub async fn advance(
    tx: &mut TenantTx,
    id: &str,
    pc: usize,
    status: &str,
    resume_at: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE automation_runs SET pc = $3, status = $4, resume_at = $5, updated_at = $6 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(&org_id)
        .bind(id)
        .bind(i64::try_from(pc).unwrap_or(i64::MAX))
        .bind(status)
        .bind(resume_at)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

pub async fn finish_run(
    tx: &mut TenantTx,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql("UPDATE automation_runs SET status = $3, error = $4, resume_at = NULL, finished_at = $5, updated_at = $5 \
             WHERE org_id = $1 AND id = $2")
        .bind(&org_id)
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(now),
    )
    .await
    .map(|_| ())
}

/// Puts a failed run back in the queue at the step that failed.
pub async fn requeue(tx: &mut TenantTx, id: &str) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let changed = tx
        .execute(
            sql("UPDATE automation_runs SET status = 'queued', error = NULL, finished_at = NULL, updated_at = $3 \
                 WHERE org_id = $1 AND id = $2 AND status = 'failed'")
            .bind(&org_id)
            .bind(id)
            .bind(meridian_db::now()),
        )
        .await?;
    Ok(changed > 0)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub seq: i64,
    pub pc: i64,
    pub action: String,
    pub status: String,
    pub output: String,
    pub error: Option<String>,
    pub attempt: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
}

pub async fn has_steps(tx: &mut TenantTx, run_id: &str) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let n = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM automation_run_steps WHERE org_id = $1 AND run_id = $2")
                .bind(&org_id)
                .bind(run_id),
        )
        .await?;
    Ok(n > 0)
}

#[allow(clippy::too_many_arguments)]
pub async fn record_step(
    tx: &mut TenantTx,
    run: &RunRow,
    pc: usize,
    action: &str,
    status: &str,
    output: &Value,
    error: Option<&str>,
    attempt: i64,
    started_at: OffsetDateTime,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("INSERT INTO automation_run_steps (org_id, run_id, seq, pc, action, status, output, error, attempt, \
             started_at, finished_at) SELECT $1, $2, COALESCE(MAX(seq), -1) + 1, $3, $4, $5, $6, $7, $8, $9, $10 \
             FROM automation_run_steps WHERE org_id = $1 AND run_id = $2")
        .bind(&org_id)
        .bind(&run.id)
        .bind(i64::try_from(pc).unwrap_or(i64::MAX))
        .bind(action)
        .bind(status)
        .bind(output.to_string())
        .bind(error)
        .bind(attempt)
        .bind(started_at)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

pub async fn steps(tx: &mut TenantTx, run_id: &str) -> sqlx::Result<Vec<StepRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT seq, pc, action, status, output, error, attempt, started_at, finished_at \
             FROM automation_run_steps WHERE org_id = $1 AND run_id = $2 ORDER BY seq",
        )
        .bind(&org_id)
        .bind(run_id),
    )
    .await
}

/// Active members with `role`, by user id (round-robin order).
pub async fn active_members_with_role(tx: &mut TenantTx, role: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT user_id FROM memberships WHERE org_id = $1 AND role = $2 AND disabled = false ORDER BY user_id")
                .bind(&org_id)
                .bind(role),
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Whom this automation's round-robin assigned last.
pub async fn last_round_robin_pick(
    tx: &mut TenantTx,
    automation_id: &str,
) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT s.output FROM automation_run_steps s JOIN automation_runs r \
                 ON r.org_id = s.org_id AND r.id = s.run_id \
                 WHERE s.org_id = $1 AND r.automation_id = $2 AND s.action IN ('assign', 'create_task') \
                 AND s.status = 'succeeded' ORDER BY s.finished_at DESC, s.seq DESC LIMIT 1")
            .bind(&org_id)
            .bind(automation_id),
        )
        .await?;
    Ok(row.and_then(|(output,)| {
        let value: Value = serde_json::from_str(&output).ok()?;
        value
            .get("user_id")
            .or_else(|| value.get("assignee_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }))
}
