//! Connections lent to transactions, kept warm between them.
//!
//! sqlx's pool checks every connection it takes back with a ping (a round trip to PostgreSQL, a
//! hop to the connection's thread on SQLite), which was a third of the work of a request that
//! authenticates and reads a list. A connection whose last statement succeeded and that holds
//! no open transaction needs no check, so it goes back here and the next transaction takes it
//! as it is. Anything else (a statement that failed or was cancelled, a transaction left open)
//! is rolled back and handed to sqlx, which checks it and closes it if it is broken.
//!
//! A semaphore with one permit per connection of the configured pool size decides who may hold
//! a connection. sqlx's pool is [`RESERVE`] connections larger, for the callers that use it
//! directly (the PostgreSQL job listener, migration status, tests). Connections kept here
//! count as in use for sqlx, so without the semaphore a caller waiting on sqlx could starve
//! while others cycled through these: every lease takes a permit first, then a kept
//! connection, and only if none is kept a new one from sqlx. Leases hold at most as many
//! connections as there are permits, so a lease always finds one here or room in sqlx.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

/// Connections beyond the configured pool size that sqlx may open for direct callers.
pub(crate) const RESERVE: u32 = 2;

/// After this long in use by leases, a connection goes back through sqlx, which applies its own
/// lifetime and idle limits (a kept connection would otherwise never be retired).
const RECYCLE_AFTER: Duration = Duration::from_secs(300);

/// A connection kept unused for longer than this goes back through sqlx (which checks it)
/// instead of to the next lease: after a quiet spell the server may have gone away.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The connections of one pool that leases keep warm.
pub(crate) struct Warm<DB: Database> {
    pool: Pool<DB>,
    permits: Arc<Semaphore>,
    kept: Mutex<Vec<Kept<DB>>>,
    size: u32,
    acquire_timeout: Duration,
    /// A task that works on this pool's database (SQLite's background checkpoints), stopped when
    /// the pool closes or is dropped.
    beside: OnceLock<AbortHandle>,
}

struct Kept<DB: Database> {
    conn: PoolConnection<DB>,
    /// When this connection was taken from sqlx's pool.
    since: Instant,
    /// When the last lease returned it.
    kept_at: Instant,
}

impl<DB: Database> Warm<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pub(crate) fn new(pool: Pool<DB>, size: u32, acquire_timeout: Duration) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            pool,
            permits: Arc::new(Semaphore::new(size as usize)),
            kept: Mutex::new(Vec::new()),
            size,
            acquire_timeout,
            beside: OnceLock::new(),
        })
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Runs `task` for as long as this pool: it is aborted when the pool closes or is dropped.
    pub(crate) fn run_beside(&self, task: AbortHandle) {
        if let Err(task) = self.beside.set(task) {
            task.abort();
        }
    }

    /// Connections kept warm, for metrics (sqlx counts them as in use).
    pub(crate) fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept<DB>>> {
        // The vector is consistent after every push and pop, so a panic elsewhere while the lock
        // was held leaves nothing half-done.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lends a connection: a kept one if there is one, else one from sqlx's pool. Waits at most
    /// the pool's acquire timeout for a permit, like sqlx would for a connection.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease<DB>, sqlx::Error> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let kept = loop {
            let Some(kept) = self.lock().pop() else {
                break None;
            };
            if kept.kept_at.elapsed() < CHECK_AFTER_IDLE {
                break Some(kept);
            }
            // Dropped, sqlx pings it and takes it back (or closes it); `acquire` may return it.
            drop(kept);
        };
        let (conn, since) = match kept {
            Some(kept) => (kept.conn, kept.since),
            None => (self.pool.acquire().await?, Instant::now()),
        };
        Ok(Lease {
            conn: Some(conn),
            since,
            in_transaction: false,
            settled: true,
            warm: Arc::clone(self),
            permit: Some(permit),
            restore: None,
        })
    }

    /// Closes the kept connections and the pool. Leases still out return their connections to
    /// sqlx, which closes them (`Pool::close` waits for that).
    pub(crate) async fn close(&self) {
        let kept = {
            let mut kept = self.lock();
            // Under the lock, so that no lease keeps a connection after this.
            self.permits.close();
            std::mem::take(&mut *kept)
        };
        drop(kept);
        self.stop_beside();
        self.pool.close().await;
    }
}

