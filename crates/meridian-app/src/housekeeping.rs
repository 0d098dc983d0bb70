//! The background worker's housekeeping, as recurring jobs on the queue: purge expired sessions,
//! tokens, throttling rows and setup tokens, resume imports whose runner died, and delete old
//! succeeded jobs. Runs in `serve` (in-process) and in `meridian worker`; the scheduler lease makes
//! one node enqueue each pass, and any runner runs it.

use std::future::Future;
use std::time::Duration;

use meridian_db::{Db, Tenant};

use crate::auth::store;
use crate::config::AppConfig;
use crate::jobs::{Entry, JobContext, Recurrence, Registry, SchedulerConfig};
use crate::orgs::store as org_store;

/// Purges once across every organization (each in its own tenant transaction, so row-level
/// security applies to the worker as to requests). Returns the number of rows removed.
pub async fn purge_once(db: &Db, config: &AppConfig) -> anyhow::Result<u64> {
    let idle = time::Duration::try_from(config.session_idle_timeout)?;
    let idle_cutoff = meridian_db::now() - idle;
    let mut tx = db.global().await?;
    let mut purged = store::purge_expired_global(&mut tx).await?;
    let org_ids = org_store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    for org_id in org_ids {
        let tenant = Tenant::for_verified_credentials(org_id, None);
        let mut tx = db.tenant(&tenant).await?;
        purged += store::purge_expired_credentials(&mut tx, idle_cutoff).await?;
        tx.commit().await?;
    }
    Ok(purged)
}

/// Purges expired credentials (every `worker_interval`).
pub const PURGE_CREDENTIALS: &str = "housekeeping.purge_credentials";
/// Takes over imports whose runner died (every `worker_interval`).
pub const RESUME_IMPORTS: &str = "imports.resume_stale";
/// Deletes succeeded jobs older than the retention (hourly).
pub const PURGE_JOBS: &str = "jobs.purge_finished";

/// Registers the housekeeping handlers.
pub fn register(registry: &mut Registry, config: &AppConfig) {
    let purge_config = config.clone();
    registry.register(PURGE_CREDENTIALS, move |ctx: JobContext, _| {
        let config = purge_config.clone();
        async move {
            let purged = purge_once(&ctx.db, &config).await?;
            if purged > 0 {
                tracing::info!(rows = purged, "purged expired credentials");
            }
            Ok(())
        }
    });
    registry.register(RESUME_IMPORTS, |ctx: JobContext, _| async move {
        // The resumed runs continue in the background of this process, checkpointing as they go.
        let runs =
            crate::imports::service::resume_stale(&ctx.db, crate::imports::service::STALE_AFTER)
                .await?;
        if !runs.is_empty() {
            tracing::info!(imports = runs.len(), "resumed imports");
        }
        Ok(())
    });
    let retention = config.jobs.retention;
    registry.register(PURGE_JOBS, move |ctx: JobContext, _| async move {
        let purged = meridian_db::jobs::purge_finished(&ctx.db, retention).await?;
        if purged > 0 {
            tracing::info!(rows = purged, "purged finished jobs");
        }
        Ok(())
    });
}

/// The housekeeping entries of the scheduler.
pub fn schedule(every: Duration) -> Vec<Entry> {
    vec![
        Entry::new(PURGE_CREDENTIALS, Recurrence::Every(every)),
        Entry::new(RESUME_IMPORTS, Recurrence::Every(every)),
        Entry::new(PURGE_JOBS, Recurrence::Every(Duration::from_secs(3600))),
    ]
    .into_iter()
    .chain(crate::automations::schedule())
    .chain(crate::notifications::schedule())
    .collect()
}

/// Runs the background worker until `shutdown` resolves: a job runner (with every feature's
/// handlers) and the scheduler that enqueues housekeeping every `every`. Running jobs finish, or
/// are released to other workers after the grace period, before it returns.
pub async fn run_worker(
    db: Db,
    config: AppConfig,
    every: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = crate::jobs::registry(&config);
    crate::jobs::run(
        db,
        registry,
        schedule(every),
        &config.jobs,
        SchedulerConfig::default(),
        shutdown,
    )
    .await;
    tracing::info!("worker stopped");
}
