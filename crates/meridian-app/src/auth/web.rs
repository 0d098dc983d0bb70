//! Pages: sign in, sign out, first-run setup, account (password), organization switching, theme.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::cookies::{clear_session_cookie, session_cookie};
use super::service::{self, Authenticated, LoginInput};
use super::store;
use crate::auth::tokens::hash_secret;
use crate::http::client::ClientInfo;
use crate::http::ctx::Ctx;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::orgs::service::{self as orgs, NewOrganization};
use crate::state::AppState;
use crate::web::{
    FormErrors, MaybeSession, Shell, WebCtx, WebResult, redirect_with_cookie, render, safe_next,
    theme_from,
};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    theme: Option<&'static str>,
    email: String,
    next: String,
    notice: Option<String>,
    errors: FormErrors,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

async fn needs_setup(state: &AppState) -> Result<bool, AppError> {
    let mut tx = state.db.global_read().await?;
    let n = crate::orgs::store::count_orgs(&mut tx).await?;
    tx.commit().await?;
    Ok(n == 0)
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSession(ctx): MaybeSession,
    Query(query): Query<LoginQuery>,
) -> WebResult {
    if ctx.is_some() {
        return Ok(Redirect::to(&safe_next(query.next.as_deref())).into_response());
    }
    if needs_setup(&state).await? {
        return Ok(render(&crate::orgs::web::SetupUnavailable {
            theme: theme_from(&headers),
            needed: true,
        }));
    }
    let notice = match query.notice.as_deref() {
        Some("signed_out") => Some("You are signed out.".to_owned()),
        Some("password_changed") => Some("Password changed. Sign in with the new one.".to_owned()),
        _ => None,
    };
    Ok(render(&LoginPage {
        theme: theme_from(&headers),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        notice,
        errors: FormErrors::default(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// Starts a session for `who` and sends the browser on.
pub async fn sign_in(
    state: &AppState,
    who: &Authenticated,
    client: &ClientInfo,
    to: &str,
) -> WebResult {
    let secret = service::start_session(state, who, client).await?;
    Ok(redirect_with_cookie(
        to,
        session_cookie(&state.config, &secret),
    ))
}

pub async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    Form(form): Form<LoginForm>,
) -> WebResult {
    let next = safe_next(form.next.as_deref());
    let input = LoginInput {
        email: form.email.clone(),
        password: form.password,
        org_id: None,
    };
    match service::login(&state, input, &client).await {
        Ok(who) => sign_in(&state, &who, &client, &next).await,
        Err(error) => {
            let status = error.status();
            let errors = FormErrors::from_error(error)?;
            let page = LoginPage {
                theme: theme_from(&headers),
                email: form.email,
                next,
                notice: None,
                errors,
            };
            Ok((status, render(&page)).into_response())
        }
    }
}

pub async fn logout(State(state): State<AppState>, ctx: Ctx) -> WebResult {
    service::logout(&state, &ctx).await?;
    Ok(redirect_with_cookie(
        "/login?notice=signed_out",
        clear_session_cookie(&state.config),
    ))
}

#[derive(Debug, Deserialize)]
pub struct SwitchOrgForm {
    org_id: String,
}

/// Moves the browser to another of the user's organizations with a new session there.
pub async fn switch_org(
    State(state): State<AppState>,
    web: WebCtx,
    client: ClientInfo,
    Form(form): Form<SwitchOrgForm>,
) -> WebResult {
    let Some(user) = web.ctx.user.clone() else {
        return Err(AppError::NotFound.into());
    };
    let mut tx = state.db.user_scope_read(&user.id).await?;
    let membership = store::user_memberships(&mut tx, &user.id)
        .await?
        .into_iter()
        .find(|m| m.org_id == form.org_id && !m.disabled)
        .ok_or(AppError::NotFound)?;
    let found = store::find_user(&mut tx, &user.id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let who = Authenticated::from_membership(found, membership)?;
    service::logout(&state, &web.ctx).await?;
    sign_in(&state, &who, &client, "/").await
}

#[derive(Debug, Deserialize)]
pub struct ThemeForm {
    theme: Option<String>,
}

/// Remembers the theme in a cookie (the toggle without JavaScript; scripts set the same cookie).
pub async fn set_theme(headers: HeaderMap, Form(form): Form<ThemeForm>) -> Response {
    let next = match form.theme.as_deref() {
        Some("light") => "light",
        Some("dark") => "dark",
        _ if theme_from(&headers) == Some("dark") => "light",
        _ => "dark",
    };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            r.find("://")
                .and_then(|i| r[i + 3..].find('/').map(|j| r[i + 3 + j..].to_owned()))
        })
        .unwrap_or_else(|| "/".to_owned());
    let cookie = format!("theme={next}; Path=/; Max-Age=31536000; SameSite=Lax");
    redirect_with_cookie(
        &safe_next(Some(&back)),
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    theme: Option<&'static str>,
    token: String,
    org_name: String,
    name: String,
    email: String,
    template: String,
    errors: FormErrors,
}

#[derive(Debug, Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

pub async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SetupQuery>,
) -> WebResult {
    let token = query.token.unwrap_or_default();
    let (needed, valid) = orgs::setup_state(&state.db, &token).await?;
    let theme = theme_from(&headers);
    if !valid {
        let status = if needed {
            axum::http::StatusCode::FORBIDDEN
        } else {
            axum::http::StatusCode::OK
        };
        return Ok((
            status,
            render(&crate::orgs::web::SetupUnavailable { theme, needed }),
        )
            .into_response());
    }
    Ok(render(&SetupPage {
        theme,
        token,
        org_name: String::new(),
        name: String::new(),
        email: String::new(),
        template: "marketing".to_owned(),
        errors: FormErrors::default(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    token: String,
    org_name: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    template: String,
}

pub async fn setup_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    Form(form): Form<SetupForm>,
) -> WebResult {
    let input = NewOrganization {
        org_name: form.org_name.clone(),
        name: form.name.clone(),
        email: form.email.clone(),
        password: form.password,
        template: form.template.clone(),
    };
    let token_hash = hash_secret(&form.token);
    match orgs::create_organization(&state.db, &state.hasher, input, Some(&token_hash), &client)
        .await
    {
        Ok(who) => sign_in(&state, &who, &client, "/?notice=welcome").await,
        Err(error) => {
            let status = error.status();
            let errors = FormErrors::from_error(error)?;
            let page = SetupPage {
                theme: theme_from(&headers),
                token: form.token,
                org_name: form.org_name,
                name: form.name,
                email: form.email,
                template: form.template,
                errors,
            };
            Ok((status, render(&page)).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    shell: Shell,
    errors: FormErrors,
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

pub async fn account_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let mut shell = web.shell(&state, "Account", "account").await?;
    if q.notice.as_deref() == Some("password_changed") {
        shell.notice = Some("Password changed. Your other sessions were signed out.".to_owned());
    }
    Ok(render(&AccountPage {
        shell,
        errors: FormErrors::default(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

pub async fn account_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<PasswordForm>,
) -> WebResult {
    match service::change_password(&state, &web.ctx, &form.current_password, &form.new_password)
        .await
    {
        Ok(()) => Ok(Redirect::to("/settings/account?notice=password_changed").into_response()),
        Err(error) => {
            let status = error.status();
            let errors = FormErrors::from_error(error)?;
            let shell = web.shell(&state, "Account", "account").await?;
            Ok((status, render(&AccountPage { shell, errors })).into_response())
        }
    }
}
