//! Pages: organization settings, members and invitations, accepting an invitation.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use meridian_core::Role;
use serde::Deserialize;

use super::service::{self, AcceptInput, InviteInput, MemberUpdate, OrgUpdate};
use super::store::{InviteRow, MemberRow};
use crate::http::client::ClientInfo;
use crate::http::error::AppError;
use crate::http::json::Query;
use crate::http::pagination::PageQuery;
use crate::state::AppState;
use crate::web::{
    FormErrors, Shell, WebCtx, WebResult, exact, initials, relative, render, theme_from,
};

#[derive(Template)]
#[template(path = "setup_unavailable.html")]
pub struct SetupUnavailable {
    pub theme: Option<&'static str>,
    pub needed: bool,
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrgPage {
    shell: Shell,
    name: String,
    domains: String,
    org_id: String,
    created: String,
    created_exact: String,
    errors: FormErrors,
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn notice_text(key: Option<&str>) -> Option<String> {
    let text = match key? {
        "saved" => "Settings saved.",
        "role_changed" => {
            "Role changed. Their sessions were ended so the new role applies at once."
        }
        "member_removed" => "Member removed. Their sessions and tokens ended.",
        "invite_revoked" => "Invitation revoked.",
        "key_revoked" => "API key revoked. It no longer works.",
        "welcome" => "Welcome to Meridian! Your organization is ready.",
        _ => return None,
    };
    Some(text.to_owned())
}

pub async fn org_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<NoticeQuery>,
) -> WebResult {
    let org = service::get_org(&state, &web.ctx).await?;
    let mut shell = web.shell(&state, "Organization", "organization").await?;
    shell.notice = notice_text(q.notice.as_deref());
    Ok(render(&OrgPage {
        shell,
        domains: org.domains().join(", "),
        name: org.name,
        org_id: org.id,
        created: relative(org.created_at),
        created_exact: exact(org.created_at),
        errors: FormErrors::default(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct OrgForm {
    name: String,
    allowed_email_domains: String,
}

pub async fn org_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<OrgForm>,
) -> WebResult {
    let domains: Vec<String> = form
        .allowed_email_domains
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let update = OrgUpdate {
        name: Some(form.name.clone()),
        allowed_email_domains: Some(domains),
    };
    match service::update_org(&state, &web.ctx, update).await {
        Ok(_) => Ok(Redirect::to("/settings/organization?notice=saved").into_response()),
        Err(error) => {
            let status = error.status();
            let errors = FormErrors::from_error(error)?;
            let org = service::get_org(&state, &web.ctx).await?;
            let shell = web.shell(&state, "Organization", "organization").await?;
            let page = OrgPage {
                shell,
                name: form.name,
                domains: form.allowed_email_domains,
                org_id: org.id,
                created: relative(org.created_at),
                created_exact: exact(org.created_at),
                errors,
            };
            Ok((status, render(&page)).into_response())
        }
    }
}

pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub initials: String,
    pub role: String,
    pub role_label: &'static str,
    pub disabled: bool,
    pub joined: String,
    pub joined_exact: String,
    pub is_self: bool,
    pub manageable: bool,
}

pub struct InviteView {
    pub id: String,
    pub email: String,
    pub role: String,
    pub role_label: &'static str,
    pub expires: String,
    pub expires_exact: String,
    pub expired: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    shell: Shell,
    members: Vec<MemberView>,
    next_cursor: Option<String>,
    invites: Vec<InviteView>,
    grantable_roles: Vec<(&'static str, &'static str)>,
    invite_email: String,
    invite_role: String,
    invite_link: Option<String>,
    errors: FormErrors,
    alert: Option<String>,
}

fn member_view(web: &WebCtx, m: MemberRow) -> MemberView {
    let role: Role = m.role.parse().unwrap_or(Role::Viewer);
    MemberView {
        is_self: web.ctx.user_id() == Some(m.user_id.as_str()),
        manageable: web.ctx.role.may_manage_member(role),
        initials: initials(&m.name),
        role_label: role.label(),
        joined: relative(m.created_at),
        joined_exact: exact(m.created_at),
        user_id: m.user_id,
        name: m.name,
        email: m.email,
        role: m.role,
        disabled: m.disabled,
    }
}

fn invite_view(i: InviteRow) -> InviteView {
    InviteView {
        expired: i.expires_at <= meridian_db::now(),
        expires: relative(i.expires_at),
        expires_exact: exact(i.expires_at),
        role_label: i.role.parse::<Role>().map(Role::label).unwrap_or("Unknown"),
        id: i.id,
        email: i.email,
        role: i.role,
    }
}

/// What the members page shows besides the lists: the invite form's state and messages.
struct PageState {
    email: String,
    role: String,
    link: Option<String>,
    errors: FormErrors,
    /// A refused action on a member (e.g. demoting the last owner), shown above the lists.
    alert: Option<String>,
    status: axum::http::StatusCode,
}

impl PageState {
    fn blank() -> Self {
        PageState {
            email: String::new(),
            role: "member".to_owned(),
            link: None,
            errors: FormErrors::default(),
            alert: None,
            status: axum::http::StatusCode::OK,
        }
    }
}

async fn members_response(
    state: &AppState,
    web: &WebCtx,
    cursor: Option<String>,
    notice: Option<String>,
    invite: PageState,
) -> WebResult {
    let page = PageQuery {
        limit: Some(50),
        cursor,
    }
    .parse()?;
    let members = service::list_members(state, &web.ctx, &page).await?;
    let invites = if web
        .ctx
        .role
        .allows(meridian_core::Permission::MembersManage)
    {
        let first = PageQuery {
            limit: Some(100),
            cursor: None,
        }
        .parse()?;
        service::list_invites(state, &web.ctx, &first).await?.items
    } else {
        Vec::new()
    };
    let mut shell = web.shell(state, "Members", "members").await?;
    shell.notice = notice;
    let status = invite.status;
    let page = MembersPage {
        shell,
        next_cursor: members.next_cursor,
        members: members
            .items
            .into_iter()
            .map(|m| member_view(web, m))
            .collect(),
        invites: invites.into_iter().map(invite_view).collect(),
        grantable_roles: Role::ALL
            .iter()
            .filter(|r| web.ctx.role.may_grant(**r))
            .map(|r| (r.as_str(), r.label()))
            .collect(),
        invite_email: invite.email,
        invite_role: invite.role,
        invite_link: invite.link,
        errors: invite.errors,
        alert: invite.alert,
    };
    Ok((status, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct MembersQuery {
    cursor: Option<String>,
    notice: Option<String>,
}

pub async fn members_page(
    State(state): State<AppState>,
    web: WebCtx,
    Query(q): Query<MembersQuery>,
) -> WebResult {
    let invite = PageState::blank();
    members_response(
        &state,
        &web,
        q.cursor,
        notice_text(q.notice.as_deref()),
        invite,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

pub async fn invite_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Form(form): Form<InviteForm>,
) -> WebResult {
    let input = InviteInput {
        email: form.email.clone(),
        role: form.role.clone(),
    };
    match service::create_invite(&state, &web.ctx, input).await {
        Ok((invite, token)) => {
            let notice = Some(format!(
                "Invitation created for {}. Share the link below; it is shown only once.",
                invite.email
            ));
            let state_after = PageState {
                link: Some(service::accept_url(&state, &token)),
                ..PageState::blank()
            };
            members_response(&state, &web, None, notice, state_after).await
        }
        Err(error) => {
            let status = error.status();
            let state_after = PageState {
                email: form.email,
                role: form.role,
                errors: FormErrors::from_error(error)?,
                status,
                ..PageState::blank()
            };
            members_response(&state, &web, None, None, state_after).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn role_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(user_id): Path<String>,
    Form(form): Form<RoleForm>,
) -> WebResult {
    let update = MemberUpdate {
        role: Some(form.role),
        disabled: None,
    };
    match service::update_member(&state, &web.ctx, &user_id, update).await {
        Ok(_) => Ok(Redirect::to("/settings/members?notice=role_changed").into_response()),
        Err(error) => {
            let status = error.status();
            let detail = error.detail();
            // Unexpected errors (not found, internal) still get the error page.
            FormErrors::from_error(error)?;
            let page = PageState {
                alert: Some(detail),
                status,
                ..PageState::blank()
            };
            members_response(&state, &web, None, None, page).await
        }
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub shell: Shell,
    pub heading: String,
    pub body: String,
    pub action: String,
    pub confirm_label: String,
    pub cancel_href: String,
}

async fn find_member_for_page(
    state: &AppState,
    web: &WebCtx,
    user_id: &str,
) -> Result<MemberRow, AppError> {
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let member = super::store::find_member(&mut tx, user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(member)
}

pub async fn remove_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(user_id): Path<String>,
) -> WebResult {
    web.ctx.require(meridian_core::Permission::MembersManage)?;
    let member = find_member_for_page(&state, &web, &user_id).await?;
    let shell = web.shell(&state, "Remove member", "members").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Remove {}?", member.name),
        body: format!(
            "{} ({}) loses access to {} at once: their sessions and tokens end. Their past activity stays in the audit log.",
            member.name, member.email, web.ctx.org.name
        ),
        action: format!("/settings/members/{user_id}/remove"),
        confirm_label: "Remove member".to_owned(),
        cancel_href: "/settings/members".to_owned(),
    }))
}

pub async fn remove_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(user_id): Path<String>,
) -> WebResult {
    service::remove_member(&state, &web.ctx, &user_id).await?;
    Ok(Redirect::to("/settings/members?notice=member_removed").into_response())
}

pub async fn revoke_invite_confirm(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    web.ctx.require(meridian_core::Permission::MembersManage)?;
    let mut tx = state.db.tenant_read(&web.ctx.tenant).await?;
    let invite = super::store::find_invite(&mut tx, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let shell = web.shell(&state, "Revoke invitation", "members").await?;
    Ok(render(&ConfirmPage {
        shell,
        heading: format!("Revoke the invitation for {}?", invite.email),
        body: "The link stops working. You can invite them again later.".to_owned(),
        action: format!("/settings/invites/{id}/revoke"),
        confirm_label: "Revoke invitation".to_owned(),
        cancel_href: "/settings/members".to_owned(),
    }))
}

pub async fn revoke_invite_submit(
    State(state): State<AppState>,
    web: WebCtx,
    Path(id): Path<String>,
) -> WebResult {
    service::revoke_invite(&state, &web.ctx, &id).await?;
    Ok(Redirect::to("/settings/members?notice=invite_revoked").into_response())
}

#[derive(Template)]
#[template(path = "invite_accept.html")]
struct AcceptPage {
    theme: Option<&'static str>,
    token: String,
    org_name: String,
    email: String,
    role: &'static str,
    has_account: bool,
    name: String,
    errors: FormErrors,
}

#[derive(Debug, Deserialize)]
pub struct AcceptQuery {
    token: Option<String>,
}

pub async fn accept_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AcceptQuery>,
) -> WebResult {
    let token = q.token.unwrap_or_default();
    let preview = service::preview_invite(&state, &token).await?;
    Ok(render(&AcceptPage {
        theme: theme_from(&headers),
        token,
        org_name: preview.org_name,
        email: preview.email,
        role: preview.role.label(),
        has_account: preview.has_account,
        name: String::new(),
        errors: FormErrors::default(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    token: String,
    #[serde(default)]
    name: String,
    password: String,
}

pub async fn accept_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    Form(form): Form<AcceptForm>,
) -> WebResult {
    let input = AcceptInput {
        token: form.token.clone(),
        name: form.name.clone(),
        password: form.password,
    };
    match service::accept_invite(&state, input, &client).await {
        Ok(who) => crate::auth::web::sign_in(&state, &who, &client, "/").await,
        Err(error) => {
            let preview = service::preview_invite(&state, &form.token).await?;
            let status = error.status();
            let errors = FormErrors::from_error(error)?;
            let page = AcceptPage {
                theme: theme_from(&headers),
                token: form.token,
                org_name: preview.org_name,
                email: preview.email,
                role: preview.role.label(),
                has_account: preview.has_account,
                name: form.name,
                errors,
            };
            Ok((status, render(&page)).into_response())
        }
    }
}
