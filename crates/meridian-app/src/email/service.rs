//! Email as the API and pages use it: templates, previews, sending to a lead (queued as a job in
//! the same transaction as the message log's row), the log, the suppression list and the
//! organization's sending settings.

use std::collections::BTreeMap;

use meridian_core::crm::ActivityKind;
use meridian_core::email::normalize_email;
use meridian_core::validation::required_text;
use meridian_core::{Permission, Validation};
use meridian_db::TenantTx;
use serde_json::json;

use super::compose::{
    Author, Recipient, ServerMail, compose, lead_variables, render_errors, render_for, sources,
};
use super::render::{self, LeadVars, OrgVars, Person, Rendered, Variables};
use super::store::{
    self, MessageCursor, MessageFilter, MessageRow, NewMessage, SettingsRow, SuppressionRow,
    TemplateFields, TemplateRow,
};
use super::transport::Security;
use crate::audit::store::{self as audit, Entry};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::leads::{activity, service as leads};
use crate::secrets::{self, Purpose};
use crate::state::AppState;

/// The job that delivers one message.
pub const SEND_JOB: &str = "email.send";
/// A message whose attempts keep failing (a mail server down) is retried for a day, as mail
/// servers do: it fails at its first failed attempt a day or more after it was queued. With the
/// runner's backoff (random waits up to 15 s doubling, capped at 6 h) that is about the 19th
/// attempt; [`SEND_ATTEMPTS`] is only a backstop.
pub const SEND_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const SEND_ATTEMPTS: i64 = 30;

pub const MAX_NAME: usize = 120;
pub const MAX_SUBJECT: usize = 300;
pub const MAX_BODY: usize = 200_000;

pub const CATEGORIES: [&str; 2] = ["marketing", "transactional"];

/// A template as a client sends it; on update, missing fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct TemplateInput {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
    pub category: Option<String>,
}

fn body(v: &mut Validation, field: &str, text: &str) -> String {
    if text.chars().count() > MAX_BODY {
        v.add(field, format!("must be at most {MAX_BODY} characters"));
    }
    text.to_owned()
}

/// The variables of every kind with sample values, and every custom field of every pipeline:
/// templates are checked against it, and previews without a lead use it.
async fn sample_variables(tx: &mut TenantTx, ctx: &Ctx) -> AppResult<Variables> {
    let pipelines = crate::pipelines::store::list(tx).await?;
    let mut custom_fields = BTreeMap::new();
    for pipeline in &pipelines {
        for field in &pipeline.spec.fields {
            custom_fields
                .entry(field.key.clone())
                .or_insert_with(|| json!(field.label.clone()));
        }
    }
    let (stage, stage_label, pipeline) = pipelines
        .first()
        .and_then(|p| {
            p.spec
                .stages
                .first()
                .map(|s| (s.key.clone(), s.label.clone(), p.spec.name.clone()))
        })
        .unwrap_or_default();
    let sender = ctx
        .user
        .as_ref()
        .map(|u| Person {
            name: u.name.clone(),
            email: u.email.clone(),
        })
        .unwrap_or_default();
    Ok(Variables {
        lead: LeadVars {
            number: "00042".to_owned(),
            first_name: "Jordan".to_owned(),
            last_name: "Rivera".to_owned(),
            full_name: "Jordan Rivera".to_owned(),
            email: "jordan.rivera@example.com".to_owned(),
            phone: "+15555550142".to_owned(),
            state: "CA".to_owned(),
            country: "US".to_owned(),
            source: "web_form".to_owned(),
            stage,
            stage_label,
            pipeline,
            custom_fields,
        },
        owner: sender.clone(),
        sender,
        org: OrgVars {
            name: ctx.org.name.clone(),
        },
        unsubscribe_url: "https://example.com/unsubscribe/sample".to_owned(),
    })
}

