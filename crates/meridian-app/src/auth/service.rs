//! Authentication use cases: resolving credentials into a [`Ctx`], logging in, issuing and
//! rotating tokens, sessions, and password changes.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use meridian_core::{Role, email::normalize_email, password::check_new_password};
use meridian_db::Tenant;
use sha2::Sha256;
use time::Duration;

use super::cookies::{read_cookie, session_cookie_name};
use super::store::{self, MembershipOrg, NewSession, TokenTable, UserRow};
use super::throttle;
use super::tokens::{
    self, ACCESS_TOKEN_PREFIX, API_KEY_PREFIX, REFRESH_TOKEN_PREFIX, hash_secret, new_secret,
};
use crate::apikeys;
use crate::config::AppConfig;
use crate::http::client::ClientInfo;
use crate::http::ctx::{Credential, Ctx, OrgRef, UserRef};
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

const BAD_CREDENTIALS: &str = "The credentials are invalid or have expired.";
/// Sessions are written back at most this often, so reads stay reads.
const LAST_SEEN_GRANULARITY: Duration = Duration::minutes(1);

fn std_to_time(d: std::time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::MAX)
}

pub fn has_credentials(headers: &HeaderMap, config: &AppConfig) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || read_cookie(headers, session_cookie_name(config)).is_some_and(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> AppResult<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("The Authorization header is malformed."))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::Unauthorized(
            "Use `Authorization: Bearer <token>` with an access token or API key.",
        )),
    }
}

/// Resolves the request's credentials. Bearer credentials win over a cookie.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientInfo,
) -> AppResult<Ctx> {
    if let Some(token) = bearer(headers)? {
        return if token.starts_with(ACCESS_TOKEN_PREFIX) {
            authenticate_access_token(state, token, client).await
        } else if token.starts_with(API_KEY_PREFIX) {
            apikeys::service::authenticate(state, token, client).await
        } else {
            Err(AppError::Unauthorized(BAD_CREDENTIALS))
        };
    }
    match read_cookie(headers, session_cookie_name(&state.config)) {
        Some(secret) if !secret.is_empty() => authenticate_session(state, secret, client).await,
        _ => Err(AppError::Unauthorized("Sign in, or send a bearer token.")),
    }
}

