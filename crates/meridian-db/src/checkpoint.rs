//! SQLite's write-ahead log copied back into the database file by a background task.
//!
//! SQLite's own autocheckpoint runs inside the commit that takes the log past its threshold: that
//! commit copies tens of megabytes back into the database file before it returns, in the middle
//! of whatever request or import chunk it belongs to. In a million-row import that was a seventh
//! of the writer's time (see BENCHMARKS.md). A `PASSIVE` checkpoint from another connection copies
//! the committed pages while the writer goes on: it waits for no reader or writer and copies
//! only pages no open read still needs, so it never blocks them. The autocheckpoint stays as a
//! backstop and as what lets the log restart from its beginning; by the time it fires, the
//! pages are already back, so it has little left to copy.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

/// How often the log is copied back. Each checkpoint that copies anything syncs the database
/// file once; an idle database costs one statement that finds nothing to do.
const EVERY: Duration = Duration::from_millis(250);

/// Starts checkpointing `pool`'s database every [`EVERY`] until the task is aborted or the pool
/// closed.
pub(crate) fn spawn(pool: SqlitePool) -> AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // Another connection (the writer's autocheckpoint, another process) may be
                // checkpointing: the next tick tries again.
                tracing::debug!(%error, "background WAL checkpoint did not run");
            }
        }
    })
    .abort_handle()
}