async fn apply_template(
    tx: &mut TenantTx,
    ctx: &Ctx,
    base: TemplateFields,
    input: TemplateInput,
    creating: bool,
    own_id: Option<&str>,
) -> AppResult<TemplateFields> {
    let mut v = Validation::new();
    let mut out = base;
    match (&input.name, creating) {
        (Some(name), _) => {
            if let Some(name) = v.check("name", required_text(name, 1, MAX_NAME)) {
                if let Some(existing) = store::template_named(tx, &name).await?
                    && Some(existing.as_str()) != own_id
                {
                    v.add("name", "another template has this name");
                }
                out.name = name;
            }
        }
        (None, true) => v.add("name", "is required"),
        (None, false) => {}
    }
    match (&input.subject, creating) {
        (Some(subject), _) => {
            if let Some(subject) = v.check("subject", required_text(subject, 1, MAX_SUBJECT)) {
                out.subject = subject;
            }
        }
        (None, true) => v.add("subject", "is required"),
        (None, false) => {}
    }
    if let Some(html) = &input.body_html {
        out.body_html = body(&mut v, "body_html", html);
    }
    if let Some(text) = &input.body_text {
        out.body_text = body(&mut v, "body_text", text);
    }
    if out.body_html.trim().is_empty() && out.body_text.trim().is_empty() {
        v.add("body_html", "a template needs an HTML or a plain-text body");
    }
    if let Some(category) = &input.category {
        if CATEGORIES.contains(&category.as_str()) {
            out.category = category.clone();
        } else {
            v.add("category", "must be marketing or transactional");
        }
    }
    v.finish().map_err(AppError::Validation)?;
    let sample = sample_variables(tx, ctx).await?;
    render::check(sources(&out), &sample).map_err(render_errors)?;
    Ok(out)
}

fn fields_of(t: &TemplateRow) -> TemplateFields {
    TemplateFields {
        name: t.name.clone(),
        subject: t.subject.clone(),
        body_html: t.body_html.clone(),
        body_text: t.body_text.clone(),
        category: t.category.clone(),
    }
}

