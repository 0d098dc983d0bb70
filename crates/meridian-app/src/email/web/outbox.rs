//! The outbox: the message log, newest first, filtered by status (with counts) or narrowed to a
//! lead, paged by cursor; and one message with its headers and content as sent.

use askama::Template;
use axum::extract::{Path, State};

use super::{MessageView, category_label, load_messages, status_label, with_email_frames};
use crate::email::api::{MessageQuery, STATUSES};
use crate::email::render::Rendered;
use crate::email::service;
use crate::http::json::Query;
use crate::leads::api::display_number;
use crate::state::AppState;
use crate::web::{Shell, WebCtx, WebResult, exact, relative, render};
use serde::Deserialize;

/// Messages on one outbox page.
const OUTBOX_PAGE: i64 = 50;

/// One status filter above the log: its link, and its count (none when the log is narrowed to a
/// lead, as the counts are the organization's).
pub struct StatusFilter {
    pub label: &'static str,
    pub href: String,
    pub count: Option<i64>,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "email_outbox.html")]
struct OutboxPage {
    shell: Shell,
    tab: &'static str,
    filters: Vec<StatusFilter>,
    status: String,
    status_label: &'static str,
    /// The lead the log is narrowed to: (id, "#00042 Ana Diaz").
    lead: Option<(String, String)>,
    messages: Vec<MessageView>,
    older_href: Option<String>,
    newest_href: Option<String>,
    /// Every status, same lead.
    all_href: String,
    /// The organization has sent nothing at all yet.
    never_sent: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    lead_id: Option<String>,
    cursor: Option<String>,
}

/// The outbox's address for a status (empty: all) and lead (empty: every lead).
fn outbox_href(status: &str, lead_id: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            [("status", status), ("lead_id", lead_id)]
                .into_iter()
                .filter(|(_, v)| !v.is_empty()),
        )
        .finish();
    if query.is_empty() {
        "/email/outbox".to_owned()
    } else {
        format!("/email/outbox?{query}")
    }
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<OutboxQuery>,
) -> WebResult {
    let ctx = &web.ctx;
    let status = q.status.clone().unwrap_or_default();
    let lead_id = q.lead_id.clone().unwrap_or_default();
    let query = MessageQuery {
        lead_id: q.lead_id.clone(),
        status: q.status.clone(),
        limit: Some(OUTBOX_PAGE),
        cursor: q.cursor.clone(),
    };
    let (rows, next) = load_messages(&state, ctx, &query).await?;
    let counts = service::message_counts(&state, ctx).await?;
    let count_of = |s: &str| {
        counts
            .iter()
            .filter(|(status, _)| s.is_empty() || status == s)
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    let narrowed = !lead_id.is_empty();
    let filters = std::iter::once(("", "All"))
        .chain(STATUSES.iter().map(|s| (*s, status_label(s))))
        .map(|(s, label)| StatusFilter {
            label,
            href: outbox_href(s, &lead_id),
            count: (!narrowed).then(|| count_of(s)),
            active: s == status,
        })
        .collect();
    let lead = if narrowed {
        let mut tx = state.db.tenant_read(&ctx.tenant).await?;
        let (row, _) = crate::leads::service::visible(&mut tx, ctx, &lead_id).await?;
        tx.commit().await?;
        let name = crate::leads::web::full_name(&row.first_name, &row.last_name);
        Some((
            row.id,
            format!("#{} {name}", display_number(row.number))
                .trim()
                .to_owned(),
        ))
    } else {
        None
    };
    let base = outbox_href(&status, &lead_id);
    let join = if base.contains('?') { '&' } else { '?' };
    let page = OutboxPage {
        shell: web.shell(&state, "Outbox", "email").await?,
        tab: "outbox",
        filters,
        status_label: status_label(&status),
        never_sent: count_of("") == 0,
        lead,
        messages: rows.iter().map(MessageView::from).collect(),
        older_href: next.map(|c| format!("{base}{join}cursor={c}")),
        all_href: outbox_href("", &lead_id),
        newest_href: q.cursor.is_some().then_some(base),
        status,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "email_message.html")]
struct MessagePage {
    shell: Shell,
    message: MessageView,
    from: String,
    reply_to: String,
    message_id: String,
    attempts: i64,
    receipt: String,
    /// The whole error, for any status (a queued message keeps its last attempt's error).
    error: String,
    category_label: &'static str,
    queued: String,
    queued_exact: String,
    preview: Option<Rendered>,
}

pub async fn message_page(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let m = service::message(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, &m.subject, "email").await?;
    let page = MessagePage {
        shell,
        message: MessageView::from(&m),
        from: m.from_address.clone(),
        reply_to: m.reply_to.clone().unwrap_or_default(),
        message_id: m.message_id.clone(),
        attempts: m.attempts,
        receipt: m.provider_message_id.clone().unwrap_or_default(),
        error: m.error.clone().unwrap_or_default(),
        category_label: category_label(&m.category),
        queued: relative(m.queued_at),
        queued_exact: exact(m.queued_at),
        preview: Some(Rendered {
            subject: m.subject,
            html: m.body_html,
            text: m.body_text,
        }),
    };
    Ok(with_email_frames(render(&page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_links_keep_the_filters() {
        assert_eq!(outbox_href("", ""), "/email/outbox");
        assert_eq!(outbox_href("sent", ""), "/email/outbox?status=sent");
        assert_eq!(
            outbox_href("failed", "l1"),
            "/email/outbox?status=failed&lead_id=l1"
        );
    }
}
