//! Sequences: a series of templated emails with delays. A lead enrolled in one gets each step's
//! email when its delay has passed, until the series ends or something stops it: the lead
//! replies, moves to another stage or pipeline, unsubscribes (or bounces), is archived, or a
//! person stops it.
//!
//! Each step is a job (`email.sequence_step`) scheduled for its time, unique per enrollment and
//! step. It checks the stop conditions, queues the step's message exactly as a person's email is
//! queued, and schedules the next step, all in one transaction, so a step is sent once however
//! often its job runs.

use std::time::Duration;

use meridian_core::crm::ActivityKind;
use meridian_core::validation::required_text;
use meridian_core::{Permission, Validation};
use meridian_db::{Arg, TenantTx, sql};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::compose::{Author, Recipient, ServerMail, compose};
use super::store::{self as email_store, TemplateFields};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::jobs::{JobContext, JobError, Registry};
use crate::leads::query::SqlBuilder;
use crate::leads::{activity, service as leads, store as lead_store};
use crate::state::AppState;

pub const STEP_JOB: &str = "email.sequence_step";
pub const MAX_STEPS: usize = 20;
/// A year: longer waits are more likely a typo than a plan.
pub const MAX_DELAY_MINUTES: i64 = 525_600;

// ---- Storage -------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SequenceRow {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub active_enrollments: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StepRow {
    pub position: i64,
    pub template_id: String,
    pub delay_minutes: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrollmentRow {
    pub id: String,
    pub sequence_id: String,
    pub lead_id: String,
    pub status: String,
    pub stop_reason: Option<String>,
    pub next_position: i64,
    pub next_run_at: Option<OffsetDateTime>,
    pub steps_sent: i64,
    pub pipeline_id: String,
    pub stage: String,
    pub enrolled_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub sequence_name: String,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
}

const SEQUENCE_SELECT: &str = "SELECT s.id, s.name, s.enabled, s.created_by, s.created_at, s.updated_at, \
    (SELECT COUNT(*) FROM email_sequence_enrollments e WHERE e.org_id = s.org_id \
     AND e.sequence_id = s.id AND e.status = 'active') AS active_enrollments \
    FROM email_sequences s";

const ENROLLMENT_SELECT: &str = "SELECT e.id, e.sequence_id, e.lead_id, e.status, e.stop_reason, \
    e.next_position, e.next_run_at, e.steps_sent, e.pipeline_id, e.stage, e.enrolled_by, e.created_at, \
    e.updated_at, e.finished_at, s.name AS sequence_name, l.number AS lead_number, \
    l.first_name || ' ' || l.last_name AS lead_name \
    FROM email_sequence_enrollments e \
    JOIN email_sequences s ON s.org_id = e.org_id AND s.id = e.sequence_id \
    LEFT JOIN leads l ON l.org_id = e.org_id AND l.id = e.lead_id";

/// Whether sequence `id` exists in this organization.
pub async fn exists(tx: &mut TenantTx, id: &str) -> sqlx::Result<bool> {
    Ok(find_sequence(tx, id).await?.is_some())
}

async fn find_sequence(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<SequenceRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{SEQUENCE_SELECT} WHERE s.org_id = $1 AND s.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

async fn steps(tx: &mut TenantTx, sequence_id: &str) -> sqlx::Result<Vec<StepRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(
            "SELECT position, template_id, delay_minutes FROM email_sequence_steps \
             WHERE org_id = $1 AND sequence_id = $2 ORDER BY position",
        )
        .bind(&org_id)
        .bind(sequence_id),
    )
    .await
}

async fn replace_steps(
    tx: &mut TenantTx,
    sequence_id: &str,
    steps: &[StepRow],
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM email_sequence_steps WHERE org_id = $1 AND sequence_id = $2")
            .bind(&org_id)
            .bind(sequence_id),
    )
    .await?;
    for step in steps {
        tx.execute(
            sql("INSERT INTO email_sequence_steps (org_id, sequence_id, position, template_id, delay_minutes) \
                 VALUES ($1, $2, $3, $4, $5)")
            .bind(&org_id)
            .bind(sequence_id)
            .bind(step.position)
            .bind(&step.template_id)
            .bind(step.delay_minutes),
        )
        .await?;
    }
    Ok(())
}

