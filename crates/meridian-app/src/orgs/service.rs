//! Organization use cases: creation (setup, signup, CLI), settings, members and invitations.

use meridian_core::email::{email_domain, normalize_domain, normalize_email};
use meridian_core::password::check_new_password;
use meridian_core::pipeline::OrgTemplate;
use meridian_core::roles::parse_role;
use meridian_core::validation::required_text;
use meridian_core::{Permission, Role, Validation};
use meridian_db::{Db, Tenant};
use serde_json::json;
use time::Duration;

use super::store::{self, InviteRow, MemberRow, NewInvite, OrgRow};
use crate::audit::store::{self as audit, Entry};
use crate::auth::password::PasswordHasher;
use crate::auth::service::Authenticated;
use crate::auth::store as auth_store;
use crate::auth::throttle;
use crate::auth::tokens::{INVITE_TOKEN_PREFIX, SETUP_TOKEN_PREFIX, hash_secret, new_secret};
use crate::config::SignupPolicy;
use crate::http::client::ClientInfo;
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};
use crate::http::pagination::{Page, PageRequest};
use crate::state::AppState;

pub const MAX_ORG_NAME: usize = 100;
pub const MAX_PERSON_NAME: usize = 100;
pub const SETUP_TOKEN_LIFETIME: Duration = Duration::hours(24);

pub struct NewOrganization {
    pub org_name: String,
    pub name: String,
    pub email: String,
    pub password: String,
    /// `marketing` (or empty) or `surrogacy`: which pipelines the organization starts with.
    pub template: String,
}

struct ValidOrganization {
    org_name: String,
    name: String,
    email: String,
    template: OrgTemplate,
}

fn validate_new_organization(input: &NewOrganization) -> AppResult<ValidOrganization> {
    let mut v = Validation::new();
    let org_name = v.check("org_name", required_text(&input.org_name, 2, MAX_ORG_NAME));
    let name = v.check("name", required_text(&input.name, 1, MAX_PERSON_NAME));
    let email = v.check("email", normalize_email(&input.email));
    v.check("password", check_new_password(&input.password));
    let template = v.check("template", OrgTemplate::parse(&input.template));
    v.finish().map_err(AppError::Validation)?;
    match (org_name, name, email, template) {
        (Some(org_name), Some(name), Some(email), Some(template)) => Ok(ValidOrganization {
            org_name,
            name,
            email,
            template,
        }),
        _ => Err(AppError::BadRequest("invalid input".to_owned())),
    }
}

