//! Automations as the API and pages use them: checked definitions, versions on every change of
//! the definition, manual runs, the run history and retries, and the gallery of ready ones.

use meridian_core::crm::{Picklist, TaskType};
use meridian_core::validation::required_text;
use meridian_core::{Permission, Role, Validation};
use meridian_db::TenantTx;
use serde_json::json;

use super::definition::{Action, Assignee, Audience, Conditions, Definition, Trigger};
use super::engine::{self, Event};
use super::store::{self, AutomationRow, RunRow, StepRow, VersionRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::leads::service as leads;
use crate::state::AppState;

pub const MAX_NAME: usize = 120;
pub const MAX_ACTIONS: usize = 50;

/// Fields conditions may compare, besides `custom_fields.KEY`.
pub const LEAD_FIELDS: [&str; 18] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "state",
    "country",
    "date_of_birth",
    "source",
    "stage",
    "pipeline_id",
    "assigned_to",
    "is_priority",
    "tags",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
];

/// An automation as a client sends it; on update, missing parts stay as they are.
#[derive(Debug, Default, Clone)]
pub struct AutomationInput {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub definition: Option<Definition>,
}

struct Checker<'a> {
    tx: &'a mut TenantTx,
    v: Validation,
    custom_fields: Vec<String>,
    stages: Vec<(String, String)>,
}