async fn find_enrollment(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<EnrollmentRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{ENROLLMENT_SELECT} WHERE e.org_id = $1 AND e.id = $2"
        ))
        .bind(&org_id)
        .bind(id),
    )
    .await
}

/// Ends an active enrollment. Returns whether it was still active.
async fn finish(
    tx: &mut TenantTx,
    id: &str,
    status: &str,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let changed = tx
        .execute(
            sql("UPDATE email_sequence_enrollments SET status = $3, stop_reason = $4, next_run_at = NULL, \
                 finished_at = $5, updated_at = $5 WHERE org_id = $1 AND id = $2 AND status = 'active'")
            .bind(&org_id)
            .bind(id)
            .bind(status)
            .bind(reason)
            .bind(now),
        )
        .await?;
    Ok(changed > 0)
}

/// Stops every active enrollment of the leads with address `email` (after an unsubscribe or a
/// bounce), at once rather than at their next step, so the lead's page tells the truth.
pub async fn stop_for_address(tx: &mut TenantTx, email: &str, reason: &str) -> sqlx::Result<u64> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql("UPDATE email_sequence_enrollments SET status = 'stopped', stop_reason = $3, next_run_at = NULL, \
             finished_at = $4, updated_at = $4 WHERE org_id = $1 AND status = 'active' AND lead_id IN \
             (SELECT id FROM leads WHERE org_id = $1 AND email = $2)")
        .bind(&org_id)
        .bind(email)
        .bind(reason)
        .bind(now),
    )
    .await
}

async fn active_for_lead(tx: &mut TenantTx, lead_id: &str) -> sqlx::Result<Vec<String>> {
    let org_id = tx.org_id();
    let rows: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT id FROM email_sequence_enrollments WHERE org_id = $1 AND lead_id = $2 AND status = 'active'")
                .bind(&org_id)
                .bind(lead_id),
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

fn plus_minutes(t: OffsetDateTime, minutes: i64) -> OffsetDateTime {
    meridian_db::jobs::plus(
        t,
        Duration::from_secs(u64::try_from(minutes.max(0)).unwrap_or(0) * 60),
    )
}

/// Schedules the job that sends step `position` of enrollment `id` at `at`.
async fn schedule_step(
    tx: &mut TenantTx,
    id: &str,
    position: i64,
    at: OffsetDateTime,
) -> AppResult<()> {
    let job = crate::jobs::new_job(STEP_JOB, &json!({"enrollment": id, "position": position}))
        .map_err(|e| AppError::Internal(e.into()))?
        .run_at(at)
        .unique_key(format!("{id}:{position}"));
    crate::jobs::enqueue_for_tenant(tx, job).await?;
    Ok(())
}

// ---- Service ---------------------------------------------------------------------------------

/// A sequence as a client sends it; on update, missing fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct SequenceInput {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub steps: Option<Vec<StepInput>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    pub template_id: String,
    /// Minutes to wait after the previous step (after enrolling, for the first).
    pub delay_minutes: i64,
}

pub async fn list(state: &AppState, ctx: &Ctx) -> AppResult<Vec<(SequenceRow, Vec<StepRow>)>> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let org_id = tx.org_id();
    let rows: Vec<SequenceRow> = tx
        .fetch_all(
            sql(format!(
                "{SEQUENCE_SELECT} WHERE s.org_id = $1 ORDER BY lower(s.name), s.id"
            ))
            .bind(&org_id),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let steps = steps(&mut tx, &row.id).await?;
        out.push((row, steps));
    }
    tx.commit().await?;
    Ok(out)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<(SequenceRow, Vec<StepRow>)> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = find_sequence(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let steps = steps(&mut tx, id).await?;
    tx.commit().await?;
    Ok((row, steps))
}

