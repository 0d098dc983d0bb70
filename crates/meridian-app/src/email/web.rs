//! Pages: email templates (a list, and an editor that previews against a sample lead), the outbox
//! (the message log, and one message as it was sent), the suppression list, Settings → Email
//! (the sender and an optional SMTP server), and the pieces of the lead page's Emails tab.
//!
//! Every action is a plain form POST, and every preview is rendered on the server; `app.js` adds a
//! live preview while typing and fills the lead page's form from a chosen template.

pub mod outbox;
pub mod sequences;
pub mod settings;
pub mod suppressions;
pub mod templates;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::api::{MessageQuery, message_page};
use super::render::Rendered;
use super::service::{self, Draft};
use super::store::{MessageFilter, MessageRow};
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::leads::api::display_number;
use crate::state::AppState;
use crate::web::{FormErrors, exact, relative};

/// Messages the lead page lists; the outbox, filtered by the lead, has the rest.
const LEAD_MESSAGES: i64 = 20;

/// The app's page policy (`http::middleware`) plus what an email preview needs: a `srcdoc`
/// frame inherits the policy of its page, and email HTML is laid out with inline `style`
/// attributes and shows hosted images. `<style>` elements and scripts stay refused (the
/// sanitizer removed them from the email already, and the frame's sandbox runs no script).
const EMAIL_FRAME_POLICY: &str = "default-src 'self'; img-src 'self' data: https:; \
     style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

/// Gives a page that shows an email in a sandboxed frame the policy the email renders under.
pub fn with_email_frames(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EMAIL_FRAME_POLICY),
    );
    response
}

fn status_label(status: &str) -> &'static str {
    match status {
        "queued" => "Queued",
        "sent" => "Sent",
        "failed" => "Failed",
        "bounced" => "Bounced",
        "suppressed" => "Suppressed",
        _ => "Unknown",
    }
}

fn category_label(category: &str) -> &'static str {
    match category {
        "transactional" => "Transactional",
        _ => "Marketing",
    }
}

/// One message as the outbox and the lead page list it.
pub struct MessageView {
    pub id: String,
    pub status: String,
    pub status_label: &'static str,
    pub to: String,
    pub subject: String,
    /// Empty for a message about no lead (or a deleted one).
    pub lead_id: String,
    pub lead_number: String,
    pub lead_name: String,
    /// The template's name; empty for an email written from scratch.
    pub template: String,
    /// What happened `when`: "Sent", "Queued", or how it ended ("Failed", "Bounced" ...).
    pub when_label: &'static str,
    pub when: String,
    pub when_exact: String,
    /// Why a failed or bounced message did not arrive.
    pub error: String,
}

impl From<&MessageRow> for MessageView {
    fn from(m: &MessageRow) -> Self {
        let (when_label, at) = match (m.sent_at, m.failed_at) {
            (Some(sent), _) => ("Sent", sent),
            (None, Some(ended)) => (status_label(&m.status), ended),
            (None, None) => ("Queued", m.queued_at),
        };
        let lead_exists = m.lead_number.is_some();
        MessageView {
            id: m.id.clone(),
            status: m.status.clone(),
            status_label: status_label(&m.status),
            to: m.to_address.clone(),
            subject: m.subject.clone(),
            lead_id: if lead_exists {
                m.lead_id.clone().unwrap_or_default()
            } else {
                String::new()
            },
            lead_number: m.lead_number.map(display_number).unwrap_or_default(),
            lead_name: m.lead_name.clone().unwrap_or_default().trim().to_owned(),
            template: m.template_name.clone().unwrap_or_default(),
            when_label,
            when: relative(at),
            when_exact: exact(at),
            error: if matches!(m.status.as_str(), "failed" | "bounced") {
                m.error.clone().unwrap_or_default()
            } else {
                String::new()
            },
        }
    }
}

/// A page of the message log and the cursor of the next (older) one.
async fn load_messages(
    state: &AppState,
    ctx: &Ctx,
    query: &MessageQuery,
) -> Result<(Vec<MessageRow>, Option<String>), AppError> {
    let page = message_page(state, ctx, query).await?;
    Ok((page.items, page.next_cursor))
}