/// Creates an organization and its first owner. `setup_token_hash`, when given, must be a live
/// setup token and no organization may exist yet (first-run setup); both checks happen in the
/// same transaction as the creation, so two racing setups cannot both succeed.
pub async fn create_organization(
    db: &Db,
    hasher: &PasswordHasher,
    input: NewOrganization,
    setup_token_hash: Option<&str>,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let valid = validate_new_organization(&input)?;
    let password_hash = hasher.hash(&input.password).await?;
    let mut tx = db.global().await?;
    if let Some(token_hash) = setup_token_hash {
        if store::count_orgs(&mut tx).await? > 0 {
            return Err(AppError::Conflict(
                "Meridian is already set up; sign in instead.".to_owned(),
            ));
        }
        if !store::take_setup_token(&mut tx, token_hash).await? {
            return Err(AppError::Forbidden(
                "This setup link is invalid or has expired; restart the server for a new one."
                    .to_owned(),
            ));
        }
    }
    if auth_store::find_user_by_email(&mut tx, &valid.email)
        .await?
        .is_some()
    {
        return Err(AppError::field(
            "email",
            "already has an account; sign in instead",
        ));
    }
    let org = store::insert_org(&mut tx, &valid.org_name).await?;
    let user = auth_store::insert_user(&mut tx, &valid.email, &valid.name, &password_hash).await?;
    let tenant = Tenant::for_verified_credentials(&org.id, Some(user.id.clone()));
    let mut tx = tx.into_tenant(&tenant).await?;
    store::insert_membership(&mut tx, &user.id, Role::Owner.as_str()).await?;
    crate::pipelines::service::install_template(&mut tx, valid.template).await?;
    audit::record_by_user(
        &mut tx,
        &user,
        client,
        Entry {
            action: "organization.created",
            target_type: "organization",
            target_id: Some(&org.id),
            target_label: Some(&org.name),
            before: None,
            after: Some(json!({"name": org.name, "owner": user.email})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Authenticated::new(user, org.into(), Role::Owner))
}

/// Open signup: anyone may create an organization when the server allows it.
pub async fn register(
    state: &AppState,
    input: NewOrganization,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    if state.config.signup != SignupPolicy::Open {
        return Err(AppError::Forbidden(
            "Sign-up is by invitation on this server; ask an administrator for an invite."
                .to_owned(),
        ));
    }
    create_organization(&state.db, &state.hasher, input, None, client).await
}

/// When no organization exists yet, makes a one-time setup token (valid 24 hours).
pub async fn prepare_setup(db: &Db) -> AppResult<Option<String>> {
    let mut tx = db.global().await?;
    if store::count_orgs(&mut tx).await? > 0 {
        return Ok(None);
    }
    let token = new_secret(SETUP_TOKEN_PREFIX);
    store::insert_setup_token(
        &mut tx,
        &hash_secret(&token),
        meridian_db::now() + SETUP_TOKEN_LIFETIME,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(token))
}

/// Whether the instance still needs setup, and whether `token` is a valid setup token.
pub async fn setup_state(db: &Db, token: &str) -> AppResult<(bool, bool)> {
    let mut tx = db.global_read().await?;
    let needed = store::count_orgs(&mut tx).await? == 0;
    let valid = needed && store::setup_token_valid(&mut tx, &hash_secret(token)).await?;
    tx.commit().await?;
    Ok((needed, valid))
}

pub async fn get_org(state: &AppState, ctx: &Ctx) -> AppResult<OrgRow> {
    ctx.require(Permission::OrgRead)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let org = store::get_org(&mut tx).await?;
    tx.commit().await?;
    Ok(org)
}

pub struct OrgUpdate {
    pub name: Option<String>,
    pub allowed_email_domains: Option<Vec<String>>,
}

pub async fn update_org(state: &AppState, ctx: &Ctx, update: OrgUpdate) -> AppResult<OrgRow> {
    ctx.require(Permission::OrgManage)?;
    let mut v = Validation::new();
    let name = update
        .name
        .as_deref()
        .and_then(|n| v.check("name", required_text(n, 2, MAX_ORG_NAME)));
    let domains = update.allowed_email_domains.as_ref().map(|list| {
        let mut out: Vec<String> = Vec::new();
        for (i, d) in list.iter().enumerate() {
            if let Some(d) = v.check(&format!("allowed_email_domains[{i}]"), normalize_domain(d))
                && !out.contains(&d)
            {
                out.push(d);
            }
        }
        out
    });
    v.finish().map_err(AppError::Validation)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let before = store::get_org(&mut tx).await?;
    let name = name.unwrap_or_else(|| before.name.clone());
    let domains = domains.unwrap_or_else(|| before.domains());
    let after = store::update_org(&mut tx, &name, &domains).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "organization.updated",
            target_type: "organization",
            target_id: Some(&after.id),
            target_label: Some(&after.name),
            before: Some(json!({"name": before.name, "allowed_email_domains": before.domains()})),
            after: Some(json!({"name": after.name, "allowed_email_domains": after.domains()})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn list_members(
    state: &AppState,
    ctx: &Ctx,
    page: &PageRequest,
) -> AppResult<Page<MemberRow>> {
    ctx.require(Permission::MembersRead)?;
    let rows = store::list_members(&state.db, &ctx.tenant, page).await?;
    Ok(Page::from_rows(rows, page, |m| {
        vec![m.name_key.clone(), m.user_id.clone()]
    }))
}

fn stored_role(text: &str) -> AppResult<Role> {
    text.parse()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored role: {e}")))
}

pub struct MemberUpdate {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

/// Changes a member's role or disables them. Either ends their sessions and tokens in this
/// organization at once: a changed privilege takes effect immediately, and they sign in again
/// with a fresh session id.
pub async fn update_member(
    state: &AppState,
    ctx: &Ctx,
    user_id: &str,
    update: MemberUpdate,
) -> AppResult<MemberRow> {
    ctx.require(Permission::MembersManage)?;
    let new_role = match update.role.as_deref() {
        Some(r) => Some(parse_role(r).map_err(|m| AppError::field("role", m))?),
        None => None,
    };
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let member = store::find_member(&mut tx, user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let current_role = stored_role(&member.role)?;
    let role = new_role.unwrap_or(current_role);
    let disabled = update.disabled.unwrap_or(member.disabled);
    if role == current_role && disabled == member.disabled {
        return Ok(member);
    }
    if ctx.user_id() == Some(user_id) {
        return Err(AppError::Forbidden(
            "You cannot change your own role or disable yourself; ask another admin.".to_owned(),
        ));
    }
    if !ctx.role.may_manage_member(current_role) {
        return Err(AppError::Forbidden(format!(
            "Your role ({}) cannot change a member whose role is {current_role}.",
            ctx.role
        )));
    }
    if !ctx.role.may_grant(role) {
        return Err(AppError::field(
            "role",
            format!("you cannot grant a role above your own ({})", ctx.role),
        ));
    }
    let loses_ownership = current_role == Role::Owner && (role != Role::Owner || disabled);
    if loses_ownership && store::count_other_active_owners(&mut tx, user_id).await? == 0 {
        return Err(AppError::Conflict(
            "An organization needs at least one active owner.".to_owned(),
        ));
    }
    store::update_member(&mut tx, user_id, role.as_str(), disabled).await?;
    auth_store::end_member_credentials(&mut tx, user_id).await?;
    let action = if role != current_role {
        "member.role_changed"
    } else {
        "member.status_changed"
    };
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action,
            target_type: "member",
            target_id: Some(user_id),
            target_label: Some(&member.email),
            before: Some(json!({"role": current_role, "disabled": member.disabled})),
            after: Some(json!({"role": role, "disabled": disabled})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(MemberRow {
        role: role.as_str().to_owned(),
        disabled,
        ..member
    })
}

/// Removes a member (their sessions and tokens go with the membership).
pub async fn remove_member(state: &AppState, ctx: &Ctx, user_id: &str) -> AppResult<()> {
    ctx.require(Permission::MembersManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let member = store::find_member(&mut tx, user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let role = stored_role(&member.role)?;
    if !ctx.role.may_manage_member(role) {
        return Err(AppError::Forbidden(format!(
            "Your role ({}) cannot remove a member whose role is {role}.",
            ctx.role
        )));
    }
    if role == Role::Owner && store::count_other_active_owners(&mut tx, user_id).await? == 0 {
        return Err(AppError::Conflict(
            "An organization needs at least one active owner.".to_owned(),
        ));
    }
    auth_store::end_member_credentials(&mut tx, user_id).await?;
    store::delete_member(&mut tx, user_id).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "member.removed",
            target_type: "member",
            target_id: Some(user_id),
            target_label: Some(&member.email),
            before: Some(json!({"role": role, "email": member.email, "name": member.name})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub struct InviteInput {
    pub email: String,
    pub role: String,
}

pub fn accept_url(state: &AppState, token: &str) -> String {
    format!("{}/invite?token={token}", state.config.public_url)
}

fn check_domain(org: &OrgRow, email: &str) -> AppResult<()> {
    let domains = org.domains();
    if domains.is_empty() || domains.iter().any(|d| d == email_domain(email)) {
        Ok(())
    } else {
        Err(AppError::field(
            "email",
            format!("must be an address at {}", domains.join(" or ")),
        ))
    }
}

/// Invites someone; returns the invite and its token (shown once, in the accept link).
pub async fn create_invite(
    state: &AppState,
    ctx: &Ctx,
    input: InviteInput,
) -> AppResult<(InviteRow, String)> {
    ctx.require(Permission::MembersManage)?;
    let mut v = Validation::new();
    let email = v.check("email", normalize_email(&input.email));
    let role = v.check("role", parse_role(&input.role));
    v.finish().map_err(AppError::Validation)?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(AppError::BadRequest("invalid input".to_owned()));
    };
    if !ctx.role.may_grant(role) {
        return Err(AppError::field(
            "role",
            format!(
                "you cannot invite with a role above your own ({})",
                ctx.role
            ),
        ));
    }
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let org = store::get_org(&mut tx).await?;
    check_domain(&org, &email)?;
    if store::find_member_by_email(&mut tx, &email)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!("{email} is already a member.")));
    }
    store::retire_expired_invites(&mut tx, &email).await?;
    let token = new_secret(INVITE_TOKEN_PREFIX);
    let invite = store::insert_invite(
        &mut tx,
        NewInvite {
            email: &email,
            role: role.as_str(),
            token_hash: &hash_secret(&token),
            invited_by: ctx.user_id(),
            expires_at: meridian_db::now()
                + Duration::try_from(state.config.invite_lifetime).unwrap_or(Duration::days(7)),
        },
    )
    .await
    .map_err(|e| match meridian_db::unique_violation(&e) {
        Some(_) => AppError::Conflict(format!(
            "An invitation for {email} is already pending; revoke it to send a new one."
        )),
        None => e.into(),
    })?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "invite.created",
            target_type: "invite",
            target_id: Some(&invite.id),
            target_label: Some(&invite.email),
            before: None,
            after: Some(json!({"email": invite.email, "role": invite.role})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((invite, token))
}

pub async fn list_invites(
    state: &AppState,
    ctx: &Ctx,
    page: &PageRequest,
) -> AppResult<Page<InviteRow>> {
    ctx.require(Permission::MembersManage)?;
    let mut tx = state.db.tenant_read(&ctx.tenant).await?;
    let rows = store::list_pending_invites(&mut tx, page).await?;
    tx.commit().await?;
    Ok(Page::from_rows(rows, page, |i| vec![i.id.clone()]))
}

pub async fn revoke_invite(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::MembersManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let invite = store::find_invite(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if invite.accepted_at.is_some() || invite.revoked_at.is_some() {
        return Err(AppError::Conflict(
            "This invitation is no longer pending.".to_owned(),
        ));
    }
    store::close_invite(&mut tx, id, false).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "invite.revoked",
            target_type: "invite",
            target_id: Some(&invite.id),
            target_label: Some(&invite.email),
            before: Some(json!({"email": invite.email, "role": invite.role})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What the accept page shows about an invite.
pub struct InvitePreview {
    pub email: String,
    pub role: Role,
    pub org_name: String,
    pub has_account: bool,
}

const INVITE_GONE: &str = "This invitation is invalid, expired or already used; ask for a new one.";

async fn live_invite(tx: &mut meridian_db::GlobalTx, token: &str) -> AppResult<InviteRow> {
    let invite = store::find_invite_by_token(tx, &hash_secret(token))
        .await?
        .filter(|i| {
            i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > meridian_db::now()
        })
        .ok_or_else(|| AppError::Forbidden(INVITE_GONE.to_owned()))?;
    Ok(invite)
}

pub async fn preview_invite(state: &AppState, token: &str) -> AppResult<InvitePreview> {
    let mut tx = state.db.credential_read(&hash_secret(token)).await?;
    let invite = live_invite(&mut tx, token).await?;
    let has_account = auth_store::find_user_by_email(&mut tx, &invite.email)
        .await?
        .is_some();
    let tenant = Tenant::for_verified_credentials(&invite.org_id, None);
    let mut tx = tx.into_tenant(&tenant).await?;
    let org = store::get_org(&mut tx).await?;
    tx.commit().await?;
    Ok(InvitePreview {
        email: invite.email,
        role: stored_role(&invite.role)?,
        org_name: org.name,
        has_account,
    })
}

/// Who accepts an invite: an account that already exists, or one to create.
enum Joiner {
    Existing(auth_store::UserRow),
    New { name: String, password_hash: String },
}

pub struct AcceptInput {
    pub token: String,
    pub name: String,
    pub password: String,
}

/// Accepts an invite: creates the account (or, for an existing account, checks its password) and
/// the membership.
pub async fn accept_invite(
    state: &AppState,
    input: AcceptInput,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let token_hash = hash_secret(&input.token);
    // Check the invite and the password before any write transaction: hashing is slow, and a
    // failed attempt is counted by the throttle in a transaction of its own.
    let mut tx = state.db.credential_read(&token_hash).await?;
    let invite = live_invite(&mut tx, &input.token).await?;
    let existing = auth_store::find_user_by_email(&mut tx, &invite.email).await?;
    tx.commit().await?;
    let joiner = match existing {
        Some(user) => {
            // Checking an existing account's password is a login attempt: same throttling.
            let ip = client.ip.as_deref().unwrap_or("unknown");
            throttle::check(&state.db, &user.email, ip).await?;
            let verified = state
                .hasher
                .verify(Some(&user.password_hash), &input.password)
                .await?;
            if !verified.ok {
                throttle::record_failure(&state.db, &user.email, ip).await?;
                return Err(AppError::field(
                    "password",
                    "is not the password of your existing Meridian account",
                ));
            }
            Joiner::Existing(user)
        }
        None => {
            let mut v = Validation::new();
            let name = v.check("name", required_text(&input.name, 1, MAX_PERSON_NAME));
            v.check("password", check_new_password(&input.password));
            v.finish().map_err(AppError::Validation)?;
            Joiner::New {
                name: name.unwrap_or_default(),
                password_hash: state.hasher.hash(&input.password).await?,
            }
        }
    };
    let mut tx = state.db.credential_lookup(&token_hash).await?;
    // Still live: another request may have used the invite meanwhile.
    let invite = live_invite(&mut tx, &input.token).await?;
    let user = match joiner {
        Joiner::Existing(user) => user,
        Joiner::New {
            name,
            password_hash,
        } => auth_store::insert_user(&mut tx, &invite.email, &name, &password_hash)
            .await
            .map_err(|e| match meridian_db::unique_violation(&e) {
                Some(_) => AppError::Conflict(
                    "This account was just created; sign in and accept again.".to_owned(),
                ),
                None => e.into(),
            })?,
    };
    let tenant = Tenant::for_verified_credentials(&invite.org_id, Some(user.id.clone()));
    let mut tx = tx.into_tenant(&tenant).await?;
    let org = store::get_org(&mut tx).await?;
    check_domain(&org, &invite.email)?;
    if store::find_member(&mut tx, &user.id).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "You are already a member of {}.",
            org.name
        )));
    }
    let role = stored_role(&invite.role)?;
    store::insert_membership(&mut tx, &user.id, role.as_str()).await?;
    store::close_invite(&mut tx, &invite.id, true).await?;
    audit::record_by_user(
        &mut tx,
        &user,
        client,
        Entry {
            action: "member.joined",
            target_type: "member",
            target_id: Some(&user.id),
            target_label: Some(&user.email),
            before: None,
            after: Some(json!({"role": role, "invite_id": invite.id})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Authenticated::new(user, org.into(), role))
}