async fn check_steps(
    tx: &mut TenantTx,
    v: &mut Validation,
    input: &[StepInput],
) -> AppResult<Vec<StepRow>> {
    if input.is_empty() {
        v.add("steps", "a sequence needs at least one step");
    }
    if input.len() > MAX_STEPS {
        v.add("steps", format!("at most {MAX_STEPS} steps"));
    }
    let mut out = Vec::with_capacity(input.len());
    for (n, step) in input.iter().enumerate() {
        if email_store::find_template(tx, &step.template_id)
            .await?
            .is_none()
        {
            v.add(&format!("steps[{n}].template_id"), "no such template");
        }
        if !(0..=MAX_DELAY_MINUTES).contains(&step.delay_minutes) {
            v.add(
                &format!("steps[{n}].delay_minutes"),
                format!("must be between 0 and {MAX_DELAY_MINUTES} (a year)"),
            );
        }
        out.push(StepRow {
            position: i64::try_from(n).unwrap_or(i64::MAX),
            template_id: step.template_id.clone(),
            delay_minutes: step.delay_minutes,
        });
    }
    Ok(out)
}

async fn check_name(
    tx: &mut TenantTx,
    v: &mut Validation,
    name: &str,
    own_id: Option<&str>,
) -> AppResult<Option<String>> {
    let Some(name) = v.check("name", required_text(name, 1, super::service::MAX_NAME)) else {
        return Ok(None);
    };
    let org_id = tx.org_id();
    let taken: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT id FROM email_sequences WHERE org_id = $1 AND lower(name) = lower($2)")
                .bind(&org_id)
                .bind(&name),
        )
        .await?;
    if taken.is_some_and(|(id,)| Some(id.as_str()) != own_id) {
        v.add("name", "another sequence has this name");
    }
    Ok(Some(name))
}

pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    input: SequenceInput,
) -> AppResult<(SequenceRow, Vec<StepRow>)> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let mut v = Validation::new();
    let name = match &input.name {
        Some(name) => check_name(&mut tx, &mut v, name, None).await?,
        None => {
            v.add("name", "is required");
            None
        }
    };
    let steps_in = input.steps.unwrap_or_default();
    let new_steps = check_steps(&mut tx, &mut v, &steps_in).await?;
    v.finish().map_err(AppError::Validation)?;
    let org_id = tx.org_id();
    let id = meridian_db::new_id();
    tx.execute(
        sql("INSERT INTO email_sequences (org_id, id, name, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(&org_id)
        .bind(&id)
        .bind(name.unwrap_or_default())
        .bind(input.enabled.unwrap_or(true))
        .bind(ctx.user_id())
        .bind(meridian_db::now()),
    )
    .await?;
    replace_steps(&mut tx, &id, &new_steps).await?;
    let row = find_sequence(&mut tx, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok((row, new_steps))
}

/// Changes a sequence. New steps apply to running enrollments from their next step on; turning
/// a sequence back on sends the steps that came due while it was off.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    input: SequenceInput,
) -> AppResult<(SequenceRow, Vec<StepRow>)> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let existing = find_sequence(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut v = Validation::new();
    let name = match &input.name {
        Some(name) => check_name(&mut tx, &mut v, name, Some(id)).await?,
        None => Some(existing.name.clone()),
    };
    let new_steps = match &input.steps {
        Some(steps_in) => Some(check_steps(&mut tx, &mut v, steps_in).await?),
        None => None,
    };
    v.finish().map_err(AppError::Validation)?;
    let enabled = input.enabled.unwrap_or(existing.enabled);
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE email_sequences SET name = $3, enabled = $4, updated_at = $5 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id)
            .bind(name.unwrap_or_default())
            .bind(enabled)
            .bind(meridian_db::now()),
    )
    .await?;
    if let Some(new_steps) = &new_steps {
        replace_steps(&mut tx, id, new_steps).await?;
    }
    if enabled && !existing.enabled {
        // Steps that came due while the sequence was off were skipped without advancing.
        let due: Vec<(String, i64, Option<OffsetDateTime>)> = tx
            .fetch_all(
                sql(
                    "SELECT id, next_position, next_run_at FROM email_sequence_enrollments \
                     WHERE org_id = $1 AND sequence_id = $2 AND status = 'active'",
                )
                .bind(&org_id)
                .bind(id),
            )
            .await?;
        let now = meridian_db::now();
        for (enrollment, position, at) in due {
            schedule_step(&mut tx, &enrollment, position, at.unwrap_or(now).max(now)).await?;
        }
    }
    let row = find_sequence(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let steps = steps(&mut tx, id).await?;
    tx.commit().await?;
    crate::jobs::wake();
    Ok((row, steps))
}

