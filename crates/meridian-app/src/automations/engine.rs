//! Running automations: business writes report events here in their own transaction; each enabled
//! automation whose trigger matches gets a run (a row and an `automation.run` job, committed with
//! the write). The job evaluates the conditions, then executes the compiled actions one at a
//! time, each in one transaction with its effect, the step record and the run's position, so a
//! retried or rescued job carries on where the last one stopped and never repeats a step.
//!
//! Loops are cut: a run caused by an automation's own change (its actions act with a context that
//! names it) is refused once the same automation has run that often for the same lead within the
//! window, with an error that says so.

use std::time::Duration;

use meridian_core::crm::{ActivityKind, Picklist, TaskType};
use meridian_db::TenantTx;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::definition::{
    Action, Assignee, Audience, Definition, Facts, Instruction, Trigger, compile,
};
use super::store::{self, RunRow};
use crate::email::compose::{Author, Recipient, ServerMail, compose};
use crate::email::store::TemplateFields;
use crate::http::ctx::{Ctx, OrgRef};
use crate::http::error::{AppError, AppResult};
use crate::jobs::{JobContext, JobError, Registry};
use crate::leads::service::{self as leads, Action as LeadAction};
use crate::leads::store::{self as lead_store, LeadRow};
use crate::pipelines::store::Pipeline;

pub const RUN_JOB: &str = "automation.run";
/// Attempts of a failing step before the run fails (backoff from seconds to minutes between).
pub const RUN_ATTEMPTS: i64 = 5;
/// Runs one automation may make for one lead, caused by automations' own changes, within
/// [`LOOP_WINDOW`], before the next is cut.
pub const LOOP_LIMIT: i64 = 5;
pub const LOOP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Something that happened to a lead.
#[derive(Debug, Clone)]
pub struct Event {
    pub trigger: &'static str,
    pub lead_id: String,
    pub data: Value,
}

impl Trigger {
    fn matches(&self, event: &Event) -> bool {
        let text = |key: &str| event.data.get(key).and_then(Value::as_str);
        let same =
            |want: &Option<String>, key: &str| want.as_deref().is_none_or(|w| text(key) == Some(w));
        match self {
            Trigger::LeadCreated { pipeline_id } => same(pipeline_id, "pipeline_id"),
            Trigger::StageChanged {
                pipeline_id,
                from,
                to,
            } => same(pipeline_id, "pipeline_id") && same(from, "from") && same(to, "to"),
            Trigger::FieldChanged { field } => event
                .data
                .get("fields")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(field))),
            Trigger::LeadAssigned => true,
            Trigger::TaskDue { overdue } => {
                event.data.get("overdue").and_then(Value::as_bool) == Some(*overdue)
            }
            Trigger::Manual => event.trigger == "manual",
            Trigger::InboundReceived { form_id } => same(form_id, "form_id"),
            Trigger::Schedule { .. } => event.trigger == "schedule",
        }
    }
}

/// Reports a lead's creation.
pub async fn lead_created(tx: &mut TenantTx, ctx: &Ctx, lead: &LeadRow) -> AppResult<()> {
    emit(
        tx,
        ctx,
        Event {
            trigger: "lead_created",
            lead_id: lead.id.clone(),
            data: json!({"pipeline_id": lead.pipeline_id, "stage": lead.stage, "source": lead.source}),
        },
    )
    .await
}

/// Reports what a lead action changed: its stage or pipeline, or its assignee.
pub async fn lead_changed(
    tx: &mut TenantTx,
    ctx: &Ctx,
    before: &LeadRow,
    after: &LeadRow,
) -> AppResult<()> {
    if after.stage != before.stage || after.pipeline_id != before.pipeline_id {
        emit(
            tx,
            ctx,
            Event {
                trigger: "stage_changed",
                lead_id: after.id.clone(),
                data: json!({"pipeline_id": after.pipeline_id, "from": before.stage, "to": after.stage}),
            },
        )
        .await?;
    }
    if after.assigned_to.is_some() && after.assigned_to != before.assigned_to {
        emit(
            tx,
            ctx,
            Event {
                trigger: "lead_assigned",
                lead_id: after.id.clone(),
                data: json!({"from": before.assigned_to, "to": after.assigned_to}),
            },
        )
        .await?;
    }
    Ok(())
}

