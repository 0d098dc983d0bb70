use meridian_db::{Db, GlobalTx, IntoArg, Tenant, TenantTx, Tx, sql};
use time::OffsetDateTime;

use crate::http::pagination::PageRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub allowed_email_domains: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<OrgRow> for crate::http::ctx::OrgRef {
    fn from(row: OrgRow) -> Self {
        crate::http::ctx::OrgRef {
            id: row.id,
            name: row.name,
        }
    }
}

impl OrgRow {
    pub fn domains(&self) -> Vec<String> {
        self.allowed_email_domains
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    /// `lower(name)` as the database computes it: the list's sort key, and so its cursor
    /// (SQLite lowercases ASCII only, Rust and PostgreSQL every letter).
    pub name_key: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub org_id: String,
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

const ORG_COLUMNS: &str = "id, name, allowed_email_domains, created_at, updated_at";
const INVITE_COLUMNS: &str =
    "org_id, id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at";

#[tracing::instrument(skip_all)]
pub async fn count_orgs(tx: &mut Tx) -> sqlx::Result<i64> {
    tx.fetch_count(sql("SELECT COUNT(*) FROM organizations"))
        .await
}

#[tracing::instrument(skip_all)]
pub async fn insert_org(tx: &mut GlobalTx, name: &str) -> sqlx::Result<OrgRow> {
    let now = meridian_db::now();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO organizations (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             RETURNING {ORG_COLUMNS}"
        ))
        .bind(meridian_db::new_id())
        .bind(name)
        .bind(now),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn get_org(tx: &mut TenantTx) -> sqlx::Result<OrgRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(org_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn update_org(tx: &mut TenantTx, name: &str, domains: &[String]) -> sqlx::Result<OrgRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "UPDATE organizations SET name = $2, allowed_email_domains = $3, updated_at = $4 \
             WHERE id = $1 RETURNING {ORG_COLUMNS}"
        ))
        .bind(org_id)
        .bind(name)
        .bind(domains.join(","))
        .bind(meridian_db::now()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn insert_membership(tx: &mut TenantTx, user_id: &str, role: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let now = meridian_db::now();
    tx.execute(
        sql(
            "INSERT INTO memberships (org_id, user_id, role, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role)
        .bind(false)
        .bind(now),
    )
    .await
    .map(|_| ())
}

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.name, m.role, m.disabled, m.created_at, \
     lower(u.name) AS name_key \
     FROM memberships m JOIN users u ON u.id = m.user_id";

/// Members sorted by name (then id), paginated by that key. One statement, outside any
/// transaction: on PostgreSQL `tenant_members` (migration 0016) runs the same SELECT.
#[tracing::instrument(skip_all)]
pub async fn list_members(
    db: &Db,
    tenant: &Tenant,
    page: &PageRequest,
) -> sqlx::Result<Vec<MemberRow>> {
    db.tenant_select(
        tenant,
        &format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 \
             AND ($2 IS NULL OR lower(u.name) > $2 OR (lower(u.name) = $2 AND m.user_id > $3)) \
             ORDER BY lower(u.name), m.user_id LIMIT $4"
        ),
        "tenant_members",
        [
            page.after_key(0).into_arg(),
            page.after_key(1).unwrap_or("").into_arg(),
            page.fetch_limit().into_arg(),
        ],
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find_member(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<Option<MemberRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find_member_by_email(
    tx: &mut TenantTx,
    email: &str,
) -> sqlx::Result<Option<MemberRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "{MEMBER_SELECT} WHERE m.org_id = $1 AND u.email = $2"
        ))
        .bind(org_id)
        .bind(email),
    )
    .await
}

/// Active owners other than `except_user_id`, to protect the last owner.
#[tracing::instrument(skip_all)]
pub async fn count_other_active_owners(
    tx: &mut TenantTx,
    except_user_id: &str,
) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql(
            "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner' \
             AND disabled = $2 AND user_id <> $3",
        )
        .bind(org_id)
        .bind(false)
        .bind(except_user_id),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn update_member(
    tx: &mut TenantTx,
    user_id: &str,
    role: &str,
    disabled: bool,
) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("UPDATE memberships SET role = $3, disabled = $4, updated_at = $5 WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .bind(role)
            .bind(disabled)
            .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn delete_member(tx: &mut TenantTx, user_id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id),
    )
    .await
    .map(|_| ())
}

