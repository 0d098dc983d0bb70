//! Page: the audit log.

use askama::Template;
use axum::extract::State;
use serde_json::Value;

use super::api::{AuditEntry, AuditQuery, load_page};
use crate::http::json::Query;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};

pub struct EntryView {
    pub when: String,
    pub when_exact: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// (field, what happened to it), only for fields that changed.
    pub change: Vec<(String, String)>,
    pub client_ip: String,
}

fn show(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "\u{2014}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "none".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| show(Some(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// One line per field that changed: `before → after`, or the value when the target was
/// created or removed.
fn describe_change(entry: &AuditEntry) -> Vec<(String, String)> {
    let before = entry.before.as_ref().and_then(Value::as_object);
    let after = entry.after.as_ref().and_then(Value::as_object);
    match (before, after) {
        (Some(before), Some(after)) => after
            .iter()
            .filter(|(key, value)| before.get(*key) != Some(*value))
            .map(|(key, value)| {
                (
                    key.clone(),
                    format!("{} \u{2192} {}", show(before.get(key)), show(Some(value))),
                )
            })
            .collect(),
        (None, Some(fields)) | (Some(fields), None) => fields
            .iter()
            .map(|(key, value)| (key.clone(), show(Some(value))))
            .collect(),
        (None, None) => Vec::new(),
    }
}

impl From<AuditEntry> for EntryView {
    fn from(e: AuditEntry) -> Self {
        EntryView {
            when: relative(e.created_at),
            when_exact: exact(e.created_at),
            change: describe_change(&e),
            actor: e.actor.label,
            action: e.action,
            target: e.target.label.or(e.target.id).unwrap_or_default(),
            client_ip: e.client_ip.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    shell: Shell,
    entries: Vec<EntryView>,
    next_cursor: Option<String>,
    action: String,
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(query): Query<AuditQuery>,
) -> WebResult {
    let page = load_page(&state, &web.ctx, &query).await?;
    let shell = web.shell(&state, "Audit log", "audit").await?;
    Ok(render(&AuditPage {
        shell,
        next_cursor: page.next_cursor,
        entries: page.items.into_iter().map(EntryView::from).collect(),
        action: query.action.unwrap_or_default(),
    }))
}