/// Deletes a sequence and its enrollments; steps already sent stay in the message log.
pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    find_sequence(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM email_sequences WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What enrolling one lead did.
#[derive(Debug, Clone)]
pub enum Enrolled {
    Ok(Box<EnrollmentRow>),
    Refused { status: u16, error: String },
}

/// Enrolls leads in a sequence; each lead succeeds or reports its own reason (not found, no
/// address, suppressed, already enrolled).
pub async fn enroll(
    state: &AppState,
    ctx: &Ctx,
    sequence_id: &str,
    lead_ids: &[String],
) -> AppResult<Vec<(String, Enrolled)>> {
    ctx.require(Permission::EmailSend)?;
    if lead_ids.is_empty() || lead_ids.len() > 500 {
        return Err(AppError::field(
            "lead_ids",
            "give between 1 and 500 lead ids",
        ));
    }
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let results = enroll_in(&mut tx, ctx, sequence_id, lead_ids).await?;
    tx.commit().await?;
    crate::jobs::wake();
    Ok(results)
}

/// Enrolls leads in the caller's transaction (an automation's "start sequence" step).
pub async fn enroll_in(
    tx: &mut TenantTx,
    ctx: &Ctx,
    sequence_id: &str,
    lead_ids: &[String],
) -> AppResult<Vec<(String, Enrolled)>> {
    let sequence = find_sequence(tx, sequence_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !sequence.enabled {
        return Err(AppError::Conflict(format!(
            "the sequence “{}” is turned off; turn it on to enroll leads",
            sequence.name
        )));
    }
    let first = steps(tx, sequence_id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Conflict("the sequence has no steps".to_owned()))?;
    let org_id = tx.org_id();
    let active: Vec<(String,)> = tx
        .fetch_all(
            sql("SELECT lead_id FROM email_sequence_enrollments WHERE org_id = $1 AND sequence_id = $2 AND status = 'active'")
                .bind(&org_id)
                .bind(sequence_id),
        )
        .await?;
    let mut results = Vec::with_capacity(lead_ids.len());
    for lead_id in lead_ids {
        let refuse = |status: u16, error: &str| Enrolled::Refused {
            status,
            error: error.to_owned(),
        };
        let (lead, _) = match leads::visible(tx, ctx, lead_id).await {
            Ok(found) => found,
            Err(AppError::NotFound) => {
                results.push((lead_id.clone(), refuse(404, "no such lead")));
                continue;
            }
            Err(other) => return Err(other),
        };
        if lead.archived_at.is_some() {
            results.push((lead_id.clone(), refuse(422, "the lead is archived")));
            continue;
        }
        let Some(email) = &lead.email else {
            results.push((
                lead_id.clone(),
                refuse(422, "the lead has no email address"),
            ));
            continue;
        };
        if email_store::suppression(tx, email).await?.is_some() {
            results.push((
                lead_id.clone(),
                refuse(422, "the lead's address is on the suppression list"),
            ));
            continue;
        }
        if active.iter().any(|(id,)| id == lead_id)
            || results
                .iter()
                .any(|(id, r)| id == lead_id && matches!(r, Enrolled::Ok(_)))
        {
            results.push((lead_id.clone(), refuse(409, "already enrolled")));
            continue;
        }
        let id = meridian_db::new_id();
        let now = meridian_db::now();
        let at = plus_minutes(now, first.delay_minutes);
        tx.execute(
            sql("INSERT INTO email_sequence_enrollments (org_id, id, sequence_id, lead_id, status, next_position, \
                 next_run_at, pipeline_id, stage, enrolled_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'active', 0, $5, $6, $7, $8, $9, $9)")
            .bind(&org_id)
            .bind(&id)
            .bind(sequence_id)
            .bind(&lead.id)
            .bind(at)
            .bind(&lead.pipeline_id)
            .bind(&lead.stage)
            .bind(ctx.user_id())
            .bind(now),
        )
        .await?;
        schedule_step(tx, &id, 0, at).await?;
        activity::record(
            tx,
            ctx,
            &lead.id,
            ActivityKind::SequenceStarted,
            json!({"sequence_id": sequence_id, "sequence": sequence.name}),
        )
        .await?;
        let row = find_enrollment(tx, &id).await?.ok_or(AppError::NotFound)?;
        results.push((lead_id.clone(), Enrolled::Ok(Box::new(row))));
    }
    Ok(results)
}

/// Stops a lead's active enrollment in one sequence (an automation's "stop sequence" step).
/// Returns whether one was running.
pub async fn stop_for_lead(
    tx: &mut TenantTx,
    sequence_id: &str,
    lead_id: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    let stopped = tx
        .execute(
            sql("UPDATE email_sequence_enrollments SET status = 'stopped', stop_reason = $4, next_run_at = NULL, \
                 finished_at = $5, updated_at = $5 WHERE org_id = $1 AND sequence_id = $2 AND lead_id = $3 \
                 AND status = 'active'")
            .bind(&org_id)
            .bind(sequence_id)
            .bind(lead_id)
            .bind(reason)
            .bind(now),
        )
        .await?;
    Ok(stopped > 0)
}

/// Which enrollments a page lists.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    pub sequence_id: Option<String>,
    pub lead_id: Option<String>,
    pub status: Option<String>,
}

pub type EnrollmentCursor = (OffsetDateTime, String);

/// Enrollments, newest first; those of leads the caller cannot see are left out.
pub async fn enrollments(
    state: &AppState,
    ctx: &Ctx,
    filter: &EnrollmentFilter,
    before: Option<EnrollmentCursor>,
    limit: i64,
) -> AppResult<Vec<EnrollmentRow>> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    if let Some(lead) = &filter.lead_id {
        leads::visible(&mut tx, ctx, lead).await?;
    }
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let hidden = leads::hidden_stages(ctx, &pipelines);
    let mut b = SqlBuilder::new();
    let org = b.text(&tx.org_id());
    b.condition(format!("e.org_id = {org}"));
    for (column, value) in [
        ("e.sequence_id", &filter.sequence_id),
        ("e.lead_id", &filter.lead_id),
        ("e.status", &filter.status),
    ] {
        if let Some(value) = value {
            let p = b.text(value);
            b.condition(format!("{column} = {p}"));
        }
    }
    if let Some(hidden) = crate::leads::query::hidden_condition(&mut b, &hidden) {
        b.condition(format!("(l.id IS NULL OR {hidden})"));
    }
    if let Some((at, id)) = before {
        let a = b.push(Arg::Time(Some(at)));
        let i = b.text(&id);
        b.condition(format!(
            "(e.created_at < {a} OR (e.created_at = {a} AND e.id < {i}))"
        ));
    }
    let text = format!(
        "{ENROLLMENT_SELECT} WHERE {} ORDER BY e.created_at DESC, e.id DESC LIMIT {limit}",
        b.conditions()
    );
    let rows = tx.fetch_all(b.into_sql(text)).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Stops an enrollment by hand.
pub async fn stop(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<EnrollmentRow> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let row = find_enrollment(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    leads::visible(&mut tx, ctx, &row.lead_id).await?;
    if !finish(&mut tx, id, "stopped", Some("manual")).await? {
        return Err(AppError::Conflict(format!(
            "the enrollment already ended ({})",
            row.stop_reason.as_deref().unwrap_or(&row.status)
        )));
    }
    activity::record(
        &mut tx,
        ctx,
        &row.lead_id,
        ActivityKind::SequenceStopped,
        json!({"sequence_id": row.sequence_id, "sequence": row.sequence_name, "reason": "manual"}),
    )
    .await?;
    let row = find_enrollment(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

/// A reply from a lead, as a mail provider's inbound hook or an integration reports it.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub from: String,
    /// The Message-ID the reply answers (`In-Reply-To`), with or without angle brackets.
    pub in_reply_to: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
}

/// Records a reply on the lead it comes from (found by the message it answers, else by address)
/// and stops the lead's sequences. Returns the lead and how many sequences stopped.
pub async fn record_reply(state: &AppState, ctx: &Ctx, reply: &Reply) -> AppResult<(String, u64)> {
    ctx.require(Permission::EmailSend)?;
    let from = meridian_core::email::normalize_email(&reply.from)
        .map_err(|m| AppError::field("from", m))?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let org_id = tx.org_id();
    let mut lead_id = None;
    if let Some(answered) = &reply.in_reply_to {
        let answered = answered
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let found: Option<(Option<String>,)> = tx
            .fetch_optional(
                sql("SELECT lead_id FROM email_messages WHERE org_id = $1 AND message_id = $2")
                    .bind(&org_id)
                    .bind(answered),
            )
            .await?;
        lead_id = found.and_then(|(id,)| id);
    }
    if lead_id.is_none() {
        let found: Option<(String,)> = tx
            .fetch_optional(
                sql("SELECT id FROM leads WHERE org_id = $1 AND email = $2 ORDER BY archived_at IS NOT NULL, created_at DESC LIMIT 1")
                    .bind(&org_id)
                    .bind(&from),
            )
            .await?;
        lead_id = found.map(|(id,)| id);
    }
    let lead_id = lead_id.ok_or_else(|| {
        AppError::field(
            "from",
            "no lead has this address, and no message of ours is answered",
        )
    })?;
    leads::visible(&mut tx, ctx, &lead_id).await?;
    let mut stopped = 0;
    for enrollment in active_for_lead(&mut tx, &lead_id).await? {
        if finish(&mut tx, &enrollment, "stopped", Some("replied")).await? {
            stopped += 1;
        }
    }
    let snippet: String = reply
        .text
        .as_deref()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(280)
        .collect();
    activity::record(
        &mut tx,
        ctx,
        &lead_id,
        ActivityKind::EmailReplied,
        json!({"from": from, "subject": reply.subject, "snippet": snippet, "sequences_stopped": stopped}),
    )
    .await?;
    tx.commit().await?;
    Ok((lead_id, stopped))
}

// ---- The step job ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct StepPayload {
    enrollment: String,
    position: i64,
}

/// Registers the step handler. The server's mail context (links, default sender) is read from
/// the database once per process, on the first step.
pub fn register(registry: &mut Registry, config: &crate::config::AppConfig) {
    let config = config.clone();
    let mail = std::sync::Arc::new(tokio::sync::OnceCell::<ServerMail>::new());
    registry.register(STEP_JOB, move |ctx: JobContext, payload| {
        let config = config.clone();
        let mail = mail.clone();
        async move {
            let payload: StepPayload = crate::jobs::payload(payload)?;
            let mail = mail
                .get_or_try_init(|| ServerMail::load(&ctx.db, &config))
                .await?;
            run_step(&ctx, mail, &payload).await
        }
    });
}

fn job_error(error: AppError) -> JobError {
    match error {
        AppError::Internal(e) => JobError::Retryable(format!("{e:#}")),
        other => JobError::Permanent(other.detail()),
    }
}

async fn run_step(
    ctx: &JobContext,
    mail: &ServerMail,
    payload: &StepPayload,
) -> Result<(), JobError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| JobError::permanent("a sequence step must belong to an organization"))?;
    let mut tx = ctx.db.tenant(&tenant).await?;
    let Some(enrollment) = find_enrollment(&mut tx, &payload.enrollment).await? else {
        return Ok(());
    };
    if enrollment.status != "active" || enrollment.next_position != payload.position {
        // Ended, or this step was already sent by an earlier run.
        return Ok(());
    }
    let Some(sequence) = find_sequence(&mut tx, &enrollment.sequence_id).await? else {
        return Ok(());
    };
    if !sequence.enabled {
        // Paused: turning the sequence on again schedules this step anew.
        return Ok(());
    }
    let lead = lead_store::find(&mut tx, &enrollment.lead_id).await?;
    let stop_reason = match &lead {
        None => Some("archived"),
        Some(lead) if lead.archived_at.is_some() => Some("archived"),
        Some(lead)
            if lead.pipeline_id != enrollment.pipeline_id || lead.stage != enrollment.stage =>
        {
            Some("stage_changed")
        }
        Some(lead) => match &lead.email {
            None => Some("no_email"),
            Some(email) if email_store::suppression(&mut tx, email).await?.is_some() => {
                Some("unsubscribed")
            }
            Some(_) => None,
        },
    };
    let all_steps = steps(&mut tx, &enrollment.sequence_id).await?;
    let step = all_steps.iter().find(|s| s.position == payload.position);
    let (lead, step) = match (stop_reason, lead, step) {
        (Some(reason), _, _) => {
            finish(&mut tx, &enrollment.id, "stopped", Some(reason)).await?;
            tx.commit().await?;
            return Ok(());
        }
        (None, Some(lead), Some(step)) => (lead, step),
        (None, _, None) => {
            // The sequence was shortened below this step: it is over.
            finish(&mut tx, &enrollment.id, "completed", None).await?;
            tx.commit().await?;
            return Ok(());
        }
        (None, None, _) => return Ok(()),
    };
    let Some(template) = email_store::find_template(&mut tx, &step.template_id).await? else {
        finish(&mut tx, &enrollment.id, "stopped", Some("template_missing")).await?;
        tx.commit().await?;
        return Ok(());
    };
    let pipeline = crate::pipelines::service::load(&mut tx, &lead.pipeline_id)
        .await
        .map_err(job_error)?;
    let org = crate::orgs::store::get_org(&mut tx).await?;
    let fields = TemplateFields {
        name: template.name,
        subject: template.subject,
        body_html: template.body_html,
        body_text: template.body_text,
        category: template.category,
    };
    let to = lead.email.clone().unwrap_or_default();
    let author = Author {
        org_name: &org.name,
        user_id: None,
    };
    let (id, message) = compose(
        &mut tx,
        mail,
        author,
        Recipient {
            lead: &lead,
            pipeline: &pipeline,
            to: &to,
        },
        &fields,
        Some(&step.template_id),
    )
    .await
    .map_err(job_error)?;
    super::service::queue(&mut tx, &id, &message)
        .await
        .map_err(job_error)?;
    let now = meridian_db::now();
    let next = all_steps.iter().find(|s| s.position > payload.position);
    let org_id = tx.org_id();
    match next {
        Some(next) => {
            let at = plus_minutes(now, next.delay_minutes);
            tx.execute(
                sql(
                    "UPDATE email_sequence_enrollments SET next_position = $3, next_run_at = $4, \
                     steps_sent = steps_sent + 1, updated_at = $5 WHERE org_id = $1 AND id = $2",
                )
                .bind(&org_id)
                .bind(&enrollment.id)
                .bind(next.position)
                .bind(at)
                .bind(now),
            )
            .await?;
            schedule_step(&mut tx, &enrollment.id, next.position, at)
                .await
                .map_err(job_error)?;
        }
        None => {
            tx.execute(
                sql(
                    "UPDATE email_sequence_enrollments SET steps_sent = steps_sent + 1 \
                     WHERE org_id = $1 AND id = $2",
                )
                .bind(&org_id)
                .bind(&enrollment.id),
            )
            .await?;
            finish(&mut tx, &enrollment.id, "completed", None).await?;
        }
    }
    tx.commit().await?;
    crate::jobs::wake();
    Ok(())
}
