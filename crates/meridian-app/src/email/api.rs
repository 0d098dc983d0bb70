use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::render::Rendered;
use super::service::{self, Draft, SettingsInput, SettingsView, TemplateInput};
use super::store::{MessageFilter, MessageRow, SuppressionRow, TemplateRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::state::AppState;

pub const STATUSES: [&str; 5] = ["queued", "sent", "failed", "bounced", "suppressed"];

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateOut {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    /// `marketing` (carries an unsubscribe link) or `transactional`.
    pub category: String,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<TemplateRow> for TemplateOut {
    fn from(t: TemplateRow) -> Self {
        TemplateOut {
            id: t.id,
            name: t.name,
            subject: t.subject,
            body_html: t.body_html,
            body_text: t.body_text,
            category: t.category,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub name: Option<String>,
    /// May use variables, like the bodies: `{{lead.first_name}}`, `{{owner.name}}`,
    /// `{{org.name}}`, `{{lead.custom_fields.KEY}}`, `{{unsubscribe_url}}`.
    pub subject: Option<String>,
    pub body_html: Option<String>,
    /// Empty: derived from the HTML when sending.
    pub body_text: Option<String>,
    /// `marketing` (default) or `transactional`.
    pub category: Option<String>,
}

impl From<TemplateRequest> for TemplateInput {
    fn from(r: TemplateRequest) -> Self {
        TemplateInput {
            name: r.name,
            subject: r.subject,
            body_html: r.body_html,
            body_text: r.body_text,
            category: r.category,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/email/templates", tag = "email",
    responses((status = 200, body = inline(Page<TemplateOut>))))]
pub async fn list_templates(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<Page<TemplateOut>>> {
    let rows = service::templates(&state, &ctx).await?;
    Ok(axum::Json(Page {
        items: rows.into_iter().map(TemplateOut::from).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/email/templates", tag = "email", request_body = TemplateRequest,
    responses((status = 201, body = TemplateOut), (status = 422, body = Problem)))]
pub async fn create_template(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<TemplateRequest>,
) -> AppResult<(StatusCode, axum::Json<TemplateOut>)> {
    let row = service::create_template(&state, &ctx, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

#[utoipa::path(get, path = "/api/v1/email/templates/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 200, body = TemplateOut), (status = 404, body = Problem)))]
pub async fn get_template(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<TemplateOut>> {
    Ok(axum::Json(
        service::template(&state, &ctx, &id).await?.into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/email/templates/{id}", tag = "email", params(("id" = String, Path)),
    request_body = TemplateRequest,
    responses((status = 200, body = TemplateOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_template(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<TemplateRequest>,
) -> AppResult<axum::Json<TemplateOut>> {
    Ok(axum::Json(
        service::update_template(&state, &ctx, &id, body.into())
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/email/templates/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_template(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete_template(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// A stored template; `subject`, `body_html` and `body_text` override its text.
    pub template_id: Option<String>,
    pub subject: Option<String>,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    /// Render for this lead; a sample lead when absent.
    pub lead_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewOut {
    pub subject: String,
    /// Sanitized: safe to show in a sandboxed frame.
    pub html: String,
    pub text: String,
}

impl From<Rendered> for PreviewOut {
    fn from(r: Rendered) -> Self {
        PreviewOut {
            subject: r.subject,
            html: r.html,
            text: r.text,
        }
    }
}

/// Renders a template or unsaved text as it would be sent, for a lead or a sample one.
#[utoipa::path(post, path = "/api/v1/email/preview", tag = "email", request_body = PreviewRequest,
    responses((status = 200, body = PreviewOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn preview(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<PreviewRequest>,
) -> AppResult<axum::Json<PreviewOut>> {
    let draft = Draft {
        template_id: body.template_id,
        subject: body.subject,
        body_html: body.body_html,
        body_text: body.body_text,
    };
    let rendered = service::preview(&state, &ctx, &draft, body.lead_id.as_deref()).await?;
    Ok(axum::Json(rendered.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub lead_id: Option<String>,
    pub lead_number: Option<i64>,
    pub lead_name: Option<String>,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body_html: String,
    pub body_text: String,
    pub category: String,
    /// The RFC 5322 Message-ID, the same on every attempt.
    pub message_id: String,
    /// queued, sent, failed, bounced or suppressed.
    pub status: String,
    /// The transport's receipt: the SMTP server's reply, or the `.eml` file written.
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
}

impl From<MessageRow> for MessageOut {
    fn from(m: MessageRow) -> Self {
        MessageOut {
            id: m.id,
            lead_id: m.lead_id,
            lead_number: m.lead_number,
            lead_name: m.lead_name,
            template_id: m.template_id,
            template_name: m.template_name,
            to: m.to_address,
            from: m.from_address,
            reply_to: m.reply_to,
            subject: m.subject,
            body_html: m.body_html,
            body_text: m.body_text,
            category: m.category,
            message_id: m.message_id,
            status: m.status,
            provider_message_id: m.provider_message_id,
            error: m.error,
            attempts: m.attempts,
            created_by: m.created_by,
            queued_at: m.queued_at,
            sent_at: m.sent_at,
            failed_at: m.failed_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// A template to send; `subject` and `body_html` (edited after a preview) replace its text.
    pub template_id: Option<String>,
    pub subject: Option<String>,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
}

/// Emails the lead: the message is logged as queued and delivered in the background.
#[utoipa::path(post, path = "/api/v1/leads/{id}/emails", tag = "email", params(("id" = String, Path)),
    request_body = SendRequest,
    responses((status = 202, body = MessageOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn send_to_lead(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<SendRequest>,
) -> AppResult<(StatusCode, axum::Json<MessageOut>)> {
    let draft = Draft {
        template_id: body.template_id,
        subject: body.subject,
        body_html: body.body_html,
        body_text: body.body_text,
    };
    let message = service::send_to_lead(&state, &ctx, &id, &draft).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(message.into())))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct MessageQuery {
    pub lead_id: Option<String>,
    /// queued, sent, failed, bounced or suppressed.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of the message log for `query` (the API's and the outbox page's).
pub async fn message_page(
    state: &AppState,
    ctx: &Ctx,
    query: &MessageQuery,
) -> AppResult<Page<MessageRow>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(AppError::field(
            "status",
            "must be queued, sent, failed, bounced or suppressed",
        ));
    }
    let filter = MessageFilter {
        lead_id: query.lead_id.clone().filter(|s| !s.is_empty()),
        status,
        hidden: Vec::new(),
    };
    let rows =
        service::messages(state, ctx, filter, page.after_time()?, page.fetch_limit()).await?;
    Ok(Page::from_rows(rows, &page, |m| {
        time_cursor(m.queued_at, &m.id)
    }))
}

/// The message log, newest first.
#[utoipa::path(get, path = "/api/v1/email/messages", tag = "email", params(MessageQuery),
    responses((status = 200, body = inline(Page<MessageOut>)), (status = 422, body = Problem)))]
pub async fn list_messages(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<MessageQuery>,
) -> AppResult<axum::Json<Page<MessageOut>>> {
    Ok(axum::Json(
        message_page(&state, &ctx, &query)
            .await?
            .map(MessageOut::from),
    ))
}

#[utoipa::path(get, path = "/api/v1/email/messages/{id}", tag = "email", params(("id" = String, Path)),
    responses((status = 200, body = MessageOut), (status = 404, body = Problem)))]
pub async fn get_message(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<MessageOut>> {
    Ok(axum::Json(
        service::message(&state, &ctx, &id).await?.into(),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuppressionOut {
    pub email: String,
    /// unsubscribe, bounce or manual.
    pub reason: String,
    pub detail: String,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<SuppressionRow> for SuppressionOut {
    fn from(s: SuppressionRow) -> Self {
        SuppressionOut {
            email: s.email,
            reason: s.reason,
            detail: s.detail,
            created_by: s.created_by,
            created_at: s.created_at,
        }
    }
}

/// Addresses nothing is sent to, by address.
#[utoipa::path(get, path = "/api/v1/email/suppressions", tag = "email", params(PageQuery),
    responses((status = 200, body = inline(Page<SuppressionOut>)), (status = 422, body = Problem)))]
pub async fn list_suppressions(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<SuppressionOut>>> {
    let page = query.parse()?;
    let rows = service::suppressions(&state, &ctx, page.after_key(0), page.fetch_limit()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |s| vec![s.email.clone()]).map(SuppressionOut::from),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRequest {
    pub email: String,
    /// Why (kept with the entry).
    #[serde(default)]
    pub detail: String,
}

/// Adds an address (201; 200 with the existing entry when it was already listed).
#[utoipa::path(post, path = "/api/v1/email/suppressions", tag = "email", request_body = SuppressionRequest,
    responses((status = 201, body = SuppressionOut), (status = 200, body = SuppressionOut), (status = 422, body = Problem)))]
pub async fn add_suppression(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<SuppressionRequest>,
) -> AppResult<(StatusCode, axum::Json<SuppressionOut>)> {
    let (row, added) = service::suppress(&state, &ctx, &body.email, &body.detail).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(row.into())))
}

/// Lets mail reach an address again.
#[utoipa::path(delete, path = "/api/v1/email/suppressions/{email}", tag = "email", params(("email" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_suppression(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(email): Path<String>,
) -> AppResult<StatusCode> {
    service::unsuppress(&state, &ctx, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsOut {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    /// The organization's SMTP server; null: the server's transport.
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    /// starttls, tls or none.
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    /// Whether a password is stored. The password itself is never returned.
    pub smtp_password_set: bool,
    /// A mask to show in place of the password.
    pub smtp_password_hint: Option<String>,
    /// False until the organization saves settings of its own.
    pub custom: bool,
}

impl From<SettingsView> for SettingsOut {
    fn from(s: SettingsView) -> Self {
        SettingsOut {
            from_name: s.from_name,
            from_address: s.from_address,
            reply_to: s.reply_to,
            smtp_host: s.smtp_host,
            smtp_port: s.smtp_port,
            smtp_security: s.smtp_security,
            smtp_username: s.smtp_username,
            smtp_password_set: s.smtp_password_hint.is_some(),
            smtp_password_hint: s.smtp_password_hint,
            custom: s.custom,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    /// Null or empty: send through the server's transport.
    pub smtp_host: Option<String>,
    /// Default by security: 587 (starttls), 465 (tls), 25 (none).
    pub smtp_port: Option<i64>,
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    /// Write-only. Absent: keep the stored password; empty: remove it.
    pub smtp_password: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/email/settings", tag = "email",
    responses((status = 200, body = SettingsOut), (status = 403, body = Problem)))]
pub async fn get_settings(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<SettingsOut>> {
    Ok(axum::Json(service::settings(&state, &ctx).await?.into()))
}

#[utoipa::path(put, path = "/api/v1/email/settings", tag = "email", request_body = SettingsRequest,
    responses((status = 200, body = SettingsOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<SettingsRequest>,
) -> AppResult<axum::Json<SettingsOut>> {
    let input = SettingsInput {
        from_name: body.from_name,
        from_address: body.from_address,
        reply_to: body.reply_to,
        smtp_host: body.smtp_host,
        smtp_port: body.smtp_port,
        smtp_security: body.smtp_security,
        smtp_username: body.smtp_username,
        smtp_password: body.smtp_password,
    };
    Ok(axum::Json(
        service::save_settings(&state, &ctx, input).await?.into(),
    ))
}