impl Checker<'_> {
    fn field_known(&self, field: &str) -> bool {
        LEAD_FIELDS.contains(&field)
            || field
                .strip_prefix("custom_fields.")
                .is_some_and(|k| self.custom_fields.iter().any(|c| c == k))
    }

    fn stage_known(&self, pipeline: Option<&str>, stage: &str) -> bool {
        self.stages
            .iter()
            .any(|(p, s)| s == stage && pipeline.is_none_or(|want| want == p))
    }

    fn conditions(&mut self, at: &str, conditions: &Conditions) {
        for (n, rule) in conditions.rules.iter().enumerate() {
            if !self.field_known(&rule.field) {
                self.v.add(
                    &format!("{at}.rules[{n}].field"),
                    format!("{:?} is not a lead field or custom field", rule.field),
                );
            }
        }
    }

    async fn trigger(&mut self, trigger: &Trigger) -> AppResult<()> {
        let pipeline = match trigger {
            Trigger::LeadCreated { pipeline_id } | Trigger::StageChanged { pipeline_id, .. } => {
                pipeline_id.clone()
            }
            _ => None,
        };
        if let Some(p) = &pipeline
            && crate::pipelines::service::load(self.tx, p).await.is_err()
        {
            self.v
                .add("definition.trigger.pipeline_id", "no such pipeline");
        }
        if let Trigger::StageChanged { from, to, .. } = trigger {
            for (name, stage) in [("from", from), ("to", to)] {
                if let Some(stage) = stage
                    && !self.stage_known(pipeline.as_deref(), stage)
                {
                    self.v.add(
                        &format!("definition.trigger.{name}"),
                        format!("{stage:?} is not a stage"),
                    );
                }
            }
        }
        if let Trigger::InboundReceived {
            form_id: Some(form),
        } = trigger
            && crate::webhooks::store::find_form(self.tx, form)
                .await?
                .is_none()
        {
            self.v
                .add("definition.trigger.form_id", "no such inbound form");
        }
        if let Trigger::Schedule {
            cron,
            pipeline_id,
            stage,
        } = trigger
        {
            if let Err(message) = crate::jobs::Recurrence::cron(cron) {
                self.v.add("definition.trigger.cron", message);
            }
            if let Some(p) = pipeline_id
                && crate::pipelines::service::load(self.tx, p).await.is_err()
            {
                self.v
                    .add("definition.trigger.pipeline_id", "no such pipeline");
            }
            if let Some(stage) = stage
                && !self.stage_known(pipeline_id.as_deref(), stage)
            {
                self.v.add(
                    "definition.trigger.stage",
                    format!("{stage:?} is not a stage"),
                );
            }
        }
        if let Trigger::FieldChanged { field } = trigger
            && !self.field_known(field)
        {
            self.v.add(
                "definition.trigger.field",
                format!("{field:?} is not a lead field or custom field"),
            );
        }
        Ok(())
    }

    async fn assignee(&mut self, at: &str, assignee: &Assignee) -> AppResult<()> {
        match assignee {
            Assignee::Owner => {}
            Assignee::User { user_id } => {
                if crate::leads::store::is_active_member(self.tx, user_id)
                    .await?
                    .is_none()
                {
                    self.v
                        .add(&format!("{at}.user_id"), "is not an active member");
                }
            }
            Assignee::RoundRobin { role } => {
                if role.parse::<Role>().is_err() {
                    self.v.add(&format!("{at}.role"), "is not a role");
                }
            }
        }
        Ok(())
    }

    async fn actions(&mut self, at: &str, actions: &[Action], count: &mut usize) -> AppResult<()> {
        for (n, action) in actions.iter().enumerate() {
            *count += 1;
            let here = format!("{at}[{n}]");
            match action {
                Action::SendEmail { template_id } => {
                    if crate::email::store::find_template(self.tx, template_id)
                        .await?
                        .is_none()
                    {
                        self.v
                            .add(&format!("{here}.template_id"), "no such email template");
                    }
                }
                Action::StartSequence { sequence_id } | Action::StopSequence { sequence_id } => {
                    let exists = crate::email::sequences::exists(self.tx, sequence_id).await?;
                    if !exists {
                        self.v
                            .add(&format!("{here}.sequence_id"), "no such sequence");
                    }
                }
                Action::CreateTask {
                    title,
                    task_type,
                    due_in_minutes,
                    assignee,
                } => {
                    if title.trim().is_empty() || title.chars().count() > 200 {
                        self.v.add(
                            &format!("{here}.title"),
                            "is required (at most 200 characters)",
                        );
                    }
                    if let Some(t) = task_type
                        && let Err(message) = TaskType::parse(t)
                    {
                        self.v.add(&format!("{here}.task_type"), message);
                    }
                    if due_in_minutes.is_some_and(|m| !(0..=525_600).contains(&m)) {
                        self.v.add(
                            &format!("{here}.due_in_minutes"),
                            "must be between 0 and 525600 (a year)",
                        );
                    }
                    if let Some(a) = assignee {
                        self.assignee(&format!("{here}.assignee"), a).await?;
                    }
                }
                Action::Assign { assignee } => {
                    self.assignee(&format!("{here}.assignee"), assignee).await?;
                }
                Action::ChangeStage { stage } => {
                    if !self.stage_known(None, stage) {
                        self.v.add(
                            &format!("{here}.stage"),
                            format!("{stage:?} is not a stage"),
                        );
                    }
                }
                Action::AddTag { tag } | Action::RemoveTag { tag } => {
                    if tag.trim().is_empty() || tag.chars().count() > 50 {
                        self.v.add(
                            &format!("{here}.tag"),
                            "is required (at most 50 characters)",
                        );
                    }
                }
                Action::SetField { field, .. } => {
                    let key = field.trim_start_matches("custom_fields.");
                    if !self.custom_fields.iter().any(|c| c == key) {
                        self.v.add(
                            &format!("{here}.field"),
                            format!("{field:?} is not a custom field"),
                        );
                    }
                }
                Action::Webhook { webhook_id } => {
                    if crate::webhooks::store::find_subscription(self.tx, webhook_id)
                        .await?
                        .is_none()
                    {
                        self.v
                            .add(&format!("{here}.webhook_id"), "no such webhook endpoint");
                    }
                }
                Action::Notify { audience, message } => {
                    if message.trim().is_empty() || message.chars().count() > 500 {
                        self.v.add(
                            &format!("{here}.message"),
                            "is required (at most 500 characters)",
                        );
                    }
                    let as_assignee = match audience {
                        Audience::Owner => Assignee::Owner,
                        Audience::User { user_id } => Assignee::User {
                            user_id: user_id.clone(),
                        },
                        Audience::Role { role } => Assignee::RoundRobin { role: role.clone() },
                    };
                    self.assignee(&format!("{here}.audience"), &as_assignee)
                        .await?;
                }
                Action::Wait {
                    minutes,
                    until_field,
                } => match (minutes, until_field) {
                    (Some(m), None) if (0..=525_600).contains(m) => {}
                    (None, Some(f)) if self.field_known(f) => {}
                    _ => self.v.add(
                        &here,
                        "a wait needs minutes (0 to 525600) or until_field (a date custom field)",
                    ),
                },
                Action::Branch {
                    conditions,
                    then,
                    otherwise,
                } => {
                    self.conditions(&format!("{here}.conditions"), conditions);
                    Box::pin(self.actions(&format!("{here}.then"), then, count)).await?;
                    Box::pin(self.actions(&format!("{here}.else"), otherwise, count)).await?;
                }
            }
        }
        Ok(())
    }
}

