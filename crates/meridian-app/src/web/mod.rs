//! The server-rendered web app: the shell (sidebar, top bar, theme), shared helpers, static
//! assets, and the routes of every feature's pages.

pub mod assets;
pub mod docs;
pub mod home;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use meridian_core::{FieldError, Permission};

use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::state::AppState;
use crate::{apikeys, audit, auth, orgs};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/static/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .route("/theme", post(auth::web::set_theme))
        .route(
            "/login",
            get(auth::web::login_page).post(auth::web::login_submit),
        )
        .route("/logout", post(auth::web::logout))
        .route("/switch-org", post(auth::web::switch_org))
        .route(
            "/setup",
            get(auth::web::setup_page).post(auth::web::setup_submit),
        )
        .route(
            "/settings/account",
            get(auth::web::account_page).post(auth::web::account_submit),
        )
        .route(
            "/invite",
            get(orgs::web::accept_page).post(orgs::web::accept_submit),
        )
        .route(
            "/settings/organization",
            get(orgs::web::org_page).post(orgs::web::org_submit),
        )
        .route("/settings/members", get(orgs::web::members_page))
        .route("/settings/members/invite", post(orgs::web::invite_submit))
        .route(
            "/settings/members/{user_id}/role",
            post(orgs::web::role_submit),
        )
        .route(
            "/settings/members/{user_id}/remove",
            get(orgs::web::remove_confirm).post(orgs::web::remove_submit),
        )
        .route(
            "/settings/invites/{id}/revoke",
            get(orgs::web::revoke_invite_confirm).post(orgs::web::revoke_invite_submit),
        )
        .route(
            "/settings/api-keys",
            get(apikeys::web::page).post(apikeys::web::create_submit),
        )
        .route(
            "/settings/api-keys/{id}/revoke",
            get(apikeys::web::revoke_confirm).post(apikeys::web::revoke_submit),
        )
        .route("/settings/audit-log", get(audit::web::page))
        .merge(crate::leads::web_routes())
        .merge(crate::tasks::web_routes())
        .merge(crate::pipelines::web_routes())
        .merge(crate::imports::web_routes())
        .merge(crate::jobs::web_routes())
        .merge(crate::notifications::web_routes())
        .merge(crate::email::web_routes())
        .merge(crate::webhooks::web_routes())
        .merge(crate::automations::web_routes())
        .fallback(not_found)
}

async fn not_found() -> Response {
    error_response(AppError::NotFound)
}

/// The theme the reader chose (`light` / `dark`), or none to follow the system.
pub fn theme_from(headers: &HeaderMap) -> Option<&'static str> {
    match crate::auth::cookies::read_cookie(headers, "theme") {
        Some("dark") => Some("dark"),
        Some("light") => Some("light"),
        _ => None,
    }
}

/// Everything the app shell (sidebar and top bar) shows.
pub struct Shell {
    pub title: String,
    pub active: &'static str,
    pub org_name: String,
    pub user_name: String,
    pub user_email: String,
    pub initials: String,
    pub role: String,
    pub csrf: String,
    pub theme: Option<&'static str>,
    pub can_manage_members: bool,
    pub can_manage_keys: bool,
    pub can_read_audit: bool,
    pub can_manage_org: bool,
    pub can_manage_pipelines: bool,
    pub can_manage_jobs: bool,
    pub can_send_email: bool,
    pub can_manage_email: bool,
    pub can_manage_automations: bool,
    /// A signed-in person (API keys have no inbox), and their unread notifications for the bell.
    pub has_inbox: bool,
    pub unread_notifications: i64,
    pub notice: Option<String>,
    pub other_orgs: Vec<(String, String)>,
    /// The organization's pipelines as (id, plural label), one sidebar entry each.
    pub pipelines: Vec<(String, String)>,
    /// The pipeline the page belongs to, to highlight its sidebar entry.
    pub active_pipeline: String,
}

pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// A page request from a signed-in browser. Without a session it redirects to the login page
/// (or to setup on a fresh install) instead of answering 401.
pub struct WebCtx {
    pub ctx: Ctx,
    pub theme: Option<&'static str>,
    pub path: String,
}

impl WebCtx {
    /// The shell for a page, with the other organizations the user can switch to.
    pub async fn shell(
        &self,
        state: &AppState,
        title: &str,
        active: &'static str,
    ) -> Result<Shell, AppError> {
        let mut shell = self.shell_without_orgs(title, active);
        let mut tx = state.db.tenant_read(&self.ctx.tenant).await?;
        shell.pipelines = crate::pipelines::store::list(&mut tx)
            .await?
            .into_iter()
            .map(|p| (p.id, p.spec.plural_label))
            .collect();
        if let Some(user_id) = self.ctx.user_id() {
            shell.unread_notifications =
                crate::notifications::store::unread_count(&mut tx, user_id).await?;
        }
        tx.commit().await?;
        if let Some(user_id) = self.ctx.user_id() {
            let mut tx = state.db.user_scope_read(user_id).await?;
            let memberships = crate::auth::store::user_memberships(&mut tx, user_id).await?;
            tx.commit().await?;
            shell.other_orgs = memberships
                .into_iter()
                .filter(|m| !m.disabled && m.org_id != self.ctx.org.id)
                .map(|m| (m.org_id, m.org_name))
                .collect();
        }
        Ok(shell)
    }

