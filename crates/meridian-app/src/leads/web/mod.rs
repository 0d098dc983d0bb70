//! The pages a team works in all day: the lead list (filters, saved views, columns, bulk
//! actions), the kanban board, the lead page (overview, notes, tasks, activity) and the new-lead
//! form. Every mutation is an ordinary form POST that goes through the same services as the API.

mod board;
mod detail;
mod form;
mod list;

/// Form fields into a lead, shared with inbound lead forms.
pub use form::to_input;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use meridian_core::crm::{LeadSource, Picklist};

use super::service::Lead;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::web::{exact, relative};

pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/leads", get(list::page))
        .route("/leads/bulk", post(list::bulk_submit))
        .route("/leads/views", post(list::save_view_submit))
        .route("/leads/views/{id}/delete", post(list::delete_view_submit))
        .route("/leads/board", get(board::page))
        .route("/leads/board/column", get(board::column))
        .route("/leads/new", get(form::new_page).post(form::new_submit))
        .route("/leads/{id}", get(detail::page).post(form::edit_submit))
        .route("/leads/{id}/action", post(detail::action_submit))
        .route("/leads/{id}/notes", post(detail::note_submit))
        .route(
            "/leads/{id}/notes/{note_id}/delete",
            post(detail::note_delete_submit),
        )
        .route("/leads/{id}/tasks", post(detail::task_submit))
        .route(
            "/leads/{id}/tasks/{task_id}/toggle",
            post(detail::task_toggle_submit),
        )
        .route(
            "/leads/{id}/delete",
            get(detail::delete_confirm).post(detail::delete_submit),
        )
}

/// A form body as ordered pairs, so repeated names (checkboxes) keep every value.
pub fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A stage as a badge: its label and color.
#[derive(Debug, Clone)]
pub struct StageBadge {
    pub key: String,
    pub label: String,
    pub color: String,
}

pub fn stage_badge(pipeline: Option<&Pipeline>, key: &str) -> StageBadge {
    let stage = pipeline.and_then(|p| p.spec.stage(key));
    StageBadge {
        key: key.to_owned(),
        label: stage.map_or_else(|| key.to_owned(), |s| s.label.clone()),
        color: stage.map_or_else(|| "#6b7280".to_owned(), |s| s.color.clone()),
    }
}

pub fn source_label(source: &str) -> String {
    LeadSource::parse(source).map_or_else(|_| source.to_owned(), |s| s.label().to_owned())
}

/// One lead as the list and board show it.
#[derive(Debug, Clone)]
pub struct LeadCard {
    pub id: String,
    pub number: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub stage: StageBadge,
    pub source: String,
    pub assignee: String,
    pub assignee_initials: String,
    pub is_priority: bool,
    pub archived: bool,
    pub tags: Vec<String>,
    pub created: String,
    pub created_exact: String,
    /// The chosen columns' text, in column order (name and stage render specially).
    pub cells: Vec<(String, String)>,
}

pub fn full_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_owned()
}

impl LeadCard {
    pub fn new(lead: Lead, pipeline: Option<&Pipeline>, columns: &[String]) -> LeadCard {
        let row = &lead.row;
        let custom: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.custom_fields).unwrap_or_default();
        let cells = columns
            .iter()
            .map(|column| {
                let text = match column.as_str() {
                    "number" => super::api::display_number(row.number),
                    "email" => row.email.clone().unwrap_or_default(),
                    "phone" => row.phone.clone().unwrap_or_default(),
                    "source" => source_label(&row.source),
                    "assigned" => row.assignee_name.clone().unwrap_or_default(),
                    "state" => row.state.clone().unwrap_or_default(),
                    "country" => row.country.clone().unwrap_or_default(),
                    "tags" => lead.tags.join(", "),
                    "date_of_birth" => row.date_of_birth.clone().unwrap_or_default(),
                    "utm_source" => row.utm_source.clone().unwrap_or_default(),
                    "utm_medium" => row.utm_medium.clone().unwrap_or_default(),
                    "utm_campaign" => row.utm_campaign.clone().unwrap_or_default(),
                    "campaign_id" => row.campaign_id.clone().unwrap_or_default(),
                    "created_at" => relative(row.created_at),
                    "updated_at" => relative(row.updated_at),
                    "stage_entered_at" => relative(row.stage_entered_at),
                    other => match other
                        .strip_prefix("custom_fields.")
                        .and_then(|k| custom.get(k))
                    {
                        Some(value) => display_value(value),
                        None => String::new(),
                    },
                };
                (column.clone(), text)
            })
            .collect();
        let assignee = row.assignee_name.clone().unwrap_or_default();
        LeadCard {
            id: row.id.clone(),
            number: super::api::display_number(row.number),
            name: full_name(&row.first_name, &row.last_name),
            email: row.email.clone().unwrap_or_default(),
            phone: row.phone.clone().unwrap_or_default(),
            stage: stage_badge(pipeline, &row.stage),
            source: source_label(&row.source),
            assignee_initials: crate::web::initials(&assignee),
            assignee,
            is_priority: row.is_priority,
            archived: row.archived_at.is_some(),
            tags: lead.tags.clone(),
            created: relative(row.created_at),
            created_exact: exact(row.created_at),
            cells,
        }
    }
}

/// A custom-field value as text (lists joined, booleans as Yes/No).
pub fn display_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => "Yes".to_owned(),
        serde_json::Value::Bool(false) => "No".to_owned(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(display_value)
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