/// The CSRF token of a session: an HMAC of the session secret under a server key. Only someone
/// who can read the HttpOnly cookie (or a page rendered for it) can produce it.
pub fn csrf_token_for(key: &[u8], session_secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(b"csrf\0");
    mac.update(session_secret.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Loads the member behind a verified credential; a removed or disabled member is refused.
async fn member_ctx(
    tx: &mut meridian_db::TenantTx,
    user_id: &str,
    credential: Credential,
    client: ClientInfo,
) -> AppResult<Ctx> {
    let principal = store::principal(tx, user_id)
        .await?
        .filter(|p| !p.disabled)
        .ok_or(AppError::Unauthorized(BAD_CREDENTIALS))?;
    let role = parse_role(&principal.role)?;
    Ok(Ctx {
        tenant: tx.tenant().clone(),
        org: OrgRef {
            id: tx.org_id(),
            name: principal.org_name,
        },
        user: Some(UserRef {
            id: user_id.to_owned(),
            email: principal.email,
            name: principal.name,
        }),
        role,
        credential,
        client,
    })
}

fn parse_role(text: &str) -> AppResult<Role> {
    text.parse()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored role: {e}")))
}

/// The context of a credential whose row (with its principal) was just read.
fn credential_ctx(
    org_id: String,
    user_id: String,
    principal: store::CredentialPrincipal,
    credential: Credential,
    client: ClientInfo,
) -> AppResult<Ctx> {
    Ok(Ctx {
        tenant: Tenant::for_verified_credentials(&org_id, Some(user_id.clone())),
        role: parse_role(&principal.role)?,
        org: OrgRef {
            id: org_id,
            name: principal.org_name,
        },
        user: Some(UserRef {
            id: user_id,
            email: principal.email,
            name: principal.name,
        }),
        credential,
        client,
    })
}

async fn authenticate_session(
    state: &AppState,
    secret: &str,
    client: ClientInfo,
) -> AppResult<Ctx> {
    let hash = hash_secret(secret);
    let session = store::find_session(&state.db, &hash)
        .await?
        .ok_or(AppError::Unauthorized(BAD_CREDENTIALS))?;
    let now = meridian_db::now();
    let idle = std_to_time(state.config.session_idle_timeout);
    if session.absolute_expires_at <= now || session.last_seen_at + idle <= now {
        return Err(AppError::Unauthorized(
            "Your session has expired; sign in again.",
        ));
    }
    let credential = Credential::Session {
        id: session.id.clone(),
        csrf_token: csrf_token_for(&state.csrf_key, secret),
    };
    let ctx = credential_ctx(
        session.org_id,
        session.user_id,
        session.principal,
        credential,
        client,
    )?;
    if session.last_seen_at + LAST_SEEN_GRANULARITY <= now {
        let mut tx = state.db.tenant(&ctx.tenant).await?;
        store::touch_session(&mut tx, &session.id).await?;
        tx.commit().await?;
    }
    Ok(ctx)
}

async fn authenticate_access_token(
    state: &AppState,
    token: &str,
    client: ClientInfo,
) -> AppResult<Ctx> {
    let hash = hash_secret(token);
    let row = store::find_access_token(&state.db, &hash)
        .await?
        .filter(|row| row.expires_at > meridian_db::now())
        .ok_or(AppError::Unauthorized(BAD_CREDENTIALS))?;
    let credential = Credential::AccessToken {
        family_id: row.family_id,
    };
    credential_ctx(row.org_id, row.user_id, row.principal, credential, client)
}

/// Who signed in, and into which organization.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: UserRef,
    pub org: OrgRef,
    pub role: Role,
}

impl Authenticated {
    pub fn tenant(&self) -> Tenant {
        Tenant::for_verified_credentials(&self.org.id, Some(self.user.id.clone()))
    }

    pub fn new(user: UserRow, org: OrgRef, role: Role) -> Self {
        Self {
            user: UserRef {
                id: user.id,
                email: user.email,
                name: user.name,
            },
            org,
            role,
        }
    }

    pub fn from_membership(user: UserRow, membership: MembershipOrg) -> AppResult<Self> {
        let role = parse_role(&membership.role)?;
        let org = OrgRef {
            id: membership.org_id,
            name: membership.org_name,
        };
        Ok(Self::new(user, org, role))
    }
}

pub struct LoginInput {
    pub email: String,
    pub password: String,
    /// Which of the user's organizations to sign in to; the oldest membership by default.
    pub org_id: Option<String>,
}

const WRONG_LOGIN: &str = "The email or password is incorrect.";

/// Verifies a password login (throttled) and picks the organization.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AppState,
    input: LoginInput,
    client: &ClientInfo,
) -> AppResult<Authenticated> {
    let email = normalize_email(&input.email).map_err(|m| AppError::field("email", m))?;
    if input.password.is_empty() {
        return Err(AppError::field("password", "is required"));
    }
    let ip = client.ip.as_deref().unwrap_or("unknown");
    throttle::check(&state.db, &email, ip).await?;

    let mut tx = state.db.global_read().await?;
    let user = store::find_user_by_email(&mut tx, &email).await?;
    tx.commit().await?;
    let verified = state
        .hasher
        .verify(
            user.as_ref().map(|u| u.password_hash.as_str()),
            &input.password,
        )
        .await?;
    let Some(user) = user.filter(|_| verified.ok) else {
        throttle::record_failure(&state.db, &email, ip).await?;
        return Err(AppError::Unauthorized(WRONG_LOGIN));
    };
    throttle::record_success(&state.db, &email, ip).await?;

    let mut tx = state.db.user_scope(&user.id).await?;
    if verified.needs_rehash {
        let fresh = state.hasher.hash(&input.password).await?;
        store::set_password_hash(&mut tx, &user.id, &fresh).await?;
    }
    let memberships = store::user_memberships(&mut tx, &user.id).await?;
    tx.commit().await?;
    let mut active = memberships.iter().filter(|m| !m.disabled);
    let membership = match input.org_id.as_deref().filter(|id| !id.is_empty()) {
        Some(org_id) => active.find(|m| m.org_id == org_id).ok_or_else(|| {
            AppError::field(
                "org_id",
                "you are not an active member of this organization",
            )
        })?,
        None => active.next().ok_or(AppError::Unauthorized(
            "This account is not an active member of any organization.",
        ))?,
    };
    let membership = membership.clone();
    Authenticated::from_membership(user, membership)
}

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

async fn insert_token_pair(
    state: &AppState,
    tx: &mut meridian_db::TenantTx,
    user_id: &str,
    role: Role,
    family_id: &str,
) -> AppResult<TokenPair> {
    let now = meridian_db::now();
    let access_token = new_secret(ACCESS_TOKEN_PREFIX);
    let refresh_token = new_secret(REFRESH_TOKEN_PREFIX);
    let lifetimes = [
        (
            TokenTable::Access,
            &access_token,
            state.config.access_token_lifetime,
        ),
        (
            TokenTable::Refresh,
            &refresh_token,
            state.config.refresh_token_lifetime,
        ),
    ];
    for (table, token, lifetime) in lifetimes {
        let expires_at = now + std_to_time(lifetime);
        store::insert_token(
            tx,
            table,
            user_id,
            role.as_str(),
            family_id,
            &hash_secret(token),
            expires_at,
        )
        .await?;
    }
    Ok(TokenPair {
        access_token,
        refresh_token,
        expires_in: state.config.access_token_lifetime.as_secs(),
    })
}

/// Starts a new token family (login, registration, accepted invite).
pub async fn issue_tokens(state: &AppState, who: &Authenticated) -> AppResult<TokenPair> {
    let mut tx = state.db.tenant(&who.tenant()).await?;
    let pair = insert_token_pair(
        state,
        &mut tx,
        &who.user.id,
        who.role,
        &meridian_db::new_id(),
    )
    .await?;
    tx.commit().await?;
    Ok(pair)
}

