//! The authenticated context every protected handler receives. It comes from a session cookie or
//! a bearer credential; a credential that is present but invalid is an error, never "anonymous".

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use meridian_core::{Permission, Role};
use meridian_db::Tenant;

use crate::auth::service as auth;
use crate::http::client::{ClientInfo, client_info};
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct UserRef {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OrgRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub enum Credential {
    Session {
        id: String,
        csrf_token: String,
    },
    AccessToken {
        family_id: String,
    },
    ApiKey {
        id: String,
        name: String,
    },
    /// An operator acting through the command line (which has database access already), or the
    /// server acting on its own (an automation's actions, a form's submissions).
    Operator {
        label: String,
        /// The automation acting, so the events its changes cause can be traced back to it
        /// (loop detection).
        automation: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Ctx {
    pub tenant: Tenant,
    pub org: OrgRef,
    /// The signed-in person; `None` when an API key is acting.
    pub user: Option<UserRef>,
    pub role: Role,
    pub credential: Credential,
    pub client: ClientInfo,
}

impl Ctx {
    /// The single authorization check handlers call.
    pub fn require(&self, permission: Permission) -> AppResult<()> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "Your role ({}) does not allow {}.",
                self.role,
                permission.as_str()
            )))
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    pub fn api_key_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { id, .. } => Some(id),
            _ => None,
        }
    }

    /// How the actor appears in the audit log.
    pub fn actor_label(&self) -> String {
        match (&self.user, &self.credential) {
            (Some(user), _) => crate::audit::store::person_label(&user.name, &user.email),
            (None, Credential::ApiKey { name, .. }) => format!("API key \"{name}\""),
            (None, Credential::Operator { label, .. }) => label.clone(),
            (None, _) => "unknown".to_owned(),
        }
    }

    pub fn csrf_token(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf_token, .. } => Some(csrf_token),
            _ => None,
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { id, .. } => Some(id),
            _ => None,
        }
    }
}

impl Ctx {
    /// A context for an operator's command (the CLI), acting as an owner of `org`.
    pub fn operator(org: OrgRef, label: &str) -> Self {
        Ctx {
            tenant: Tenant::for_verified_credentials(&org.id, None),
            org,
            user: None,
            role: Role::Owner,
            credential: Credential::Operator {
                label: label.to_owned(),
                automation: None,
            },
            client: ClientInfo::default(),
        }
    }

    /// A context for automation `id`'s actions: full rights in `org`, labelled with its name.
    pub fn automation(org: OrgRef, id: &str, name: &str) -> Self {
        Ctx {
            credential: Credential::Operator {
                label: format!("Automation “{name}”"),
                automation: Some(id.to_owned()),
            },
            ..Ctx::operator(org, "")
        }
    }

    /// The automation whose action this is, if any.
    pub fn automation_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Operator {
                automation: Some(id),
                ..
            } => Some(id),
            _ => None,
        }
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(ctx) = parts.extensions.get::<Ctx>() {
            return Ok(ctx.clone());
        }
        let client = client_info(parts, state.config.trust_proxy_headers);
        let ctx = auth::authenticate(state, &parts.headers, client).await?;
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

impl OptionalFromRequestParts<AppState> for Ctx {
    type Rejection = AppError;

    /// `None` when the request carries no credential at all; an invalid one is still an error.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !auth::has_credentials(&parts.headers, &state.config) {
            return Ok(None);
        }
        <Ctx as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}
