use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::forms::{self, FormInput, FormView};
use super::service::{self, SubscriptionInput};
use super::store::{AttemptRow, DeliveryRow, SubscriptionRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery, time_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub description: String,
    /// lead.created, lead.stage_changed, task.completed.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the server disabled it (410 Gone, repeated failures); null when enabled or disabled by
    /// a person.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// The signing secret's last characters. The secret itself is shown only when created or
    /// rotated.
    pub secret_hint: Option<String>,
    /// Deliveries that ended failed since the last one that got through.
    pub consecutive_failures: i64,
    /// The first failed attempt since the endpoint last answered 2xx.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<SubscriptionRow> for WebhookOut {
    fn from(w: SubscriptionRow) -> Self {
        WebhookOut {
            event_types: w.event_types(),
            id: w.id,
            url: w.url,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at,
            secret_hint: w.secret_hint,
            consecutive_failures: w.consecutive_failures,
            failing_since: w.failing_since,
            last_success_at: w.last_success_at,
            created_by: w.created_by,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A subscription with its signing secret: only in the responses that create or rotate it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// `whsec_` + base64 of the HMAC key (Standard Webhooks). Store it now: it is not shown again.
    pub secret: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `https://` (or `http://`) address that receives the POSTs.
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Default true. Enabling a subscription the server disabled clears its failure record.
    pub enabled: Option<bool>,
}

impl From<WebhookRequest> for SubscriptionInput {
    fn from(r: WebhookRequest) -> Self {
        SubscriptionInput {
            url: r.url,
            description: r.description,
            event_types: r.event_types,
            enabled: r.enabled,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = inline(Page<WebhookOut>)), (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<WebhookOut>>> {
    let page = query.parse()?;
    let rows = service::list(&state, &ctx, page.after_key(0), page.fetch_limit()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |w| vec![w.id.clone()]).map(WebhookOut::from),
    ))
}

/// Subscribes a URL to events. The response carries the signing secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, body = WebhookWithSecret), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<WebhookRequest>,
) -> AppResult<(StatusCode, axum::Json<WebhookWithSecret>)> {
    let (row, secret) = service::create(&state, &ctx, body.into()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookWithSecret {
            webhook: row.into(),
            secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<WebhookOut>> {
    Ok(axum::Json(service::get(&state, &ctx, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookRequest,
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<WebhookRequest>,
) -> AppResult<axum::Json<WebhookOut>> {
    Ok(axum::Json(
        service::update(&state, &ctx, &id, body.into())
            .await?
            .into(),
    ))
}

/// Deletes the subscription, its secret and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret at once; the response carries the new one, once.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = Problem)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<WebhookWithSecret>> {
    let (row, secret) = service::rotate_secret(&state, &ctx, &id).await?;
    Ok(axum::Json(WebhookWithSecret {
        webhook: row.into(),
        secret,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Also the `webhook-id` header: the same on every attempt and replay.
    pub id: String,
    pub webhook_id: String,
    pub event_type: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_latency_ms: Option<i64>,
    /// Up to 1 KiB of the last response's body.
    pub last_response_excerpt: Option<String>,
    pub last_error: Option<String>,
    /// The body sent: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failed_at: Option<OffsetDateTime>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(d: DeliveryRow) -> Self {
        DeliveryOut {
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
            id: d.id,
            webhook_id: d.subscription_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_latency_ms: d.last_latency_ms,
            last_response_excerpt: d.last_response_excerpt,
            last_error: d.last_error,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            delivered_at: d.delivered_at,
            failed_at: d.failed_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    /// From 1 over the delivery's life (replays continue the count).
    pub attempt: i64,
    /// Null when no answer came (the error says why).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<AttemptRow> for AttemptOut {
    fn from(a: AttemptRow) -> Self {
        AttemptOut {
            attempt: a.attempt,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            error: a.error,
            at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    pub attempt_log: Vec<AttemptOut>,
}

/// The subscription's deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = inline(Page<DeliveryOut>)), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<DeliveryOut>>> {
    let page = query.parse()?;
    let rows =
        service::deliveries(&state, &ctx, &id, page.after_time()?, page.fetch_limit()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |d| time_cursor(d.created_at, &d.id)).map(DeliveryOut::from),
    ))
}

/// A delivery with every attempt: status code, latency, response excerpt, error.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = Problem)))]
pub async fn delivery(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<DeliveryDetail>> {
    let (row, attempts) = service::delivery(&state, &ctx, &id).await?;
    Ok(axum::Json(DeliveryDetail {
        delivery: row.into(),
        attempt_log: attempts.into_iter().map(AttemptOut::from).collect(),
    }))
}

/// Sends the delivery again (same body and `webhook-id`, new timestamp and signature); 409 while
/// it is still queued or its subscription is disabled.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/replay", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, body = DeliveryOut), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn replay(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, axum::Json<DeliveryOut>)> {
    let row = service::replay(&state, &ctx, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(row.into())))
}

// ---- Inbound forms ------------------------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundFormOut {
    pub id: String,
    pub name: String,
    /// Public: it is in the form's address.
    pub form_key: String,
    pub enabled: bool,
    /// Null: the organization's first pipeline.
    pub pipeline_id: Option<String>,
    /// Null: the pipeline's first stage.
    pub stage: Option<String>,
    /// Lead fields the form collects: first_name, last_name, email, phone, state, country,
    /// date_of_birth, cf.<custom field key>. UTM fields are always accepted.
    pub fields: Vec<String>,
    /// Where a browser goes after submitting (null: a thank-you page).
    pub redirect_url: Option<String>,
    /// POST JSON or a form here.
    pub endpoint_url: String,
    /// The form as a hosted page.
    pub page_url: String,
    /// A `<form>` to paste into a web page.
    pub html_snippet: String,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn form_out(state: &AppState, form: FormView) -> InboundFormOut {
    let html_snippet = forms::snippet(state, &form);
    let r = form.row;
    InboundFormOut {
        endpoint_url: forms::endpoint_url(state, &r.form_key),
        page_url: forms::page_url(state, &r.form_key),
        html_snippet,
        fields: r.fields(),
        id: r.id,
        name: r.name,
        form_key: r.form_key,
        enabled: r.enabled,
        pipeline_id: r.pipeline_id,
        stage: r.stage,
        redirect_url: r.redirect_url,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundFormRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub pipeline_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub stage: Option<Option<String>>,
    /// Default: first_name, last_name, email, phone.
    pub fields: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub redirect_url: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl From<InboundFormRequest> for FormInput {
    fn from(r: InboundFormRequest) -> Self {
        FormInput {
            name: r.name,
            pipeline_id: r.pipeline_id,
            stage: r.stage,
            fields: r.fields,
            redirect_url: r.redirect_url,
            enabled: r.enabled,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/inbound-forms", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = inline(Page<InboundFormOut>)), (status = 403, body = Problem)))]
pub async fn list_forms(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<InboundFormOut>>> {
    let page = query.parse()?;
    let rows = forms::list(&state, &ctx, page.after_key(0), page.fetch_limit()).await?;
    Ok(axum::Json(
        Page::from_rows(rows, &page, |f| vec![f.row.id.clone()]).map(|f| form_out(&state, f)),
    ))
}

#[utoipa::path(post, path = "/api/v1/inbound-forms", tag = "webhooks", request_body = InboundFormRequest,
    responses((status = 201, body = InboundFormOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<InboundFormRequest>,
) -> AppResult<(StatusCode, axum::Json<InboundFormOut>)> {
    let form = forms::create(&state, &ctx, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(form_out(&state, form))))
}

#[utoipa::path(get, path = "/api/v1/inbound-forms/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = InboundFormOut), (status = 404, body = Problem)))]
pub async fn get_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<axum::Json<InboundFormOut>> {
    let form = forms::get(&state, &ctx, &id).await?;
    Ok(axum::Json(form_out(&state, form)))
}

#[utoipa::path(patch, path = "/api/v1/inbound-forms/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = InboundFormRequest,
    responses((status = 200, body = InboundFormOut), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Json(body): Json<InboundFormRequest>,
) -> AppResult<axum::Json<InboundFormOut>> {
    let form = forms::update(&state, &ctx, &id, body.into()).await?;
    Ok(axum::Json(form_out(&state, form)))
}

/// Deletes a form (its leads stay); its address stops accepting submissions.
#[utoipa::path(delete, path = "/api/v1/inbound-forms/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_form(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    forms::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
