//! Turning client input into normalized lead fields: every value checked, every problem reported
//! with its field name, nothing silently dropped or guessed.

use meridian_core::contact::{normalize_country, normalize_phone, normalize_subdivision};
use meridian_core::crm::{LeadSource, Picklist};
use meridian_core::email::normalize_email;
use meridian_core::pipeline::{PipelineSpec, parse_date};
use meridian_core::validation::required_text;
use meridian_core::{FieldError, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::store::LeadFields;

pub const MAX_NAME: usize = 100;
pub const MAX_ATTRIBUTION: usize = 255;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG: usize = 40;

/// The writable fields of a lead. On create, missing and `null` mean empty; on update, missing
/// means "leave as is" and `null` clears the field.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    /// Create only: the pipeline (default: the organization's first).
    pub pipeline_id: Option<String>,
    /// Create only: the starting stage (default: the pipeline's first).
    pub stage: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Any common format; stored as E.164 (numbers without a country code are read in the
    /// organization's default region).
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// State or province, by name or code; stored as the ISO 3166-2 code (`CA`, `TX`).
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub state: Option<Option<String>>,
    /// Country by name or code; stored as ISO 3166-1 alpha-2.
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub date_of_birth: Option<Option<String>>,
    pub source: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub utm_source: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub utm_medium: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub utm_campaign: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub utm_content: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub utm_term: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub meta_ad_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub meta_form_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::present")]
    #[schema(value_type = Option<String>)]
    pub campaign_id: Option<Option<String>>,
    /// Create only (later: `POST /leads/{id}/assign`).
    pub assigned_to: Option<String>,
    /// Create only (later: `POST /leads/{id}/priority`).
    pub is_priority: Option<bool>,
    /// Replaces the lead's tags.
    pub tags: Option<Vec<String>>,
    /// Values by field key; `null` clears a field. On update only the keys sent change.
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<Map<String, Value>>,
}

fn optional_text(
    v: &mut Validation,
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Option<String> {
    let value = value.map(str::trim).filter(|s| !s.is_empty())?;
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        return None;
    }
    Some(value.to_owned())
}

/// Applies `input` on top of `base` (the stored fields, or defaults for a new lead). `creating`
/// makes the first name and required custom fields mandatory.
pub fn apply(
    base: &LeadFields,
    input: &LeadInput,
    pipeline: &PipelineSpec,
    region: &str,
    creating: bool,
) -> Result<LeadFields, Vec<FieldError>> {
    let mut v = Validation::new();
    let mut out = base.clone();
    match (&input.first_name, creating) {
        (Some(name), _) => {
            if let Some(name) = v.check("first_name", required_text(name, 1, MAX_NAME)) {
                out.first_name = name;
            }
        }
        (None, true) => v.add("first_name", "is required"),
        (None, false) => {}
    }
    if let Some(name) = &input.last_name {
        out.last_name =
            optional_text(&mut v, "last_name", Some(name), MAX_NAME).unwrap_or_default();
    }
    if let Some(email) = &input.email {
        out.email = match email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            Some(email) => v.check("email", normalize_email(email)),
            None => None,
        };
    }
    if let Some(phone) = &input.phone {
        out.phone = match phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(phone) => v.check("phone", normalize_phone(phone, region)),
            None => None,
        };
    }
    if let Some(country) = &input.country {
        out.country = match country.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(country) => v.check("country", normalize_country(country)),
            None => None,
        };
    }
    if let Some(state) = &input.state {
        let country = out.country.clone().unwrap_or_else(|| region.to_owned());
        out.state = match state.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(state) => v.check("state", normalize_subdivision(state, &country)),
            None => None,
        };
    }
    if let Some(dob) = &input.date_of_birth {
        out.date_of_birth = match dob.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            Some(dob) => v.check("date_of_birth", parse_date(dob).and_then(past_date)),
            None => None,
        };
    }
    if let Some(source) = &input.source
        && let Some(source) = v.check("source", LeadSource::parse(source))
    {
        out.source = source.as_str().to_owned();
    }
    let attribution = [
        ("utm_source", &input.utm_source, &mut out.utm_source),
        ("utm_medium", &input.utm_medium, &mut out.utm_medium),
        ("utm_campaign", &input.utm_campaign, &mut out.utm_campaign),
        ("utm_content", &input.utm_content, &mut out.utm_content),
        ("utm_term", &input.utm_term, &mut out.utm_term),
        ("meta_ad_id", &input.meta_ad_id, &mut out.meta_ad_id),
        ("meta_form_id", &input.meta_form_id, &mut out.meta_form_id),
        ("campaign_id", &input.campaign_id, &mut out.campaign_id),
    ];
    for (field, value, target) in attribution {
        if let Some(value) = value {
            *target = optional_text(&mut v, field, value.as_deref(), MAX_ATTRIBUTION);
        }
    }
    let mut custom: Map<String, Value> =
        serde_json::from_str(&base.custom_fields).unwrap_or_default();
    let sent = input.custom_fields.clone().unwrap_or_default();
    match pipeline.check_custom_fields(&sent, region, creating) {
        Ok(checked) => {
            for (key, value) in checked {
                if value.is_null() {
                    custom.remove(&key);
                } else {
                    custom.insert(key, value);
                }
            }
        }
        Err(errors) => {
            for e in errors {
                v.add(&e.field, e.message);
            }
        }
    }
    out.custom_fields = Value::Object(custom).to_string();
    v.finish().map(|()| out)
}

fn past_date(date: String) -> Result<String, String> {
    let today = time::OffsetDateTime::now_utc().date().to_string();
    if date.as_str() > today.as_str() {
        Err("must not be in the future".to_owned())
    } else if date.as_str() < "1900-01-01" {
        Err("must be after 1900-01-01".to_owned())
    } else {
        Ok(date)
    }
}