impl<DB: Database> Warm<DB> {
    fn stop_beside(&self) {
        if let Some(task) = self.beside.get() {
            task.abort();
        }
    }
}

impl<DB: Database> Drop for Warm<DB> {
    fn drop(&mut self) {
        self.stop_beside();
    }
}

/// A connection lent to one transaction (or one autocommit read). Dropping it returns the
/// connection: straight to the kept set when it is settled and outside a transaction, otherwise
/// after a rollback, through sqlx's pool.
pub(crate) struct Lease<DB: Database>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    conn: Option<PoolConnection<DB>>,
    since: Instant,
    in_transaction: bool,
    /// False while a statement is under way and after one failed: the connection's state is
    /// then unknown (a cancelled statement may still be running) until sqlx has checked it.
    settled: bool,
    warm: Arc<Warm<DB>>,
    permit: Option<OwnedSemaphorePermit>,
    /// Undoes a setting this lease changed on its connection (see [`Lease::widen`]); run when
    /// the connection is returned.
    restore: Option<&'static str>,
}

impl<DB: Database> Lease<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// The connection for one statement; call [`Lease::settle`] once it has succeeded.
    pub(crate) fn statement(&mut self) -> Result<&mut DB::Connection, sqlx::Error> {
        self.settled = false;
        self.conn
            .as_deref_mut()
            .ok_or_else(|| sqlx::Error::Protocol("the connection was already returned".into()))
    }

    pub(crate) fn settle(&mut self) {
        self.settled = true;
    }

    /// Runs a statement that opens a transaction (`BEGIN ...`, possibly with settings after it).
    pub(crate) async fn begin(&mut self, statement: String) -> Result<(), sqlx::Error> {
        // Marked first: if `BEGIN` ran but the settings after it failed, the drop rolls back.
        self.in_transaction = true;
        self.raw(statement).await
    }

    /// Commits the open transaction; without one (an autocommit read) there is nothing to do.
    /// The connection stays with this lease (see `BulkWriter`); dropping the lease returns it.
    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        if self.in_transaction {
            self.raw("COMMIT".to_owned()).await?;
            self.in_transaction = false;
        }
        Ok(())
    }

    /// Changes a setting of the connection for as long as this lease holds it: `change` now,
    /// `restore` when the lease returns the connection, so the next lease finds it as the pool
    /// made it.
    pub(crate) async fn widen(
        &mut self,
        change: &'static str,
        restore: &'static str,
    ) -> Result<(), sqlx::Error> {
        // Recorded first: if the change fails half-way, returning the connection still undoes it.
        self.restore = Some(restore);
        self.raw(change.to_owned()).await
    }

    async fn raw(&mut self, statement: String) -> Result<(), sqlx::Error> {
        let conn = self.statement()?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(conn)
            .await?;
        self.settle();
        Ok(())
    }
}

impl<DB: Database> Drop for Lease<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.settled
            && !self.in_transaction
            && self.restore.is_none()
            && self.since.elapsed() < RECYCLE_AFTER
        {
            let mut kept = self.warm.lock();
            if !self.warm.permits.is_closed() {
                kept.push(Kept {
                    conn,
                    since: self.since,
                    kept_at: Instant::now(),
                });
                // The permit is released after the connection is back, when the fields drop.
                return;
            }
            drop(kept);
            // Closing: sqlx's pool closes the connection when it comes back.
            drop(conn);
            return;
        }
        let in_transaction = self.in_transaction;
        let restore = self.restore.take();
        // Held until the connection is back in sqlx's hands, so that leases never hold more
        // connections than there are permits.
        let permit = self.permit.take();
        tokio::spawn(async move {
            if in_transaction && sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
            if let Some(restore) = restore
                && sqlx::raw_sql(restore).execute(&mut *conn).await.is_err()
            {
                conn.close_on_drop();
            }
            drop(conn);
            drop(permit);
        });
    }
}