/// Reports a lead that came in through an inbound form.
pub async fn inbound_received(
    tx: &mut TenantTx,
    ctx: &Ctx,
    lead: &LeadRow,
    form_id: &str,
    form_name: &str,
) -> AppResult<()> {
    emit(
        tx,
        ctx,
        Event {
            trigger: "inbound_received",
            lead_id: lead.id.clone(),
            data: json!({"form_id": form_id, "form": form_name, "pipeline_id": lead.pipeline_id}),
        },
    )
    .await
}

/// Reports changed fields (`email`, `custom_fields.budget`, `tags`, ...).
pub async fn fields_changed(
    tx: &mut TenantTx,
    ctx: &Ctx,
    lead_id: &str,
    fields: &[String],
) -> AppResult<()> {
    emit(
        tx,
        ctx,
        Event {
            trigger: "field_changed",
            lead_id: lead_id.to_owned(),
            data: json!({"fields": fields}),
        },
    )
    .await
}

/// Starts a run of every enabled automation whose trigger matches `event`.
pub async fn emit(tx: &mut TenantTx, ctx: &Ctx, event: Event) -> AppResult<()> {
    emit_keyed(tx, ctx, event, None).await
}

/// Like [`emit`], once per automation and `key` however often it is called (scheduled work that
/// may run twice).
pub async fn emit_once(tx: &mut TenantTx, ctx: &Ctx, event: Event, key: &str) -> AppResult<()> {
    emit_keyed(tx, ctx, event, Some(key)).await
}

async fn emit_keyed(
    tx: &mut TenantTx,
    ctx: &Ctx,
    event: Event,
    dedupe_key: Option<&str>,
) -> AppResult<()> {
    let candidates = store::enabled_with_trigger(tx, event.trigger).await?;
    let mut started = false;
    for automation in candidates {
        let Ok(definition) = serde_json::from_str::<Definition>(&automation.definition) else {
            tracing::error!(
                automation = automation.id,
                "stored definition does not parse"
            );
            continue;
        };
        if definition.trigger.matches(&event) {
            start(
                tx,
                ctx,
                &automation.id,
                automation.version,
                &event,
                dedupe_key,
            )
            .await?;
            started = true;
        }
    }
    if started {
        crate::jobs::wake();
    }
    Ok(())
}

/// Creates a run of `automation_id` for `event` and enqueues it, unless it would continue a loop
/// (then it is recorded as failed, with why) or its dedupe key ran already.
pub async fn start(
    tx: &mut TenantTx,
    ctx: &Ctx,
    automation_id: &str,
    version: i64,
    event: &Event,
    dedupe_key: Option<&str>,
) -> AppResult<String> {
    let caused_by = ctx.automation_id();
    let id = meridian_db::new_id();
    let looping = match caused_by {
        Some(_) => {
            let since = meridian_db::jobs::minus(meridian_db::now(), LOOP_WINDOW);
            store::caused_runs_since(tx, automation_id, &event.lead_id, since).await? >= LOOP_LIMIT
        }
        None => false,
    };
    let run = store::NewRun {
        id: &id,
        automation_id,
        version,
        event,
        caused_by,
        dedupe_key,
        status: if looping { "failed" } else { "queued" },
    };
    if !store::insert_run(tx, &run).await? {
        return Ok(id);
    }
    if looping {
        let error = format!(
            "stopped a loop: automations' own changes triggered this automation {LOOP_LIMIT} times \
             for this lead within {} minutes; check its trigger and actions",
            LOOP_WINDOW.as_secs() / 60
        );
        store::finish_run(tx, &id, "failed", Some(&error)).await?;
        tracing::warn!(
            automation = automation_id,
            lead = event.lead_id,
            "automation loop cut"
        );
        return Ok(id);
    }
    let job = crate::jobs::new_job(RUN_JOB, &json!({"run": id}))
        .map_err(|e| AppError::Internal(e.into()))?
        .max_attempts(RUN_ATTEMPTS)
        .unique_key(id.clone());
    crate::jobs::enqueue_for_tenant(tx, job).await?;
    Ok(id)
}

// ---- The run job -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RunPayload {
    run: String,
}

/// Registers the run handler; the server's mail context is read once per process.
pub fn register(registry: &mut Registry, config: &crate::config::AppConfig) {
    let config = config.clone();
    let mail = std::sync::Arc::new(tokio::sync::OnceCell::<ServerMail>::new());
    registry.register(RUN_JOB, move |job: JobContext, payload| {
        let config = config.clone();
        let mail = mail.clone();
        async move {
            let payload: RunPayload = crate::jobs::payload(payload)?;
            let mail = mail
                .get_or_try_init(|| ServerMail::load(&job.db, &config))
                .await?;
            run(&job, mail, &payload.run).await
        }
    });
}