/// Lower-cased, trimmed, de-duplicated tags.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, Vec<FieldError>> {
    let mut v = Validation::new();
    let mut out: Vec<String> = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        match required_text(tag, 1, MAX_TAG) {
            Ok(tag) => {
                let tag = tag.to_lowercase();
                if !out.contains(&tag) {
                    out.push(tag);
                }
            }
            Err(message) => v.add(&format!("tags[{i}]"), message),
        }
    }
    if out.len() > MAX_TAGS {
        v.add("tags", format!("must have at most {MAX_TAGS} tags"));
    }
    out.sort();
    v.finish().map(|()| out)
}

/// Each changed field as `{field: {from, to}}` (custom fields as `custom_fields.<key>`), for the
/// `info_edited` activity event.
pub fn changes(before: &LeadFields, after: &LeadFields) -> Map<String, Value> {
    let mut changes = Map::new();
    let plain: [(&str, Option<&str>, Option<&str>); 16] = [
        (
            "first_name",
            Some(&before.first_name),
            Some(&after.first_name),
        ),
        ("last_name", Some(&before.last_name), Some(&after.last_name)),
        ("email", before.email.as_deref(), after.email.as_deref()),
        ("phone", before.phone.as_deref(), after.phone.as_deref()),
        ("state", before.state.as_deref(), after.state.as_deref()),
        (
            "country",
            before.country.as_deref(),
            after.country.as_deref(),
        ),
        (
            "date_of_birth",
            before.date_of_birth.as_deref(),
            after.date_of_birth.as_deref(),
        ),
        ("source", Some(&before.source), Some(&after.source)),
        (
            "utm_source",
            before.utm_source.as_deref(),
            after.utm_source.as_deref(),
        ),
        (
            "utm_medium",
            before.utm_medium.as_deref(),
            after.utm_medium.as_deref(),
        ),
        (
            "utm_campaign",
            before.utm_campaign.as_deref(),
            after.utm_campaign.as_deref(),
        ),
        (
            "utm_content",
            before.utm_content.as_deref(),
            after.utm_content.as_deref(),
        ),
        (
            "utm_term",
            before.utm_term.as_deref(),
            after.utm_term.as_deref(),
        ),
        (
            "meta_ad_id",
            before.meta_ad_id.as_deref(),
            after.meta_ad_id.as_deref(),
        ),
        (
            "meta_form_id",
            before.meta_form_id.as_deref(),
            after.meta_form_id.as_deref(),
        ),
        (
            "campaign_id",
            before.campaign_id.as_deref(),
            after.campaign_id.as_deref(),
        ),
    ];
    for (field, from, to) in plain {
        if from != to {
            changes.insert(field.to_owned(), json!({"from": from, "to": to}));
        }
    }
    let old: Map<String, Value> = serde_json::from_str(&before.custom_fields).unwrap_or_default();
    let new: Map<String, Value> = serde_json::from_str(&after.custom_fields).unwrap_or_default();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (from, to) = (old.get(key), new.get(key));
        if from != to {
            changes.insert(
                format!("custom_fields.{key}"),
                json!({"from": from, "to": to}),
            );
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::pipeline::default_leads_pipeline;

    fn input(value: Value) -> LeadInput {
        serde_json::from_value(value).expect("input")
    }

    #[test]
    fn normalizes_contact_fields() {
        let base = LeadFields {
            source: "manual".into(),
            custom_fields: "{}".into(),
            ..LeadFields::default()
        };
        let fields = apply(
            &base,
            &input(json!({
                "first_name": " Ada ", "email": " Ada@Example.COM ", "phone": "(415) 555-0123",
                "state": "california", "country": "United States", "custom_fields": {"budget": 5000}
            })),
            &default_leads_pipeline(),
            "US",
            true,
        )
        .expect("valid");
        assert_eq!(fields.first_name, "Ada");
        assert_eq!(fields.email.as_deref(), Some("ada@example.com"));
        assert_eq!(fields.phone.as_deref(), Some("+14155550123"));
        assert_eq!(
            (fields.state.as_deref(), fields.country.as_deref()),
            (Some("CA"), Some("US"))
        );
        assert_eq!(fields.custom_fields, r#"{"budget":5000}"#);
    }

    #[test]
    fn reports_every_bad_field_and_keeps_nulls_apart() {
        let base = LeadFields {
            first_name: "Ada".into(),
            email: Some("ada@example.com".into()),
            source: "manual".into(),
            custom_fields: "{}".into(),
            ..LeadFields::default()
        };
        let errors = apply(
            &base,
            &input(json!({"email": "nope", "phone": "12", "state": "Atlantis", "date_of_birth": "3000-01-01", "source": "fax"})),
            &default_leads_pipeline(),
            "US",
            false,
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["email", "phone", "state", "date_of_birth", "source"]
        );

        let cleared = apply(
            &base,
            &input(json!({"email": null})),
            &default_leads_pipeline(),
            "US",
            false,
        )
        .expect("valid");
        assert_eq!(cleared.email, None);
        let kept = apply(
            &base,
            &input(json!({})),
            &default_leads_pipeline(),
            "US",
            false,
        )
        .expect("valid");
        assert_eq!(kept.email.as_deref(), Some("ada@example.com"));
        assert!(changes(&base, &cleared).contains_key("email"));
        assert!(changes(&base, &kept).is_empty());
    }

    #[test]
    fn tags_are_tidied() {
        assert_eq!(
            normalize_tags(&[" VIP ".into(), "vip".into(), "East".into()]),
            Ok(vec!["east".to_owned(), "vip".to_owned()])
        );
        assert!(normalize_tags(&["  ".into()]).is_err());
    }
}
