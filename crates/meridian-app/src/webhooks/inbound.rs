//! Inbound lead capture, the public side: `POST /api/v1/inbound/{form_key}` (JSON or a form
//! post, no sign-in: the key names the form and its organization) and the hosted page
//! `GET /forms/{form_key}`.
//!
//! A submission becomes a lead through the leads service like any other (validation,
//! normalization, the duplicate-email check, activity, `lead.created` webhooks), acting as the
//! form. It is rate-limited per form and client address; a filled honeypot gets the usual answer
//! and creates nothing; an `Idempotency-Key` seen in the last 24 hours answers with the lead the
//! first request created.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use meridian_core::{FieldError, Role};
use meridian_db::Tenant;
use serde_json::{Map, Value};

use super::forms::{self, HONEYPOT, Input, UTM_FIELDS};
use super::store::{self, FormRow, KeyedForm};
use crate::auth::throttle::{self, Limit};
use crate::auth::tokens::hash_secret;
use crate::http::client::ClientInfo;
use crate::http::ctx::{Ctx, OrgRef};
use crate::http::error::{AppError, AppResult, Problem};
use crate::leads::input::LeadInput;
use crate::pipelines::store::Pipeline;
use crate::state::AppState;
use crate::web::{FormErrors, render, theme_from};

/// Submissions per form from one address.
pub const SUBMISSIONS: Limit = Limit {
    kind: "inbound_form+address",
    allowed: 10,
    window: time::Duration::minutes(10),
};
/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW: time::Duration = time::Duration::hours(24);
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The enabled form with this key.
async fn find_form(state: &AppState, form_key: &str) -> AppResult<Option<KeyedForm>> {
    let key_hash = hash_secret(form_key);
    let mut tx = state.db.credential_read(&key_hash).await?;
    let form = store::form_by_key(&mut tx, &key_hash).await?;
    tx.commit().await?;
    Ok(form.filter(|f| f.form.enabled))
}

/// The form acting as the author of its leads: a manager's reach (any stage it is set to start
/// in), and an actor label that says which form it was.
fn form_ctx(form: &KeyedForm, client: ClientInfo) -> Ctx {
    let org = OrgRef {
        id: form.org_id.clone(),
        name: form.org_name.clone(),
    };
    let label = format!("Form \u{201c}{}\u{201d}", form.form.name);
    Ctx {
        role: Role::Manager,
        client,
        ..Ctx::operator(org, &label)
    }
}

fn flatten(pairs: &mut Vec<(String, String)>, name: String, value: Value) -> AppResult<()> {
    match value {
        Value::Null => {}
        Value::String(text) => pairs.push((name, text)),
        Value::Number(n) => pairs.push((name, n.to_string())),
        Value::Bool(b) => pairs.push((name, b.to_string())),
        Value::Array(items) => {
            for item in items {
                if item.is_array() || item.is_object() {
                    return Err(AppError::field(&name, "must be a list of values"));
                }
                flatten(pairs, name.clone(), item)?;
            }
        }
        Value::Object(fields) if name == "custom_fields" => {
            for (key, value) in fields {
                flatten(pairs, format!("cf.{key}"), value)?;
            }
        }
        Value::Object(_) => {
            return Err(AppError::field(
                &name,
                "must be a text, number or true/false value",
            ));
        }
    }
    Ok(())
}

/// The submission as name/value pairs, whichever way it was sent (custom fields as `cf.<key>`,
/// or in a JSON `custom_fields` object).
fn parse_body(headers: &HeaderMap, body: &Bytes) -> AppResult<Vec<(String, String)>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(crate::leads::web::form_pairs(body));
    }
    if content_type.starts_with("application/json") || content_type.contains("+json") {
        let fields: Map<String, Value> = crate::http::json::parse_json(body)?;
        let mut pairs = Vec::new();
        for (name, value) in fields {
            flatten(&mut pairs, name, value)?;
        }
        return Ok(pairs);
    }
    Err(AppError::BadRequest(
        "Send the submission as JSON (application/json) or as a form \
         (application/x-www-form-urlencoded)."
            .to_owned(),
    ))
}

fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if (1..=MAX_IDEMPOTENCY_KEY).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(AppError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )),
    }
}