    fn shell_without_orgs(&self, title: &str, active: &'static str) -> Shell {
        let ctx = &self.ctx;
        let user_name = ctx
            .user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        Shell {
            title: title.to_owned(),
            active,
            org_name: ctx.org.name.clone(),
            initials: initials(&user_name),
            user_name,
            user_email: ctx
                .user
                .as_ref()
                .map(|u| u.email.clone())
                .unwrap_or_default(),
            role: ctx.role.label().to_owned(),
            csrf: ctx.csrf_token().unwrap_or_default().to_owned(),
            theme: self.theme,
            can_manage_members: ctx.role.allows(Permission::MembersManage),
            can_manage_keys: ctx.role.allows(Permission::ApiKeysManage),
            can_read_audit: ctx.role.allows(Permission::AuditRead),
            can_manage_org: ctx.role.allows(Permission::OrgManage),
            can_manage_pipelines: ctx.role.allows(Permission::PipelinesManage),
            can_manage_jobs: ctx.role.allows(Permission::JobsManage),
            can_send_email: ctx.role.allows(Permission::EmailSend),
            can_manage_email: ctx.role.allows(Permission::EmailManage),
            can_manage_automations: ctx.role.allows(Permission::AutomationsManage),
            has_inbox: ctx.user_id().is_some(),
            unread_notifications: 0,
            notice: None,
            other_orgs: Vec::new(),
            pipelines: Vec::new(),
            active_pipeline: String::new(),
        }
    }
}

impl FromRequestParts<AppState> for WebCtx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let theme = theme_from(&parts.headers);
        match <Ctx as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(Some(ctx))
                if matches!(ctx.credential, crate::http::ctx::Credential::Session { .. }) =>
            {
                Ok(WebCtx { ctx, theme, path })
            }
            Ok(_) | Err(AppError::Unauthorized(_)) => {
                let next = form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
                Err(Redirect::to(&format!("/login?next={next}")).into_response())
            }
            Err(other) => Err(error_response(other)),
        }
    }
}

/// The signed-in browser session, if any. Unlike `Option<Ctx>`, an expired or unknown session
/// cookie counts as signed out (pages like the login page must still render for it).
pub struct MaybeSession(pub Option<Ctx>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match <Ctx as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(Some(ctx))
                if matches!(ctx.credential, crate::http::ctx::Credential::Session { .. }) =>
            {
                Ok(MaybeSession(Some(ctx)))
            }
            Ok(_) | Err(AppError::Unauthorized(_)) => Ok(MaybeSession(None)),
            Err(other) => Err(error_response(other)),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: String,
    detail: String,
    theme: Option<&'static str>,
}

/// Renders an error as a page (the web counterpart of problem+json).
pub fn error_response(error: AppError) -> Response {
    let status = error.status();
    if let AppError::Internal(cause) = &error {
        tracing::error!(error = ?cause, "internal error");
    }
    let page = ErrorPage {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        detail: error.detail(),
        theme: None,
    };
    (status, render(&page)).into_response()
}

/// Errors from page handlers render as HTML pages.
pub struct WebError(pub AppError);

impl<E: Into<AppError>> From<E> for WebError {
    fn from(error: E) -> Self {
        WebError(error.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

pub type WebResult = Result<Response, WebError>;

/// Renders a template; a rendering failure is logged and shown as a plain 500.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Page rendering failed; it has been logged.",
            )
                .into_response()
        }
    }
}

/// Field errors of a form, looked up by name from templates.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    pub fields: Vec<FieldError>,
    pub general: Option<String>,
}

impl FormErrors {
    pub fn from_error(error: AppError) -> Result<Self, AppError> {
        match error {
            AppError::Validation(fields) => Ok(FormErrors {
                fields,
                general: None,
            }),
            AppError::Unauthorized(_)
            | AppError::Forbidden(_)
            | AppError::Conflict(_)
            | AppError::TooManyRequests { .. }
            | AppError::BadRequest(_) => Ok(FormErrors {
                fields: Vec::new(),
                general: Some(error.detail()),
            }),
            other => Err(other),
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn any(&self) -> bool {
        !self.fields.is_empty() || self.general.is_some()
    }
}

/// Where to go after login: only local paths, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A redirect that also sets a cookie.
pub fn redirect_with_cookie(to: &str, cookie: header::HeaderValue) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// Human-friendly relative time ("3 h ago", "in 2 d") for tables; exact time goes in a title.
pub fn relative(t: time::OffsetDateTime) -> String {
    let now = time::OffsetDateTime::now_utc();
    let (delta, future) = if t > now {
        (t - now, true)
    } else {
        (now - t, false)
    };
    let secs = delta.whole_seconds();
    let text = if secs < 60 {
        return if future {
            "in a moment".to_owned()
        } else {
            "just now".to_owned()
        };
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else if secs < 86_400 {
        format!("{} h", secs / 3600)
    } else {
        format!("{} d", secs / 86_400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub fn exact(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/settings/members")), "/settings/members");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Alex Morgan"), "AM");
        assert_eq!(initials("cher"), "C");
        assert_eq!(initials("Ana María López"), "AM");
    }
}
