//! The lead form (new lead, and the Overview tab's edit form): form fields in, `LeadInput` out,
//! with custom fields typed by the pipeline's definitions.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use meridian_core::crm::{LeadSource, Picklist};
use meridian_core::pipeline::{FieldType, PipelineSpec};
use serde_json::{Map, Value, json};

use super::{display_value, form_pairs, form_value};
use crate::http::error::AppError;
use crate::leads::api::query_pairs;
use crate::leads::input::LeadInput;
use crate::leads::service;
use crate::leads::store::LeadRow;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, render};

/// The plain text fields of the form, in display order, with their labels and input types.
pub const TEXT_FIELDS: [(&str, &str, &str); 14] = [
    ("first_name", "First name", "text"),
    ("last_name", "Last name", "text"),
    ("email", "Email", "email"),
    ("phone", "Phone", "tel"),
    ("state", "State or province", "text"),
    ("country", "Country", "text"),
    ("date_of_birth", "Date of birth", "date"),
    ("utm_source", "UTM source", "text"),
    ("utm_medium", "UTM medium", "text"),
    ("utm_campaign", "UTM campaign", "text"),
    ("utm_content", "UTM content", "text"),
    ("utm_term", "UTM term", "text"),
    ("campaign_id", "Campaign id", "text"),
    ("tags", "Tags", "text"),
];

pub struct TextInput {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
}

pub struct CustomInput {
    pub key: String,
    /// The name validation errors use for this field (`custom_fields.<key>`).
    pub error_key: String,
    pub name: String,
    pub label: String,
    /// text, number, date, url, email, tel, select, multi or bool.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<(String, bool)>,
    pub required: bool,
}

/// The form's current values: from the stored lead, or as the person typed them.
pub struct LeadForm {
    pub fields: Vec<TextInput>,
    pub source: String,
    pub custom: Vec<CustomInput>,
}

fn kind_of(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Text => "text",
        FieldType::Number => "number",
        FieldType::Date => "date",
        FieldType::Select => "select",
        FieldType::MultiSelect => "multi",
        FieldType::Boolean => "bool",
        FieldType::Url => "url",
        FieldType::Email => "email",
        FieldType::Phone => "tel",
    }
}

impl LeadForm {
    pub fn from_lead(row: &LeadRow, tags: &[String], spec: &PipelineSpec) -> LeadForm {
        let custom: Map<String, Value> =
            serde_json::from_str(&row.custom_fields).unwrap_or_default();
        let text = |name: &str| -> String {
            match name {
                "first_name" => row.first_name.clone(),
                "last_name" => row.last_name.clone(),
                "email" => row.email.clone().unwrap_or_default(),
                "phone" => row.phone.clone().unwrap_or_default(),
                "state" => row.state.clone().unwrap_or_default(),
                "country" => row.country.clone().unwrap_or_default(),
                "date_of_birth" => row.date_of_birth.clone().unwrap_or_default(),
                "utm_source" => row.utm_source.clone().unwrap_or_default(),
                "utm_medium" => row.utm_medium.clone().unwrap_or_default(),
                "utm_campaign" => row.utm_campaign.clone().unwrap_or_default(),
                "utm_content" => row.utm_content.clone().unwrap_or_default(),
                "utm_term" => row.utm_term.clone().unwrap_or_default(),
                "campaign_id" => row.campaign_id.clone().unwrap_or_default(),
                "tags" => tags.join(", "),
                _ => String::new(),
            }
        };
        let values = |key: &str| -> Vec<String> {
            match custom.get(key) {
                Some(Value::Array(items)) => items.iter().map(display_value).collect(),
                Some(Value::Bool(b)) => vec![b.to_string()],
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![display_value(other)],
            }
        };
        LeadForm::build(&text, &row.source, spec, &values)
    }