/// The lead the form's fields describe: only the fields it collects (and UTM attribution) are
/// taken from the visitor; pipeline, stage and source are the form's.
fn lead_input(
    form: &FormRow,
    pipeline: &Pipeline,
    pairs: &[(String, String)],
) -> AppResult<LeadInput> {
    let accepted = form.fields();
    let mut kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(name, _)| accepted.contains(name) || UTM_FIELDS.contains(&name.as_str()))
        .cloned()
        .collect();
    kept.push(("pipeline_id".to_owned(), pipeline.id.clone()));
    if let Some(stage) = &form.stage {
        kept.push(("stage".to_owned(), stage.clone()));
    }
    kept.push(("source".to_owned(), "web_form".to_owned()));
    crate::leads::web::to_input(&kept, &pipeline.spec, true)
}

/// What a visitor may learn from a refusal: field errors under the names the form posts, and no
/// record ids.
fn public_error(error: AppError) -> AppError {
    match error {
        AppError::Duplicate { .. } => AppError::Conflict(
            "We already have your details: a record with this email address exists.".to_owned(),
        ),
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|e| FieldError {
                    field: e.field.replace("custom_fields.", "cf."),
                    message: e.message,
                })
                .collect(),
        ),
        other => other,
    }
}

/// A submission that got through.
struct Received {
    lead_id: String,
    /// The answer to an earlier request with the same Idempotency-Key.
    replayed: bool,
}

async fn receive(
    state: &AppState,
    form: &KeyedForm,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    client: ClientInfo,
) -> AppResult<Received> {
    let address = client.ip.clone().unwrap_or_else(|| "unknown".to_owned());
    throttle::take(&state.db, &SUBMISSIONS, &[&form.form.id, &address]).await?;
    if pairs
        .iter()
        .any(|(name, value)| name == HONEYPOT && !value.trim().is_empty())
    {
        tracing::info!(form = %form.form.id, "honeypot filled in: submission dropped");
        return Ok(Received {
            lead_id: meridian_db::new_id(),
            replayed: false,
        });
    }
    let key = idempotency_key(headers)?;
    let ctx = form_ctx(form, client);
    let form_id = form.form.id.as_str();
    let since = meridian_db::now() - IDEMPOTENCY_WINDOW;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    if let Some(key) = &key {
        let claimed = match store::submission(&mut tx, form_id, key, since).await? {
            Some(_) => false,
            None => store::claim_submission(&mut tx, form_id, key, since).await?,
        };
        if !claimed {
            // Answered before, or a concurrent request held the key until it committed.
            let lead = store::submission(&mut tx, form_id, key, since).await?;
            tx.commit().await?;
            return match lead {
                Some(lead_id) => Ok(Received {
                    lead_id,
                    replayed: true,
                }),
                None => Err(AppError::Conflict(
                    "A request with this Idempotency-Key is still being processed; retry shortly."
                        .to_owned(),
                )),
            };
        }
    }
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let pipeline = forms::pipeline_of(form.form.pipeline_id.as_deref(), &pipelines)
        .ok_or_else(|| AppError::Conflict("This form's pipeline no longer exists.".to_owned()))?;
    let input = lead_input(&form.form, pipeline, pairs)?;
    let lead = crate::leads::service::create_in(&mut tx, &ctx, input)
        .await
        .map_err(public_error)?;
    crate::automations::engine::inbound_received(
        &mut tx,
        &ctx,
        &lead.row,
        form_id,
        &form.form.name,
    )
    .await?;
    if let Some(key) = &key {
        store::complete_submission(&mut tx, form_id, key, &lead.row.id).await?;
    }
    tx.commit().await?;
    crate::jobs::wake();
    Ok(Received {
        lead_id: lead.row.id,
        replayed: false,
    })
}