/// Checks that a definition refers only to things that exist: templates, sequences, stages,
/// fields, people, roles.
async fn check(tx: &mut TenantTx, definition: &Definition) -> AppResult<()> {
    let pipelines = crate::pipelines::store::list(tx).await?;
    let mut checker = Checker {
        custom_fields: pipelines
            .iter()
            .flat_map(|p| p.spec.fields.iter().map(|f| f.key.clone()))
            .collect(),
        stages: pipelines
            .iter()
            .flat_map(|p| p.spec.stages.iter().map(|s| (p.id.clone(), s.key.clone())))
            .collect(),
        tx,
        v: Validation::new(),
    };
    checker.trigger(&definition.trigger).await?;
    checker.conditions("definition.conditions", &definition.conditions);
    if definition.actions.is_empty() {
        checker.v.add(
            "definition.actions",
            "an automation needs at least one action",
        );
    }
    let mut count = 0;
    checker
        .actions("definition.actions", &definition.actions, &mut count)
        .await?;
    if count > MAX_ACTIONS {
        checker.v.add(
            "definition.actions",
            format!("at most {MAX_ACTIONS} actions, branches included"),
        );
    }
    checker.v.finish().map_err(AppError::Validation)
}

pub async fn list(state: &AppState, ctx: &Ctx) -> AppResult<Vec<AutomationRow>> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::list(&mut tx).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<AutomationRow> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

pub async fn versions(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<Vec<VersionRow>> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let rows = store::versions(&mut tx, id).await?;
    tx.commit().await?;
    Ok(rows)
}

async fn check_name(tx: &mut TenantTx, name: &str, own_id: Option<&str>) -> AppResult<String> {
    let name = required_text(name, 1, MAX_NAME).map_err(|m| AppError::field("name", m))?;
    if store::name_taken(tx, &name, own_id).await? {
        return Err(AppError::field("name", "another automation has this name"));
    }
    Ok(name)
}

fn definition_json(definition: &Definition) -> AppResult<String> {
    serde_json::to_string(definition).map_err(|e| AppError::Internal(e.into()))
}

pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    input: AutomationInput,
) -> AppResult<AutomationRow> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let row = create_in(&mut tx, ctx, input).await?;
    tx.commit().await?;
    Ok(row)
}

async fn create_in(
    tx: &mut TenantTx,
    ctx: &Ctx,
    input: AutomationInput,
) -> AppResult<AutomationRow> {
    let name = check_name(tx, input.name.as_deref().unwrap_or_default(), None).await?;
    let definition = input
        .definition
        .ok_or_else(|| AppError::field("definition", "is required"))?;
    check(tx, &definition).await?;
    let id = meridian_db::new_id();
    let trigger = definition.trigger.kind();
    store::insert(
        tx,
        &id,
        &name,
        input.enabled.unwrap_or(true),
        trigger,
        ctx.user_id(),
    )
    .await?;
    store::add_version(
        tx,
        &id,
        &definition_json(&definition)?,
        trigger,
        ctx.user_id(),
    )
    .await?;
    audit(
        tx,
        ctx,
        "automation.created",
        &id,
        &name,
        json!({"definition": definition}),
    )
    .await?;
    store::find(tx, &id).await?.ok_or(AppError::NotFound)
}

