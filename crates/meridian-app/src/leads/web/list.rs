//! The lead list: pipeline tabs, filters, saved views, column chooser, bulk actions.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_core::crm::{LeadSource, Picklist};

use super::{LeadCard, form_pairs, form_value};
use crate::http::error::AppError;
use crate::leads::api::{BulkAction, BulkRequest, bulk_action, query_pairs};
use crate::leads::query::{COLUMNS, DEFAULT_COLUMNS};
use crate::leads::service;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::views::service::{self as views, ViewInput};
use crate::web::{FormErrors, Shell, WebCtx, WebResult, render, safe_next};

pub struct ViewLink {
    pub id: String,
    pub name: String,
    pub shared: bool,
    pub active: bool,
    pub deletable: bool,
}

#[derive(Template)]
#[template(path = "leads_list.html")]
struct ListPage {
    shell: Shell,
    pipeline_id: String,
    singular: String,
    plural: String,
    queue: bool,
    handoff_count: i64,
    has_handoff_stages: bool,
    total: i64,
    q: String,
    stage: String,
    assigned_to: String,
    source: String,
    priority: bool,
    archived: String,
    stages: Vec<(String, String)>,
    members: Vec<(String, String)>,
    sources: Vec<(&'static str, &'static str)>,
    columns: Vec<(String, String)>,
    column_choices: Vec<(String, String, bool)>,
    cards: Vec<LeadCard>,
    next_href: Option<String>,
    views: Vec<ViewLink>,
    active_view: String,
    /// The current filters as (name, value) pairs, carried by the save-view and bulk forms.
    carried: Vec<(String, String)>,
    here: String,
    can_write: bool,
    can_transfer: bool,
    can_share_views: bool,
    errors: FormErrors,
}

/// Parameters that are about the page rather than the list query.
const PAGE_PARAMS: [&str; 7] = [
    "view_id", "columns", "col", "queue", "notice", "ok", "failed",
];

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

