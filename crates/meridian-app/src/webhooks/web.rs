//! Pages: Settings → Webhooks (subscriptions with their state, create with the secret shown
//! once, a subscription's delivery log with Replay, enable/disable, rotate and delete behind
//! confirmations) and Settings → Inbound forms (list, create, the snippet and hosted page).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::events::EventType;
use super::forms::{self, FormInput, FormView, STANDARD_FIELDS};
use super::service::{self, SubscriptionInput};
use super::store::{DeliveryRow, SubscriptionRow};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::leads::web::{form_pairs, form_value};
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

const ACTIVE: &str = "webhooks";
/// Characters of a response excerpt shown in the log (the whole excerpt is in the title).
const EXCERPT_PREVIEW_CHARS: usize = 120;

fn all_values(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn text(pairs: &[(String, String)], name: &str) -> String {
    form_value(pairs, name).unwrap_or_default().to_owned()
}

// ---- Webhooks -----------------------------------------------------------------------------

pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret_hint: String,
    pub last_success: String,
    pub failing_since: String,
    pub consecutive_failures: i64,
}

impl From<SubscriptionRow> for WebhookView {
    fn from(w: SubscriptionRow) -> Self {
        WebhookView {
            event_types: w.event_types(),
            id: w.id,
            url: w.url,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            secret_hint: w.secret_hint.unwrap_or_default(),
            last_success: w
                .last_success_at
                .map_or_else(|| "never".to_owned(), relative),
            failing_since: w.failing_since.map(relative).unwrap_or_default(),
            consecutive_failures: w.consecutive_failures,
        }
    }
}

/// The event types as checkboxes: (name, description, checked).
fn event_choices(checked: &[String]) -> Vec<(&'static str, &'static str, bool)> {
    EventType::ALL
        .iter()
        .map(|e| {
            (
                e.as_str(),
                e.description(),
                checked.iter().any(|c| c == e.as_str()),
            )
        })
        .collect()
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    shell: Shell,
    tab: &'static str,
    webhooks: Vec<WebhookView>,
    next_cursor: Option<String>,
    url: String,
    description: String,
    events: Vec<(&'static str, &'static str, bool)>,
    created_secret: Option<String>,
    errors: FormErrors,
}

struct CreateForm {
    url: String,
    description: String,
    event_types: Vec<String>,
    created_secret: Option<String>,
    errors: FormErrors,
}

fn blank_webhook() -> CreateForm {
    CreateForm {
        url: String::new(),
        description: String::new(),
        event_types: vec![EventType::LeadCreated.as_str().to_owned()],
        created_secret: None,
        errors: FormErrors::default(),
    }
}

async fn webhooks_response(
    state: &AppState,
    web: &WebCtx,
    cursor: Option<String>,
    notice: Option<String>,
    form: CreateForm,
) -> WebResult {
    let page = PageQuery {
        limit: Some(50),
        cursor,
    }
    .parse()?;
    let rows = service::list(state, &web.ctx, page.after_key(0), page.fetch_limit()).await?;
    let rows = Page::from_rows(rows, &page, |w| vec![w.id.clone()]);
    let mut shell = web.shell(state, "Webhooks", ACTIVE).await?;
    shell.notice = notice;
    let status = if form.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = WebhooksPage {
        shell,
        tab: "webhooks",
        next_cursor: rows.next_cursor,
        webhooks: rows.items.into_iter().map(WebhookView::from).collect(),
        url: form.url,
        description: form.description,
        events: event_choices(&form.event_types),
        created_secret: form.created_secret,
        errors: form.errors,
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    notice: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<ListQuery>,
) -> WebResult {
    let notice = (q.notice.as_deref() == Some("deleted"))
        .then(|| "Webhook deleted. Its deliveries stopped.".to_owned());
    webhooks_response(&state, &web, q.cursor, notice, blank_webhook()).await
}

fn subscription_input(pairs: &[(String, String)]) -> SubscriptionInput {
    SubscriptionInput {
        url: Some(text(pairs, "url")),
        description: Some(text(pairs, "description")),
        event_types: Some(all_values(pairs, "event_types")),
        enabled: None,
    }
}

pub async fn create_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    let pairs = form_pairs(&body);
    match service::create(&state, &web.ctx, subscription_input(&pairs)).await {
        Ok((row, secret)) => {
            let notice = Some(format!(
                "Webhook to {} created. Copy its signing secret now: it is shown only once.",
                row.url
            ));
            let form = CreateForm {
                created_secret: Some(secret),
                ..blank_webhook()
            };
            webhooks_response(&state, &web, None, notice, form).await
        }
        Err(error) => {
            let form = CreateForm {
                url: text(&pairs, "url"),
                description: text(&pairs, "description"),
                event_types: all_values(&pairs, "event_types"),
                created_secret: None,
                errors: FormErrors::from_error(error)?,
            };
            webhooks_response(&state, &web, None, None, form).await
        }
    }
}

