use meridian_core::Permission;
use meridian_core::crm::{ActivityKind, LeadSource, Picklist};
use meridian_core::pipeline::MoveRefused;
use meridian_db::TenantTx;
use serde_json::json;

use super::activity;
use super::input::{self, LeadInput};
use super::query::ListQuery;
use super::store::{self, LeadFields, LeadRow, NewLead};
use crate::http::ctx::{Credential, Ctx};
use crate::http::error::{AppError, AppResult};
use crate::pipelines::service as pipelines;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::webhooks::{EventType, events};

/// A lead with its tags, as the API and pages show it.
#[derive(Debug, Clone)]
pub struct Lead {
    pub row: LeadRow,
    pub tags: Vec<String>,
}

impl From<MoveRefused> for AppError {
    fn from(refused: MoveRefused) -> Self {
        match refused {
            MoveRefused::UnknownStage(stage) => AppError::field(
                "stage",
                format!("{stage:?} is not a stage of this pipeline"),
            ),
            MoveRefused::Forbidden(reason) => AppError::Forbidden(reason),
        }
    }
}

/// Loads a lead the caller may see: another organization's lead, or one in a stage owned by a
/// role the caller does not have, is "not found".
pub async fn visible(tx: &mut TenantTx, ctx: &Ctx, id: &str) -> AppResult<(LeadRow, Pipeline)> {
    ctx.require(Permission::LeadsRead)?;
    let lead = store::find(tx, id).await?.ok_or(AppError::NotFound)?;
    let pipeline = pipelines::load(tx, &lead.pipeline_id).await?;
    if !pipeline.spec.may_work(ctx.role, &lead.stage) {
        return Err(AppError::NotFound);
    }
    Ok((lead, pipeline))
}

async fn with_tags(tx: &mut TenantTx, row: LeadRow) -> AppResult<Lead> {
    let tags = store::tags_of(tx, &[row.id.as_str()])
        .await?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect();
    Ok(Lead { row, tags })
}

async fn reread(tx: &mut TenantTx, id: &str) -> AppResult<Lead> {
    let row = store::find(tx, id).await?.ok_or(AppError::NotFound)?;
    with_tags(tx, row).await
}

/// A 409 naming the active lead that already uses the email.
fn duplicate_email(existing_id: String) -> AppError {
    AppError::Duplicate {
        detail: "Another active lead already has this email address.".to_owned(),
        existing_id,
    }
}

async fn ensure_email_free(
    tx: &mut TenantTx,
    email: Option<&str>,
    except: Option<&str>,
) -> AppResult<()> {
    if let Some(email) = email
        && let Some(existing) = store::find_active_by_email(tx, email, except).await?
    {
        return Err(duplicate_email(existing));
    }
    Ok(())
}

/// Maps a unique-index race (two writers passing the email check at once) to the same 409.
fn write_error(error: sqlx::Error) -> AppError {
    if meridian_db::unique_violation(&error).is_some_and(|c| c.contains("email")) {
        AppError::Conflict("Another active lead already has this email address.".to_owned())
    } else {
        error.into()
    }
}

async fn check_assignee(tx: &mut TenantTx, user_id: &str) -> AppResult<()> {
    if store::is_active_member(tx, user_id).await?.is_none() {
        return Err(AppError::field(
            "assigned_to",
            "is not an active member of this organization",
        ));
    }
    Ok(())
}

fn default_source(ctx: &Ctx) -> LeadSource {
    match ctx.credential {
        Credential::ApiKey { .. } => LeadSource::Api,
        _ => LeadSource::Manual,
    }
}

pub async fn create(state: &AppState, ctx: &Ctx, input: LeadInput) -> AppResult<Lead> {
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let lead = create_in(&mut tx, ctx, input).await?;
    tx.commit().await?;
    Ok(lead)
}

