//! `/api/openapi.json` and `/api/docs`: the OpenAPI description and a reference page rendered
//! from it on the server (no assets fetched from elsewhere, so it works offline).

use askama::Template;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{render, theme_from};

pub async fn openapi_json() -> Response {
    axum::Json(crate::openapi::spec()).into_response()
}

pub struct Param {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub description: String,
}

pub struct ResponseDoc {
    pub status: String,
    pub description: String,
    pub schema: String,
}

pub struct Operation {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub params: Vec<Param>,
    pub request_schema: String,
    pub responses: Vec<ResponseDoc>,
}

pub struct Section {
    pub tag: String,
    pub description: String,
    pub operations: Vec<Operation>,
}

pub struct SchemaDoc {
    pub name: String,
    pub json: String,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct DocsPage {
    theme: Option<&'static str>,
    title: String,
    version: String,
    description: String,
    sections: Vec<Section>,
    schemas: Vec<SchemaDoc>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn schema_name(schema: Option<&Value>) -> String {
    let Some(schema) = schema else {
        return String::new();
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    schema
        .get("type")
        .map(|t| t.to_string().trim_matches('"').to_owned())
        .unwrap_or_else(|| "object".to_owned())
}

fn operation(path: &str, method: &str, op: &Value) -> Operation {
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| Param {
                    name: text(p, "name"),
                    location: text(p, "in"),
                    required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                    description: text(p, "description"),
                })
                .collect()
        })
        .unwrap_or_default();
    let request_schema = schema_name(op.pointer("/requestBody/content/application~1json/schema"));
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(status, r)| ResponseDoc {
                    status: status.clone(),
                    description: Some(text(r, "description"))
                        .filter(|d| !d.is_empty())
                        .or_else(|| {
                            status
                                .parse::<u16>()
                                .ok()
                                .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                                .and_then(|code| code.canonical_reason())
                                .map(str::to_owned)
                        })
                        .unwrap_or_default(),
                    schema: r
                        .get("content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.values().next())
                        .map(|c| schema_name(c.get("schema")))
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = text(op, "summary");
    Operation {
        anchor: format!("{method}-{}", path.replace(['/', '{', '}'], "-")),
        method: method.to_uppercase(),
        path: path.to_owned(),
        description: text(op, "description"),
        summary,
        params,
        request_schema,
        responses,
    }
}

pub async fn page(headers: HeaderMap) -> Response {
    let spec = serde_json::to_value(crate::openapi::spec()).unwrap_or(Value::Null);
    let tags: Vec<(String, String)> = spec
        .get("tags")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|t| (text(t, "name"), text(t, "description")))
                .collect()
        })
        .unwrap_or_default();
    let mut sections: Vec<Section> = tags
        .into_iter()
        .map(|(tag, description)| Section {
            tag,
            description,
            operations: Vec::new(),
        })
        .collect();
    if let Some(paths) = spec.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let tag = op
                    .get("tags")
                    .and_then(Value::as_array)
                    .and_then(|t| t.first())
                    .and_then(Value::as_str)
                    .unwrap_or("other")
                    .to_owned();
                let doc = operation(path, method, op);
                match sections.iter_mut().find(|s| s.tag == tag) {
                    Some(section) => section.operations.push(doc),
                    None => sections.push(Section {
                        tag,
                        description: String::new(),
                        operations: vec![doc],
                    }),
                }
            }
        }
    }
    let schemas = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(name, schema)| SchemaDoc {
                    name: name.clone(),
                    json: serde_json::to_string_pretty(schema).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    render(&DocsPage {
        theme: theme_from(&headers),
        title: spec
            .pointer("/info/title")
            .and_then(Value::as_str)
            .unwrap_or("API")
            .to_owned(),
        version: spec
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        description: spec
            .pointer("/info/description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        sections,
        schemas,
    })
}
