use std::ops::{Deref, DerefMut};

use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{AssertSqlSafe, FromRow};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::lease::Lease;

/// The organization (and user) a transaction acts for. It is built only from verified
/// credentials by the authentication layer, never from client-supplied ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    org_id: String,
    user_id: Option<String>,
}

impl Tenant {
    /// Names the tenant that verified credentials belong to. Call sites are the authentication
    /// layer, setup and CLI administration; review new callers with that in mind.
    pub fn for_verified_credentials(org_id: impl Into<String>, user_id: Option<String>) -> Self {
        Self {
            org_id: org_id.into(),
            user_id,
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

/// A value bound to a query. Times are bound as fixed-width RFC 3339 text on SQLite so that
/// text comparison orders them, and as `timestamptz` on PostgreSQL.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Time(Option<OffsetDateTime>),
}

pub trait IntoArg {
    fn into_arg(self) -> Arg;
}

macro_rules! into_arg {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl IntoArg for $t {
            fn into_arg(self) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(Some(($conv)(self)))
            }
        }
        impl IntoArg for Option<$t> {
            fn into_arg(self) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(self.map($conv))
            }
        }
    };
}

impl IntoArg for Arg {
    fn into_arg(self) -> Arg {
        self
    }
}

into_arg!(String, Text, |v| v);
into_arg!(&str, Text, |v: &str| v.to_owned());
into_arg!(&String, Text, |v: &String| v.clone());
into_arg!(i64, Int, |v| v);
into_arg!(bool, Bool, |v| v);
into_arg!(OffsetDateTime, Time, |v| v);

const SQLITE_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

fn sqlite_time(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    // Formatting a valid UTC time with this description cannot fail; fall back to RFC 3339 anyway.
    utc.format(SQLITE_TIME)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Runtime SQL with its arguments, written once for both engines (`$1`, `$2`, ... placeholders).
#[derive(Debug, Clone)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

pub fn sql(text: impl Into<String>) -> Sql {
    Sql {
        text: text.into(),
        args: Vec::new(),
    }
}

impl Sql {
    pub fn bind(mut self, value: impl IntoArg) -> Self {
        self.args.push(value.into_arg());
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

type SqliteArgs = sqlx::sqlite::SqliteArguments;
type PgArgs = sqlx::postgres::PgArguments;

/// Binds every argument of `q` to a sqlx query; `$time` adapts times to the engine.
macro_rules! bind_all {
    ($query:expr, $args:expr, $time:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Time(v) => query.bind($time(v)),
            };
        }
        query
    }};
}

fn sqlite_times(v: Option<OffsetDateTime>) -> Option<String> {
    v.map(sqlite_time)
}

fn pg_times(v: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    v
}

pub(crate) fn sqlite_query_as<O>(q: Sql) -> sqlx::query::QueryAs<'static, Sqlite, O, SqliteArgs>
where
    O: for<'r> FromRow<'r, SqliteRow>,
{
    bind_all!(
        sqlx::query_as::<Sqlite, O>(AssertSqlSafe(q.text)),
        q.args,
        sqlite_times
    )
}

pub(crate) fn pg_query_as<O>(q: Sql) -> sqlx::query::QueryAs<'static, Postgres, O, PgArgs>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    bind_all!(
        sqlx::query_as::<Postgres, O>(AssertSqlSafe(q.text)),
        q.args,
        pg_times
    )
}

fn sqlite_query(q: Sql) -> sqlx::query::Query<'static, Sqlite, SqliteArgs> {
    bind_all!(
        sqlx::query::<Sqlite>(AssertSqlSafe(q.text)),
        q.args,
        sqlite_times
    )
}

fn pg_query(q: Sql) -> sqlx::query::Query<'static, Postgres, PgArgs> {
    bind_all!(
        sqlx::query::<Postgres>(AssertSqlSafe(q.text)),
        q.args,
        pg_times
    )
}

/// A row type that decodes from both engines. `#[derive(sqlx::FromRow)]` structs whose fields are
/// `String`, `i64`, `bool`, `OffsetDateTime` (or `Option`s of them) qualify, as do tuples.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// An open transaction on either engine, or an SQLite read in autocommit mode (see
/// `Db::begin_scoped`). Dropping it without `commit` rolls back.
pub struct Tx(Leased);

pub(crate) enum Leased {
    Sqlite(Lease<Sqlite>),
    Postgres(Lease<Postgres>),
}

impl Leased {
    /// Lets the connection keep more changed pages in memory for as long as this lease holds it
    /// (SQLite; on PostgreSQL there is nothing to do): see `BulkWriter`.
    pub(crate) async fn widen_page_cache(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Leased::Sqlite(lease) => {
                lease
                    .widen(
                        crate::pool::SQLITE_BULK_CACHE,
                        crate::pool::SQLITE_CACHE_RESTORE,
                    )
                    .await
            }
            Leased::Postgres(_) => Ok(()),
        }
    }
}

/// Runs one statement on the transaction's connection and marks the connection settled once the
/// statement has succeeded (see `lease.rs`). `$sqlite` and `$pg` are futures using `$conn`.
macro_rules! on_conn {
    ($tx:expr, $conn:ident => $sqlite:expr, $pg:expr) => {
        match &mut $tx.0 {
            Leased::Sqlite(lease) => {
                let $conn = lease.statement()?;
                let out = $sqlite.await?;
                lease.settle();
                Ok(out)
            }
            Leased::Postgres(lease) => {
                let $conn = lease.statement()?;
                let out = $pg.await?;
                lease.settle();
                Ok(out)
            }
        }
    };
}

