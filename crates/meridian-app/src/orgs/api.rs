use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::service::{self, InviteInput, MemberUpdate, OrgUpdate};
use super::store::{InviteRow, MemberRow, OrgRow};
use crate::http::ctx::Ctx;
use crate::http::error::{AppResult, Problem};
use crate::http::json::{Json, Query};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// When not empty, only addresses at these domains can be invited.
    pub allowed_email_domains: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<OrgRow> for Organization {
    fn from(row: OrgRow) -> Self {
        Organization {
            allowed_email_domains: row.domains(),
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The caller's organization.
#[utoipa::path(get, path = "/api/v1/org", tag = "organization", responses((status = 200, body = Organization)))]
pub async fn get_org(
    State(state): State<AppState>,
    ctx: Ctx,
) -> AppResult<axum::Json<Organization>> {
    Ok(axum::Json(service::get_org(&state, &ctx).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateOrgRequest {
    pub name: Option<String>,
    pub allowed_email_domains: Option<Vec<String>>,
}

/// Changes the organization's settings (admins).
#[utoipa::path(patch, path = "/api/v1/org", tag = "organization", request_body = UpdateOrgRequest,
    responses((status = 200, body = Organization), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn update_org(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<UpdateOrgRequest>,
) -> AppResult<axum::Json<Organization>> {
    let org = service::update_org(
        &state,
        &ctx,
        OrgUpdate {
            name: body.name,
            allowed_email_domains: body.allowed_email_domains,
        },
    )
    .await?;
    Ok(axum::Json(org.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

impl From<MemberRow> for Member {
    fn from(row: MemberRow) -> Self {
        Member {
            user_id: row.user_id,
            email: row.email,
            name: row.name,
            role: row.role,
            disabled: row.disabled,
            joined_at: row.created_at,
        }
    }
}

/// Members of the organization, by name.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(PageQuery),
    responses((status = 200, body = inline(Page<Member>))))]
pub async fn list_members(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<Member>>> {
    let page = query.parse()?;
    Ok(axum::Json(
        service::list_members(&state, &ctx, &page)
            .await?
            .map(Member::from),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateMemberRequest {
    /// owner, admin, manager, member or viewer.
    pub role: Option<String>,
    /// Disabled members cannot sign in; their sessions and tokens end at once.
    pub disabled: Option<bool>,
}

/// Changes a member's role or disables them (admins). Their sessions and tokens end at once.
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "members", request_body = UpdateMemberRequest,
    params(("user_id" = String, Path)),
    responses((status = 200, body = Member), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn update_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(user_id): Path<String>,
    Json(body): Json<UpdateMemberRequest>,
) -> AppResult<axum::Json<Member>> {
    let member = service::update_member(
        &state,
        &ctx,
        &user_id,
        MemberUpdate {
            role: body.role,
            disabled: body.disabled,
        },
    )
    .await?;
    Ok(axum::Json(member.into()))
}

/// Removes a member (admins). Their sessions and tokens end at once.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "members", params(("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(user_id): Path<String>,
) -> AppResult<StatusCode> {
    service::remove_member(&state, &ctx, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invite {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub expired: bool,
    /// Only in the response that creates the invite: the link to share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_url: Option<String>,
}

impl Invite {
    fn from_row(row: InviteRow, accept_url: Option<String>) -> Self {
        Invite {
            expired: row.expires_at <= meridian_db::now(),
            id: row.id,
            email: row.email,
            role: row.role,
            invited_by: row.invited_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            accept_url,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateInviteRequest {
    pub email: String,
    pub role: String,
}

/// Invites someone (admins). The response's `accept_url` is the only time the link is shown.
#[utoipa::path(post, path = "/api/v1/invites", tag = "members", request_body = CreateInviteRequest,
    responses((status = 201, body = Invite), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_invite(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<CreateInviteRequest>,
) -> AppResult<(StatusCode, axum::Json<Invite>)> {
    let (invite, token) = service::create_invite(
        &state,
        &ctx,
        InviteInput {
            email: body.email,
            role: body.role,
        },
    )
    .await?;
    let url = service::accept_url(&state, &token);
    Ok((
        StatusCode::CREATED,
        axum::Json(Invite::from_row(invite, Some(url))),
    ))
}

/// Pending invitations, newest first (admins).
#[utoipa::path(get, path = "/api/v1/invites", tag = "members", params(PageQuery),
    responses((status = 200, body = inline(Page<Invite>))))]
pub async fn list_invites(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<PageQuery>,
) -> AppResult<axum::Json<Page<Invite>>> {
    let page = query.parse()?;
    let invites = service::list_invites(&state, &ctx, &page).await?;
    Ok(axum::Json(invites.map(|row| Invite::from_row(row, None))))
}

/// Revokes a pending invitation (admins).
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_invite(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::revoke_invite(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
