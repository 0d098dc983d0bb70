//! The kanban board: one column per stage with counts; cards move by drag and drop (the API's
//! stage rules apply, with the refusal shown) and columns load more as they scroll.

use askama::Template;
use axum::extract::{RawQuery, State};
use meridian_core::Permission;

use super::{LeadCard, form_value};
use crate::http::error::AppError;
use crate::leads::api::query_pairs;
use crate::leads::service;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, render};

/// Cards per column per load.
const COLUMN_PAGE: &str = "25";

pub struct Column {
    pub key: String,
    pub label: String,
    pub color: String,
    pub count: i64,
    /// Records can be dropped here (the role may move records into this stage).
    pub droppable: bool,
    /// A handoff stage owned by another role: the caller hands records off here but cannot see
    /// the ones already waiting.
    pub hand_off_only: bool,
    pub cards: Vec<LeadCard>,
    pub more_href: Option<String>,
}

#[derive(Template)]
#[template(path = "leads_board.html")]
struct BoardPage {
    shell: Shell,
    pipeline_id: String,
    singular: String,
    plural: String,
    columns: Vec<Column>,
    can_write: bool,
}

#[derive(Template)]
#[template(path = "leads_board_cards.html")]
struct ColumnCards {
    column: Column,
}

fn more_href(pipeline_id: &str, stage: &str, cursor: String) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("pipeline_id", pipeline_id)
        .append_pair("stage", stage)
        .append_pair("cursor", &cursor)
        .finish();
    format!("/leads/board/column?{query}")
}

async fn load_column(
    state: &AppState,
    web: &WebCtx,
    pipeline: &crate::pipelines::store::Pipeline,
    stage: &meridian_core::pipeline::Stage,
    cursor: Option<&str>,
    count: i64,
) -> Result<Column, AppError> {
    let mut params = vec![
        ("pipeline_id".to_owned(), pipeline.id.clone()),
        ("stage".to_owned(), stage.key.clone()),
        ("limit".to_owned(), COLUMN_PAGE.to_owned()),
    ];
    if let Some(cursor) = cursor {
        params.push(("cursor".to_owned(), cursor.to_owned()));
    }
    let hand_off_only = !web.ctx.role.may_work_stage(stage.owner_role);
    let (leads, next) = if hand_off_only {
        (Vec::new(), None)
    } else {
        service::list(state, &web.ctx, &params).await?
    };
    Ok(Column {
        hand_off_only,
        key: stage.key.clone(),
        label: stage.label.clone(),
        color: stage.color.clone(),
        count,
        droppable: web.ctx.role.allows(Permission::LeadsWrite)
            && (stage.is_handoff() || web.ctx.role.may_work_stage(stage.owner_role)),
        cards: leads
            .into_iter()
            .map(|lead| LeadCard::new(lead, Some(pipeline), &[]))
            .collect(),
        more_href: next.map(|c| more_href(&pipeline.id, &stage.key, c)),
    })
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    RawQuery(raw): RawQuery,
) -> WebResult {
    web.ctx.require(Permission::LeadsRead)?;
    let params = query_pairs(raw.as_deref());
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let pipeline = match form_value(&params, "pipeline_id") {
        Some(id) => pipelines.iter().find(|p| p.id == id),
        None => pipelines.first(),
    }
    .ok_or(AppError::NotFound)?;
    let stats = service::stats(
        &state,
        &web.ctx,
        &[("pipeline_id".to_owned(), pipeline.id.clone())],
    )
    .await?;
    let mut columns = Vec::new();
    for stage in pipeline
        .spec
        .stages
        .iter()
        .filter(|s| web.ctx.role.may_work_stage(s.owner_role) || s.is_handoff())
    {
        let count = stats
            .by_stage
            .iter()
            .find(|c| c.stage == stage.key)
            .map_or(0, |c| c.count);
        columns.push(load_column(&state, &web, pipeline, stage, None, count).await?);
    }
    let mut shell = web
        .shell(
            &state,
            &format!("{} board", pipeline.spec.plural_label),
            "leads",
        )
        .await?;
    shell.active_pipeline = pipeline.id.clone();
    Ok(render(&BoardPage {
        shell,
        pipeline_id: pipeline.id.clone(),
        singular: pipeline.spec.singular_label.clone(),
        plural: pipeline.spec.plural_label.clone(),
        columns,
        can_write: web.ctx.role.allows(Permission::LeadsWrite),
    }))
}

/// More cards of one column (infinite scroll), as an HTML fragment.
pub async fn column(
    State(state): State<AppState>,
    web: WebCtx,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let params = query_pairs(raw.as_deref());
    let (Some(pipeline_id), Some(stage_key)) = (
        form_value(&params, "pipeline_id"),
        form_value(&params, "stage"),
    ) else {
        return Err(AppError::BadRequest("pipeline_id and stage are required".to_owned()).into());
    };
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipeline = crate::pipelines::service::load(&mut tx, pipeline_id).await?;
    tx.commit().await?;
    let stage = pipeline
        .spec
        .stage(stage_key)
        .filter(|s| web.ctx.role.may_work_stage(s.owner_role))
        .ok_or(AppError::NotFound)?
        .clone();
    let column = load_column(
        &state,
        &web,
        &pipeline,
        &stage,
        form_value(&params, "cursor"),
        0,
    )
    .await?;
    Ok(render(&ColumnCards { column }))
}