/// Creates a lead in the caller's transaction (an inbound form records its idempotency key in
/// the same one).
pub async fn create_in(tx: &mut TenantTx, ctx: &Ctx, input: LeadInput) -> AppResult<Lead> {
    ctx.require(Permission::LeadsWrite)?;
    let pipeline = match &input.pipeline_id {
        Some(id) => pipelines::load(tx, id).await.map_err(|_| {
            AppError::field("pipeline_id", "is not a pipeline of this organization")
        })?,
        None => crate::pipelines::store::list(tx)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::Conflict("Create a pipeline first.".to_owned()))?,
    };
    let stage = match &input.stage {
        Some(key) => {
            let stage = pipeline.spec.stage(key).ok_or_else(|| {
                AppError::field("stage", format!("{key:?} is not a stage of this pipeline"))
            })?;
            if !stage.is_handoff() && !ctx.role.may_work_stage(stage.owner_role) {
                return Err(AppError::Forbidden(format!(
                    "Your role ({}) cannot create records in \"{}\".",
                    ctx.role, stage.label
                )));
            }
            stage.key.clone()
        }
        None => pipeline
            .spec
            .first_stage()
            .map(|s| s.key.clone())
            .ok_or_else(|| AppError::Conflict("The pipeline has no stages.".to_owned()))?,
    };
    let region = store::org_region(tx).await?;
    let base = LeadFields {
        source: default_source(ctx).as_str().to_owned(),
        custom_fields: "{}".to_owned(),
        ..LeadFields::default()
    };
    let mut errors = Vec::new();
    let fields = input::apply(&base, &input, &pipeline.spec, &region, true)
        .map_err(|e| errors.extend(e))
        .ok();
    let tags = input::normalize_tags(input.tags.as_deref().unwrap_or_default())
        .map_err(|e| errors.extend(e))
        .ok();
    if let Some(user) = &input.assigned_to
        && store::is_active_member(tx, user).await?.is_none()
    {
        errors.push(meridian_core::FieldError {
            field: "assigned_to".to_owned(),
            message: "is not an active member of this organization".to_owned(),
        });
    }
    let (Some(fields), Some(tags), true) = (fields, tags, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    ensure_email_free(tx, fields.email.as_deref(), None).await?;
    let id = meridian_db::new_id();
    let number = store::reserve_numbers(tx, 1).await?;
    store::insert(
        tx,
        NewLead {
            id: &id,
            number,
            pipeline_id: &pipeline.id,
            stage: &stage,
            fields: &fields,
            assigned_to: input.assigned_to.as_deref(),
            created_by: ctx.user_id(),
            is_priority: input.is_priority.unwrap_or(false),
            now: meridian_db::now(),
        },
    )
    .await
    .map_err(write_error)?;
    store::set_tags(tx, &id, &tags).await?;
    activity::record(
        tx,
        ctx,
        &id,
        ActivityKind::LeadCreated,
        json!({"pipeline_id": pipeline.id, "stage": stage, "source": fields.source}),
    )
    .await?;
    let lead = reread(tx, &id).await?;
    crate::webhooks::emit(tx, EventType::LeadCreated, events::lead_created(&lead.row)).await?;
    crate::automations::engine::lead_created(tx, ctx, &lead.row).await?;
    if lead.row.assigned_to.is_some() {
        // Created already assigned: the assignee hears of it as of any assignment.
        let unassigned = LeadRow {
            assigned_to: None,
            ..lead.row.clone()
        };
        crate::notifications::lead_changed(tx, ctx, &unassigned, &lead.row, &pipeline, None)
            .await?;
    }
    Ok(lead)
}

pub async fn get(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<(Lead, Pipeline)> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (row, pipeline) = visible(&mut tx, ctx, id).await?;
    let lead = with_tags(&mut tx, row).await?;
    tx.commit().await?;
    Ok((lead, pipeline))
}

