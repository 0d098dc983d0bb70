//! Schema migrations, embedded in the binary, one folder per engine. Each migration runs in its
//! own transaction and is recorded with a checksum; PostgreSQL serializes concurrent runners (many
//! nodes starting at once) with an advisory lock.

use sha2::{Digest, Sha256};

use crate::pool::{Db, Engine, Pools};
use crate::tx::sql;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../../../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../../../migrations/postgres/", $name, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_crm"),
    migration!(3, "0003_imports"),
    migration!(4, "0004_lead_search"),
    migration!(5, "0005_lead_counts"),
    migration!(6, "0006_jobs"),
    migration!(7, "0007_job_notifications"),
    migration!(8, "0008_email"),
    migration!(9, "0009_email_sequences"),
    migration!(10, "0010_webhooks"),
    migration!(11, "0011_automations"),
    migration!(12, "0012_notifications"),
    migration!(13, "0013_lead_watchers"),
    migration!(14, "0014_credential_functions"),
    migration!(15, "0015_import_search_backlog"),
    migration!(16, "0016_tenant_read_functions"),
    migration!(17, "0017_search_words_by_number"),
    migration!(18, "0018_search_postings"),
];

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Where the database schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Highest version applied to the database (0 when none).
    pub applied: i64,
    /// Highest version this binary knows.
    pub known: i64,
    /// Versions this binary knows that the database lacks.
    pub pending: Vec<i64>,
    /// Applied versions whose recorded checksum differs from the embedded file.
    pub modified: Vec<i64>,
}

impl MigrationStatus {
    /// The database was migrated by a newer binary: running this one could corrupt data.
    pub fn is_newer_than_binary(&self) -> bool {
        self.applied > self.known
    }

    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && !self.is_newer_than_binary() && self.modified.is_empty()
    }
}

pub struct Migrator;

impl Migrator {
    /// The highest schema version this binary knows.
    pub fn known_version() -> i64 {
        MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }

    fn text(engine: Engine, m: &Migration) -> &'static str {
        match engine {
            Engine::Sqlite => m.sqlite,
            Engine::Postgres => m.postgres,
        }
    }

    fn checksum(engine: Engine, m: &Migration) -> String {
        hex::encode(Sha256::digest(Self::text(engine, m).as_bytes()))
    }

    /// Reads which migrations are applied. A database with no migrations table has none.
    #[tracing::instrument(skip_all)]
    pub async fn status(db: &Db) -> Result<MigrationStatus, sqlx::Error> {
        let applied: Vec<(i64, String)> = match &db.pools() {
            Pools::Sqlite(pool) => {
                let exists: Option<(String,)> = sqlx::query_as(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
                )
                .fetch_optional(pool)
                .await?;
                if exists.is_none() {
                    Vec::new()
                } else {
                    sqlx::query_as("SELECT version, checksum FROM schema_migrations")
                        .fetch_all(pool)
                        .await?
                }
            }
            Pools::Postgres(pool) => {
                let exists: Option<(String,)> = sqlx::query_as(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                     AND tablename = 'schema_migrations'",
                )
                .fetch_optional(pool)
                .await?;
                if exists.is_none() {
                    Vec::new()
                } else {
                    sqlx::query_as("SELECT version, checksum FROM schema_migrations")
                        .fetch_all(pool)
                        .await?
                }
            }
        };
        let engine = db.engine();
        let known = Self::known_version();
        let pending = MIGRATIONS
            .iter()
            .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
            .map(|m| m.version)
            .collect();
        let modified = MIGRATIONS
            .iter()
            .filter(|m| {
                applied
                    .iter()
                    .any(|(v, sum)| *v == m.version && *sum != Self::checksum(engine, m))
            })
            .map(|m| m.version)
            .collect();
        Ok(MigrationStatus {
            applied: applied.iter().map(|(v, _)| *v).max().unwrap_or(0),
            known,
            pending,
            modified,
        })
    }

    /// Applies pending migrations, all in one transaction, and returns the versions applied. On
    /// PostgreSQL, `db` must connect as the role that owns the schema; `app_role`, when given, is
    /// granted data access (and nothing else) to every table afterwards.
    #[tracing::instrument(skip_all)]
    pub async fn run(db: &Db, app_role: Option<&str>) -> Result<Vec<i64>, sqlx::Error> {
        let engine = db.engine();
        let mut tx = db.begin_write().await?;
        if engine == Engine::Postgres {
            // One runner at a time across every node; released at commit.
            tx.execute(sql("SELECT pg_advisory_xact_lock(727274)"))
                .await?;
        }
        tx.execute_script(CREATE_TABLE).await?;
        let mut applied_now = Vec::new();
        for m in MIGRATIONS {
            let done = tx
                .fetch_count(
                    sql("SELECT COUNT(*) FROM schema_migrations WHERE version = $1")
                        .bind(m.version),
                )
                .await?;
            if done > 0 {
                continue;
            }
            tx.execute_script(Self::text(engine, m)).await?;
            tx.execute(
                sql("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(Self::checksum(engine, m))
                    .bind(crate::now().to_string()),
            )
            .await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            applied_now.push(m.version);
        }
        if let (Engine::Postgres, Some(role)) = (engine, app_role) {
            let role = quote_ident(role);
            tx.execute_script(&format!(
                "GRANT USAGE ON SCHEMA public TO {role};
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
                 REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM {role};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};"
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(applied_now)
    }
}

/// Quotes a PostgreSQL identifier (a role name taken from configuration).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_named_by_version() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for m in MIGRATIONS {
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("meridian_app"), "\"meridian_app\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
