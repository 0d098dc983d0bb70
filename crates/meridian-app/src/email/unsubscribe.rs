//! Unsubscribing: every marketing email links to `/unsubscribe/{token}`, where the token names
//! the organization and the address and is signed by the server, so the page needs no sign-in and
//! cannot be used to unsubscribe someone else. A `POST` there (the page's button, or a mail
//! program's one-click request per RFC 8058) puts the address on the organization's suppression
//! list.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use meridian_db::Tenant;

use super::store;
use crate::state::AppState;
use crate::web::{render, theme_from};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The signing key: derived from the server's CSRF key (a random secret every node shares), so
/// unsubscribe links keep working across restarts, nodes and secret-key rotations.
fn mac(state: &AppState) -> HmacSha256 {
    let mut derive = HmacSha256::new_from_slice(&state.csrf_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    derive.update(b"meridian unsubscribe v1");
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn signature(state: &AppState, org_id: &str, email: &str) -> Vec<u8> {
    let mut mac = mac(state);
    mac.update(org_id.as_bytes());
    mac.update(b"\n");
    mac.update(email.as_bytes());
    mac.finalize().into_bytes()[..16].to_vec()
}

/// The token for `email` at `org_id`.
pub fn token(state: &AppState, org_id: &str, email: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(org_id),
        URL_SAFE_NO_PAD.encode(email),
        URL_SAFE_NO_PAD.encode(signature(state, org_id, email))
    )
}

/// The unsubscribe page of `email` at `org_id`.
pub fn url(state: &AppState, org_id: &str, email: &str) -> String {
    format!(
        "{}/unsubscribe/{}",
        state.config.public_url,
        token(state, org_id, email)
    )
}

/// The organization and address a token names, if the server signed it.
pub fn verify(state: &AppState, token: &str) -> Option<(String, String)> {
    let mut parts = token.split('.');
    let (Some(org), Some(email), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let org_id = String::from_utf8(URL_SAFE_NO_PAD.decode(org).ok()?).ok()?;
    let email = String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut mac = mac(state);
    mac.update(org_id.as_bytes());
    mac.update(b"\n");
    mac.update(email.as_bytes());
    mac.verify_truncated_left(&sig).ok()?;
    Some((org_id, email))
}

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
    let Some((org_id, email)) = verify(&state, &token) else {
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
    let Some((org_id, email)) = verify(&state, &token) else {
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
    tx.commit().await?;
    Ok(render(&UnsubscribePage {
        theme: theme_from(&headers),
        valid: true,
        done: true,
        org_name,
        email,
    }))
}
