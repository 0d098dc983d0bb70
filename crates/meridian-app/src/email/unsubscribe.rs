//! Unsubscribing: every marketing email links to `/unsubscribe/{token}`, where the token names
//! the organization and the address and is signed by the server, so the page needs no sign-in and
//! cannot be used to unsubscribe someone else. A `POST` there (the page's button, or a mail
//! program's one-click request per RFC 8058) puts the address on the organization's suppression
//! list.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_db::Tenant;

use super::compose::ServerMail;
use super::store;
use crate::state::AppState;
use crate::web::{render, theme_from};

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    theme: Option<&'static str>,
    valid: bool,
    done: bool,
    org_name: String,
    email: String,
}

async fn org_name(state: &AppState, org_id: &str) -> Result<Option<String>, sqlx::Error> {
    let tenant = Tenant::for_verified_credentials(org_id.to_owned(), None);
    let mut tx = state.db.tenant_read(&tenant).await?;
    let org = crate::orgs::store::get_org(&mut tx).await.ok();
    tx.commit().await?;
    Ok(org.map(|o| o.name))
}

fn invalid(headers: &HeaderMap) -> Response {
    let page = UnsubscribePage {
        theme: theme_from(headers),
        valid: false,
        done: false,
        org_name: "Meridian".to_owned(),
        email: String::new(),
    };
    (StatusCode::NOT_FOUND, render(&page)).into_response()
}

/// `GET /unsubscribe/{token}`: asks before unsubscribing (link scanners follow links; only a
/// person or a one-click POST unsubscribes).
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, crate::http::error::AppError> {
    let Some((org_id, email)) = ServerMail::of(&state).verify_unsubscribe(&token) else {
        return Ok(invalid(&headers));
    };
    let Some(org_name) = org_name(&state, &org_id).await? else {
        return Ok(invalid(&headers));
    };
    let tenant = Tenant::for_verified_credentials(org_id, None);
    let mut tx = state.db.tenant_read(&tenant).await?;
    let done = store::suppression(&mut tx, &email).await?.is_some();
    tx.commit().await?;
    Ok(render(&UnsubscribePage {
        theme: theme_from(&headers),
        valid: true,
        done,
        org_name,
        email,
    }))
}

/// `POST /unsubscribe/{token}`: the page's button and RFC 8058 one-click unsubscribe alike.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, crate::http::error::AppError> {
    let Some((org_id, email)) = ServerMail::of(&state).verify_unsubscribe(&token) else {
        return Ok(invalid(&headers));
    };
    let Some(org_name) = org_name(&state, &org_id).await? else {
        return Ok(invalid(&headers));
    };
    let tenant = Tenant::for_verified_credentials(org_id, None);
    let mut tx = state.db.tenant(&tenant).await?;
    if store::suppress(&mut tx, &email, "unsubscribe", "unsubscribe link", None).await? {
        tracing::info!("address unsubscribed");
    }
    super::sequences::stop_for_address(&mut tx, &email, "unsubscribed").await?;
    tx.commit().await?;
    Ok(render(&UnsubscribePage {
        theme: theme_from(&headers),
        valid: true,
        done: true,
        org_name,
        email,
    }))
}
