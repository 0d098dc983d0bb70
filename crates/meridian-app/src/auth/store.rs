//! SQL for identities and credentials: users (global), sessions, access and refresh tokens.

use meridian_db::{Db, GlobalTx, TenantTx, Tx, sql};
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipOrg {
    pub org_id: String,
    pub org_name: String,
    pub role: String,
    pub disabled: bool,
}

/// The member behind a credential, as seen inside their organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PrincipalRow {
    pub role: String,
    pub disabled: bool,
    pub email: String,
    pub name: String,
    pub org_name: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub org_id: String,
    pub id: String,
    pub user_id: String,
    pub last_seen_at: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    #[sqlx(flatten)]
    pub principal: CredentialPrincipal,
}

/// Who a session or access token speaks for, read in the same statement as the credential: the
/// credential carries the member's role (any membership change ends the member's credentials),
/// so authenticating needs no read of the membership.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialPrincipal {
    pub role: String,
    pub email: String,
    pub name: String,
    pub org_name: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccessTokenRow {
    pub org_id: String,
    pub family_id: String,
    pub user_id: String,
    pub expires_at: OffsetDateTime,
    #[sqlx(flatten)]
    pub principal: CredentialPrincipal,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub org_id: String,
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

const USER_COLUMNS: &str = "id, email, name, password_hash";

#[tracing::instrument(skip_all)]
pub async fn find_user_by_email(tx: &mut Tx, email: &str) -> sqlx::Result<Option<UserRow>> {
    tx.fetch_optional(sql(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")).bind(email))
        .await
}

#[tracing::instrument(skip_all)]
pub async fn find_user(tx: &mut Tx, user_id: &str) -> sqlx::Result<Option<UserRow>> {
    tx.fetch_optional(sql(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(user_id))
        .await
}

#[tracing::instrument(skip_all)]
pub async fn insert_user(
    tx: &mut Tx,
    email: &str,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<UserRow> {
    let now = meridian_db::now();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(meridian_db::new_id())
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(now),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn set_password_hash(tx: &mut Tx, user_id: &str, hash: &str) -> sqlx::Result<()> {
    tx.execute(
        sql("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user_id)
            .bind(hash)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

/// Every organization the user belongs to, oldest membership first. Needs a user-scoped
/// transaction (`Db::user_scope`).
#[tracing::instrument(skip_all)]
pub async fn user_memberships(
    tx: &mut GlobalTx,
    user_id: &str,
) -> sqlx::Result<Vec<MembershipOrg>> {
    tx.fetch_all(
        sql("SELECT m.org_id, o.name AS org_name, m.role, m.disabled \
             FROM memberships m JOIN organizations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY m.created_at, m.org_id")
        .bind(user_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn principal(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<Option<PrincipalRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(
            "SELECT m.role, m.disabled, u.email, u.name, o.name AS org_name \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             JOIN organizations o ON o.id = m.org_id \
             WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(org_id)
        .bind(user_id),
    )
    .await
}

pub struct NewSession<'a> {
    pub user_id: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub absolute_expires_at: OffsetDateTime,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[tracing::instrument(skip_all)]
pub async fn insert_session(tx: &mut TenantTx, s: NewSession<'_>) -> sqlx::Result<String> {
    let id = meridian_db::new_id();
    let now = meridian_db::now();
    let org_id = tx.org_id();
    tx.execute(
        sql("INSERT INTO sessions (org_id, id, user_id, role, token_hash, created_at, last_seen_at, \
             absolute_expires_at, client_ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)")
        .bind(org_id)
        .bind(&id)
        .bind(s.user_id)
        .bind(s.role)
        .bind(s.token_hash)
        .bind(now)
        .bind(s.absolute_expires_at)
        .bind(s.client_ip)
        .bind(s.user_agent),
    )
    .await?;
    Ok(id)
}

/// Reads a session by its token hash, in one statement (see `Db::find_credential`).
#[tracing::instrument(skip_all)]
pub async fn find_session(db: &Db, token_hash: &str) -> sqlx::Result<Option<SessionRow>> {
    db.find_credential(
        token_hash,
        "SELECT s.org_id, s.id, s.user_id, s.last_seen_at, s.absolute_expires_at, s.role, \
         u.email, u.name, o.name AS org_name FROM sessions s \
         JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.org_id \
         WHERE s.token_hash = $1",
        "credential_session",
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn touch_session(tx: &mut TenantTx, session_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE sessions SET last_seen_at = $3 WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(session_id)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn delete_session(tx: &mut TenantTx, session_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM sessions WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(session_id),
    )
    .await
    .map(|_| ())
}

/// Ends a member's sessions and tokens in one organization (removal, disabling, role change).
#[tracing::instrument(skip_all)]
pub async fn end_member_credentials(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    for table in ["sessions", "access_tokens", "refresh_tokens"] {
        tx.execute(
            sql(format!(
                "DELETE FROM {table} WHERE org_id = $1 AND user_id = $2"
            ))
            .bind(&org_id)
            .bind(user_id),
        )
        .await?;
    }
    Ok(())
}

/// Ends a user's sessions and tokens in every organization except the one session named (a
/// password change). Needs a user-scoped transaction.
#[tracing::instrument(skip_all)]
pub async fn end_user_credentials_except(
    tx: &mut GlobalTx,
    user_id: &str,
    keep_session_id: Option<&str>,
) -> sqlx::Result<()> {
    tx.execute(
        sql("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep_session_id.unwrap_or("")),
    )
    .await?;
    for table in ["access_tokens", "refresh_tokens"] {
        tx.execute(sql(format!("DELETE FROM {table} WHERE user_id = $1")).bind(user_id))
            .await?;
    }
    Ok(())
}

/// The two bearer-token tables, which share their shape.
#[derive(Debug, Clone, Copy)]
pub enum TokenTable {
    Access,
    Refresh,
}

impl TokenTable {
    fn name(self) -> &'static str {
        match self {
            TokenTable::Access => "access_tokens",
            TokenTable::Refresh => "refresh_tokens",
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn insert_token(
    tx: &mut TenantTx,
    table: TokenTable,
    user_id: &str,
    role: &str,
    family_id: &str,
    token_hash: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(format!(
            "INSERT INTO {} (org_id, id, family_id, user_id, role, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            table.name()
        ))
        .bind(org_id)
        .bind(meridian_db::new_id())
        .bind(family_id)
        .bind(user_id)
        .bind(role)
        .bind(token_hash)
        .bind(meridian_db::now())
        .bind(expires_at),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn find_access_token(db: &Db, token_hash: &str) -> sqlx::Result<Option<AccessTokenRow>> {
    db.find_credential(
        token_hash,
        "SELECT t.org_id, t.family_id, t.user_id, t.expires_at, t.role, u.email, u.name, \
         o.name AS org_name FROM access_tokens t \
         JOIN users u ON u.id = t.user_id JOIN organizations o ON o.id = t.org_id \
         WHERE t.token_hash = $1",
        "credential_access_token",
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find_refresh_token(
    tx: &mut GlobalTx,
    token_hash: &str,
) -> sqlx::Result<Option<RefreshTokenRow>> {
    tx.fetch_optional(
        sql(
            "SELECT org_id, id, family_id, user_id, expires_at, used_at, revoked_at \
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash),
    )
    .await
}

/// Marks a refresh token used, only if it was not already: false means someone else used it
/// first (a replay racing the legitimate client).
#[tracing::instrument(skip_all)]
pub async fn mark_refresh_used(tx: &mut TenantTx, id: &str) -> sqlx::Result<bool> {
    let org_id = tx.org_id();
    let n = tx
        .execute(
            sql("UPDATE refresh_tokens SET used_at = $3 WHERE org_id = $1 AND id = $2 AND used_at IS NULL")
                .bind(org_id)
                .bind(id)
                .bind(meridian_db::now()),
        )
        .await?;
    Ok(n == 1)
}

/// Revokes every refresh token of a family and deletes its access tokens.
#[tracing::instrument(skip_all)]
pub async fn revoke_family(tx: &mut TenantTx, family_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE refresh_tokens SET revoked_at = $3 WHERE org_id = $1 AND family_id = $2 AND revoked_at IS NULL")
            .bind(&org_id)
            .bind(family_id)
            .bind(meridian_db::now()),
    )
    .await?;
    tx.execute(
        sql("DELETE FROM access_tokens WHERE org_id = $1 AND family_id = $2")
            .bind(&org_id)
            .bind(family_id),
    )
    .await?;
    Ok(())
}

/// Reads (creating on first use) a random server secret shared by every node.
#[tracing::instrument(skip_all)]
pub async fn instance_secret(tx: &mut GlobalTx, name: &str, fresh: &str) -> sqlx::Result<String> {
    tx.execute(
        sql(
            "INSERT INTO instance_secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(meridian_db::now()),
    )
    .await?;
    let (value,): (String,) = tx
        .fetch_one(sql("SELECT value FROM instance_secrets WHERE name = $1").bind(name))
        .await?;
    Ok(value)
}

/// Deletes one organization's sessions and tokens that can no longer be used.
#[tracing::instrument(skip_all)]
pub async fn purge_expired_credentials(
    tx: &mut TenantTx,
    idle_cutoff: OffsetDateTime,
) -> sqlx::Result<u64> {
    let now = meridian_db::now();
    let org_id = tx.org_id();
    let mut purged = tx
        .execute(
            sql("DELETE FROM sessions WHERE org_id = $1 AND (absolute_expires_at < $2 OR last_seen_at < $3)")
                .bind(&org_id)
                .bind(now)
                .bind(idle_cutoff),
        )
        .await?;
    for table in ["access_tokens", "refresh_tokens"] {
        purged += tx
            .execute(
                sql(format!(
                    "DELETE FROM {table} WHERE org_id = $1 AND expires_at < $2"
                ))
                .bind(&org_id)
                .bind(now),
            )
            .await?;
    }
    Ok(purged)
}

/// Deletes stale login-throttling rows and expired setup tokens (global tables).
#[tracing::instrument(skip_all)]
pub async fn purge_expired_global(tx: &mut GlobalTx) -> sqlx::Result<u64> {
    let now = meridian_db::now();
    let mut purged = tx
        .execute(
            sql("DELETE FROM login_throttle WHERE window_started_at < $1 \
                 AND (blocked_until IS NULL OR blocked_until < $2)")
            .bind(now - time::Duration::hours(1))
            .bind(now),
        )
        .await?;
    purged += tx
        .execute(sql("DELETE FROM setup_tokens WHERE expires_at < $1").bind(now))
        .await?;
    Ok(purged)
}