    pub fn from_pairs(pairs: &[(String, String)], spec: &PipelineSpec) -> LeadForm {
        let text = |name: &str| form_value(pairs, name).unwrap_or("").to_owned();
        let values = |key: &str| -> Vec<String> {
            let name = format!("cf.{key}");
            pairs
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        LeadForm::build(
            &text,
            form_value(pairs, "source").unwrap_or("manual"),
            spec,
            &values,
        )
    }

    fn build(
        text: &dyn Fn(&str) -> String,
        source: &str,
        spec: &PipelineSpec,
        values: &dyn Fn(&str) -> Vec<String>,
    ) -> LeadForm {
        LeadForm {
            fields: TEXT_FIELDS
                .iter()
                .map(|(name, label, kind)| TextInput {
                    name,
                    label,
                    kind,
                    value: text(name),
                })
                .collect(),
            source: source.to_owned(),
            custom: spec
                .fields
                .iter()
                .map(|f| {
                    let current = values(&f.key);
                    CustomInput {
                        name: format!("cf.{}", f.key),
                        error_key: format!("custom_fields.{}", f.key),
                        key: f.key.clone(),
                        label: f.label.clone(),
                        kind: kind_of(f.field_type),
                        value: current.first().cloned().unwrap_or_default(),
                        options: f
                            .options
                            .iter()
                            .map(|o| (o.clone(), current.contains(o)))
                            .collect(),
                        required: f.required,
                    }
                })
                .collect(),
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map_or("", |f| f.value.as_str())
    }
}

/// Builds the API input from the form. Empty text clears a field; custom values are typed so
/// that a bad number is reported by the same validation as the API's.
pub fn to_input(
    pairs: &[(String, String)],
    spec: &PipelineSpec,
    creating: bool,
) -> Result<LeadInput, AppError> {
    let mut body = Map::new();
    for (name, _, _) in TEXT_FIELDS {
        if name == "tags" {
            continue;
        }
        let value = form_value(pairs, name).map(str::trim).unwrap_or("");
        let value = if value.is_empty() {
            Value::Null
        } else {
            Value::String(value.to_owned())
        };
        if name == "first_name" || name == "last_name" {
            body.insert(
                name.to_owned(),
                if value.is_null() { json!("") } else { value },
            );
        } else if !(creating && value.is_null()) {
            body.insert(name.to_owned(), value);
        }
    }
    if let Some(source) = form_value(pairs, "source").filter(|s| !s.is_empty()) {
        body.insert("source".to_owned(), json!(source));
    }
    let tags: Vec<String> = form_value(pairs, "tags")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    body.insert("tags".to_owned(), json!(tags));
    let mut custom = Map::new();
    for field in &spec.fields {
        let name = format!("cf.{}", field.key);
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        let value = match (field.field_type, values.first()) {
            (FieldType::MultiSelect, _) => {
                if values.is_empty() {
                    Value::Null
                } else {
                    json!(values)
                }
            }
            (_, None) => Value::Null,
            (FieldType::Number, Some(v)) => v
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| json!(v), Value::Number),
            (FieldType::Boolean, Some(v)) => match *v {
                "true" => json!(true),
                "false" => json!(false),
                other => json!(other),
            },
            (_, Some(v)) => json!(v),
        };
        if !(creating && value.is_null()) {
            custom.insert(field.key.clone(), value);
        }
    }
    body.insert("custom_fields".to_owned(), Value::Object(custom));
    if creating {
        for name in ["pipeline_id", "stage", "assigned_to"] {
            if let Some(value) = form_value(pairs, name).filter(|v| !v.is_empty()) {
                body.insert(name.to_owned(), json!(value));
            }
        }
        if form_value(pairs, "is_priority") == Some("on") {
            body.insert("is_priority".to_owned(), json!(true));
        }
    }
    serde_json::from_value(Value::Object(body)).map_err(|e| AppError::BadRequest(e.to_string()))
}

#[derive(Template)]
#[template(path = "lead_new.html")]
struct NewPage {
    shell: Shell,
    pipeline_id: String,
    singular: String,
    form: LeadForm,
    stages: Vec<(String, String)>,
    stage: String,
    members: Vec<(String, String)>,
    assigned_to: String,
    sources: Vec<(&'static str, &'static str)>,
    errors: FormErrors,
}

async fn new_response(
    state: &AppState,
    web: &WebCtx,
    pipeline_id: Option<&str>,
    pairs: Option<&[(String, String)]>,
    errors: FormErrors,
) -> WebResult {
    web.ctx.require(Permission::LeadsWrite)?;
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipelines = crate::pipelines::store::list(&mut tx).await?;
    let members = crate::leads::store::assignable_members(&mut tx).await?;
    tx.commit().await?;
    let pipeline = match pipeline_id {
        Some(id) => pipelines.iter().find(|p| p.id == id),
        None => pipelines.first(),
    }
    .ok_or(AppError::NotFound)?;
    let form = match pairs {
        Some(pairs) => LeadForm::from_pairs(pairs, &pipeline.spec),
        None => LeadForm::from_pairs(&[], &pipeline.spec),
    };
    let chosen = |name: &str, default: &str| {
        pairs
            .and_then(|p| form_value(p, name))
            .unwrap_or(default)
            .to_owned()
    };
    let mut shell = web
        .shell(
            state,
            &format!("New {}", pipeline.spec.singular_label.to_lowercase()),
            "leads",
        )
        .await?;
    shell.active_pipeline = pipeline.id.clone();
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = NewPage {
        shell,
        pipeline_id: pipeline.id.clone(),
        singular: pipeline.spec.singular_label.clone(),
        form,
        stages: pipeline
            .spec
            .stages
            .iter()
            .filter(|s| web.ctx.role.may_work_stage(s.owner_role))
            .map(|s| (s.key.clone(), s.label.clone()))
            .collect(),
        stage: chosen("stage", ""),
        members,
        assigned_to: chosen("assigned_to", web.ctx.user_id().unwrap_or("")),
        sources: LeadSource::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn new_page(
    State(state): State<AppState>,
    web: WebCtx,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let params = query_pairs(raw.as_deref());
    new_response(
        &state,
        &web,
        form_value(&params, "pipeline_id"),
        None,
        FormErrors::default(),
    )
    .await
}

pub async fn new_submit(State(state): State<AppState>, web: WebCtx, body: Bytes) -> WebResult {
    let pairs = form_pairs(&body);
    let pipeline_id = form_value(&pairs, "pipeline_id").map(str::to_owned);
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let pipeline = match &pipeline_id {
        Some(id) => crate::pipelines::service::load(&mut tx, id).await?,
        None => return Err(AppError::field("pipeline_id", "is required").into()),
    };
    tx.commit().await?;
    let created = match to_input(&pairs, &pipeline.spec, true) {
        Ok(input) => service::create(&state, &web.ctx, input).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(lead) => {
            Ok(Redirect::to(&format!("/leads/{}?notice=created", lead.row.id)).into_response())
        }
        Err(AppError::Duplicate {
            detail,
            existing_id,
        }) => {
            let errors = FormErrors {
                fields: vec![meridian_core::FieldError {
                    field: "email".to_owned(),
                    message: format!(
                        "is already used by another active record (/leads/{existing_id})"
                    ),
                }],
                general: Some(detail),
            };
            new_response(&state, &web, pipeline_id.as_deref(), Some(&pairs), errors).await
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            new_response(&state, &web, pipeline_id.as_deref(), Some(&pairs), errors).await
        }
    }
}

/// Saves the Overview tab's edit form.
pub async fn edit_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> WebResult {
    let pairs = form_pairs(&body);
    let (_, pipeline) = service::get(&state, &web.ctx, &id).await?;
    let updated = match to_input(&pairs, &pipeline.spec, false) {
        Ok(input) => service::update(&state, &web.ctx, &id, input).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => Ok(Redirect::to(&format!("/leads/{id}?notice=saved")).into_response()),
        Err(e) => {
            let errors = match e {
                AppError::Duplicate { detail, .. } => FormErrors {
                    fields: vec![meridian_core::FieldError {
                        field: "email".to_owned(),
                        message: "is already used by another active record".to_owned(),
                    }],
                    general: Some(detail),
                },
                other => FormErrors::from_error(other)?,
            };
            super::detail::detail_response(
                &state,
                &web,
                &id,
                "overview",
                errors,
                Some(&pairs),
                None,
            )
            .await
        }
    }
}