/// The lead as conditions see it.
async fn facts(tx: &mut TenantTx, lead: &LeadRow) -> AppResult<Facts> {
    let tags: Vec<String> = lead_store::tags_of(tx, &[&lead.id])
        .await?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect();
    Ok(facts_with(lead, tags))
}

/// The lead as conditions see it, given its tags (read in one query for many leads).
pub(crate) fn facts_with(lead: &LeadRow, tags: Vec<String>) -> Facts {
    let mut facts = Facts::new();
    let mut put = |k: &str, v: Value| {
        facts.insert(k.to_owned(), v);
    };
    put("first_name", json!(lead.first_name));
    put("last_name", json!(lead.last_name));
    put("email", json!(lead.email));
    put("phone", json!(lead.phone));
    put("state", json!(lead.state));
    put("country", json!(lead.country));
    put("date_of_birth", json!(lead.date_of_birth));
    put("source", json!(lead.source));
    put("stage", json!(lead.stage));
    put("pipeline_id", json!(lead.pipeline_id));
    put("assigned_to", json!(lead.assigned_to));
    put("is_priority", json!(lead.is_priority));
    put("utm_source", json!(lead.utm_source));
    put("utm_medium", json!(lead.utm_medium));
    put("utm_campaign", json!(lead.utm_campaign));
    put("utm_content", json!(lead.utm_content));
    put("utm_term", json!(lead.utm_term));
    put("campaign_id", json!(lead.campaign_id));
    let custom: serde_json::Map<String, Value> =
        serde_json::from_str(&lead.custom_fields).unwrap_or_default();
    for (key, value) in custom {
        put(&format!("custom_fields.{key}"), value);
    }
    facts.insert("tags".to_owned(), json!(tags));
    facts
}

fn job_error(error: &AppError) -> String {
    match error {
        AppError::Internal(e) => format!("{e:#}"),
        other => other.detail(),
    }
}