async fn audit(
    tx: &mut TenantTx,
    ctx: &Ctx,
    action: &str,
    id: &str,
    name: &str,
    after: serde_json::Value,
) -> AppResult<()> {
    crate::audit::store::record(
        tx,
        ctx,
        crate::audit::store::Entry {
            action,
            target_type: "automation",
            target_id: Some(id),
            target_label: Some(name),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    Ok(())
}

/// Renames, turns on or off, or changes the definition (a new version; runs in progress finish
/// on the version they started with).
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    input: AutomationInput,
) -> AppResult<AutomationRow> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let existing = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let name = match &input.name {
        Some(name) => check_name(&mut tx, name, Some(id)).await?,
        None => existing.name.clone(),
    };
    let enabled = input.enabled.unwrap_or(existing.enabled);
    store::set_name_enabled(&mut tx, id, &name, enabled).await?;
    if let Some(definition) = &input.definition {
        let text = definition_json(definition)?;
        if text != existing.definition {
            check(&mut tx, definition).await?;
            let version =
                store::add_version(&mut tx, id, &text, definition.trigger.kind(), ctx.user_id())
                    .await?;
            audit(
                &mut tx,
                ctx,
                "automation.changed",
                id,
                &name,
                json!({"version": version, "definition": definition}),
            )
            .await?;
        }
    }
    if enabled != existing.enabled {
        let action = if enabled {
            "automation.enabled"
        } else {
            "automation.disabled"
        };
        audit(&mut tx, ctx, action, id, &name, json!({"enabled": enabled})).await?;
    }
    let row = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let existing = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    store::delete(&mut tx, id).await?;
    audit(
        &mut tx,
        ctx,
        "automation.deleted",
        id,
        &existing.name,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs a manual automation on leads; each lead gets a run or reports why not.
pub async fn run_manually(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    lead_ids: &[String],
) -> AppResult<Vec<(String, Result<String, String>)>> {
    ctx.require(Permission::AutomationsManage)?;
    if lead_ids.is_empty() || lead_ids.len() > 500 {
        return Err(AppError::field(
            "lead_ids",
            "give between 1 and 500 lead ids",
        ));
    }
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let automation = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if !automation.enabled {
        return Err(AppError::Conflict(format!(
            "“{}” is turned off; turn it on to run it",
            automation.name
        )));
    }
    let mut results = Vec::with_capacity(lead_ids.len());
    for lead_id in lead_ids {
        match leads::visible(&mut tx, ctx, lead_id).await {
            Ok(_) => {
                let event = Event {
                    trigger: "manual",
                    lead_id: lead_id.clone(),
                    data: json!({"by": ctx.actor_label()}),
                };
                let run = engine::start(&mut tx, ctx, id, automation.version, &event, None).await?;
                results.push((lead_id.clone(), Ok(run)));
            }
            Err(AppError::NotFound) => {
                results.push((lead_id.clone(), Err("no such lead".to_owned())))
            }
            Err(other) => return Err(other),
        }
    }
    tx.commit().await?;
    crate::jobs::wake();
    Ok(results)
}

pub async fn runs(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    status: Option<&str>,
    before: Option<(time::OffsetDateTime, String)>,
    limit: i64,
) -> AppResult<Vec<RunRow>> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let rows = store::runs(&mut tx, id, status, before, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn run(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<(RunRow, Vec<StepRow>)> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let found = engine::run_with_steps(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(found)
}

/// Runs a failed run again from the step that failed.
pub async fn retry(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<(RunRow, Vec<StepRow>)> {
    ctx.require(Permission::AutomationsManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let run = store::find_run(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !store::requeue(&mut tx, id).await? {
        return Err(AppError::Conflict(format!(
            "only failed runs can be retried; this one is {}",
            run.status
        )));
    }
    let job = crate::jobs::new_job(engine::RUN_JOB, &json!({"run": id}))
        .map_err(|e| AppError::Internal(e.into()))?
        .max_attempts(engine::RUN_ATTEMPTS)
        .unique_key(format!("{id}:retry:{}", meridian_db::new_id()));
    crate::jobs::enqueue_for_tenant(&mut tx, job).await?;
    audit(
        &mut tx,
        ctx,
        "automation.run_retried",
        &run.automation_id,
        &run.automation_name,
        json!({"run_id": id}),
    )
    .await?;
    let found = engine::run_with_steps(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    crate::jobs::wake();
    Ok(found)
}

/// A ready-made automation in the gallery.
pub struct GalleryItem {
    pub key: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

pub const GALLERY: [GalleryItem; 4] = [
    GalleryItem {
        key: "welcome_email",
        name: "Welcome email on a new lead",
        description: "Sends the “Welcome” email template to every new lead with an address.",
    },
    GalleryItem {
        key: "follow_up_after_contacted",
        name: "Follow-up task two days after “contacted”",
        description: "When a lead reaches the contacted stage, gives its owner a follow-up task due two days later.",
    },
    GalleryItem {
        key: "notify_managers_pending_handoff",
        name: "Tell managers when a case reaches pending handoff",
        description: "When a case reaches pending_handoff, notifies every manager in the app.",
    },
    GalleryItem {
        key: "task_reminder",
        name: "Reminder the day before a task is due",
        description: "Each day, for tasks due the next day, tags the lead “task-due” so the owner's list shows it.",
    },
];

/// Creates a gallery automation (turned off, to review first), with the email template it needs.
pub async fn create_from_gallery(
    state: &AppState,
    ctx: &Ctx,
    key: &str,
) -> AppResult<AutomationRow> {
    ctx.require(Permission::AutomationsManage)?;
    let item = GALLERY
        .iter()
        .find(|g| g.key == key)
        .ok_or(AppError::NotFound)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let has_stage = |stage: &str| {
        pipelines
            .iter()
            .any(|p| p.spec.stages.iter().any(|s| s.key == stage))
    };
    let definition = match key {
        "welcome_email" => {
            let template_id = match crate::email::store::template_named(&mut tx, "Welcome").await? {
                Some(id) => id,
                None => {
                    crate::email::store::insert_template(
                        &mut tx,
                        &crate::email::store::TemplateFields {
                            name: "Welcome".to_owned(),
                            subject: "Welcome, {{lead.first_name}}".to_owned(),
                            body_html: "<p>Hi {{lead.first_name}},</p><p>Thanks for reaching out to {{org.name}}. \
                                {% if owner.name %}{{owner.name}}{% else %}Someone from our team{% endif %} will be in touch shortly.</p>"
                                .to_owned(),
                            body_text: String::new(),
                            category: "marketing".to_owned(),
                        },
                        ctx.user_id(),
                    )
                    .await?
                }
            };
            json!({"trigger": {"type": "lead_created"},
                   "conditions": {"rules": [{"field": "email", "op": "is_not_empty"}]},
                   "actions": [{"type": "send_email", "template_id": template_id}]})
        }
        "follow_up_after_contacted" => {
            if !has_stage("contacted") {
                return Err(AppError::Conflict(
                    "no pipeline has a “contacted” stage".to_owned(),
                ));
            }
            json!({"trigger": {"type": "stage_changed", "to": "contacted"},
                   "actions": [{"type": "create_task", "title": "Follow up", "task_type": "follow_up",
                                "due_in_minutes": 2 * 24 * 60, "assignee": {"to": "owner"}}]})
        }
        "notify_managers_pending_handoff" => {
            if !has_stage("pending_handoff") {
                return Err(AppError::Conflict(
                    "no pipeline has a “pending_handoff” stage (the surrogacy template has one)"
                        .to_owned(),
                ));
            }
            json!({"trigger": {"type": "stage_changed", "to": "pending_handoff"},
                   "actions": [{"type": "notify", "audience": {"to": "role", "role": "manager"},
                                "message": "A case reached pending handoff: review it before it is matched."}]})
        }
        _ => json!({"trigger": {"type": "task_due", "overdue": false},
                    "actions": [{"type": "add_tag", "tag": "task-due"}]}),
    };
    let definition: Definition =
        serde_json::from_value(definition).map_err(|e| AppError::Internal(e.into()))?;
    let mut name = item.name.to_owned();
    let mut n = 2;
    while store::name_taken(&mut tx, &name, None).await? {
        name = format!("{} ({n})", item.name);
        n += 1;
    }
    let row = create_in(
        &mut tx,
        ctx,
        AutomationInput {
            name: Some(name),
            enabled: Some(false),
            definition: Some(definition),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// The schedule pass (every minute): each enabled `schedule` automation whose cron ticked in the
/// last two minutes runs once per tick on each lead that meets its conditions. The tick is part
/// of each run's dedupe key, so a pass that runs twice (or late) starts nothing twice.
pub async fn scheduled(db: &meridian_db::Db) -> anyhow::Result<u64> {
    let mut tx = db.global().await?;
    let org_ids = crate::orgs::store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let now = meridian_db::now();
    let window = time::Duration::minutes(2);
    let mut started = 0;
    for org_id in org_ids {
        let tenant = meridian_db::Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await?;
        let automations = store::enabled_with_trigger(&mut tx, "schedule").await?;
        if automations.is_empty() {
            tx.commit().await?;
            continue;
        }
        let org = crate::orgs::store::get_org(&mut tx).await?;
        let ctx = Ctx::operator(
            crate::http::ctx::OrgRef {
                id: org.id.clone(),
                name: org.name.clone(),
            },
            "Schedule",
        );
        for automation in automations {
            let Ok(definition) = serde_json::from_str::<Definition>(&automation.definition) else {
                continue;
            };
            let Trigger::Schedule {
                cron,
                pipeline_id,
                stage,
            } = &definition.trigger
            else {
                continue;
            };
            let Some(tick) = crate::jobs::Recurrence::cron(cron)
                .ok()
                .and_then(|r| r.latest(now))
                .filter(|t| *t > now - window)
            else {
                continue;
            };
            let leads = crate::leads::store::active_in(
                &mut tx,
                pipeline_id.as_deref(),
                stage.as_deref(),
                super::definition::SCHEDULE_LIMIT,
            )
            .await?;
            let ids: Vec<&str> = leads.iter().map(|l| l.id.as_str()).collect();
            let mut tags: std::collections::HashMap<String, Vec<String>> =
                std::collections::HashMap::new();
            for (lead, tag) in crate::leads::store::tags_of(&mut tx, &ids).await? {
                tags.entry(lead).or_default().push(tag);
            }
            for lead in leads {
                let facts = engine::facts_with(&lead, tags.remove(&lead.id).unwrap_or_default());
                if !definition.conditions.hold(&facts) {
                    continue;
                }
                let event = Event {
                    trigger: "schedule",
                    lead_id: lead.id.clone(),
                    data: json!({"tick": tick.unix_timestamp()}),
                };
                let key = format!("{}:{}", tick.unix_timestamp(), lead.id);
                engine::start(
                    &mut tx,
                    &ctx,
                    &automation.id,
                    automation.version,
                    &event,
                    Some(&key),
                )
                .await?;
                started += 1;
            }
        }
        tx.commit().await?;
    }
    crate::jobs::wake();
    Ok(started)
}

/// The task reminder scheduled job: for each organization, tasks due the next day (or overdue)
/// on leads fire `task_due` automations once per task and day.
pub async fn due_tasks(db: &meridian_db::Db) -> anyhow::Result<u64> {
    let mut tx = db.global().await?;
    let org_ids = crate::orgs::store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let mut started = 0;
    for org_id in org_ids {
        let tenant = meridian_db::Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await?;
        if store::enabled_with_trigger(&mut tx, "task_due")
            .await?
            .is_empty()
        {
            tx.commit().await?;
            continue;
        }
        let org = crate::orgs::store::get_org(&mut tx).await?;
        let ctx = Ctx::operator(
            crate::http::ctx::OrgRef {
                id: org.id.clone(),
                name: org.name.clone(),
            },
            "Task reminders",
        );
        let now = meridian_db::now();
        let tomorrow_end = (now.date() + time::Duration::days(2))
            .midnight()
            .assume_utc();
        let due: Vec<(String, String, time::OffsetDateTime)> = tx
            .fetch_all(
                meridian_db::sql(
                    "SELECT id, lead_id, due_at FROM tasks WHERE org_id = $1 AND completed_at IS NULL \
                     AND lead_id IS NOT NULL AND due_at IS NOT NULL AND due_at < $2",
                )
                .bind(&org_id)
                .bind(tomorrow_end),
            )
            .await?;
        for (task_id, lead_id, due_at) in due {
            let overdue = due_at < now;
            let event = Event {
                trigger: "task_due",
                lead_id,
                data: json!({"task_id": task_id, "overdue": overdue, "day": now.date().to_string()}),
            };
            engine::emit_once(&mut tx, &ctx, event, &format!("{task_id}:{}", now.date())).await?;
            started += 1;
        }
        tx.commit().await?;
    }
    crate::jobs::wake();
    Ok(started)
}