pub struct DeliveryView {
    pub id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub status_code: String,
    pub latency: String,
    pub excerpt: String,
    pub excerpt_full: String,
    pub error: String,
    pub when: String,
    pub when_exact: String,
}

fn preview(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_PREVIEW_CHARS) {
        Some((at, _)) => format!("{}\u{2026}", &text[..at]),
        None => text.to_owned(),
    }
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> Self {
        let excerpt_full = d.last_response_excerpt.unwrap_or_default();
        DeliveryView {
            excerpt: preview(&excerpt_full),
            excerpt_full,
            status_code: d
                .last_status_code
                .map(|c| c.to_string())
                .unwrap_or_default(),
            latency: d
                .last_latency_ms
                .filter(|_| d.attempts > 0)
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            error: d.last_error.unwrap_or_default(),
            when: relative(d.created_at),
            when_exact: exact(d.created_at),
            id: d.id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
        }
    }
}

#[derive(Template)]
#[template(path = "webhook_detail.html")]
struct DetailPage {
    shell: Shell,
    webhook: WebhookView,
    events: Vec<(&'static str, &'static str, bool)>,
    url: String,
    description: String,
    deliveries: Vec<DeliveryView>,
    next_cursor: Option<String>,
    created_secret: Option<String>,
    errors: FormErrors,
}

struct EditForm {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    created_secret: Option<String>,
    errors: FormErrors,
}

fn unedited() -> EditForm {
    EditForm {
        url: None,
        description: None,
        event_types: None,
        created_secret: None,
        errors: FormErrors::default(),
    }
}