pub async fn update(state: &AppState, ctx: &Ctx, id: &str, input: LeadInput) -> AppResult<Lead> {
    ctx.require(Permission::LeadsWrite)?;
    let mut v = meridian_core::Validation::new();
    for (field, sent, hint) in [
        (
            "pipeline_id",
            input.pipeline_id.is_some(),
            "use POST /leads/{id}/move",
        ),
        ("stage", input.stage.is_some(), "use POST /leads/{id}/stage"),
        (
            "assigned_to",
            input.assigned_to.is_some(),
            "use POST /leads/{id}/assign",
        ),
        (
            "is_priority",
            input.is_priority.is_some(),
            "use POST /leads/{id}/priority",
        ),
    ] {
        if sent {
            v.add(field, format!("cannot be changed here; {hint}"));
        }
    }
    v.finish().map_err(AppError::Validation)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let lead = update_in(&mut tx, ctx, id, input).await?;
    tx.commit().await?;
    Ok(lead)
}

/// Changes a lead's details and tags in the caller's transaction (automations set fields this
/// way, with the same validation and activity).
pub async fn update_in(
    tx: &mut TenantTx,
    ctx: &Ctx,
    id: &str,
    input: LeadInput,
) -> AppResult<Lead> {
    ctx.require(Permission::LeadsWrite)?;
    let (row, pipeline) = visible(tx, ctx, id).await?;
    let region = store::org_region(tx).await?;
    let before = LeadFields::of(&row);
    let after = input::apply(&before, &input, &pipeline.spec, &region, false)
        .map_err(AppError::Validation)?;
    if row.archived_at.is_none() && after.email != before.email {
        ensure_email_free(tx, after.email.as_deref(), Some(id)).await?;
    }
    let mut changes = input::changes(&before, &after);
    if !changes.is_empty() {
        store::update_fields(tx, id, &after)
            .await
            .map_err(write_error)?;
    }
    if let Some(tags) = &input.tags {
        let tags = input::normalize_tags(tags).map_err(AppError::Validation)?;
        let old: Vec<String> = with_tags(tx, row.clone()).await?.tags;
        if old != tags {
            store::set_tags(tx, id, &tags).await?;
            changes.insert("tags".to_owned(), json!({"from": old, "to": tags}));
        }
    }
    if !changes.is_empty() {
        activity::record(
            tx,
            ctx,
            id,
            ActivityKind::InfoEdited,
            json!({"changes": changes}),
        )
        .await?;
        let fields: Vec<String> = changes.keys().cloned().collect();
        crate::automations::engine::fields_changed(tx, ctx, id, &fields).await?;
    }
    reread(tx, id).await
}

pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::LeadsManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let (row, _) = visible(&mut tx, ctx, id).await?;
    store::delete(&mut tx, id).await?;
    crate::audit::store::record(
        &mut tx,
        ctx,
        crate::audit::store::Entry {
            action: "lead.deleted",
            target_type: "lead",
            target_id: Some(id),
            target_label: Some(&format!(
                "#{:05} {} {}",
                row.number, row.first_name, row.last_name
            )),
            before: Some(json!({"email": row.email, "stage": row.stage})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The single-lead actions that the API, the pages and bulk actions share. Each runs inside the
/// caller's transaction and records its activity there.
pub enum Action {
    Stage {
        stage: String,
        reason: Option<String>,
    },
    Assign {
        user_id: Option<String>,
    },
    Priority {
        is_priority: bool,
    },
    Archive,
    Restore,
    Move {
        pipeline_id: String,
        stage: String,
    },
    Accept,
    Deny {
        reason: String,
    },
    Tag {
        tags: Vec<String>,
        add: bool,
    },
}

pub const MAX_REASON: usize = 1000;

fn reason_text(reason: Option<&str>) -> AppResult<Option<String>> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > MAX_REASON => Err(AppError::field(
            "reason",
            format!("must be at most {MAX_REASON} characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// Applies one action to one lead in `tx`.
pub async fn apply_action(
    tx: &mut TenantTx,
    ctx: &Ctx,
    id: &str,
    action: &Action,
) -> AppResult<()> {
    ctx.require(Permission::LeadsWrite)?;
    let (lead, pipeline) = visible(tx, ctx, id).await?;
    match action {
        Action::Stage { stage, reason } => {
            let reason = reason_text(reason.as_deref())?;
            let target = pipeline.spec.check_move(ctx.role, &lead.stage, stage)?;
            if target.key != lead.stage {
                store::set_stage(tx, id, &target.key).await?;
                activity::record(
                    tx,
                    ctx,
                    id,
                    ActivityKind::StageChanged,
                    json!({"from": lead.stage, "to": target.key, "reason": reason}),
                )
                .await?;
                let data =
                    events::stage_changed(&lead, &pipeline.id, &target.key, reason.as_deref());
                crate::webhooks::emit(tx, EventType::LeadStageChanged, data).await?;
            }
        }
        Action::Assign { user_id } => {
            if let Some(user) = user_id {
                check_assignee(tx, user).await?;
            }
            if lead.assigned_to != *user_id {
                store::set_assignee(tx, id, user_id.as_deref()).await?;
                let kind = if user_id.is_some() {
                    ActivityKind::Assigned
                } else {
                    ActivityKind::Unassigned
                };
                activity::record(
                    tx,
                    ctx,
                    id,
                    kind,
                    json!({"from": lead.assigned_to, "from_name": lead.assignee_name, "to": user_id}),
                )
                .await?;
            }
        }
        Action::Priority { is_priority } => {
            if lead.is_priority != *is_priority {
                store::set_priority(tx, id, *is_priority).await?;
                activity::record(
                    tx,
                    ctx,
                    id,
                    ActivityKind::PriorityChanged,
                    json!({"is_priority": is_priority}),
                )
                .await?;
            }
        }
        Action::Archive => {
            if lead.archived_at.is_none() {
                store::set_archived(tx, id, Some(ctx.user_id().unwrap_or("api"))).await?;
                activity::record(
                    tx,
                    ctx,
                    id,
                    ActivityKind::Archived,
                    json!({"stage": lead.stage}),
                )
                .await?;
            }
        }
        Action::Restore => {
            if lead.archived_at.is_some() {
                ensure_email_free(tx, lead.email.as_deref(), Some(id)).await?;
                store::set_archived(tx, id, None)
                    .await
                    .map_err(write_error)?;
                activity::record(
                    tx,
                    ctx,
                    id,
                    ActivityKind::Restored,
                    json!({"stage": lead.stage}),
                )
                .await?;
            }
        }
        Action::Move { pipeline_id, stage } => {
            let target = pipelines::load(tx, pipeline_id).await.map_err(|_| {
                AppError::field("pipeline_id", "is not a pipeline of this organization")
            })?;
            let stage_def = target.spec.stage(stage).ok_or_else(|| {
                AppError::field(
                    "stage",
                    format!("{stage:?} is not a stage of that pipeline"),
                )
            })?;
            if !stage_def.is_handoff() && !ctx.role.may_work_stage(stage_def.owner_role) {
                return Err(AppError::Forbidden(format!(
                    "Your role ({}) cannot move records into \"{}\".",
                    ctx.role, stage_def.label
                )));
            }
            // Custom fields the target pipeline does not define are dropped with the move; the
            // activity event keeps them so nothing is lost without a trace.
            let values: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&lead.custom_fields).unwrap_or_default();
            let (kept, dropped): (serde_json::Map<_, _>, serde_json::Map<_, _>) = values
                .into_iter()
                .partition(|(k, _)| target.spec.fields.iter().any(|f| &f.key == k));
            store::set_pipeline(
                tx,
                id,
                &target.id,
                &stage_def.key,
                &serde_json::Value::Object(kept).to_string(),
            )
            .await?;
            activity::record(
                tx,
                ctx,
                id,
                ActivityKind::MovedPipeline,
                json!({
                    "from_pipeline": pipeline.spec.name, "to_pipeline": target.spec.name,
                    "from_pipeline_id": pipeline.id, "to_pipeline_id": target.id,
                    "from": lead.stage, "to": stage_def.key, "dropped_fields": dropped,
                }),
            )
            .await?;
            let data = events::stage_changed(&lead, &target.id, &stage_def.key, None);
            crate::webhooks::emit(tx, EventType::LeadStageChanged, data).await?;
        }
        Action::Accept => {
            let target = pipeline.spec.accept_target(ctx.role, &lead.stage)?;
            store::set_stage(tx, id, &target.key).await?;
            if let Some(user) = ctx.user_id() {
                store::set_assignee(tx, id, Some(user)).await?;
            }
            activity::record(
                tx,
                ctx,
                id,
                ActivityKind::HandoffAccepted,
                json!({"from": lead.stage, "to": target.key, "assigned_to": ctx.user_id()}),
            )
            .await?;
            let data = events::stage_changed(&lead, &pipeline.id, &target.key, None);
            crate::webhooks::emit(tx, EventType::LeadStageChanged, data).await?;
        }
        Action::Deny { reason } => {
            let reason = reason_text(Some(reason))?
                .ok_or_else(|| AppError::field("reason", "is required"))?;
            let target = pipeline.spec.deny_target(ctx.role, &lead.stage)?;
            store::set_stage(tx, id, &target.key).await?;
            activity::record(
                tx,
                ctx,
                id,
                ActivityKind::HandoffDenied,
                json!({"from": lead.stage, "to": target.key, "reason": reason}),
            )
            .await?;
            let data = events::stage_changed(&lead, &pipeline.id, &target.key, Some(&reason));
            crate::webhooks::emit(tx, EventType::LeadStageChanged, data).await?;
        }
        Action::Tag { tags, add } => {
            let tags = input::normalize_tags(tags).map_err(AppError::Validation)?;
            let old = with_tags(tx, lead.clone()).await?.tags;
            let mut new: Vec<String> = if *add {
                old.iter().chain(tags.iter()).cloned().collect()
            } else {
                old.iter().filter(|t| !tags.contains(t)).cloned().collect()
            };
            new.sort();
            new.dedup();
            if new.len() > input::MAX_TAGS {
                return Err(AppError::field(
                    "tags",
                    format!("a lead can have at most {} tags", input::MAX_TAGS),
                ));
            }
            if new != old {
                store::set_tags(tx, id, &new).await?;
                activity::record(
                    tx,
                    ctx,
                    id,
                    ActivityKind::InfoEdited,
                    json!({"changes": {"tags": {"from": old, "to": new}}}),
                )
                .await?;
                crate::automations::engine::fields_changed(tx, ctx, id, &["tags".to_owned()])
                    .await?;
            }
        }
    }
    // What the action changed, for automations and notifications.
    if matches!(
        action,
        Action::Stage { .. }
            | Action::Move { .. }
            | Action::Accept
            | Action::Deny { .. }
            | Action::Assign { .. }
    ) && let Some(after) = store::find(tx, id).await?
    {
        crate::automations::engine::lead_changed(tx, ctx, &lead, &after).await?;
        let handoff = match action {
            Action::Accept => Some(true),
            Action::Deny { .. } => Some(false),
            _ => None,
        };
        let pipeline = if after.pipeline_id == pipeline.id {
            pipeline
        } else {
            pipelines::load(tx, &after.pipeline_id).await?
        };
        crate::notifications::lead_changed(tx, ctx, &lead, &after, &pipeline, handoff).await?;
    }
    Ok(())
}

/// Runs one action on one lead in its own transaction and returns the lead as it is now. A
/// lead the caller can no longer see after the action (handed off to another role) is returned
/// as it was written, without a visibility check.
pub async fn act(state: &AppState, ctx: &Ctx, id: &str, action: Action) -> AppResult<Lead> {
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    apply_action(&mut tx, ctx, id, &action).await?;
    let lead = reread(&mut tx, id).await?;
    tx.commit().await?;
    Ok(lead)
}

/// The stages `ctx` may not see, per pipeline, as list exclusions.
pub fn hidden_stages(ctx: &Ctx, pipelines: &[Pipeline]) -> Vec<(String, Vec<String>)> {
    if ctx.role.allows(Permission::LeadsAllStages) {
        return Vec::new();
    }
    pipelines
        .iter()
        .map(|p| {
            let hidden = p
                .spec
                .hidden_stages(ctx.role)
                .into_iter()
                .map(str::to_owned)
                .collect();
            (p.id.clone(), hidden)
        })
        .collect()
}

/// Parses list parameters against the organization's pipelines (custom-field filters need the
/// field types) and adds the caller's stage-visibility rules.
pub async fn parse_list(
    tx: &mut TenantTx,
    ctx: &Ctx,
    params: &[(String, String)],
) -> AppResult<(ListQuery, Vec<Pipeline>)> {
    ctx.require(Permission::LeadsRead)?;
    let pipelines = crate::pipelines::store::list(tx).await?;
    let pipeline_id = params
        .iter()
        .find(|(k, _)| k == "pipeline_id")
        .map(|(_, v)| v.trim());
    let fields = pipeline_id
        .and_then(|id| pipelines.iter().find(|p| p.id == id))
        .map(|p| p.spec.fields.clone())
        .unwrap_or_default();
    let mut query =
        ListQuery::parse(params, ctx.user_id(), &fields).map_err(AppError::Validation)?;
    query.hidden = hidden_stages(ctx, &pipelines);
    Ok((query, pipelines))
}

/// One page of leads in `tx`, with their tags, and the cursor of the next page.
pub async fn page(tx: &mut TenantTx, query: &ListQuery) -> AppResult<(Vec<Lead>, Option<String>)> {
    let mut rows = store::list(tx, query, query.limit + 1).await?;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| {
            let key = query.cursor_after(last);
            let parts: Vec<&str> = key.iter().map(String::as_str).collect();
            crate::http::pagination::encode_cursor(&parts)
        })
    } else {
        None
    };
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let tags = store::tags_of(tx, &ids).await?;
    let leads = rows
        .into_iter()
        .map(|row| {
            let tags = tags
                .iter()
                .filter(|(lead, _)| *lead == row.id)
                .map(|(_, t)| t.clone())
                .collect();
            Lead { row, tags }
        })
        .collect();
    Ok((leads, next))
}

pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    params: &[(String, String)],
) -> AppResult<(Vec<Lead>, Option<String>)> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (query, _) = parse_list(&mut tx, ctx, params).await?;
    let page = page(&mut tx, &query).await?;
    tx.commit().await?;
    Ok(page)
}

/// Records waiting in handoff stages that `ctx` may accept or deny.
pub async fn handoff_queue(
    state: &AppState,
    ctx: &Ctx,
    params: &[(String, String)],
) -> AppResult<(Vec<Lead>, Option<String>)> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (mut query, pipelines) = parse_list(&mut tx, ctx, params).await?;
    query.only = Some(handoff_stages(ctx, &pipelines));
    let page = page(&mut tx, &query).await?;
    tx.commit().await?;
    Ok(page)
}

