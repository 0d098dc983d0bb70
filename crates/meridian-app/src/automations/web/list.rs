//! The list: each automation with its trigger in words, its step count, its last run and an
//! on/off switch; and the gallery of ready-made automations.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{Lookups, NoticeQuery, count_actions, status_class, status_label, steps_text};
use crate::automations::definition::Definition;
use crate::automations::service::{self, AutomationInput, GALLERY, GalleryItem};
use crate::automations::store::AutomationRow;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};

pub struct AutomationItem {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub summary: String,
    pub steps: String,
    /// The newest run, if any: its id, status, label, badge class, when and when exactly.
    pub last: Option<LastRun>,
}

pub struct LastRun {
    pub id: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub when: String,
    pub when_exact: String,
}

#[derive(Template)]
#[template(path = "automations.html")]
struct ListPage {
    shell: Shell,
    error: Option<String>,
    automations: Vec<AutomationItem>,
    gallery: &'static [GalleryItem],
}

async fn item(
    state: &AppState,
    web: &WebCtx,
    lookups: &Lookups,
    row: AutomationRow,
) -> Result<AutomationItem, AppError> {
    let definition: Definition =
        serde_json::from_str(&row.definition).map_err(|e| AppError::Internal(e.into()))?;
    let last = service::runs(state, &web.ctx, &row.id, None, None, 1)
        .await?
        .into_iter()
        .next()
        .map(|run| LastRun {
            status_label: status_label(&run.status),
            status_class: status_class(&run.status),
            when: relative(run.created_at),
            when_exact: exact(run.created_at),
            id: run.id,
        });
    Ok(AutomationItem {
        summary: lookups.summary(&definition.trigger),
        steps: steps_text(count_actions(&definition.actions)),
        id: row.id,
        name: row.name,
        enabled: row.enabled,
        last,
    })
}

async fn list_response(
    state: &AppState,
    web: &WebCtx,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> WebResult {
    let rows = service::list(state, &web.ctx).await?;
    let lookups = Lookups::load(state, &web.ctx).await?;
    let mut automations = Vec::with_capacity(rows.len());
    for row in rows {
        automations.push(item(state, web, &lookups, row).await?);
    }
    let mut shell = web.shell(state, "Automations", "automations").await?;
    shell.notice = notice;
    let page = ListPage {
        shell,
        error,
        automations,
        gallery: &GALLERY,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let notice = match q.notice.as_deref() {
        Some("on") => Some("Automation turned on.".to_owned()),
        Some("off") => Some("Automation turned off. Runs already started finish.".to_owned()),
        Some("deleted") => Some("Automation deleted.".to_owned()),
        _ => None,
    };
    list_response(&state, &web, notice, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct ToggleForm {
    /// `1` turns it on, `0` off.
    #[serde(default)]
    enabled: String,
}

/// Scripts ask for JSON so the switch can flip in place; forms get a redirect back to the list.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

pub async fn toggle_submit(
    State(state): State<AppState>,
    web: WebCtx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ToggleForm>,
) -> WebResult {
    let input = AutomationInput {
        enabled: Some(form.enabled == "1"),
        ..AutomationInput::default()
    };
    let row = service::update(&state, &web.ctx, &id, input).await?;
    if wants_json(&headers) {
        return Ok(axum::Json(serde_json::json!({
            "id": row.id,
            "enabled": row.enabled,
        }))
        .into_response());
    }
    let notice = if row.enabled { "on" } else { "off" };
    Ok(Redirect::to(&format!("/automations?notice={notice}")).into_response())
}

/// Creates a gallery automation (turned off) and opens it to review.
pub async fn gallery_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(key): Path<String>,
) -> WebResult {
    match service::create_from_gallery(&state, &web.ctx, &key).await {
        Ok(row) => {
            Ok(Redirect::to(&format!("/automations/{}?notice=gallery", row.id)).into_response())
        }
        Err(AppError::Conflict(detail)) => {
            let error = format!("That one cannot be set up here: {detail}.");
            list_response(&state, &web, None, Some(error), StatusCode::CONFLICT).await
        }
        Err(error) => Err(error.into()),
    }
}
