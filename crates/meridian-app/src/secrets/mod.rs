//! Secrets at rest: values the server must read back (SMTP passwords, webhook signing secrets) are
//! sealed with XChaCha20-Poly1305 under the server key ([`keys`]) and kept in one table, so a
//! database dump holds none of them in plaintext and a key rotation re-seals one table.
//!
//! The API and pages never return a secret: owners keep the secret's id and show its [`hint`].

pub mod keys;

use meridian_db::{Db, Tenant, TenantTx, sql};

pub use keys::{KeyError, KeyRing, KeySource, SecretKey};

use crate::orgs::store as org_store;

/// What a secret is for; part of the associated data, so a sealed SMTP password cannot be passed
/// off as a webhook secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SmtpPassword,
    WebhookSigning,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SmtpPassword => "smtp_password",
            Purpose::WebhookSigning => "webhook_signing",
        }
    }
}

/// Why a secret could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("secret {id}: {source}")]
    Key { id: String, source: KeyError },
}

/// The text the UI shows for a stored secret: the last four characters of a long random token
/// (so two webhook secrets can be told apart), nothing of a password.
pub fn hint(purpose: Purpose, plaintext: &str) -> String {
    match purpose {
        Purpose::SmtpPassword => "••••••••".to_owned(),
        Purpose::WebhookSigning => {
            let tail: String = plaintext
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("••••{tail}")
        }
    }
}

fn context(org_id: &str, id: &str, purpose: &str) -> String {
    format!("{org_id}/{id}/{purpose}")
}

/// Seals `plaintext` and stores it: under `replace`'s id when given (the owner keeps pointing at
/// the same row), else as a new secret. Returns the secret's id.
#[tracing::instrument(skip_all)]
pub async fn store(
    tx: &mut TenantTx,
    ring: &KeyRing,
    purpose: Purpose,
    plaintext: &str,
    replace: Option<&str>,
) -> Result<String, SecretError> {
    let org_id = tx.org_id();
    let id = replace.map_or_else(meridian_db::new_id, str::to_owned);
    let sealed = ring
        .seal(plaintext, &context(&org_id, &id, purpose.as_str()))
        .map_err(|source| SecretError::Key {
            id: id.clone(),
            source,
        })?;
    let now = meridian_db::now();
    let updated = tx
        .execute(
            sql("UPDATE secrets SET purpose = $3, sealed = $4, key_id = $5, hint = $6, updated_at = $7 \
                 WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(&id)
            .bind(purpose.as_str())
            .bind(&sealed)
            .bind(ring.current().id())
            .bind(hint(purpose, plaintext))
            .bind(now),
        )
        .await?;
    if updated == 0 {
        tx.execute(
            sql("INSERT INTO secrets (org_id, id, purpose, sealed, key_id, hint, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
            .bind(&org_id)
            .bind(&id)
            .bind(purpose.as_str())
            .bind(&sealed)
            .bind(ring.current().id())
            .bind(hint(purpose, plaintext))
            .bind(now),
        )
        .await?;
    }
    Ok(id)
}

/// The plaintext of secret `id` (None when there is no such secret in this organization).
#[tracing::instrument(skip_all)]
pub async fn reveal(
    tx: &mut TenantTx,
    ring: &KeyRing,
    id: &str,
) -> Result<Option<String>, SecretError> {
    let org_id = tx.org_id();
    let row: Option<(String, String)> = tx
        .fetch_optional(
            sql("SELECT purpose, sealed FROM secrets WHERE org_id = $1 AND id = $2")
                .bind(&org_id)
                .bind(id),
        )
        .await?;
    let Some((purpose, sealed)) = row else {
        return Ok(None);
    };
    ring.open(&sealed, &context(&org_id, id, &purpose))
        .map(Some)
        .map_err(|source| SecretError::Key {
            id: id.to_owned(),
            source,
        })
}

/// The hint of secret `id`, for masked display.
#[tracing::instrument(skip_all)]
pub async fn hint_of(tx: &mut TenantTx, id: &str) -> sqlx::Result<Option<String>> {
    let org_id = tx.org_id();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql("SELECT hint FROM secrets WHERE org_id = $1 AND id = $2")
                .bind(&org_id)
                .bind(id),
        )
        .await?;
    Ok(row.map(|(hint,)| hint))
}

#[tracing::instrument(skip_all)]
pub async fn delete(tx: &mut TenantTx, id: &str) -> sqlx::Result<()> {
    let org_id = tx.org_id();
    tx.execute(
        sql("DELETE FROM secrets WHERE org_id = $1 AND id = $2")
            .bind(&org_id)
            .bind(id),
    )
    .await
    .map(|_| ())
}

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resealed {
    /// Secrets moved from an earlier key to the current one.
    pub resealed: u64,
    /// Secrets already under the current key.
    pub current: u64,
}

/// Re-seals every secret of every organization that an earlier key sealed, under the current key
/// (one transaction per organization, as row-level security requires). Safe to run again after an
/// interruption: rows already moved are skipped, and the ring still opens the others.
pub async fn reseal_all(db: &Db, ring: &KeyRing) -> Result<Resealed, SecretError> {
    let mut tx = db.global().await?;
    let org_ids = org_store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let mut total = Resealed::default();
    for org_id in org_ids {
        let tenant = Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await?;
        let rows: Vec<(String, String, String, String)> = tx
            .fetch_all(
                sql(
                    "SELECT id, purpose, sealed, key_id FROM secrets WHERE org_id = $1 ORDER BY id",
                )
                .bind(&org_id),
            )
            .await?;
        for (id, purpose, sealed, key_id) in rows {
            if key_id == ring.current().id() {
                total.current += 1;
                continue;
            }
            let context = context(&org_id, &id, &purpose);
            let key_error = |source| SecretError::Key {
                id: id.clone(),
                source,
            };
            let plaintext = ring.open(&sealed, &context).map_err(key_error)?;
            let resealed = ring.seal(&plaintext, &context).map_err(key_error)?;
            tx.execute(
                sql(
                    "UPDATE secrets SET sealed = $3, key_id = $4, updated_at = $5 \
                     WHERE org_id = $1 AND id = $2",
                )
                .bind(&org_id)
                .bind(&id)
                .bind(&resealed)
                .bind(ring.current().id())
                .bind(meridian_db::now()),
            )
            .await?;
            total.resealed += 1;
        }
        tx.commit().await?;
    }
    Ok(total)
}