/// Rotates a refresh token. Presenting one that was already used revokes its whole family:
/// either the client or an attacker holds a copy, and the server cannot tell which.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
) -> AppResult<(TokenPair, Authenticated)> {
    if !refresh_token.starts_with(REFRESH_TOKEN_PREFIX) {
        return Err(AppError::Unauthorized(BAD_CREDENTIALS));
    }
    let hash = hash_secret(refresh_token);
    let mut tx = state.db.credential_lookup(&hash).await?;
    let row = store::find_refresh_token(&mut tx, &hash)
        .await?
        .ok_or(AppError::Unauthorized(BAD_CREDENTIALS))?;
    let tenant = Tenant::for_verified_credentials(&row.org_id, Some(row.user_id.clone()));
    let mut tx = tx.into_tenant(&tenant).await?;
    if row.revoked_at.is_some() {
        return Err(AppError::Unauthorized(BAD_CREDENTIALS));
    }
    if row.used_at.is_some() || !store::mark_refresh_used(&mut tx, &row.id).await? {
        store::revoke_family(&mut tx, &row.family_id).await?;
        tx.commit().await?;
        tracing::warn!(family = %row.family_id, "refresh token reused; family revoked");
        return Err(AppError::Unauthorized(
            "This refresh token was already used; every token from that sign-in is now revoked.",
        ));
    }
    if row.expires_at <= meridian_db::now() {
        return Err(AppError::Unauthorized(BAD_CREDENTIALS));
    }
    let ctx = member_ctx(
        &mut tx,
        &row.user_id,
        Credential::AccessToken {
            family_id: row.family_id.clone(),
        },
        ClientInfo::default(),
    )
    .await?;
    let pair = insert_token_pair(state, &mut tx, &row.user_id, ctx.role, &row.family_id).await?;
    tx.commit().await?;
    let who = Authenticated {
        user: ctx.user.ok_or(AppError::Unauthorized(BAD_CREDENTIALS))?,
        org: ctx.org,
        role: ctx.role,
    };
    Ok((pair, who))
}

/// Ends the credential the request came with (a session, or an access token's whole family).
pub async fn logout(state: &AppState, ctx: &Ctx) -> AppResult<()> {
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    match &ctx.credential {
        Credential::Session { id, .. } => store::delete_session(&mut tx, id).await?,
        Credential::AccessToken { family_id } => store::revoke_family(&mut tx, family_id).await?,
        Credential::ApiKey { .. } | Credential::Operator { .. } => {
            return Err(AppError::BadRequest(
                "API keys do not sign out; revoke the key instead.".to_owned(),
            ));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Creates a browser session and returns the secret for its cookie. Always a new id: a login
/// never reuses a session id the browser already had (fixation).
pub async fn start_session(
    state: &AppState,
    who: &Authenticated,
    client: &ClientInfo,
) -> AppResult<String> {
    let secret = tokens::new_secret("");
    let mut tx = state.db.tenant(&who.tenant()).await?;
    store::insert_session(
        &mut tx,
        NewSession {
            user_id: &who.user.id,
            role: who.role.as_str(),
            token_hash: &hash_secret(&secret),
            absolute_expires_at: meridian_db::now()
                + std_to_time(state.config.session_absolute_lifetime),
            client_ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Changes the signed-in user's password and ends every other session and token they hold.
#[tracing::instrument(skip_all)]
pub async fn change_password(
    state: &AppState,
    ctx: &Ctx,
    current: &str,
    new: &str,
) -> AppResult<()> {
    let user_id = ctx
        .user_id()
        .ok_or_else(|| AppError::Forbidden("API keys have no password.".to_owned()))?;
    let mut tx = state.db.global_read().await?;
    let user = store::find_user(&mut tx, user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let verified = state
        .hasher
        .verify(Some(&user.password_hash), current)
        .await?;
    let mut errors = meridian_core::Validation::new();
    if !verified.ok {
        errors.add("current_password", "is incorrect");
    }
    errors.check("new_password", check_new_password(new));
    errors.finish().map_err(AppError::Validation)?;
    let hash = state.hasher.hash(new).await?;
    let mut tx = state.db.user_scope(user_id).await?;
    store::set_password_hash(&mut tx, user_id, &hash).await?;
    store::end_user_credentials_except(&mut tx, user_id, ctx.session_id()).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_depend_on_key_and_secret() {
        let a = csrf_token_for(b"key-one", "secret");
        assert_eq!(a, csrf_token_for(b"key-one", "secret"));
        assert_ne!(a, csrf_token_for(b"key-two", "secret"));
        assert_ne!(a, csrf_token_for(b"key-one", "other"));
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert!(matches!(bearer(&headers), Ok(None)));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer mrd_at_x".parse().expect("header"),
        );
        assert!(matches!(bearer(&headers), Ok(Some("mrd_at_x"))));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert!(bearer(&headers).is_err());
    }
}