fn notice_text(params: &[(String, String)]) -> Option<String> {
    let count = |name: &str| {
        form_value(params, name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    match form_value(params, "notice")? {
        "bulk" => {
            let (ok, failed) = (count("ok"), count("failed"));
            Some(if failed == 0 {
                format!("Updated {ok} record(s).")
            } else {
                format!(
                    "Updated {ok} record(s); {failed} could not be changed (not visible to you, or not allowed)."
                )
            })
        }
        "view_saved" => Some("View saved.".to_owned()),
        "view_deleted" => Some("View deleted.".to_owned()),
        "deleted" => Some("Record deleted.".to_owned()),
        "handed_off" => {
            Some("Handed off. The receiving role now has it in their queue.".to_owned())
        }
        _ => None,
    }
}

fn column_label(key: &str, pipeline: Option<&Pipeline>) -> String {
    if let Some((_, label)) = COLUMNS.iter().find(|(k, _)| *k == key) {
        return (*label).to_owned();
    }
    key.strip_prefix("custom_fields.")
        .and_then(|k| pipeline?.spec.fields.iter().find(|f| f.key == k))
        .map_or_else(|| key.to_owned(), |f| f.label.clone())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let ctx = &web.ctx;
    ctx.require(Permission::LeadsRead)?;
    let mut params = query_pairs(raw.as_deref());
    let notice = notice_text(&params);
    // The column chooser submits one `col` per checked column; links carry them as `columns`.
    let chosen: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "col")
        .map(|(_, v)| v.clone())
        .collect();
    if !chosen.is_empty() {
        params.retain(|(k, _)| k != "columns");
        params.push(("columns".to_owned(), chosen.join(",")));
    }
    let mut columns: Vec<String> = form_value(&params, "columns")
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let active_view = form_value(&params, "view_id").unwrap_or("").to_owned();
    if !active_view.is_empty() {
        let view = views::get(&state, ctx, &active_view).await?;
        let filters: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&view.filters).unwrap_or_default();
        for (key, value) in filters {
            if let Some(value) = value.as_str()
                && form_value(&params, &key).is_none()
            {
                params.push((key, value.to_owned()));
            }
        }
        if !view.sort.is_empty() && form_value(&params, "sort").is_none() {
            params.push(("sort".to_owned(), view.sort.clone()));
        }
        if let Some(pipeline) = &view.pipeline_id
            && form_value(&params, "pipeline_id").is_none()
        {
            params.push(("pipeline_id".to_owned(), pipeline.clone()));
        }
        if columns.is_empty() {
            columns = serde_json::from_str(&view.columns).unwrap_or_default();
        }
    }
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let members = crate::leads::store::assignable_members(&mut tx).await?;
    tx.commit().await?;
    let pipeline = match form_value(&params, "pipeline_id") {
        Some(id) => pipelines
            .iter()
            .find(|p| p.id == id)
            .ok_or(AppError::NotFound)?,
        None => {
            let first = pipelines
                .first()
                .ok_or_else(|| AppError::Conflict("Create a pipeline first.".to_owned()))?;
            params.push(("pipeline_id".to_owned(), first.id.clone()));
            first
        }
    };
    if columns.is_empty() {
        columns = DEFAULT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    }
    columns.retain(|c| {
        COLUMNS.iter().any(|(k, _)| k == c)
            || c.strip_prefix("custom_fields.")
                .is_some_and(|k| pipeline.spec.fields.iter().any(|f| f.key == k))
    });
    let queue = form_value(&params, "queue") == Some("handoff");
    let query: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !PAGE_PARAMS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut errors = FormErrors::default();
    let listed = if queue {
        service::handoff_queue(&state, ctx, &query).await
    } else {
        service::list(&state, ctx, &query).await
    };
    let (leads, next) = match listed {
        Ok(page) => page,
        Err(AppError::Validation(fields)) => {
            errors.general = Some(format!(
                "Some filters are invalid: {}.",
                fields
                    .iter()
                    .map(|f| format!("{} {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            (Vec::new(), None)
        }
        Err(other) => return Err(other.into()),
    };
    let (total, handoff_count) = service::counts(&state, ctx, &query).await.unwrap_or((0, 0));
    let carried: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "cursor")
        .cloned()
        .collect();
    let mut page_params = carried.clone();
    if queue {
        page_params.push(("queue".to_owned(), "handoff".to_owned()));
    }
    if !active_view.is_empty() {
        page_params.push(("view_id".to_owned(), active_view.clone()));
    }
    if form_value(&params, "columns").is_some() {
        page_params.push(("columns".to_owned(), columns.join(",")));
    }
    let here = format!("/leads?{}", encode(&page_params));
    let next_href = next.map(|cursor| {
        let mut next_params = page_params.clone();
        next_params.push(("cursor".to_owned(), cursor));
        format!("/leads?{}", encode(&next_params))
    });
    let cards = leads
        .into_iter()
        .map(|lead| LeadCard::new(lead, Some(pipeline), &columns))
        .collect();
    let saved_views = views::list(&state, ctx).await?;
    let me = ctx.user_id().unwrap_or_default();
    let mut shell = web
        .shell(&state, &pipeline.spec.plural_label, "leads")
        .await?;
    shell.active_pipeline = pipeline.id.clone();
    shell.notice = notice;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut column_choices: Vec<(String, String, bool)> = COLUMNS
        .iter()
        .map(|(k, label)| {
            (
                (*k).to_owned(),
                (*label).to_owned(),
                columns.iter().any(|c| c == k),
            )
        })
        .collect();
    for field in &pipeline.spec.fields {
        let key = format!("custom_fields.{}", field.key);
        let on = columns.contains(&key);
        column_choices.push((key, field.label.clone(), on));
    }
    let page = ListPage {
        pipeline_id: pipeline.id.clone(),
        singular: pipeline.spec.singular_label.clone(),
        plural: pipeline.spec.plural_label.clone(),
        queue,
        handoff_count,
        has_handoff_stages: pipeline
            .spec
            .stages
            .iter()
            .any(|s| s.is_handoff() && ctx.role.may_work_stage(s.owner_role)),
        total,
        q: form_value(&params, "q").unwrap_or("").to_owned(),
        stage: form_value(&params, "stage").unwrap_or("").to_owned(),
        assigned_to: form_value(&params, "assigned_to").unwrap_or("").to_owned(),
        source: form_value(&params, "source").unwrap_or("").to_owned(),
        priority: form_value(&params, "priority") == Some("true"),
        archived: form_value(&params, "archived")
            .unwrap_or("false")
            .to_owned(),
        stages: pipeline
            .spec
            .stages
            .iter()
            .filter(|s| ctx.role.may_work_stage(s.owner_role) || s.is_handoff())
            .map(|s| (s.key.clone(), s.label.clone()))
            .collect(),
        members,
        sources: LeadSource::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        columns: columns
            .iter()
            .map(|c| (c.clone(), column_label(c, Some(pipeline))))
            .collect(),
        column_choices,
        cards,
        next_href,
        views: saved_views
            .into_iter()
            .filter(|v| v.pipeline_id.as_deref().is_none_or(|p| p == pipeline.id))
            .map(|v| ViewLink {
                active: v.id == active_view,
                deletable: v.owner_id == me
                    || (v.shared && ctx.role.allows(Permission::LeadsManage)),
                id: v.id,
                name: v.name,
                shared: v.shared,
            })
            .collect(),
        active_view,
        carried,
        here,
        can_write: ctx.role.allows(Permission::LeadsWrite),
        can_transfer: ctx.role.allows(Permission::LeadsTransfer),
        can_share_views: ctx.role.allows(Permission::LeadsManage),
        errors,
        shell,
    };
    Ok((status, render(&page)).into_response())
}

/// Applies the bulk bar's action to the checked rows and returns to the list with the counts.
pub async fn bulk_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    let pairs = form_pairs(&body);
    let back = safe_next(form_value(&pairs, "back"));
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .collect();
    let action = match form_value(&pairs, "action").unwrap_or("") {
        "assign" => BulkAction::Assign,
        "stage" => BulkAction::Stage,
        "archive" => BulkAction::Archive,
        "restore" => BulkAction::Restore,
        "tag" => BulkAction::Tag,
        "untag" => BulkAction::Untag,
        _ => {
            return Err(
                AppError::field("action", "choose what to do with the selected records").into(),
            );
        }
    };
    let text = |name: &str| {
        form_value(&pairs, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let request = BulkRequest {
        ids,
        action,
        user_id: text("user_id"),
        stage: text("stage"),
        reason: None,
        tags: text("tags").map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
    };
    let action = bulk_action(&request)?;
    let results = service::bulk(&state, &web.ctx, &request.ids, &action).await?;
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    let failed = results.len() - ok;
    let joiner = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!(
        "{back}{joiner}notice=bulk&ok={ok}&failed={failed}"
    ))
    .into_response())
}

/// Saves the current filters, sort and columns as a named view.
pub async fn save_view_submit(
    State(state): State<AppState>,
    web: WebCtx,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let mut filters = serde_json::Map::new();
    let mut sort = None;
    let mut columns = None;
    let mut pipeline_id = None;
    for (key, value) in &pairs {
        match key.strip_prefix("f.") {
            Some("sort") => sort = Some(value.clone()),
            Some("columns") => columns = Some(value.split(',').map(str::to_owned).collect()),
            Some("pipeline_id") => pipeline_id = Some(Some(value.clone())),
            Some(name) if !value.trim().is_empty() => {
                filters.insert(name.to_owned(), serde_json::Value::String(value.clone()));
            }
            _ => {}
        }
    }
    let input = ViewInput {
        name: form_value(&pairs, "name").map(str::to_owned),
        shared: Some(form_value(&pairs, "shared") == Some("on")),
        pipeline_id,
        filters: Some(filters),
        sort,
        columns,
    };
    let view = views::create(&state, &web.ctx, input).await?;
    let pipeline = view.pipeline_id.clone().unwrap_or_default();
    Ok(Redirect::to(&format!(
        "/leads?pipeline_id={pipeline}&view_id={}&notice=view_saved",
        view.id
    ))
    .into_response())
}

pub async fn delete_view_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let view = views::get(&state, &web.ctx, &id).await?;
    views::delete(&state, &web.ctx, &id).await?;
    let pipeline = view.pipeline_id.unwrap_or_default();
    Ok(Redirect::to(&format!(
        "/leads?pipeline_id={pipeline}&notice=view_deleted"
    ))
    .into_response())
}
