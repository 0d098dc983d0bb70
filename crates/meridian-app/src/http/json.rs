//! A JSON body extractor whose failures are problem+json: malformed JSON is 400, a body of the
//! wrong shape is 422 naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::error::AppError;

pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(AppError::BadRequest(
                "Send the request body as JSON with Content-Type: application/json.".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge { limit: 0 }
            } else {
                AppError::BadRequest(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>`: a field
/// sent as `null` becomes `Some(None)` (clear it), one left out stays `None` (keep it).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => Ok(value),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(AppError::BadRequest(format!(
                    "The body is not valid JSON: {inner}"
                )))
            } else {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                let field = if path == "." {
                    missing_field(&message).unwrap_or("body").to_owned()
                } else {
                    path
                };
                Err(AppError::field(&field, message))
            }
        }
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// Query-string parameters whose parse failures are problem+json (422 naming the parameter).
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let field = error.path().to_string();
                let message = error.into_inner().to_string();
                AppError::field(if field == "." { "query" } else { &field }, message)
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn names_the_bad_field() {
        let err = parse_json::<Body>(br#"{"name": "a", "count": "x"}"#).expect_err("bad");
        assert_eq!(err.field_errors()[0].field, "count");
        let err = parse_json::<Body>(br#"{"name": "a"}"#).expect_err("missing");
        assert_eq!(err.field_errors()[0].field, "count");
        let err = parse_json::<Body>(b"{nope").expect_err("syntax");
        assert!(matches!(err, AppError::BadRequest(_)));
    }
}