/// The handoff stages `ctx` may accept from, per pipeline.
pub fn handoff_stages(ctx: &Ctx, pipelines: &[Pipeline]) -> Vec<(String, Vec<String>)> {
    pipelines
        .iter()
        .map(|p| {
            let stages = p
                .spec
                .stages
                .iter()
                .filter(|s| s.is_handoff() && ctx.role.may_work_stage(s.owner_role))
                .map(|s| s.key.clone())
                .collect();
            (p.id.clone(), stages)
        })
        .collect()
}

/// Activity (or, with `kinds`, the stage history) of a visible lead.
pub async fn activity(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    kinds: &[ActivityKind],
    page: &crate::http::pagination::PageRequest,
) -> AppResult<Vec<activity::ActivityRow>> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    visible(&mut tx, ctx, id).await?;
    let rows = activity::list(&mut tx, id, kinds, page).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Applies one action to each lead in its own transaction, so one failure (a lead the caller
/// cannot see, a refused stage) does not undo the others.
pub async fn bulk(
    state: &AppState,
    ctx: &Ctx,
    ids: &[String],
    action: &Action,
) -> AppResult<Vec<(String, AppResult<()>)>> {
    ctx.require(Permission::LeadsWrite)?;
    let mut seen: Vec<&String> = Vec::with_capacity(ids.len());
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        let result = async {
            let mut tx = state.db.tenant(&ctx.tenant).await?;
            apply_action(&mut tx, ctx, id, action).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(AppError::Internal(e)) = &result {
            tracing::error!(error = ?e, lead = %id, "bulk action failed");
        }
        results.push((id.clone(), result));
    }
    Ok(results)
}

pub const MAX_MERGE: usize = 20;

/// Merges duplicates into `primary_id`: notes, tasks and activity move over, tags are combined,
/// the primary's empty fields are filled from the duplicates, and the duplicates are deleted.
pub async fn merge(
    state: &AppState,
    ctx: &Ctx,
    primary_id: &str,
    duplicate_ids: &[String],
) -> AppResult<Lead> {
    ctx.require(Permission::LeadsManage)?;
    let mut duplicates: Vec<&String> = Vec::new();
    for id in duplicate_ids {
        if id != primary_id && !duplicates.contains(&id) {
            duplicates.push(id);
        }
    }
    if duplicates.is_empty() || duplicates.len() > MAX_MERGE {
        return Err(AppError::field(
            "duplicate_ids",
            format!("must list 1 to {MAX_MERGE} leads other than the primary"),
        ));
    }
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let (primary, _) = visible(&mut tx, ctx, primary_id).await?;
    let mut fields = LeadFields::of(&primary);
    let mut tags = with_tags(&mut tx, primary.clone()).await?.tags;
    let mut custom: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&fields.custom_fields).unwrap_or_default();
    let mut merged = Vec::new();
    for id in duplicates {
        let (dup, _) = visible(&mut tx, ctx, id).await.map_err(|_| {
            AppError::field("duplicate_ids", format!("{id} is not a lead you can see"))
        })?;
        let dup_fields = LeadFields::of(&dup);
        fill(&mut fields, &dup_fields);
        let dup_custom: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&dup_fields.custom_fields).unwrap_or_default();
        for (key, value) in dup_custom {
            custom.entry(key).or_insert(value);
        }
        tags.extend(with_tags(&mut tx, dup.clone()).await?.tags);
        crate::notes::store::reassign(&mut tx, id, primary_id).await?;
        crate::tasks::store::reassign(&mut tx, id, primary_id).await?;
        activity::reassign(&mut tx, id, primary_id).await?;
        store::delete(&mut tx, id).await?;
        merged.push(json!({
            "id": dup.id, "number": dup.number, "name": format!("{} {}", dup.first_name, dup.last_name).trim(),
            "email": dup.email,
        }));
    }
    fields.custom_fields = serde_json::Value::Object(custom).to_string();
    tags.sort();
    tags.dedup();
    tags.truncate(input::MAX_TAGS);
    if primary.archived_at.is_none() && fields.email != primary.email {
        ensure_email_free(&mut tx, fields.email.as_deref(), Some(primary_id)).await?;
    }
    store::update_fields(&mut tx, primary_id, &fields)
        .await
        .map_err(write_error)?;
    store::set_tags(&mut tx, primary_id, &tags).await?;
    activity::record(
        &mut tx,
        ctx,
        primary_id,
        ActivityKind::Merged,
        json!({"merged": merged}),
    )
    .await?;
    crate::audit::store::record(
        &mut tx,
        ctx,
        crate::audit::store::Entry {
            action: "lead.merged",
            target_type: "lead",
            target_id: Some(primary_id),
            target_label: Some(&format!("#{:05}", primary.number)),
            before: Some(json!({"duplicates": merged})),
            after: None,
        },
    )
    .await?;
    let lead = reread(&mut tx, primary_id).await?;
    tx.commit().await?;
    Ok(lead)
}

