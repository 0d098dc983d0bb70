use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::lease::{self, Warm};
use crate::tx::{Arg, GlobalTx, Leased, Record, Sql, Tenant, TenantTx, Tx, sql};

/// The row-level security settings a PostgreSQL transaction starts with.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rls<'a> {
    org_id: Option<&'a str>,
    user_id: Option<&'a str>,
    token_hash: Option<&'a str>,
    /// The job-queue runner's scope (`app.queue = 'runner'`), see [`Db::queue`].
    queue: bool,
}

impl<'a> Rls<'a> {
    pub(crate) fn tenant(tenant: &'a Tenant) -> Self {
        Self {
            org_id: Some(tenant.org_id()),
            user_id: tenant.user_id(),
            token_hash: None,
            queue: false,
        }
    }
}

/// A PostgreSQL string literal for a tenant setting. The values are ids and hex hashes; anything
/// else that could change how a literal is read (a NUL, a backslash under a server with
/// standard_conforming_strings off) is refused rather than escaped.
fn literal(value: Option<&str>) -> Result<String, sqlx::Error> {
    let value = value.unwrap_or("");
    if value.contains(['\0', '\\']) {
        return Err(sqlx::Error::Protocol(
            "a tenant setting may not contain a NUL byte or a backslash".into(),
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// How to reach the database: a `sqlite:` path or `postgres://` URL, and the pool size.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub max_connections: u32,
}

impl ConnectOptions {
    pub fn engine(&self) -> Result<Engine, sqlx::Error> {
        engine_of(&self.url)
    }
}

pub fn engine_of(url: &str) -> Result<Engine, sqlx::Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else {
        Err(sqlx::Error::Configuration(
            "the database URL must start with sqlite: or postgres://".into(),
        ))
    }
}

/// How much of an SQLite database file each connection maps into memory (address space, not
/// resident memory). 16 GiB: a database of a million leads outgrows 1 GiB, and pages past the
/// mapping are read with a system call and a copy each.
const SQLITE_MMAP_BYTES: u64 = 1 << 34;
/// Each SQLite connection's page cache, for pages written or read past the mapping. It fills
/// only as a connection writes (reads come from the mapping), so in practice it is the writer's
/// working set: with 64 MiB instead of 16 the index pages a large import keeps touching stay in
/// it (a 1M-row import's commit took 73 s instead of 83 s; see BENCHMARKS.md). A bulk writer
/// widens it while it holds its connection ([`SQLITE_BULK_CACHE`]).
const SQLITE_CACHE_KIB: u64 = 64 * 1024;
/// [`SQLITE_CACHE_KIB`] as the statement that sets it back when a widened connection is returned.
pub(crate) const SQLITE_CACHE_RESTORE: &str = "PRAGMA cache_size = -65536";
/// The page cache of a bulk writer's connection (`BulkWriter`): 256 MiB holds every page an
/// import chunk of 50,000 rows changes (about 180 MiB into a million-lead organization), so none
/// is written to the log before the chunk commits and again at commit, and the next chunk finds
/// the index pages the last one touched. Only while the writer holds the connection: a
/// connection keeps the pages it has cached, so with 256 MiB for the whole pool every connection
/// that ever wrote a chunk could hold that much for as long as it lives (16 connections: 4 GiB).
pub(crate) const SQLITE_BULK_CACHE: &str = "PRAGMA cache_size = -262144";
/// WAL pages after which a commit copies the log back into the database (SQLite's default is
/// 1,000, about 4 MiB). Bulk writes dirty the same index pages commit after commit; a 40 MiB log
/// copies each of them back once per checkpoint instead of once per commit or two. A background
/// task copies the log back between commits (`checkpoint.rs`), so the commit that reaches this
/// finds most pages copied already and mainly lets the log start again from its beginning.
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The database on one of the two engines: sqlx's pool, with the connections between
/// transactions kept warm (see `lease.rs`). Cheap to clone.
#[derive(Clone)]
pub struct Db(Engines);

#[derive(Clone)]
enum Engines {
    Sqlite(Arc<Warm<Sqlite>>),
    Postgres(Arc<Warm<Postgres>>),
}

/// sqlx's pool under a [`Db`], for the few callers that need it directly (the PostgreSQL job
/// listener, migration status, tests and benchmarks). It has [`POOL_RESERVE`] connections more
/// than the `Db`'s size for them.
#[derive(Clone, Debug)]
pub enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connections sqlx's pool may open beyond a [`Db`]'s size, for its direct callers.
pub const POOL_RESERVE: u32 = lease::RESERVE;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a new pool connects.
enum Target {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("engine", &self.engine())
            .field("size", &self.size())
            .finish()
    }
}

impl Db {
    #[tracing::instrument(skip_all, fields(engine))]
    pub async fn connect(options: &ConnectOptions) -> Result<Db, sqlx::Error> {
        let target = match options.engine()? {
            Engine::Sqlite => {
                let connect = SqliteConnectOptions::from_str(&options.url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // Reads map the file instead of copying pages into each connection's own
                    // cache (2 MiB by default), so concurrent requests share the operating
                    // system's page cache: searches that visit scattered rows of a large
                    // database stop paying a system call and a copy per page.
                    .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
                    .pragma("cache_size", format!("-{}", SQLITE_CACHE_KIB))
                    .pragma(
                        "wal_autocheckpoint",
                        SQLITE_WAL_AUTOCHECKPOINT_PAGES.to_string(),
                    )
                    // Statement journals (kept while a multi-row INSERT runs inside a
                    // transaction, so that it can be undone alone) stay in memory rather than
                    // in temporary files.
                    .pragma("temp_store", "memory");
                let parent = sqlite_path(&options.url).and_then(|p| p.parent().map(PathBuf::from));
                if let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(&parent).map_err(sqlx::Error::Io)?;
                }
                Target::Sqlite(connect)
            }
            // No JIT compilation: the app's statements are short, and a plan whose estimates
            // cross `jit_above_cost` (a search word's range misjudged on a large table) spent
            // over 100 ms compiling a query that then ran in 10.
            Engine::Postgres => Target::Postgres(
                PgConnectOptions::from_str(&options.url)?.options([("jit", "off")]),
            ),
        };
        // No ping before handing out a connection: a dead connection fails its query instead,
        // and the ping costs a round trip on every request.
        let db = Db::open(target, options.max_connections, false).await?;
        // One checkpointer per database a process serves: siblings share it.
        if let Engines::Sqlite(warm) = &db.0 {
            warm.run_beside(crate::checkpoint::spawn(warm.pool().clone()));
        }
        Ok(db)
    }

    /// A second `Db` on the same database with the same connection settings and a pool of its
    /// own, lending `size` connections at once; `test_before_acquire` as sqlx's option (the
    /// app never pings, benchmarks measure what a ping costs).
    pub async fn sibling(&self, size: u32, test_before_acquire: bool) -> Result<Db, sqlx::Error> {
        let target = match self.pools() {
            Pools::Sqlite(pool) => Target::Sqlite((*pool.connect_options()).clone()),
            Pools::Postgres(pool) => Target::Postgres((*pool.connect_options()).clone()),
        };
        Db::open(target, size, test_before_acquire).await
    }

    /// Opens sqlx's pool ([`POOL_RESERVE`] connections larger than `size`, for its direct
    /// callers) and the `Db` over it that lends at most `size` connections at once.
    async fn open(target: Target, size: u32, test_before_acquire: bool) -> Result<Db, sqlx::Error> {
        let size = size.max(1);
        let max = size + POOL_RESERVE;
        Ok(Db(match target {
            Target::Sqlite(connect) => {
                let pool = SqlitePoolOptions::new()
                    .test_before_acquire(test_before_acquire)
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(connect)
                    .await?;
                Engines::Sqlite(Warm::new(pool, size, ACQUIRE_TIMEOUT))
            }
            Target::Postgres(connect) => {
                let pool = PgPoolOptions::new()
                    .test_before_acquire(test_before_acquire)
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(connect)
                    .await?;
                Engines::Postgres(Warm::new(pool, size, ACQUIRE_TIMEOUT))
            }
        }))
    }

    /// sqlx's pool, for direct use (see [`Pools`]).
    pub fn pools(&self) -> Pools {
        match &self.0 {
            Engines::Sqlite(warm) => Pools::Sqlite(warm.pool().clone()),
            Engines::Postgres(warm) => Pools::Postgres(warm.pool().clone()),
        }
    }

    /// How many connections transactions may hold at once (the configured pool size).
    pub fn size(&self) -> u32 {
        match &self.0 {
            Engines::Sqlite(warm) => warm.size(),
            Engines::Postgres(warm) => warm.size(),
        }
    }

    pub fn engine(&self) -> Engine {
        match &self.0 {
            Engines::Sqlite(_) => Engine::Sqlite,
            Engines::Postgres(_) => Engine::Postgres,
        }
    }

    /// Opens a transaction for global tables (users, organizations, login throttling). On
    /// PostgreSQL no tenant is set, so row-level security hides every tenant row from it.
    pub async fn global(&self) -> Result<GlobalTx, sqlx::Error> {
        Ok(GlobalTx(self.begin(Access::Write).await?))
    }

    pub async fn global_read(&self) -> Result<GlobalTx, sqlx::Error> {
        Ok(GlobalTx(self.begin(Access::Read).await?))
    }

    /// Opens a transaction scoped to one organization (and, for the rows a user may see of their
    /// own across organizations, one user).
    pub async fn tenant(&self, tenant: &Tenant) -> Result<TenantTx, sqlx::Error> {
        self.tenant_with(tenant, Access::Write).await
    }

    /// A read-only tenant transaction: on SQLite it does not take the write lock, so reads run
    /// concurrently; on PostgreSQL a write in it fails loudly.
    pub async fn tenant_read(&self, tenant: &Tenant) -> Result<TenantTx, sqlx::Error> {
        self.tenant_with(tenant, Access::Read).await
    }

    async fn tenant_with(&self, tenant: &Tenant, access: Access) -> Result<TenantTx, sqlx::Error> {
        Ok(TenantTx::new(
            self.begin_scoped(access, Rls::tenant(tenant)).await?,
            tenant.clone(),
        ))
    }

    /// Opens a transaction that may read the credential row whose token hash is given (session,
    /// access or refresh token, API key, invite) before the tenant is known. On PostgreSQL the
    /// row-level security policies admit exactly the row carrying that hash.
    pub async fn credential_lookup(&self, token_hash: &str) -> Result<GlobalTx, sqlx::Error> {
        self.credential_with(token_hash, Access::Write).await
    }

    pub async fn credential_read(&self, token_hash: &str) -> Result<GlobalTx, sqlx::Error> {
        self.credential_with(token_hash, Access::Read).await
    }

    async fn credential_with(
        &self,
        token_hash: &str,
        access: Access,
    ) -> Result<GlobalTx, sqlx::Error> {
        let rls = Rls {
            token_hash: Some(token_hash),
            ..Rls::default()
        };
        Ok(GlobalTx(self.begin_scoped(access, rls).await?))
    }

    /// Reads the credential row (a session, access token or API key) whose token hash is given, in one
    /// statement outside any transaction: authenticating a request costs one round trip.
    /// PostgreSQL calls `pg_function`, a function of migration 0014 that sets `app.token_hash`
    /// for its own statement and selects under row-level security; SQLite, which has no
    /// row-level security, runs `sqlite_select` with the hash as `$1`. Both return the same
    /// columns.
    pub async fn find_credential<T: Record>(
        &self,
        token_hash: &str,
        sqlite_select: &str,
        pg_function: &str,
    ) -> Result<Option<T>, sqlx::Error> {
        let mut tx = self.one_statement().await?;
        let select = match tx.engine() {
            Engine::Sqlite => sql(sqlite_select),
            Engine::Postgres => sql(format!("SELECT * FROM {pg_function}($1)")),
        };
        tx.fetch_optional(select.bind(token_hash)).await
    }

    /// Reads rows for one tenant in one statement outside any transaction: a hot read costs one
    /// round trip instead of three (`BEGIN` with the tenant settings, the read, `COMMIT`).
    /// PostgreSQL calls `pg_function` (a function of migration 0016 that sets `app.org_id` and
    /// `app.user_id` for its own statement and selects under row-level security) with the
    /// tenant's organization and user ids, then `args`; SQLite runs `sqlite_select` with the
    /// organization id as `$1`, then `args` as `$2`, `$3`, ... Both return the same columns.
    pub async fn tenant_select<T: Record>(
        &self,
        tenant: &Tenant,
        sqlite_select: &str,
        pg_function: &str,
        args: impl IntoIterator<Item = Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let args: Vec<Arg> = args.into_iter().collect();
        let statement = match self.engine() {
            Engine::Sqlite => sql(sqlite_select).bind(tenant.org_id()),
            Engine::Postgres => {
                let placeholders = (1..=args.len() + 2)
                    .map(|n| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql(format!("SELECT * FROM {pg_function}({placeholders})"))
                    .bind(tenant.org_id())
                    .bind(tenant.user_id().unwrap_or(""))
            }
        };
        let statement = args.into_iter().fold(statement, Sql::bind);
        self.one_statement().await?.fetch_all(statement).await
    }

    /// A connection for a statement outside any transaction (autocommit on both engines).
    async fn one_statement(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx::new(match &self.0 {
            Engines::Sqlite(warm) => Leased::Sqlite(warm.lease().await?),
            Engines::Postgres(warm) => Leased::Postgres(warm.lease().await?),
        }))
    }

    /// Opens a transaction that sees one user's own rows across organizations (their memberships,
    /// sessions and tokens), e.g. to pick an organization at login or end every session.
    pub async fn user_scope(&self, user_id: &str) -> Result<GlobalTx, sqlx::Error> {
        self.user_scope_with(user_id, Access::Write).await
    }

    pub async fn user_scope_read(&self, user_id: &str) -> Result<GlobalTx, sqlx::Error> {
        self.user_scope_with(user_id, Access::Read).await
    }

    async fn user_scope_with(
        &self,
        user_id: &str,
        access: Access,
    ) -> Result<GlobalTx, sqlx::Error> {
        let rls = Rls {
            user_id: Some(user_id),
            ..Rls::default()
        };
        Ok(GlobalTx(self.begin_scoped(access, rls).await?))
    }

    /// Opens a transaction for the job-queue runner: on PostgreSQL it sets `app.queue` to
    /// `runner`, which the `jobs` table's row-level security policy admits across organizations
    /// (the runner claims, rescues and schedules whichever organization a job belongs to). Only
    /// the queue's store functions (`meridian_db::jobs`) and the scheduler open it; a job's
    /// handler does its work in a tenant transaction for the job's organization. No other table's
    /// policy reads `app.queue`, so this scope sees no other tenant data. Do not turn it into a
    /// tenant transaction (`into_tenant` leaves `app.queue` set).
    pub async fn queue(&self) -> Result<GlobalTx, sqlx::Error> {
        let rls = Rls {
            queue: true,
            ..Rls::default()
        };
        Ok(GlobalTx(self.begin_scoped(Access::Write, rls).await?))
    }

    /// A read-only transaction in the queue runner's scope (counts and failures server-wide).
    pub async fn queue_read(&self) -> Result<GlobalTx, sqlx::Error> {
        let rls = Rls {
            queue: true,
            ..Rls::default()
        };
        Ok(GlobalTx(self.begin_scoped(Access::Read, rls).await?))
    }

    /// A write transaction with no tenant: for migrations, which run as the schema owner.
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        self.begin(Access::Write).await
    }

    async fn begin(&self, access: Access) -> Result<Tx, sqlx::Error> {
        self.begin_scoped(access, Rls::default()).await
    }

    /// Starts a unit of work in as few round trips as the engine allows.
    ///
    /// SQLite: writes take `BEGIN IMMEDIATE` (a deferred transaction that upgrades to a write can
    /// fail with SQLITE_BUSY, which busy_timeout does not retry); reads run on a plain pooled
    /// connection in autocommit mode, each statement its own snapshot, because every extra
    /// statement is a hop to the connection's worker thread. PostgreSQL: `BEGIN` (or `BEGIN READ
    /// ONLY`) and the row-level security settings travel in one simple-query message.
    async fn begin_scoped(&self, access: Access, rls: Rls<'_>) -> Result<Tx, sqlx::Error> {
        Self::begin_on(self.lease().await?, access, rls).await
    }

    /// A connection of this pool, lent until the lease is dropped.
    pub(crate) async fn lease(&self) -> Result<Leased, sqlx::Error> {
        Ok(match &self.0 {
            Engines::Sqlite(warm) => Leased::Sqlite(warm.lease().await?),
            Engines::Postgres(warm) => Leased::Postgres(warm.lease().await?),
        })
    }

    /// Starts a unit of work on a leased connection (see [`Db::begin_scoped`]).
    pub(crate) async fn begin_on(
        leased: Leased,
        access: Access,
        rls: Rls<'_>,
    ) -> Result<Tx, sqlx::Error> {
        match (leased, access) {
            (Leased::Sqlite(mut lease), Access::Write) => {
                lease.begin("BEGIN IMMEDIATE".to_owned()).await?;
                Ok(Tx::new(Leased::Sqlite(lease)))
            }
            (leased @ Leased::Sqlite(_), Access::Read) => Ok(Tx::new(leased)),
            (Leased::Postgres(mut lease), access) => {
                let begin = match access {
                    Access::Write => "BEGIN",
                    Access::Read => "BEGIN READ ONLY",
                };
                let statement = format!(
                    "{begin}; SELECT set_config('app.org_id', {}, true), set_config('app.user_id', {}, true), \
                     set_config('app.token_hash', {}, true), set_config('app.queue', {}, true)",
                    literal(rls.org_id)?,
                    literal(rls.user_id)?,
                    literal(rls.token_hash)?,
                    literal(rls.queue.then_some("runner"))?
                );
                lease.begin(statement).await?;
                Ok(Tx::new(Leased::Postgres(lease)))
            }
        }
    }

    /// A cheap round trip, used by readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self.pools() {
            Pools::Sqlite(pool) => sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()),
            Pools::Postgres(pool) => sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()),
        }
    }

    /// (connections open, connections idle) for metrics: idle counts the connections kept warm
    /// between transactions and those idle in sqlx's pool.
    pub fn pool_state(&self) -> (u32, usize) {
        match &self.0 {
            Engines::Sqlite(warm) => (warm.pool().size(), warm.pool().num_idle() + warm.kept()),
            Engines::Postgres(warm) => (warm.pool().size(), warm.pool().num_idle() + warm.kept()),
        }
    }

    pub async fn close(&self) {
        match &self.0 {
            Engines::Sqlite(warm) => warm.close().await,
            Engines::Postgres(warm) => warm.close().await,
        }
    }
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_widened_page_cache_is_set_back_to_the_pool_size() {
        assert_eq!(
            SQLITE_CACHE_RESTORE,
            format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        );
    }

    #[test]
    fn tenant_settings_are_quoted_literals() {
        assert_eq!(literal(None).expect("empty"), "''");
        assert_eq!(literal(Some("01a2-b3")).expect("id"), "'01a2-b3'");
        assert_eq!(literal(Some("o'clock")).expect("quote"), "'o''clock'");
        assert!(literal(Some("a\\b")).is_err());
        assert!(literal(Some("a\0b")).is_err());
    }
}
