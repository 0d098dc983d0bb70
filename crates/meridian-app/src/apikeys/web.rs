//! Page: API keys (create with the secret shown once, list, revoke).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use meridian_core::Role;
use serde::Deserialize;
use time::macros::format_description;

use super::api::{ApiKey, load_page};
use super::service::{self, CreateInput};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::PageQuery;
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub role_label: &'static str,
    pub prefix: String,
    pub created: String,
    pub created_exact: String,
    pub last_used: String,
    pub expires: String,
    pub status: &'static str,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        let now = meridian_db::now();
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            role_label: k.role.parse::<Role>().map(Role::label).unwrap_or("Unknown"),
            id: k.id,
            name: k.name,
            role: k.role,
            prefix: k.prefix,
            created: relative(k.created_at),
            created_exact: exact(k.created_at),
            last_used: k
                .last_used_at
                .map(relative)
                .unwrap_or_else(|| "never".to_owned()),
            expires: k
                .expires_at
                .map(relative)
                .unwrap_or_else(|| "never".to_owned()),
            status,
        }
    }
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct KeysPage {
    shell: Shell,
    keys: Vec<KeyView>,
    next_cursor: Option<String>,
    roles: Vec<(&'static str, &'static str)>,
    name: String,
    role: String,
    expires_on: String,
    created_secret: Option<String>,
    errors: FormErrors,
}

struct FormState {
    name: String,
    role: String,
    expires_on: String,
    created_secret: Option<String>,
    errors: FormErrors,
}

async fn keys_response(
    state: &AppState,
    web: &WebCtx,
    cursor: Option<String>,
    notice: Option<String>,
    form: FormState,
) -> WebResult {
    let page = PageQuery {
        limit: Some(50),
        cursor,
    }
    .parse()?;
    let keys = load_page(state, &web.ctx, &page).await?;
    let mut shell = web.shell(state, "API keys", "api-keys").await?;
    shell.notice = notice;
    let status = if form.errors.any() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    let page = KeysPage {
        shell,
        next_cursor: keys.next_cursor,
        keys: keys.items.into_iter().map(KeyView::from).collect(),
        roles: Role::ALL
            .iter()
            .filter(|r| web.ctx.role.may_grant(**r))
            .map(|r| (r.as_str(), r.label()))
            .collect(),
        name: form.name,
        role: form.role,
        expires_on: form.expires_on,
        created_secret: form.created_secret,
        errors: form.errors,
    };
    Ok((status, render(&page)).into_response())
}

fn blank_form() -> FormState {
    FormState {
        name: String::new(),
        role: "member".to_owned(),
        expires_on: String::new(),
        created_secret: None,
        errors: FormErrors::default(),
    }
}

#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    cursor: Option<String>,
    notice: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<KeysQuery>,
) -> WebResult {
    let notice = (q.notice.as_deref() == Some("key_revoked"))
        .then(|| "API key revoked. It no longer works.".to_owned());
    keys_response(&state, &web, q.cursor, notice, blank_form()).await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    name: String,
    role: String,
    /// A date (YYYY-MM-DD); the key stops working at the end of that day (UTC).
    #[serde(default)]
    expires_on: String,
}

fn parse_expiry(text: &str) -> Result<Option<time::OffsetDateTime>, AppError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let date = time::Date::parse(text.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|_| AppError::field("expires_on", "must be a date like 2027-01-31"))?;
    Ok(Some(
        date.with_time(time::Time::MIDNIGHT).assume_utc() + time::Duration::days(1),
    ))
}

pub async fn create_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<CreateForm>,
) -> WebResult {
    let result = match parse_expiry(&form.expires_on) {
        Ok(expires_at) => {
            let input = CreateInput {
                name: form.name.clone(),
                role: form.role.clone(),
                expires_at,
            };
            service::create(&state, &web.ctx, input).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok((row, secret)) => {
            let notice = Some(format!(
                "API key \u{201c}{}\u{201d} created. Copy the secret now: it is shown only once.",
                row.name
            ));
            let form = FormState {
                created_secret: Some(secret),
                ..blank_form()
            };
            keys_response(&state, &web, None, notice, form).await
        }
        Err(error) => {
            let form = FormState {
                name: form.name,
                role: form.role,
                expires_on: form.expires_on,
                created_secret: None,
                errors: FormErrors::from_error(error)?,
            };
            keys_response(&state, &web, None, None, form).await
        }
    }
}

pub async fn revoke_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(meridian_core::Permission::ApiKeysManage)?;
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let key = super::store::find(&mut tx, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let shell = web.shell(&state, "Revoke API key", "api-keys").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Revoke \u{201c}{}\u{201d}?", key.name),
        body: format!(
            "Integrations using the key {}\u{2026} stop working immediately. This cannot be undone.",
            key.prefix
        ),
        action: format!("/settings/api-keys/{id}/revoke"),
        confirm_label: "Revoke key".to_owned(),
        cancel_href: "/settings/api-keys".to_owned(),
    }))
}

pub async fn revoke_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    service::revoke(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/settings/api-keys?notice=key_revoked").into_response())
}