/// Fills the primary's empty fields from a duplicate; what the primary has always wins.
fn fill(primary: &mut LeadFields, dup: &LeadFields) {
    let pairs: [(&mut Option<String>, &Option<String>); 13] = [
        (&mut primary.email, &dup.email),
        (&mut primary.phone, &dup.phone),
        (&mut primary.state, &dup.state),
        (&mut primary.country, &dup.country),
        (&mut primary.date_of_birth, &dup.date_of_birth),
        (&mut primary.utm_source, &dup.utm_source),
        (&mut primary.utm_medium, &dup.utm_medium),
        (&mut primary.utm_campaign, &dup.utm_campaign),
        (&mut primary.utm_content, &dup.utm_content),
        (&mut primary.utm_term, &dup.utm_term),
        (&mut primary.meta_ad_id, &dup.meta_ad_id),
        (&mut primary.meta_form_id, &dup.meta_form_id),
        (&mut primary.campaign_id, &dup.campaign_id),
    ];
    for (target, source) in pairs {
        if target.is_none() {
            target.clone_from(source);
        }
    }
    if primary.last_name.is_empty() {
        primary.last_name.clone_from(&dup.last_name);
    }
}

/// Counts for the dashboard: totals by stage, new this week and this month, open tasks.
#[derive(Debug, Clone)]
pub struct Stats {
    pub total: i64,
    pub by_stage: Vec<store::StageTotal>,
    pub new_this_week: i64,
    pub new_this_month: i64,
    pub open_tasks: i64,
    pub overdue_tasks: i64,
    pub pipelines: Vec<Pipeline>,
}