impl Tx {
    pub(crate) fn new(leased: Leased) -> Self {
        Self(leased)
    }

    /// The engine this transaction runs on, for the few SQL fragments the dialects disagree on.
    pub fn engine(&self) -> crate::Engine {
        match self.0 {
            Leased::Sqlite(_) => crate::Engine::Sqlite,
            Leased::Postgres(_) => crate::Engine::Postgres,
        }
    }

    pub async fn execute(&mut self, q: Sql) -> Result<u64, sqlx::Error> {
        on_conn!(self, c =>
            async { Ok::<u64, sqlx::Error>(sqlite_query(q).execute(c).await?.rows_affected()) },
            async { Ok::<u64, sqlx::Error>(pg_query(q).execute(c).await?.rows_affected()) })
    }

    pub async fn fetch_all<T: Record>(&mut self, q: Sql) -> Result<Vec<T>, sqlx::Error> {
        on_conn!(self, c =>
            sqlite_query_as::<T>(q).fetch_all(c),
            pg_query_as::<T>(q).fetch_all(c))
    }

    pub async fn fetch_optional<T: Record>(&mut self, q: Sql) -> Result<Option<T>, sqlx::Error> {
        on_conn!(self, c =>
            sqlite_query_as::<T>(q).fetch_optional(c),
            pg_query_as::<T>(q).fetch_optional(c))
    }

    pub async fn fetch_one<T: Record>(&mut self, q: Sql) -> Result<T, sqlx::Error> {
        on_conn!(self, c =>
            sqlite_query_as::<T>(q).fetch_one(c),
            pg_query_as::<T>(q).fetch_one(c))
    }

    /// Runs a query that yields one integer (a count, an existence check).
    pub async fn fetch_count(&mut self, q: Sql) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = self.fetch_one(q).await?;
        Ok(n)
    }

    /// Runs several statements without arguments (a migration file).
    pub async fn execute_script(&mut self, script: &str) -> Result<(), sqlx::Error> {
        let script = AssertSqlSafe(script.to_owned());
        on_conn!(self, c =>
            async { sqlx::raw_sql(script).execute(c).await.map(|_| ()) },
            async { sqlx::raw_sql(script).execute(c).await.map(|_| ()) })
    }

    /// Commits the transaction (an SQLite autocommit read has nothing to commit) and returns the
    /// connection for the next one.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.commit_keeping().await.map(drop)
    }

    /// Commits and keeps the connection, for the next transaction of a `BulkWriter`.
    pub(crate) async fn commit_keeping(self) -> Result<Leased, sqlx::Error> {
        let mut leased = self.0;
        match &mut leased {
            Leased::Sqlite(lease) => lease.commit().await?,
            Leased::Postgres(lease) => lease.commit().await?,
        }
        Ok(leased)
    }

    /// Sets the PostgreSQL row-level security context for this transaction only
    /// (`set_config(..., true)` is undone at commit or rollback). SQLite has no RLS: there the
    /// store functions' explicit `org_id` predicates are the whole guard.
    pub(crate) async fn set_rls(
        &mut self,
        org_id: Option<&str>,
        user_id: Option<&str>,
        token_hash: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        if self.engine() == crate::Engine::Postgres {
            self.execute(
                sql("SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true), \
                     set_config('app.token_hash', $3, true)")
                .bind(org_id.unwrap_or(""))
                .bind(user_id.unwrap_or(""))
                .bind(token_hash.unwrap_or("")),
            )
            .await?;
        }
        Ok(())
    }
}

/// A transaction bound to one tenant. Store functions for tenant-owned data take this type and
/// use [`TenantTx::org_id`] in their predicates.
pub struct TenantTx {
    tx: Tx,
    tenant: Tenant,
}

impl TenantTx {
    pub(crate) fn new(tx: Tx, tenant: Tenant) -> Self {
        Self { tx, tenant }
    }

    pub(crate) fn into_tx(self) -> Tx {
        self.tx
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn org_id(&self) -> String {
        self.tenant.org_id.clone()
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for TenantTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

/// A transaction for global tables, or for the narrow pre-tenant lookups `Db` offers.
pub struct GlobalTx(pub(crate) Tx);

impl GlobalTx {
    /// Becomes a tenant transaction once the credentials looked up in it name the organization.
    pub async fn into_tenant(mut self, tenant: &Tenant) -> Result<TenantTx, sqlx::Error> {
        self.0
            .set_rls(Some(tenant.org_id()), tenant.user_id(), None)
            .await?;
        Ok(TenantTx::new(self.0, tenant.clone()))
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }
}

impl Deref for GlobalTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.0
    }
}

impl DerefMut for GlobalTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_times_are_fixed_width_and_ordered() {
        let a = sqlite_time(datetime!(2026-11-22 07:00:00 UTC));
        let b = sqlite_time(datetime!(2026-11-22 07:00:00.5 UTC));
        let c = sqlite_time(datetime!(2026-11-22 09:00:00 +02:00));
        assert_eq!(a, "2026-11-22T07:00:00.000000Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
        assert_eq!(c, a, "offsets are converted to UTC");
    }
}