/// The sequence pages: the list, the editor with its enrollments, and Stop (from a sequence's
/// page or a lead's; the lead page's "Add to a sequence" posts to the lead's action route).
pub fn sequence_routes() -> Router<AppState> {
    Router::new()
        .route("/email/sequences", get(sequences::list_page))
        .route(
            "/email/sequences/new",
            get(sequences::new_page).post(sequences::new_submit),
        )
        .route(
            "/email/sequences/{id}",
            get(sequences::edit_page).post(sequences::edit_submit),
        )
        .route(
            "/email/sequences/{id}/delete",
            get(sequences::delete_confirm).post(sequences::delete_submit),
        )
        .route("/email/enrollments/{id}/stop", post(sequences::stop_submit))
}

/// A page's `?notice=` after a redirect.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

// ---- The lead page's Emails tab -------------------------------------------------------------

/// The lead page's email form: what was typed, and why it was refused.
#[derive(Debug, Default)]
pub struct Compose {
    pub template_id: String,
    pub subject: String,
    pub body_html: String,
    pub errors: FormErrors,
}

impl Compose {
    /// A blank text means "the template's": only what was written overrides a template.
    fn draft(&self) -> Draft {
        let given = |text: &str| Some(text.to_owned()).filter(|t| !t.trim().is_empty());
        Draft {
            template_id: given(&self.template_id),
            subject: given(&self.subject),
            body_html: given(&self.body_html),
            body_text: None,
        }
    }
}

/// What the lead page's email form led to.
pub enum Composed {
    /// Sent off: the message's id.
    Queued(String),
    /// The form again: with the preview asked for, or with the reasons it was refused.
    Shown {
        compose: Compose,
        preview: Option<Rendered>,
    },
}

/// Previews (for this lead) or sends what the lead page's form holds.
pub async fn compose(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    mut compose: Compose,
    send: bool,
) -> Result<Composed, AppError> {
    let draft = compose.draft();
    if send {
        return match service::send_to_lead(state, ctx, lead_id, &draft).await {
            Ok(message) => Ok(Composed::Queued(message.id)),
            Err(error) => {
                compose.errors = FormErrors::from_error(error)?;
                Ok(Composed::Shown {
                    compose,
                    preview: None,
                })
            }
        };
    }
    match service::preview(state, ctx, &draft, Some(lead_id)).await {
        Ok(rendered) => {
            // Show the template's text in the form so it can be edited before sending.
            if let Some(id) = &draft.template_id {
                let template = service::template(state, ctx, id).await?;
                if draft.subject.is_none() {
                    compose.subject = template.subject;
                }
                if draft.body_html.is_none() {
                    compose.body_html = template.body_html;
                }
            }
            Ok(Composed::Shown {
                compose,
                preview: Some(rendered),
            })
        }
        Err(error) => {
            compose.errors = FormErrors::from_error(error)?;
            Ok(Composed::Shown {
                compose,
                preview: None,
            })
        }
    }
}

/// The lead's latest messages, and whether it has more.
pub async fn lead_messages(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
) -> Result<(Vec<MessageView>, bool), AppError> {
    let filter = MessageFilter {
        lead_id: Some(lead_id.to_owned()),
        ..MessageFilter::default()
    };
    let mut rows = service::messages(state, ctx, filter, None, LEAD_MESSAGES + 1).await?;
    let shown = usize::try_from(LEAD_MESSAGES).unwrap_or(usize::MAX);
    let more = rows.len() > shown;
    rows.truncate(shown);
    Ok((rows.iter().map(MessageView::from).collect(), more))
}

/// The templates to pick from, as (id, name).
pub async fn template_choices(
    state: &AppState,
    ctx: &Ctx,
) -> Result<Vec<(String, String)>, AppError> {
    Ok(service::templates(state, ctx)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect())
}

/// The notice after sending message `message_id` from lead `lead_id`'s page.
pub async fn queued_notice(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    message_id: Option<&str>,
) -> Result<String, AppError> {
    let message = match message_id {
        Some(id) => match service::message(state, ctx, id).await {
            Ok(m) => Some(m),
            Err(AppError::NotFound) => None,
            Err(other) => return Err(other),
        },
        None => None,
    };
    Ok(match message {
        Some(m) if m.lead_id.as_deref() == Some(lead_id) => {
            format!("Email queued to {}.", m.to_address)
        }
        _ => "Email queued.".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_compose_fields_leave_the_template_text() {
        let compose = Compose {
            template_id: "t1".into(),
            subject: "  ".into(),
            body_html: "<p>Hi</p>".into(),
            errors: FormErrors::default(),
        };
        let draft = compose.draft();
        assert_eq!(draft.template_id.as_deref(), Some("t1"));
        assert_eq!(draft.subject, None);
        assert_eq!(draft.body_html.as_deref(), Some("<p>Hi</p>"));
    }
}