pub struct NewInvite<'a> {
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub invited_by: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

/// Retires pending invites for the address that have expired, so a fresh one can be made.
#[tracing::instrument(skip_all)]
pub async fn retire_expired_invites(tx: &mut TenantTx, email: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "UPDATE invites SET revoked_at = $3 WHERE org_id = $1 AND email = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $3",
        )
        .bind(org_id)
        .bind(email)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn insert_invite(tx: &mut TenantTx, invite: NewInvite<'_>) -> sqlx::Result<InviteRow> {
    let org_id = tx.org_id();
    tx.fetch_one(
        sql(format!(
            "INSERT INTO invites (org_id, id, email, role, token_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {INVITE_COLUMNS}"
        ))
        .bind(org_id)
        .bind(meridian_db::new_id())
        .bind(invite.email)
        .bind(invite.role)
        .bind(invite.token_hash)
        .bind(invite.invited_by)
        .bind(meridian_db::now())
        .bind(invite.expires_at),
    )
    .await
}

/// Pending invites (not accepted, not revoked), newest first; expired ones are included and
/// shown as expired.
#[tracing::instrument(skip_all)]
pub async fn list_pending_invites(
    tx: &mut TenantTx,
    page: &PageRequest,
) -> sqlx::Result<Vec<InviteRow>> {
    let org_id = tx.org_id();
    tx.fetch_all(
        sql(format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE org_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(org_id)
        .bind(page.after_key(0))
        .bind(page.fetch_limit()),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find_invite(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<InviteRow>> {
    let org_id = tx.org_id();
    tx.fetch_optional(
        sql(format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id),
    )
    .await
}

/// Reads an invite by its token hash (in a `Db::credential_lookup` transaction).
#[tracing::instrument(skip_all)]
pub async fn find_invite_by_token(
    tx: &mut GlobalTx,
    token_hash: &str,
) -> sqlx::Result<Option<InviteRow>> {
    tx.fetch_optional(
        sql(format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = $1"
        ))
        .bind(token_hash),
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn close_invite(tx: &mut TenantTx, id: &str, accepted: bool) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    let column = if accepted {
        "accepted_at"
    } else {
        "revoked_at"
    };
    tx.execute(
        sql(format!(
            "UPDATE invites SET {column} = $3 WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .bind(meridian_db::now()),
    )
    .await
    .map(|_| ())
}

#[tracing::instrument(skip_all)]
pub async fn insert_setup_token(
    tx: &mut GlobalTx,
    token_hash: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    tx.execute(
        sql("INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(meridian_db::now())
            .bind(expires_at),
    )
    .await
    .map(|_| ())
}

/// Consumes a setup token; false if it does not exist or expired.
#[tracing::instrument(skip_all)]
pub async fn take_setup_token(tx: &mut GlobalTx, token_hash: &str) -> sqlx::Result<bool> {
    let n = tx
        .execute(
            sql("DELETE FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(meridian_db::now()),
        )
        .await?;
    Ok(n == 1)
}

#[tracing::instrument(skip_all)]
pub async fn setup_token_valid(tx: &mut GlobalTx, token_hash: &str) -> sqlx::Result<bool> {
    let n = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(meridian_db::now()),
        )
        .await?;
    Ok(n > 0)
}

#[tracing::instrument(skip_all)]
pub async fn all_org_ids(tx: &mut GlobalTx) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = tx
        .fetch_all(sql("SELECT id FROM organizations ORDER BY id"))
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[tracing::instrument(skip_all)]
pub async fn count_members(tx: &mut TenantTx) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(sql("SELECT COUNT(*) FROM memberships WHERE org_id = $1").bind(org_id))
        .await
}

/// Invitations that can still be accepted.
#[tracing::instrument(skip_all)]
pub async fn count_live_invites(tx: &mut TenantTx) -> sqlx::Result<i64> {
    let org_id = tx.org_id();
    tx.fetch_count(
        sql(
            "SELECT COUNT(*) FROM invites WHERE org_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(org_id)
        .bind(meridian_db::now()),
    )
    .await
}