pub async fn templates(state: &AppState, ctx: &Ctx) -> AppResult<Vec<TemplateRow>> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::templates(&mut tx).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn template(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<TemplateRow> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = store::find_template(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

pub async fn create_template(
    state: &AppState,
    ctx: &Ctx,
    input: TemplateInput,
) -> AppResult<TemplateRow> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let base = TemplateFields {
        name: String::new(),
        subject: String::new(),
        body_html: String::new(),
        body_text: String::new(),
        category: "marketing".to_owned(),
    };
    let fields = apply_template(&mut tx, ctx, base, input, true, None).await?;
    let id = store::insert_template(&mut tx, &fields, ctx.user_id()).await?;
    let row = store::find_template(&mut tx, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

pub async fn update_template(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    input: TemplateInput,
) -> AppResult<TemplateRow> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let existing = store::find_template(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let fields = apply_template(&mut tx, ctx, fields_of(&existing), input, false, Some(id)).await?;
    store::update_template(&mut tx, id, &fields).await?;
    let row = store::find_template(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes a template; messages sent from it keep their text (and lose the link).
pub async fn delete_template(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    store::find_template(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    store::delete_template(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// What to render: a stored template, or a draft's sources (the editor's unsaved text).
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub template_id: Option<String>,
    pub subject: Option<String>,
    pub body_html: Option<String>,
    pub body_text: Option<String>,
}

/// The template's fields with the draft's text over them; the category is the template's
/// (transactional for a one-off email written from scratch).
async fn resolve_draft(tx: &mut TenantTx, draft: &Draft) -> AppResult<TemplateFields> {
    let mut fields = match &draft.template_id {
        Some(id) => fields_of(
            &store::find_template(tx, id)
                .await?
                .ok_or_else(|| AppError::field("template_id", "no such template"))?,
        ),
        None => TemplateFields {
            name: String::new(),
            subject: String::new(),
            body_html: String::new(),
            body_text: String::new(),
            category: "transactional".to_owned(),
        },
    };
    let mut v = Validation::new();
    if let Some(subject) = &draft.subject {
        fields.subject = subject.clone();
    }
    if let Some(html) = &draft.body_html {
        fields.body_html = body(&mut v, "body_html", html);
        if draft.body_text.is_none() {
            // Edited HTML makes the template's text stale: derive it again.
            fields.body_text = String::new();
        }
    }
    if let Some(text) = &draft.body_text {
        fields.body_text = body(&mut v, "body_text", text);
    }
    if fields.subject.trim().is_empty() {
        v.add("subject", "is required");
    } else if fields.subject.chars().count() > MAX_SUBJECT {
        v.add(
            "subject",
            format!("must be at most {MAX_SUBJECT} characters"),
        );
    }
    if fields.body_html.trim().is_empty() && fields.body_text.trim().is_empty() {
        v.add("body_html", "write a message or pick a template");
    }
    v.finish().map_err(AppError::Validation)?;
    Ok(fields)
}

/// Renders a template or draft for `lead_id` (a sample lead when None), as it would be sent.
pub async fn preview(
    state: &AppState,
    ctx: &Ctx,
    draft: &Draft,
    lead_id: Option<&str>,
) -> AppResult<Rendered> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let fields = resolve_draft(&mut tx, draft).await?;
    let vars = match lead_id {
        Some(id) => {
            let (lead, pipeline) = leads::visible(&mut tx, ctx, id).await?;
            let url = lead.email.as_deref().map_or_else(String::new, |email| {
                ServerMail::of(state).unsubscribe_url(ctx.tenant.org_id(), email)
            });
            lead_variables(&mut tx, author(ctx), &lead, &pipeline, &url).await?
        }
        None => sample_variables(&mut tx, ctx).await?,
    };
    tx.commit().await?;
    render_for(&fields, &vars)
}

fn author(ctx: &Ctx) -> Author<'_> {
    Author {
        org_name: &ctx.org.name,
        user_id: ctx.user_id(),
    }
}

/// Emails a lead: renders the template or text, logs the message as queued and enqueues its
/// delivery in one transaction. Refused for a lead without an address or a suppressed address.
pub async fn send_to_lead(
    state: &AppState,
    ctx: &Ctx,
    lead_id: &str,
    draft: &Draft,
) -> AppResult<MessageRow> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let (lead, pipeline) = leads::visible(&mut tx, ctx, lead_id).await?;
    let Some(to) = lead.email.clone() else {
        return Err(AppError::field(
            "to",
            "this lead has no email address; add one first",
        ));
    };
    if let Some(s) = store::suppression(&mut tx, &to).await? {
        return Err(AppError::field(
            "to",
            format!(
                "{to} is on the suppression list ({}); nothing is sent to it",
                suppression_reason(&s.reason)
            ),
        ));
    }
    let fields = resolve_draft(&mut tx, draft).await?;
    let (id, message) = compose(
        &mut tx,
        &ServerMail::of(state),
        author(ctx),
        Recipient {
            lead: &lead,
            pipeline: &pipeline,
            to: &to,
        },
        &fields,
        draft.template_id.as_deref(),
    )
    .await?;
    queue(&mut tx, &id, &message).await?;
    activity::record(
        &mut tx,
        ctx,
        &lead.id,
        ActivityKind::EmailQueued,
        json!({"message_id": id, "subject": message.subject, "to": message.to_address}),
    )
    .await?;
    let row = store::find_message(&mut tx, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    crate::jobs::wake();
    Ok(row)
}

/// Logs `message` as queued and enqueues its delivery, in the caller's transaction.
pub async fn queue(tx: &mut TenantTx, id: &str, message: &NewMessage) -> AppResult<()> {
    store::insert_message(tx, id, message, "queued").await?;
    let job = crate::jobs::new_job(SEND_JOB, &json!({"message": id}))
        .map_err(|e| AppError::Internal(e.into()))?
        .max_attempts(SEND_ATTEMPTS)
        .unique_key(id);
    crate::jobs::enqueue_for_tenant(tx, job).await?;
    Ok(())
}

pub fn suppression_reason(reason: &str) -> &'static str {
    match reason {
        "unsubscribe" => "they unsubscribed",
        "bounce" => "mail to it bounced",
        _ => "added by hand",
    }
}

/// One page of the message log; messages about leads the caller cannot see are left out.
pub async fn messages(
    state: &AppState,
    ctx: &Ctx,
    mut filter: MessageFilter,
    before: Option<MessageCursor>,
    limit: i64,
) -> AppResult<Vec<MessageRow>> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    if let Some(lead) = &filter.lead_id {
        leads::visible(&mut tx, ctx, lead).await?;
    }
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    filter.hidden = leads::hidden_stages(ctx, &pipelines);
    let rows = store::messages(&mut tx, &filter, before, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

pub async fn message_counts(state: &AppState, ctx: &Ctx) -> AppResult<Vec<(String, i64)>> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let counts = store::message_counts(&mut tx).await?;
    tx.commit().await?;
    Ok(counts)
}

pub async fn message(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<MessageRow> {
    ctx.require(Permission::EmailSend)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = store::find_message(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if let Some(lead) = &row.lead_id
        && crate::leads::store::find(&mut tx, lead).await?.is_some()
    {
        leads::visible(&mut tx, ctx, lead).await?;
    }
    tx.commit().await?;
    Ok(row)
}

pub async fn suppressions(
    state: &AppState,
    ctx: &Ctx,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<SuppressionRow>> {
    ctx.require(Permission::EmailManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::suppressions(&mut tx, after, limit).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Adds an address by hand. Returns the entry (the existing one if it was already listed) and
/// whether it was added now.
pub async fn suppress(
    state: &AppState,
    ctx: &Ctx,
    email: &str,
    detail: &str,
) -> AppResult<(SuppressionRow, bool)> {
    ctx.require(Permission::EmailManage)?;
    let email = normalize_email(email).map_err(|m| AppError::field("email", m))?;
    if detail.chars().count() > 500 {
        return Err(AppError::field("detail", "must be at most 500 characters"));
    }
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let added = store::suppress(&mut tx, &email, "manual", detail.trim(), ctx.user_id()).await?;
    let row = store::suppression(&mut tx, &email)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok((row, added))
}

pub async fn unsuppress(state: &AppState, ctx: &Ctx, email: &str) -> AppResult<()> {
    ctx.require(Permission::EmailManage)?;
    let email = email.trim().to_lowercase();
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    if !store::unsuppress(&mut tx, &email).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

/// The sending settings as shown: the password never, only whether one is stored and its hint.
#[derive(Debug, Clone)]
pub struct SettingsView {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    pub smtp_password_hint: Option<String>,
    /// Whether these are the organization's own settings (else the server's defaults).
    pub custom: bool,
}

pub async fn settings(state: &AppState, ctx: &Ctx) -> AppResult<SettingsView> {
    ctx.require(Permission::OrgManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let row = store::settings(&mut tx).await?;
    let view = view_of(&mut tx, state, ctx, row).await?;
    tx.commit().await?;
    Ok(view)
}

async fn view_of(
    tx: &mut TenantTx,
    state: &AppState,
    ctx: &Ctx,
    row: Option<SettingsRow>,
) -> AppResult<SettingsView> {
    Ok(match row {
        Some(row) => {
            let hint = match &row.smtp_password_secret {
                Some(id) => secrets::hint_of(tx, id).await?,
                None => None,
            };
            SettingsView {
                from_name: row.from_name,
                from_address: row.from_address,
                reply_to: row.reply_to,
                smtp_host: row.smtp_host,
                smtp_port: row.smtp_port,
                smtp_security: row.smtp_security,
                smtp_username: row.smtp_username,
                smtp_password_hint: hint,
                custom: true,
            }
        }
        None => {
            let (name, address) = split_mailbox(&state.config.email.from);
            SettingsView {
                from_name: if name.is_empty() {
                    ctx.org.name.clone()
                } else {
                    name
                },
                from_address: address,
                reply_to: None,
                smtp_host: None,
                smtp_port: None,
                smtp_security: "starttls".to_owned(),
                smtp_username: None,
                smtp_password_hint: None,
                custom: false,
            }
        }
    })
}

/// `Name <address>` into its parts (a bare address has no name).
fn split_mailbox(text: &str) -> (String, String) {
    match text.rsplit_once('<') {
        Some((name, address)) => (
            name.trim().trim_matches('"').to_owned(),
            address.trim_end_matches('>').trim().to_owned(),
        ),
        None => (String::new(), text.trim().to_owned()),
    }
}

/// New sending settings. `smtp_password`: None keeps the stored one, `Some("")` removes it.
#[derive(Debug, Clone, Default)]
pub struct SettingsInput {
    pub from_name: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_security: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
}

pub async fn save_settings(
    state: &AppState,
    ctx: &Ctx,
    input: SettingsInput,
) -> AppResult<SettingsView> {
    ctx.require(Permission::OrgManage)?;
    let mut v = Validation::new();
    let from_name = v
        .check("from_name", required_text(&input.from_name, 1, MAX_NAME))
        .unwrap_or_default();
    if from_name.contains(['<', '>', '\r', '\n']) {
        v.add("from_name", "must not contain < > or line breaks");
    }
    let from_address = v
        .check("from_address", normalize_email(&input.from_address))
        .unwrap_or_default();
    let reply_to = match input.reply_to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => v.check("reply_to", normalize_email(text)),
    };
    let host = input
        .smtp_host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    if let Some(h) = &host
        && (h.len() > 253
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        v.add("smtp_host", "is not a host name or address");
    }
    let security = input.smtp_security.as_deref().unwrap_or("starttls");
    let security = match Security::parse(security) {
        Some(s) => s,
        None => {
            v.add("smtp_security", "must be starttls, tls or none");
            Security::StartTls
        }
    };
    let port = match (input.smtp_port, &host) {
        (Some(p), _) if !(1..=65535).contains(&p) => {
            v.add("smtp_port", "must be between 1 and 65535");
            None
        }
        (Some(p), Some(_)) => Some(p),
        (None, Some(_)) => Some(match security {
            Security::Tls => 465,
            Security::StartTls => 587,
            Security::None => 25,
        }),
        (_, None) => None,
    };
    let username = input
        .smtp_username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if host.is_none() && username.is_some() {
        v.add("smtp_host", "is required when a user name is set");
    }
    if let Some(password) = &input.smtp_password
        && password.len() > 1000
    {
        v.add("smtp_password", "must be at most 1000 characters");
    }
    v.finish().map_err(AppError::Validation)?;

    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let existing = store::settings(&mut tx).await?;
    let old_secret = existing.and_then(|e| e.smtp_password_secret);
    let password_secret = match (input.smtp_password.as_deref(), &old_secret) {
        (None, old) => old.clone(),
        (Some(""), Some(old)) => {
            secrets::delete(&mut tx, old).await?;
            None
        }
        (Some(""), None) => None,
        (Some(password), old) => Some(
            secrets::store(
                &mut tx,
                &state.config.secrets,
                Purpose::SmtpPassword,
                password,
                old.as_deref(),
            )
            .await
            .map_err(|e| AppError::Internal(e.into()))?,
        ),
    };
    let row = SettingsRow {
        from_name,
        from_address,
        reply_to,
        smtp_host: host,
        smtp_port: port,
        smtp_security: security.as_str().to_owned(),
        smtp_username: username,
        smtp_password_secret: password_secret,
        updated_at: meridian_db::now(),
    };
    store::save_settings(&mut tx, &row, ctx.user_id()).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "email.settings_changed",
            target_type: "organization",
            target_id: Some(ctx.tenant.org_id()),
            target_label: Some(ctx.org.name.as_str()),
            before: None,
            after: Some(json!({
                "from_address": row.from_address,
                "smtp_host": row.smtp_host,
                "smtp_username": row.smtp_username,
                "password_changed": input.smtp_password.is_some(),
            })),
        },
    )
    .await?;
    let view = view_of(&mut tx, state, ctx, Some(row)).await?;
    tx.commit().await?;
    Ok(view)
}