/// Stats over the leads a list query matches (the same filters as the list), as the caller
/// sees them.
pub async fn stats(state: &AppState, ctx: &Ctx, params: &[(String, String)]) -> AppResult<Stats> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (query, pipelines) = parse_list(&mut tx, ctx, params).await?;
    let by_stage = store::count_by_stage(&mut tx, &query).await?;
    let total = by_stage.iter().map(|s| s.count).sum();
    let now = time::OffsetDateTime::now_utc();
    let today = now.replace_time(time::Time::MIDNIGHT);
    let week_start =
        today - time::Duration::days(i64::from(today.weekday().number_days_from_monday()));
    let month_start = today.replace_day(1).unwrap_or(today);
    let new_this_week = store::count_created_since(&mut tx, &query, week_start).await?;
    let new_this_month = store::count_created_since(&mut tx, &query, month_start).await?;
    let task_filter = crate::tasks::store::TaskFilter {
        search: None,
        assignee: None,
        lead_id: None,
        status: crate::tasks::store::Status::Open,
        due_before: None,
        due_after: None,
        hidden: query.hidden.clone(),
    };
    let (open_tasks, overdue_tasks) =
        crate::tasks::store::count_open(&mut tx, &task_filter).await?;
    tx.commit().await?;
    Ok(Stats {
        total,
        by_stage,
        new_this_week,
        new_this_month,
        open_tasks,
        overdue_tasks,
        pipelines,
    })
}

/// How many leads a list request matches, and how many wait in handoff stages `ctx` may accept.
pub async fn counts(
    state: &AppState,
    ctx: &Ctx,
    params: &[(String, String)],
) -> AppResult<(i64, i64)> {
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let (query, pipelines) = parse_list(&mut tx, ctx, params).await?;
    let total = store::count(&mut tx, &query).await?;
    let queue = ListQuery {
        only: Some(handoff_stages(ctx, &pipelines)),
        hidden: query.hidden.clone(),
        pipeline_id: query.pipeline_id.clone(),
        ..ListQuery::default()
    };
    let waiting = store::count(&mut tx, &queue).await?;
    tx.commit().await?;
    Ok((total, waiting))
}