async fn run(job: &JobContext, mail: &ServerMail, run_id: &str) -> Result<(), JobError> {
    let tenant = job
        .tenant()
        .ok_or_else(|| JobError::permanent("an automation run must belong to an organization"))?;
    loop {
        let mut tx = job.db.tenant(&tenant).await?;
        let Some(run) = store::find_run(&mut tx, run_id).await? else {
            return Ok(());
        };
        if !matches!(run.status.as_str(), "queued" | "waiting") {
            return Ok(());
        }
        let Some(automation) = store::find(&mut tx, &run.automation_id).await? else {
            return Ok(());
        };
        let definition: Definition = store::version(&mut tx, &run.automation_id, run.version)
            .await?
            .and_then(|d| serde_json::from_str(&d).ok())
            .ok_or_else(|| JobError::permanent("the run's automation version is gone"))?;
        let org = crate::orgs::store::get_org(&mut tx).await?;
        let actx = Ctx::automation(
            OrgRef {
                id: org.id.clone(),
                name: org.name.clone(),
            },
            &automation.id,
            &automation.name,
        );
        let lead = match &run.lead_id {
            Some(id) => lead_store::find(&mut tx, id).await?,
            None => None,
        };
        let Some(lead) = lead.filter(|l| l.archived_at.is_none()) else {
            store::finish_run(
                &mut tx,
                run_id,
                "skipped",
                Some("the lead is gone or archived"),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        };
        let program = compile(&definition.actions);
        let pc = usize::try_from(run.pc).unwrap_or(usize::MAX);
        if pc == 0 && run.status == "queued" && !store::has_steps(&mut tx, run_id).await? {
            let facts = facts(&mut tx, &lead)
                .await
                .map_err(|e| JobError::Retryable(job_error(&e)))?;
            if !definition.conditions.hold(&facts) {
                store::finish_run(
                    &mut tx,
                    run_id,
                    "skipped",
                    Some("the conditions did not hold"),
                )
                .await?;
                tx.commit().await?;
                return Ok(());
            }
        }
        let Some(instruction) = program.get(pc) else {
            store::finish_run(&mut tx, run_id, "succeeded", None).await?;
            tx.commit().await?;
            return Ok(());
        };
        let started = meridian_db::now();
        match instruction {
            Instruction::Jump(to) => {
                store::advance(&mut tx, run_id, *to, "queued", None).await?;
                tx.commit().await?;
            }
            Instruction::Test {
                conditions,
                otherwise,
            } => {
                let facts = facts(&mut tx, &lead)
                    .await
                    .map_err(|e| JobError::Retryable(job_error(&e)))?;
                let holds = conditions.hold(&facts);
                let next = if holds { pc + 1 } else { *otherwise };
                store::record_step(
                    &mut tx,
                    &run,
                    pc,
                    "branch",
                    "succeeded",
                    &json!({"branch": if holds { "then" } else { "else" }}),
                    None,
                    job.attempt,
                    started,
                )
                .await?;
                store::advance(&mut tx, run_id, next, "queued", None).await?;
                tx.commit().await?;
            }
            Instruction::Wait {
                minutes,
                until_field,
            } => {
                let resume = wait_until(&lead, *minutes, until_field.as_deref());
                store::record_step(&mut tx, &run, pc, "wait", "succeeded",
                    &json!({"until": resume.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()}),
                    None, job.attempt, started)
                    .await?;
                store::advance(&mut tx, run_id, pc + 1, "waiting", Some(resume)).await?;
                let next_job = crate::jobs::new_job(RUN_JOB, &json!({"run": run_id}))
                    .map_err(JobError::permanent)?
                    .max_attempts(RUN_ATTEMPTS)
                    .run_at(resume)
                    .unique_key(format!("{run_id}:{}", pc + 1));
                crate::jobs::enqueue_for_tenant(&mut tx, next_job).await?;
                tx.commit().await?;
                return Ok(());
            }
            Instruction::Do(action) => {
                let pipeline = crate::pipelines::service::load(&mut tx, &lead.pipeline_id)
                    .await
                    .map_err(|e| JobError::Retryable(job_error(&e)))?;
                match perform(
                    &mut tx,
                    &actx,
                    mail,
                    &automation.id,
                    &lead,
                    &pipeline,
                    action,
                )
                .await
                {
                    Ok(output) => {
                        store::record_step(
                            &mut tx,
                            &run,
                            pc,
                            action.name(),
                            "succeeded",
                            &output,
                            None,
                            job.attempt,
                            started,
                        )
                        .await?;
                        store::advance(&mut tx, run_id, pc + 1, "queued", None).await?;
                        tx.commit().await?;
                        crate::jobs::wake();
                    }
                    Err(error) => {
                        // The action's partial effects roll back; the failure is recorded apart.
                        drop(tx);
                        let message = job_error(&error);
                        let mut tx = job.db.tenant(&tenant).await?;
                        store::record_step(
                            &mut tx,
                            &run,
                            pc,
                            action.name(),
                            "failed",
                            &json!({}),
                            Some(&message),
                            job.attempt,
                            started,
                        )
                        .await?;
                        let last = job.attempt >= job.max_attempts;
                        if last {
                            let error =
                                format!("step {} ({}) failed: {message}", pc + 1, action.name());
                            store::finish_run(&mut tx, run_id, "failed", Some(&error)).await?;
                            crate::notifications::automation_failed(
                                &mut tx,
                                &automation.id,
                                &automation.name,
                                &error,
                            )
                            .await?;
                            crate::audit::store::record(
                                &mut tx,
                                &actx,
                                crate::audit::store::Entry {
                                    action: "automation.failed",
                                    target_type: "automation",
                                    target_id: Some(&automation.id),
                                    target_label: Some(&automation.name),
                                    before: None,
                                    after: Some(json!({"run_id": run_id, "error": error})),
                                },
                            )
                            .await?;
                        }
                        tx.commit().await?;
                        return Err(if last {
                            JobError::Permanent(message)
                        } else {
                            JobError::Retryable(message)
                        });
                    }
                }
            }
        }
    }
}

/// When a wait ends: after `minutes`, or at the date (or date and time) in a custom field; a
/// field that is empty or not a date does not wait.
fn wait_until(lead: &LeadRow, minutes: Option<i64>, until_field: Option<&str>) -> OffsetDateTime {
    let now = meridian_db::now();
    if let Some(field) = until_field {
        let custom: serde_json::Map<String, Value> =
            serde_json::from_str(&lead.custom_fields).unwrap_or_default();
        let key = field.trim_start_matches("custom_fields.");
        let text = custom.get(key).and_then(Value::as_str).unwrap_or_default();
        let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .or_else(|| {
                time::Date::parse(
                    text,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .ok()
                .map(|d| d.midnight().assume_utc())
            });
        return parsed.unwrap_or(now).max(now);
    }
    let minutes = u64::try_from(minutes.unwrap_or(0).max(0)).unwrap_or(0);
    meridian_db::jobs::plus(now, Duration::from_secs(minutes * 60))
}

/// Performs one action for `lead` as the automation; returns what it did, for the step record.
async fn perform(
    tx: &mut TenantTx,
    ctx: &Ctx,
    mail: &ServerMail,
    automation_id: &str,
    lead: &LeadRow,
    pipeline: &Pipeline,
    action: &Action,
) -> AppResult<Value> {
    match action {
        Action::SendEmail { template_id } => {
            let Some(to) = lead.email.clone() else {
                return Ok(json!({"skipped": "the lead has no email address"}));
            };
            if crate::email::store::suppression(tx, &to).await?.is_some() {
                return Ok(json!({"skipped": "the address is on the suppression list"}));
            }
            let template = crate::email::store::find_template(tx, template_id)
                .await?
                .ok_or_else(|| AppError::Conflict("the email template was deleted".to_owned()))?;
            let fields = TemplateFields {
                name: template.name,
                subject: template.subject,
                body_html: template.body_html,
                body_text: template.body_text,
                category: template.category,
            };
            let author = Author {
                org_name: &ctx.org.name,
                user_id: None,
            };
            let (id, message) = compose(
                tx,
                mail,
                author,
                Recipient {
                    lead,
                    pipeline,
                    to: &to,
                },
                &fields,
                Some(template_id),
            )
            .await?;
            crate::email::service::queue(tx, &id, &message).await?;
            activity_email(tx, ctx, lead, &id, &message.subject, &to).await?;
            Ok(json!({"message_id": id}))
        }
        Action::StartSequence { sequence_id } => {
            let results = crate::email::sequences::enroll_in(
                tx,
                ctx,
                sequence_id,
                std::slice::from_ref(&lead.id),
            )
            .await?;
            Ok(match results.into_iter().next() {
                Some((_, crate::email::sequences::Enrolled::Ok(row))) => {
                    json!({"enrollment_id": row.id})
                }
                Some((_, crate::email::sequences::Enrolled::Refused { error, .. })) => {
                    json!({"skipped": error})
                }
                None => json!({}),
            })
        }
        Action::StopSequence { sequence_id } => {
            let stopped =
                crate::email::sequences::stop_for_lead(tx, sequence_id, &lead.id, "automation")
                    .await?;
            Ok(json!({"stopped": stopped}))
        }
        Action::CreateTask {
            title,
            task_type,
            due_in_minutes,
            assignee,
        } => {
            let assignee_id = match assignee {
                Some(a) => pick(tx, automation_id, lead, a).await?,
                None => lead.assigned_to.clone(),
            };
            let due_at = due_in_minutes.map(|m| {
                meridian_db::truncate_to_micros(meridian_db::jobs::plus(
                    meridian_db::now(),
                    Duration::from_secs(u64::try_from(m.max(0)).unwrap_or(0) * 60),
                ))
            });
            let fields = crate::tasks::store::TaskFields {
                title: title.clone(),
                description: String::new(),
                task_type: task_type
                    .clone()
                    .unwrap_or_else(|| TaskType::FollowUp.as_str().to_owned()),
                due_at,
                assignee_id,
            };
            let id = crate::tasks::store::insert(tx, Some(&lead.id), &fields, None).await?;
            if let Some(task) = crate::tasks::store::find(tx, &id).await? {
                crate::tasks::service::task_assigned(tx, ctx, &task).await?;
            }
            crate::leads::activity::record(
                tx,
                ctx,
                &lead.id,
                ActivityKind::TaskCreated,
                json!({"task_id": id, "title": title}),
            )
            .await?;
            Ok(json!({"task_id": id, "assignee_id": fields.assignee_id}))
        }
        Action::Assign { assignee } => {
            let user = pick(tx, automation_id, lead, assignee).await?;
            leads::apply_action(
                tx,
                ctx,
                &lead.id,
                &LeadAction::Assign {
                    user_id: user.clone(),
                },
            )
            .await?;
            Ok(json!({"user_id": user}))
        }
        Action::ChangeStage { stage } => {
            leads::apply_action(
                tx,
                ctx,
                &lead.id,
                &LeadAction::Stage {
                    stage: stage.clone(),
                    reason: Some(ctx.actor_label()),
                },
            )
            .await?;
            Ok(json!({"from": lead.stage, "to": stage}))
        }
        Action::AddTag { tag } | Action::RemoveTag { tag } => {
            let add = matches!(action, Action::AddTag { .. });
            leads::apply_action(
                tx,
                ctx,
                &lead.id,
                &LeadAction::Tag {
                    tags: vec![tag.clone()],
                    add,
                },
            )
            .await?;
            Ok(json!({"tag": tag, "added": add}))
        }
        Action::SetField { field, value } => {
            let key = field.trim_start_matches("custom_fields.").to_owned();
            let mut values = serde_json::Map::new();
            values.insert(key, value.clone());
            leads::update_in(
                tx,
                ctx,
                &lead.id,
                crate::leads::input::LeadInput {
                    custom_fields: Some(values),
                    ..Default::default()
                },
            )
            .await?;
            Ok(json!({"field": field, "value": value}))
        }
        Action::Notify { audience, message } => {
            let users = match audience {
                Audience::Owner => lead.assigned_to.iter().cloned().collect(),
                Audience::User { user_id } => vec![user_id.clone()],
                Audience::Role { role } => store::active_members_with_role(tx, role).await?,
            };
            let note = crate::notifications::Note {
                kind: crate::notifications::Kind::AutomationMessage,
                entity_type: "lead",
                entity_id: format!("{automation_id}:{}", lead.id),
                title: message.clone(),
                body: format!(
                    "About #{} {} {}",
                    crate::leads::api::display_number(lead.number),
                    lead.first_name,
                    lead.last_name
                )
                .trim()
                .to_owned(),
                link: format!("/leads/{}", lead.id),
                actor_label: Some(ctx.actor_label()),
            };
            let sent = crate::notifications::notify(
                tx,
                &users,
                None,
                &note,
                crate::notifications::DEDUPE_WINDOW,
            )
            .await?;
            Ok(json!({"notified": sent}))
        }
        Action::Webhook { webhook_id } => {
            let data = json!({
                "automation": {"id": automation_id, "name": ctx.actor_label()},
                "lead": crate::webhooks::events::lead_created(lead)["lead"],
            });
            let delivery =
                crate::webhooks::events::deliver_to(tx, webhook_id, "automation.webhook", data)
                    .await?;
            Ok(json!({"delivery_id": delivery}))
        }
        Action::Wait { .. } | Action::Branch { .. } => Ok(json!({})),
    }
}

async fn activity_email(
    tx: &mut TenantTx,
    ctx: &Ctx,
    lead: &LeadRow,
    message_id: &str,
    subject: &str,
    to: &str,
) -> AppResult<()> {
    crate::leads::activity::record(
        tx,
        ctx,
        &lead.id,
        ActivityKind::EmailQueued,
        json!({"message_id": message_id, "subject": subject, "to": to}),
    )
    .await?;
    Ok(())
}

/// The person an assignment goes to. Round-robin takes the active member of the role after the
/// one this automation picked last (by user id, wrapping around).
async fn pick(
    tx: &mut TenantTx,
    automation_id: &str,
    lead: &LeadRow,
    assignee: &Assignee,
) -> AppResult<Option<String>> {
    match assignee {
        Assignee::Owner => Ok(lead.assigned_to.clone()),
        Assignee::User { user_id } => {
            if lead_store::is_active_member(tx, user_id).await?.is_none() {
                return Err(AppError::Conflict(format!(
                    "user {user_id} is no longer an active member"
                )));
            }
            Ok(Some(user_id.clone()))
        }
        Assignee::RoundRobin { role } => {
            let members = store::active_members_with_role(tx, role).await?;
            if members.is_empty() {
                return Err(AppError::Conflict(format!(
                    "no active member has the role {role}"
                )));
            }
            let last = store::last_round_robin_pick(tx, automation_id).await?;
            let next = last
                .and_then(|last| members.iter().find(|m| m.as_str() > last.as_str()))
                .or_else(|| members.first())
                .cloned();
            Ok(next)
        }
    }
}

/// A run with its steps, for the API and pages.
pub async fn run_with_steps(
    tx: &mut TenantTx,
    id: &str,
) -> AppResult<Option<(RunRow, Vec<store::StepRow>)>> {
    let Some(run) = store::find_run(tx, id).await? else {
        return Ok(None);
    };
    let steps = store::steps(tx, id).await?;
    Ok(Some((run, steps)))
}