async fn detail_response(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    cursor: Option<String>,
    notice: Option<String>,
    form: EditForm,
) -> WebResult {
    let row = service::get(state, &web.ctx, id).await?;
    let page = PageQuery {
        limit: Some(25),
        cursor,
    }
    .parse()?;
    let deliveries =
        service::deliveries(state, &web.ctx, id, page.after_time()?, page.fetch_limit()).await?;
    let deliveries = Page::from_rows(deliveries, &page, |d| time_cursor(d.created_at, &d.id));
    let mut shell = web.shell(state, "Webhook", ACTIVE).await?;
    shell.notice = notice;
    let status = if form.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = DetailPage {
        shell,
        events: event_choices(&form.event_types.unwrap_or_else(|| row.event_types())),
        url: form.url.unwrap_or_else(|| row.url.clone()),
        description: form.description.unwrap_or_else(|| row.description.clone()),
        webhook: row.into(),
        next_cursor: deliveries.next_cursor,
        deliveries: deliveries
            .items
            .into_iter()
            .map(DeliveryView::from)
            .collect(),
        created_secret: form.created_secret,
        errors: form.errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn detail(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> WebResult {
    let notice = match q.notice.as_deref() {
        Some("saved") => Some("Webhook saved.".to_owned()),
        Some("enabled") => Some("Webhook enabled. New events are delivered again.".to_owned()),
        Some("disabled") => Some("Webhook disabled. Nothing is sent to it.".to_owned()),
        Some("replayed") => Some("Delivery queued to be sent again.".to_owned()),
        _ => None,
    };
    detail_response(&state, &web, &id, q.cursor, notice, unedited()).await
}

pub async fn update_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    match service::update(&state, &web.ctx, &id, subscription_input(&pairs)).await {
        Ok(_) => Ok(Redirect::to(&format!("/settings/webhooks/{id}?notice=saved")).into_response()),
        Err(error) => {
            let form = EditForm {
                url: Some(text(&pairs, "url")),
                description: Some(text(&pairs, "description")),
                event_types: Some(all_values(&pairs, "event_types")),
                created_secret: None,
                errors: FormErrors::from_error(error)?,
            };
            detail_response(&state, &web, &id, None, None, form).await
        }
    }
}

async fn set_enabled(state: &AppState, web: &WebCtx, id: &str, enabled: bool) -> WebResult {
    let input = SubscriptionInput {
        enabled: Some(enabled),
        ..SubscriptionInput::default()
    };
    service::update(state, &web.ctx, id, input).await?;
    let notice = if enabled { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/settings/webhooks/{id}?notice={notice}")).into_response())
}

pub async fn enable_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    set_enabled(&state, &web, &id, true).await
}

pub async fn disable_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    set_enabled(&state, &web, &id, false).await
}

pub async fn rotate_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let row = service::get(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Rotate signing secret", ACTIVE).await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: "Rotate the signing secret?".to_owned(),
        body: format!(
            "Deliveries to {} are signed with a new secret from now on; the receiver rejects them \
             until it has the new secret. The current one ({}) stops working at once.",
            row.url,
            row.secret_hint.unwrap_or_default()
        ),
        action: format!("/settings/webhooks/{id}/rotate"),
        confirm_label: "Rotate secret".to_owned(),
        cancel_href: format!("/settings/webhooks/{id}"),
    }))
}

pub async fn rotate_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let (_, secret) = service::rotate_secret(&state, &web.ctx, &id).await?;
    let notice = Some("New signing secret created. Copy it now: it is shown only once.".to_owned());
    let form = EditForm {
        created_secret: Some(secret),
        ..unedited()
    };
    detail_response(&state, &web, &id, None, notice, form).await
}

pub async fn delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let row = service::get(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Delete webhook", ACTIVE).await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: "Delete this webhook?".to_owned(),
        body: format!(
            "{} receives no more events, and its delivery log and signing secret are deleted. \
             This cannot be undone.",
            row.url
        ),
        action: format!("/settings/webhooks/{id}/delete"),
        confirm_label: "Delete webhook".to_owned(),
        cancel_href: format!("/settings/webhooks/{id}"),
    }))
}

pub async fn delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    service::delete(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/settings/webhooks?notice=deleted").into_response())
}

pub async fn replay_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let (delivery, _) = service::delivery(&state, &web.ctx, &id).await?;
    let back = format!("/settings/webhooks/{}", delivery.subscription_id);
    match service::replay(&state, &web.ctx, &id).await {
        Ok(_) => Ok(Redirect::to(&format!("{back}?notice=replayed")).into_response()),
        Err(AppError::Conflict(detail)) => {
            let form = EditForm {
                errors: FormErrors {
                    general: Some(detail),
                    ..FormErrors::default()
                },
                ..unedited()
            };
            detail_response(&state, &web, &delivery.subscription_id, None, None, form)
                .await
                .map(|mut response| {
                    *response.status_mut() = StatusCode::CONFLICT;
                    response
                })
        }
        Err(error) => Err(error.into()),
    }
}

// ---- Inbound forms ------------------------------------------------------------------------

pub struct FormSummary {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub pipeline: String,
    pub fields: String,
    pub page_url: String,
}

