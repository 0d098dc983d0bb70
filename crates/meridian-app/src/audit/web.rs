//! Page: the audit log.

use askama::Template;
use axum::extract::State;

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
    pub change: String,
    pub client_ip: String,
}

fn describe_change(entry: &AuditEntry) -> String {
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    match (&entry.before, &entry.after) {
        (Some(_), Some(_)) => format!("{} \u{2192} {}", show(&entry.before), show(&entry.after)),
        (None, Some(_)) => show(&entry.after),
        (Some(_), None) => format!("was {}", show(&entry.before)),
        (None, None) => String::new(),
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
