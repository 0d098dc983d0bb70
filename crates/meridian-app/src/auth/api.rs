use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use meridian_core::Role;
use serde::{Deserialize, Serialize};

use super::cookies::clear_session_cookie;
use super::service::{self, Authenticated, LoginInput, TokenPair};
use crate::http::client::ClientInfo;
use crate::http::ctx::{Credential, Ctx, OrgRef, UserRef};
use crate::http::error::{AppResult, Problem};
use crate::http::json::Json;
use crate::orgs::service::{self as orgs, AcceptInput, NewOrganization};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Which of your organizations to sign in to (default: your oldest membership).
    #[serde(default)]
    pub org_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserRef,
    pub org: OrgRef,
    #[schema(value_type = String)]
    pub role: Role,
}

impl TokenResponse {
    fn new(pair: TokenPair, who: Authenticated) -> Self {
        TokenResponse {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            user: who.user,
            org: who.org,
            role: who.role,
        }
    }
}

async fn tokens_for(state: &AppState, who: Authenticated) -> AppResult<axum::Json<TokenResponse>> {
    let pair = service::issue_tokens(state, &who).await?;
    Ok(axum::Json(TokenResponse::new(pair, who)))
}

/// Exchanges email and password for an access token (15 minutes) and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem, description = "Too many failed attempts; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<LoginRequest>,
) -> AppResult<axum::Json<TokenResponse>> {
    let who = service::login(
        &state,
        LoginInput {
            email: body.email,
            password: body.password,
            org_id: body.org_id,
        },
        &client,
    )
    .await?;
    tokens_for(&state, who).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Rotates a refresh token: returns a new pair. A refresh token works once; presenting it again
/// revokes every token of that sign-in.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<axum::Json<TokenResponse>> {
    let (pair, who) = service::refresh(&state, &body.refresh_token).await?;
    Ok(axum::Json(TokenResponse::new(pair, who)))
}

/// Ends the current credential: the session (cookie), or every token of the sign-in (bearer).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(state): State<AppState>, ctx: Ctx) -> AppResult<Response> {
    service::logout(&state, &ctx).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if matches!(ctx.credential, Credential::Session { .. }) {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_session_cookie(&state.config));
    }
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// The signed-in person; null when an API key is calling.
    pub user: Option<UserRef>,
    pub org: OrgRef,
    #[schema(value_type = String)]
    pub role: Role,
    pub permissions: Vec<&'static str>,
    /// `session`, `access_token` or `api_key`.
    pub credential: &'static str,
    /// Present for API keys.
    pub api_key: Option<ApiKeyRef>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyRef {
    pub id: String,
    pub name: String,
}

/// Who is calling: user, organization, role and the permissions it grants.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = Problem)))]
pub async fn me(ctx: Ctx) -> axum::Json<MeResponse> {
    let (credential, api_key) = match &ctx.credential {
        Credential::Session { .. } => ("session", None),
        Credential::AccessToken { .. } | Credential::Operator { .. } => ("access_token", None),
        Credential::ApiKey { id, name } => (
            "api_key",
            Some(ApiKeyRef {
                id: id.clone(),
                name: name.clone(),
            }),
        ),
    };
    axum::Json(MeResponse {
        permissions: ctx.role.permissions().iter().map(|p| p.as_str()).collect(),
        user: ctx.user,
        org: ctx.org,
        role: ctx.role,
        credential,
        api_key,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub org_name: String,
    pub name: String,
    pub email: String,
    pub password: String,
    /// `marketing` (default: one Leads pipeline) or `surrogacy` (Cases and Intended Parents).
    pub template: Option<String>,
}

/// Creates an organization and its owner (only when the server's signup policy is `open`).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 200, body = TokenResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<RegisterRequest>,
) -> AppResult<axum::Json<TokenResponse>> {
    let who = orgs::register(
        &state,
        NewOrganization {
            org_name: body.org_name,
            name: body.name,
            email: body.email,
            password: body.password,
            template: body.template.unwrap_or_default(),
        },
        &client,
    )
    .await?;
    tokens_for(&state, who).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AcceptInviteRequest {
    pub token: String,
    /// Your name (ignored when the email already has an account).
    #[serde(default)]
    pub name: String,
    /// A new password, or your existing account's password.
    pub password: String,
}

/// Accepts an invitation and signs in to the organization.
#[utoipa::path(post, path = "/api/v1/auth/accept-invite", tag = "auth", request_body = AcceptInviteRequest,
    responses((status = 200, body = TokenResponse), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn accept_invite(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<AcceptInviteRequest>,
) -> AppResult<axum::Json<TokenResponse>> {
    let who = orgs::accept_invite(
        &state,
        AcceptInput {
            token: body.token,
            name: body.name,
            password: body.password,
        },
        &client,
    )
    .await?;
    tokens_for(&state, who).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes your password; every other session and token you hold ends.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 422, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    ctx: Ctx,
    Json(body): Json<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    service::change_password(&state, &ctx, &body.current_password, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