fn summary(state: &AppState, form: FormView) -> FormSummary {
    FormSummary {
        page_url: forms::page_url(state, &form.row.form_key),
        pipeline: form
            .pipeline
            .map(|p| p.spec.name)
            .unwrap_or_else(|| "(no pipeline)".to_owned()),
        fields: form
            .inputs
            .iter()
            .map(|i| i.label.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        id: form.row.id,
        name: form.row.name,
        enabled: form.row.enabled,
    }
}

/// The choices of a form's editor: pipelines, and the stages and fields of the chosen one.
struct Choices {
    pipelines: Vec<(String, String)>,
    stages: Vec<(String, String)>,
    /// (name, label, checked)
    fields: Vec<(String, String, bool)>,
}

async fn choices(
    state: &AppState,
    web: &WebCtx,
    pipeline_id: &str,
    fields: &[String],
) -> Result<Choices, AppError> {
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let pipeline = forms::pipeline_of(Some(pipeline_id).filter(|p| !p.is_empty()), &pipelines);
    let custom = pipeline
        .map(|p| {
            p.spec
                .fields
                .iter()
                .map(|f| (format!("cf.{}", f.key), f.label.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Ok(Choices {
        fields: STANDARD_FIELDS
            .iter()
            .map(|(name, label, _)| ((*name).to_owned(), (*label).to_owned()))
            .chain(custom)
            .map(|(name, label)| {
                let checked = fields.contains(&name);
                (name, label, checked)
            })
            .collect(),
        stages: pipeline
            .map(|p| {
                p.spec
                    .stages
                    .iter()
                    .map(|s| (s.key.clone(), s.label.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        pipelines: pipelines.into_iter().map(|p| (p.id, p.spec.name)).collect(),
    })
}

#[derive(Template)]
#[template(path = "inbound_forms.html")]
struct FormsPage {
    shell: Shell,
    tab: &'static str,
    forms: Vec<FormSummary>,
    next_cursor: Option<String>,
    name: String,
    pipeline_id: String,
    pipelines: Vec<(String, String)>,
    errors: FormErrors,
}

/// A form's editor as submitted (or as stored).
struct FormValues {
    name: String,
    pipeline_id: String,
    stage: String,
    fields: Vec<String>,
    redirect_url: String,
    enabled: bool,
}

fn form_values(pairs: &[(String, String)]) -> FormValues {
    FormValues {
        name: text(pairs, "name"),
        pipeline_id: text(pairs, "pipeline_id"),
        stage: text(pairs, "stage"),
        fields: all_values(pairs, "fields"),
        redirect_url: text(pairs, "redirect_url"),
        enabled: form_value(pairs, "enabled").is_some(),
    }
}

/// An empty text clears the optional setting.
fn optional(text: &str) -> Option<Option<String>> {
    Some(Some(text.to_owned()).filter(|s| !s.trim().is_empty()))
}

async fn forms_response(
    state: &AppState,
    web: &WebCtx,
    cursor: Option<String>,
    notice: Option<String>,
    (name, pipeline_id): (String, String),
    errors: FormErrors,
) -> WebResult {
    let page = PageQuery {
        limit: Some(50),
        cursor,
    }
    .parse()?;
    let rows = forms::list(state, &web.ctx, page.after_key(0), page.fetch_limit()).await?;
    let rows = Page::from_rows(rows, &page, |f| vec![f.row.id.clone()]);
    let pipelines = choices(state, web, &pipeline_id, &[]).await?.pipelines;
    let mut shell = web.shell(state, "Inbound forms", ACTIVE).await?;
    shell.notice = notice;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = FormsPage {
        shell,
        tab: "forms",
        next_cursor: rows.next_cursor,
        forms: rows.items.into_iter().map(|f| summary(state, f)).collect(),
        name,
        pipeline_id,
        pipelines,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn forms_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<ListQuery>,
) -> WebResult {
    let notice = (q.notice.as_deref() == Some("deleted"))
        .then(|| "Form deleted. Its address no longer accepts submissions.".to_owned());
    let blank = (String::new(), String::new());
    forms_response(&state, &web, q.cursor, notice, blank, FormErrors::default()).await
}

/// Creates a form with a name and a pipeline; the rest starts from the defaults and is edited on
/// its page.
pub async fn form_create_submit(
    State(state): State<AppState>,
    web: WebCtx,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let (name, pipeline_id) = (text(&pairs, "name"), text(&pairs, "pipeline_id"));
    let input = FormInput {
        name: Some(name.clone()),
        pipeline_id: optional(&pipeline_id),
        ..FormInput::default()
    };
    match forms::create(&state, &web.ctx, input).await {
        Ok(form) => Ok(Redirect::to(&format!(
            "/settings/inbound-forms/{}?notice=created",
            form.row.id
        ))
        .into_response()),
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            forms_response(&state, &web, None, None, (name, pipeline_id), errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "inbound_form_detail.html")]
struct FormDetailPage {
    shell: Shell,
    id: String,
    form_name: String,
    page_url: String,
    endpoint_url: String,
    snippet: String,
    values: FormValues,
    choices: Choices,
    errors: FormErrors,
}

async fn form_detail_response(
    state: &AppState,
    web: &WebCtx,
    id: &str,
    notice: Option<String>,
    values: Option<FormValues>,
    errors: FormErrors,
) -> WebResult {
    let form = forms::get(state, &web.ctx, id).await?;
    let values = values.unwrap_or_else(|| FormValues {
        name: form.row.name.clone(),
        pipeline_id: form.row.pipeline_id.clone().unwrap_or_default(),
        stage: form.row.stage.clone().unwrap_or_default(),
        fields: form.row.fields(),
        redirect_url: form.row.redirect_url.clone().unwrap_or_default(),
        enabled: form.row.enabled,
    });
    let choices = choices(state, web, &values.pipeline_id, &values.fields).await?;
    let mut shell = web.shell(state, "Inbound form", ACTIVE).await?;
    shell.notice = notice;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = FormDetailPage {
        shell,
        snippet: forms::snippet(state, &form),
        page_url: forms::page_url(state, &form.row.form_key),
        endpoint_url: forms::endpoint_url(state, &form.row.form_key),
        id: form.row.id,
        form_name: form.row.name,
        values,
        choices,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn form_detail(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> WebResult {
    let notice = match q.notice.as_deref() {
        Some("created") => {
            Some("Form created. Paste the snippet into your site or share its page.".to_owned())
        }
        Some("saved") => Some("Form saved.".to_owned()),
        _ => None,
    };
    form_detail_response(&state, &web, &id, notice, None, FormErrors::default()).await
}

pub async fn form_update_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let values = form_values(&form_pairs(&body));
    let input = FormInput {
        name: Some(values.name.clone()),
        pipeline_id: optional(&values.pipeline_id),
        stage: optional(&values.stage),
        fields: Some(values.fields.clone()),
        redirect_url: optional(&values.redirect_url),
        enabled: Some(values.enabled),
    };
    match forms::update(&state, &web.ctx, &id, input).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/settings/inbound-forms/{id}?notice=saved")).into_response())
        }
        Err(error) => {
            let errors = FormErrors::from_error(error)?;
            form_detail_response(&state, &web, &id, None, Some(values), errors).await
        }
    }
}

pub async fn form_delete_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    let form = forms::get(&state, &web.ctx, &id).await?;
    let shell = web.shell(&state, "Delete form", ACTIVE).await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Delete \u{201c}{}\u{201d}?", form.row.name),
        body: "Its page and address stop accepting submissions at once, so any site that embeds \
               it shows an error. The leads it created stay. This cannot be undone."
            .to_owned(),
        action: format!("/settings/inbound-forms/{id}/delete"),
        confirm_label: "Delete form".to_owned(),
        cancel_href: format!("/settings/inbound-forms/{id}"),
    }))
}

pub async fn form_delete_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    forms::delete(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/settings/inbound-forms?notice=deleted").into_response())
}
