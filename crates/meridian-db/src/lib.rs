//! Storage for Meridian on two engines, SQLite (embedded default) and PostgreSQL (hosted scale),
//! through one code path: store functions write runtime SQL once and run it on either engine via
//! [`Tx`]. Engine-specific pieces (transaction start, row-level security) stay in this crate.
//!
//! Tenancy is typed: a [`TenantTx`] can only be opened from a [`Tenant`], and it binds the
//! tenant's organization into PostgreSQL's row-level security settings before any query runs.

mod bulk;
mod checkpoint;
pub mod jobs;
mod lease;
mod migrate;
mod pool;
mod tx;

pub use bulk::BulkWriter;
pub use migrate::{MigrationStatus, Migrator};
pub use pool::{ConnectOptions, Db, Engine, POOL_RESERVE, Pools};
pub use tx::{Arg, GlobalTx, IntoArg, Record, Sql, Tenant, TenantTx, Tx, sql};

pub use sqlx::Error as SqlError;
pub use sqlx::FromRow;

use time::OffsetDateTime;

/// The current time, truncated to microseconds so values round-trip exactly through both engines
/// (PostgreSQL stores microseconds).
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// A new time-ordered identifier (UUIDv7), stored as text on both engines so it sorts by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether an error is a unique-constraint violation, and on which constraint or index when the
/// engine says so (SQLite names the columns, PostgreSQL the constraint).
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db_error = error.as_database_error()?;
    if !db_error.is_unique_violation() {
        return None;
    }
    Some(
        db_error
            .constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| db_error.message().to_owned()),
    )
}
