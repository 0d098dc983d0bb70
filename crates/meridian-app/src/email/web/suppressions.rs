//! The suppression list: addresses nothing is sent to, by address, paged by cursor; adding one
//! by hand, and removing one behind a confirmation.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Permission;
use serde::Deserialize;

use crate::email::service;
use crate::email::store::{self, SuppressionRow};
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::{Page, PageQuery};
use crate::orgs::web::ConfirmPage;
use crate::state::AppState;
use crate::web::{FormErrors, Shell, WebCtx, WebResult, exact, relative, render};

/// Addresses on one page of the list.
const PAGE_SIZE: i64 = 50;

fn reason_label(reason: &str) -> &'static str {
    match reason {
        "unsubscribe" => "Unsubscribed",
        "bounce" => "Bounced",
        _ => "Added by hand",
    }
}

pub struct SuppressionView {
    pub email: String,
    pub reason: String,
    pub reason_label: &'static str,
    pub detail: String,
    pub added: String,
    pub added_exact: String,
    /// The address in a query string, for its remove link.
    pub query: String,
}

impl From<SuppressionRow> for SuppressionView {
    fn from(s: SuppressionRow) -> Self {
        SuppressionView {
            query: email_query(&s.email),
            reason_label: reason_label(&s.reason),
            added: relative(s.created_at),
            added_exact: exact(s.created_at),
            email: s.email,
            reason: s.reason,
            detail: s.detail,
        }
    }
}

fn email_query(email: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .finish()
}

#[derive(Template)]
#[template(path = "email_suppressions.html")]
struct SuppressionsPage {
    shell: Shell,
    tab: &'static str,
    entries: Vec<SuppressionView>,
    next_href: Option<String>,
    first_href: Option<String>,
    email: String,
    detail: String,
    errors: FormErrors,
}

#[derive(Debug, Default, Deserialize)]
pub struct SuppressionsQuery {
    cursor: Option<String>,
    notice: Option<String>,
    email: Option<String>,
}

async fn suppressions_response(
    state: &AppState,
    web: &WebCtx,
    cursor: Option<String>,
    notice: Option<String>,
    (email, detail, errors): (String, String, FormErrors),
) -> WebResult {
    let paged = cursor.is_some();
    let page = PageQuery {
        limit: Some(PAGE_SIZE),
        cursor,
    }
    .parse()?;
    let rows =
        service::suppressions(state, &web.ctx, page.after_key(0), page.fetch_limit()).await?;
    let rows = Page::from_rows(rows, &page, |s| vec![s.email.clone()]);
    let mut shell = web.shell(state, "Suppression list", "email").await?;
    shell.notice = notice;
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = SuppressionsPage {
        shell,
        tab: "suppressions",
        next_href: rows
            .next_cursor
            .map(|c| format!("/email/suppressions?cursor={c}")),
        first_href: paged.then(|| "/email/suppressions".to_owned()),
        entries: rows.items.into_iter().map(SuppressionView::from).collect(),
        email,
        detail,
        errors,
    };
    Ok((status, render(&page)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<SuppressionsQuery>,
) -> WebResult {
    let email = q.email.unwrap_or_default();
    let notice = match q.notice.as_deref() {
        Some("added") => Some(format!("{email} is on the list. Nothing is sent to it.")),
        Some("listed") => Some(format!("{email} was on the list already.")),
        Some("removed") => Some(format!("{email} was removed. Mail to it is sent again.")),
        _ => None,
    };
    let blank = (String::new(), String::new(), FormErrors::default());
    suppressions_response(&state, &web, q.cursor, notice, blank).await
}

#[derive(Debug, Deserialize)]
pub struct SuppressForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    detail: String,
}

pub async fn add_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<SuppressForm>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    match service::suppress(&state, &web.ctx, &form.email, &form.detail).await {
        Ok((row, added)) => {
            let notice = if added { "added" } else { "listed" };
            let to = format!(
                "/email/suppressions?notice={notice}&{}",
                email_query(&row.email)
            );
            Ok(Redirect::to(&to).into_response())
        }
        Err(error) => {
            let kept = (form.email, form.detail, FormErrors::from_error(error)?);
            suppressions_response(&state, &web, None, None, kept).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct EmailParam {
    #[serde(default)]
    email: String,
}

pub async fn remove_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<EmailParam>,
) -> WebResult {
    web.ctx.require(Permission::EmailManage)?;
    let email = q.email.trim().to_lowercase();
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let entry = store::suppression(&mut tx, &email)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let shell = web.shell(&state, "Remove from the list", "email").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Send mail to {} again?", entry.email),
        body: format!(
            "It is on the list because {}. Once removed, emails to it are delivered again; \
             someone who unsubscribed should only get mail again if they asked for it.",
            service::suppression_reason(&entry.reason)
        ),
        action: format!("/email/suppressions/remove?{}", email_query(&entry.email)),
        confirm_label: "Remove from the list".to_owned(),
        cancel_href: "/email/suppressions".to_owned(),
    }))
}

pub async fn remove_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<EmailParam>,
) -> WebResult {
    service::unsuppress(&state, &web.ctx, &q.email).await?;
    let to = format!(
        "/email/suppressions?notice=removed&{}",
        email_query(q.email.trim())
    );
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_escaped_in_links() {
        assert_eq!(email_query("a+b@x.test"), "email=a%2Bb%40x.test");
    }
}
