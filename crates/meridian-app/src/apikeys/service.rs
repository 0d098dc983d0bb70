use meridian_core::{Permission, Role, roles::parse_role, validation::required_text};
use meridian_db::Tenant;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::store::{self, ApiKeyRow, NewApiKey};
use crate::audit::store::{self as audit, Entry};
use crate::auth::tokens::{API_KEY_PREFIX, API_KEY_VISIBLE_CHARS, hash_secret, new_secret};
use crate::http::client::ClientInfo;
use crate::http::ctx::{Credential, Ctx, OrgRef};
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

const LAST_USED_GRANULARITY: Duration = Duration::minutes(1);

/// Resolves an API key into a context acting with the key's role.
pub async fn authenticate(state: &AppState, token: &str, client: ClientInfo) -> AppResult<Ctx> {
    let invalid = AppError::Unauthorized("The API key is invalid, expired or revoked.");
    let hash = hash_secret(token);
    let now = meridian_db::now();
    let Some(key) = store::find_credential(&state.db, &hash).await? else {
        return Err(invalid);
    };
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
        return Err(invalid);
    }
    let tenant = Tenant::for_verified_credentials(&key.org_id, None);
    if key
        .last_used_at
        .is_none_or(|at| at + LAST_USED_GRANULARITY <= now)
    {
        let mut tx = state.db.tenant(&tenant).await?;
        store::touch(&mut tx, &key.id).await?;
        tx.commit().await?;
    }
    let role: Role = key
        .role
        .parse()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored role: {e}")))?;
    Ok(Ctx {
        tenant,
        org: OrgRef {
            id: key.org_id,
            name: key.org_name,
        },
        user: None,
        role,
        credential: Credential::ApiKey {
            id: key.id,
            name: key.name,
        },
        client,
    })
}

pub struct CreateInput {
    pub name: String,
    pub role: String,
    pub expires_at: Option<OffsetDateTime>,
}

/// Creates a key and returns it with its secret, which is never retrievable again.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    input: CreateInput,
) -> AppResult<(ApiKeyRow, String)> {
    ctx.require(Permission::ApiKeysManage)?;
    let mut v = meridian_core::Validation::new();
    let name = v.check("name", required_text(&input.name, 1, 100));
    let role = v.check("role", parse_role(&input.role));
    if let Some(at) = input.expires_at
        && at <= meridian_db::now()
    {
        v.add("expires_at", "must be in the future");
    }
    v.finish().map_err(AppError::Validation)?;
    let (Some(name), Some(role)) = (name, role) else {
        return Err(AppError::BadRequest("invalid input".to_owned()));
    };
    if !ctx.role.may_grant(role) {
        return Err(AppError::field(
            "role",
            format!(
                "you cannot create a key with a role above your own ({})",
                ctx.role
            ),
        ));
    }
    let secret = new_secret(API_KEY_PREFIX);
    let prefix: String = secret.chars().take(API_KEY_VISIBLE_CHARS).collect();
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let row = store::insert(
        &mut tx,
        NewApiKey {
            name: &name,
            role: role.as_str(),
            prefix: &prefix,
            token_hash: &hash_secret(&secret),
            created_by: ctx.user_id(),
            expires_at: input.expires_at.map(meridian_db::truncate_to_micros),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "api_key.created",
            target_type: "api_key",
            target_id: Some(&row.id),
            target_label: Some(&row.name),
            before: None,
            after: Some(
                json!({"name": row.name, "role": row.role, "prefix": row.prefix,
                "expires_at": row.expires_at.map(|t| t.unix_timestamp())}),
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((row, secret))
}

pub async fn revoke(state: &AppState, ctx: &Ctx, id: &str) -> AppResult<()> {
    ctx.require(Permission::ApiKeysManage)?;
    let mut tx = state.db.tenant(&ctx.tenant).await?;
    let key = store::find(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    if key.revoked_at.is_some() {
        return Ok(());
    }
    store::revoke(&mut tx, id).await?;
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "api_key.revoked",
            target_type: "api_key",
            target_id: Some(&key.id),
            target_label: Some(&key.name),
            before: Some(json!({"revoked": false})),
            after: Some(json!({"revoked": true})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
