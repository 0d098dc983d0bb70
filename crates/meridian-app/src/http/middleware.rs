//! Cross-cutting request handling: security headers, body limits, CSRF for cookie sessions,
//! metrics by route pattern.

use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::cookies::{read_cookie, session_cookie_name};
use crate::auth::service::csrf_token_for;
use crate::auth::tokens::constant_time_eq;
use crate::http::error::AppError;
use crate::state::AppState;
use crate::web;

pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf_token";

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; \
     object-src 'none'";

/// Adds the security headers to every response (handlers may set a stricter value first).
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if state.config.secure_cookies() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}

/// Refuses bodies over the limit before reading them when the length is declared; streamed
/// bodies are cut by the body-limit layer.
pub async fn body_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > state.config.max_body_bytes) {
        return AppError::PayloadTooLarge {
            limit: state.config.max_body_bytes,
        }
        .into_response();
    }
    next.run(req).await
}

/// Paths that start a new session rather than act on one (or, for the theme, only set a display
/// preference); a stale cookie must not block them.
const CSRF_EXEMPT: &[&str] = &[
    "/login",
    "/setup",
    "/invite",
    "/theme",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/register",
    "/api/v1/auth/accept-invite",
];

fn csrf_failure(path: &str) -> Response {
    let error = AppError::Forbidden(
        "The form expired or did not come from Meridian (missing or invalid CSRF token). Reload the page and try again."
            .to_owned(),
    );
    if path.starts_with("/api/") {
        error.into_response()
    } else {
        web::error_response(error)
    }
}

/// Every state-changing request authenticated by the session cookie must carry the session's
/// CSRF token, in the `X-CSRF-Token` header (scripts) or a `csrf_token` form field (forms).
pub async fn csrf_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe
        || req.headers().contains_key(header::AUTHORIZATION)
        || CSRF_EXEMPT.contains(&req.uri().path())
        // The signed token in the address is the credential (and one-click unsubscribe comes
        // from mail programs, which hold no CSRF token).
        || req.uri().path().starts_with("/unsubscribe/")
        // Public lead forms are posted from other sites by people who are not signed in (a
        // visitor who happens to hold a session must not be refused).
        || req.uri().path().starts_with("/api/v1/inbound/")
    {
        return next.run(req).await;
    }
    let Some(secret) =
        read_cookie(req.headers(), session_cookie_name(&state.config)).map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let expected = csrf_token_for(&state.csrf_key, &secret);
    let path = req.uri().path().to_owned();
    if let Some(sent) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if constant_time_eq(sent, &expected) {
            next.run(req).await
        } else {
            csrf_failure(&path)
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return csrf_failure(&path);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return AppError::PayloadTooLarge {
            limit: state.config.max_body_bytes,
        }
        .into_response();
    };
    let sent = form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    match sent {
        Some(sent) if constant_time_eq(&sent, &expected) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => csrf_failure(&path),
    }
}

/// Counts requests and their latency by method, route pattern (never the raw path, which would
/// explode cardinality) and status.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("meridian_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("meridian_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