/// A browser posting the form (rather than a script or a server) gets pages back.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Any site may post to a form (that is what it is for); no credentials are involved.
fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// `OPTIONS /api/v1/inbound/{form_key}`: lets scripts on other sites post JSON.
pub async fn preflight() -> Response {
    let mut response = allow_any_origin(StatusCode::NO_CONTENT.into_response());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, idempotency-key"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

fn refused(html: bool, error: AppError) -> Response {
    allow_any_origin(if html {
        crate::web::error_response(error)
    } else {
        error.into_response()
    })
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InboundReceived {
    pub lead_id: String,
}

/// Public, no credentials: creates a lead from a form submission (JSON, or
/// `application/x-www-form-urlencoded` from a browser, which gets a page back). Fields the form
/// does not collect are ignored; `utm_*` are kept; custom fields are `cf.<key>` (or a JSON
/// `custom_fields` object). A filled-in `website` field (the honeypot) creates nothing. The same
/// `Idempotency-Key` within 24 hours answers with the first lead (header `Idempotent-Replayed`).
/// At most 10 submissions per form and address in 10 minutes (429 with Retry-After).
#[utoipa::path(post, path = "/api/v1/inbound/{form_key}", tag = "webhooks",
    params(("form_key" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = Object, content_type = "application/json"),
    security(()),
    responses((status = 201, body = InboundReceived), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn submit(
    State(state): State<AppState>,
    Path(form_key): Path<String>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let html = wants_html(&headers);
    let form = match find_form(&state, &form_key).await {
        Ok(Some(form)) => form,
        Ok(None) => return refused(html, AppError::NotFound),
        Err(error) => return refused(html, error),
    };
    let pairs = match parse_body(&headers, &body) {
        Ok(pairs) => pairs,
        Err(error) => return refused(html, error),
    };
    let received = receive(&state, &form, &headers, &pairs, client).await;
    if !html {
        return allow_any_origin(match received {
            Ok(received) => {
                let body = InboundReceived {
                    lead_id: received.lead_id,
                };
                let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
                if received.replayed {
                    response
                        .headers_mut()
                        .insert("idempotent-replayed", HeaderValue::from_static("true"));
                }
                response
            }
            Err(error) => error.into_response(),
        });
    }
    let shown = match received {
        Ok(_) => match &form.form.redirect_url {
            Some(url) => return allow_any_origin(Redirect::to(url).into_response()),
            None => page(&state, &form, &headers, &[], FormErrors::default(), true).await,
        },
        Err(error) => {
            let status = error.status();
            match FormErrors::from_error(error) {
                Ok(errors) => page(&state, &form, &headers, &pairs, errors, false)
                    .await
                    .map(|mut response| {
                        *response.status_mut() = status;
                        response
                    }),
                Err(error) => Err(error),
            }
        }
    };
    match shown {
        Ok(response) => allow_any_origin(response),
        Err(error) => refused(html, error),
    }
}

/// `GET /forms/{form_key}`: the form as a page of its own, to link to or open from an ad.
/// Query parameters fill the inputs of the same name (UTM attribution, a known email).
pub async fn hosted(
    State(state): State<AppState>,
    Path(form_key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let form = match find_form(&state, &form_key).await {
        Ok(Some(form)) => form,
        Ok(None) => return crate::web::error_response(AppError::NotFound),
        Err(error) => return crate::web::error_response(error),
    };
    let pairs = crate::leads::api::query_pairs(query.as_deref());
    page(
        &state,
        &form,
        &headers,
        &pairs,
        FormErrors::default(),
        false,
    )
    .await
    .unwrap_or_else(crate::web::error_response)
}

/// An input with what the visitor sent for it.
pub struct Field {
    pub input: Input,
    pub values: Vec<String>,
    pub error: Option<String>,
}

impl Field {
    pub fn value(&self) -> &str {
        self.values.first().map_or("", String::as_str)
    }

    pub fn has(&self, option: &str) -> bool {
        self.values.iter().any(|v| v == option)
    }
}

#[derive(Template)]
#[template(path = "inbound_form.html")]
struct FormPage {
    theme: Option<&'static str>,
    org_name: String,
    form_name: String,
    action: String,
    fields: Vec<Field>,
    /// Hidden attribution inputs, carried from the page's address or the submission.
    utm: Vec<(&'static str, String)>,
    honeypot: &'static str,
    /// A problem no input shows (a rate limit, a duplicate, a field the form does not collect).
    general_error: Option<String>,
    received: bool,
}

async fn page(
    state: &AppState,
    form: &KeyedForm,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    errors: FormErrors,
    received: bool,
) -> AppResult<Response> {
    let tenant = Tenant::for_verified_credentials(&form.org_id, None);
    let mut tx = state.db.tenant_read(&tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let pipeline = forms::pipeline_of(form.form.pipeline_id.as_deref(), &pipelines);
    let values = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let fields: Vec<Field> = forms::inputs(&form.form.fields(), pipeline)
        .into_iter()
        .map(|input| Field {
            values: values(&input.name),
            error: errors.get(&input.name).map(str::to_owned),
            input,
        })
        .collect();
    let general_error = errors.general.clone().or_else(|| {
        errors
            .fields
            .iter()
            .find(|e| !fields.iter().any(|f| f.input.name == e.field))
            .map(|e| format!("{} {}", e.field, e.message))
    });
    Ok(render(&FormPage {
        theme: theme_from(headers),
        org_name: form.org_name.clone(),
        form_name: form.form.name.clone(),
        action: format!("/api/v1/inbound/{}", form.form.form_key),
        utm: UTM_FIELDS
            .iter()
            .map(|name| (*name, values(name).into_iter().next().unwrap_or_default()))
            .collect(),
        fields,
        honeypot: HONEYPOT,
        general_error,
        received,
    }))
}
