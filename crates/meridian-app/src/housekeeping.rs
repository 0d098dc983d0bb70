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
/// Deletes old history (daily): see [`purge_history`].
pub const PURGE_HISTORY: &str = "housekeeping.purge_history";

/// How long finished webhook deliveries (with their attempts) and finished automation runs (with
/// their steps) are kept.
pub const HISTORY_RETENTION: time::Duration = time::Duration::days(30);
/// How long read notifications are kept (unread ones stay until read).
pub const READ_NOTIFICATION_RETENTION: time::Duration = time::Duration::days(90);
/// Inbound form idempotency keys answer repeats for a day; after that they can go.
pub const IDEMPOTENCY_RETENTION: time::Duration = time::Duration::days(2);

/// Deletes, in every organization, what has served its purpose: finished webhook deliveries and
/// automation runs past [`HISTORY_RETENTION`], read notifications past
/// [`READ_NOTIFICATION_RETENTION`], and inbound idempotency keys past [`IDEMPOTENCY_RETENTION`].
/// Returns the number of rows removed (children removed with their parents not counted).
pub async fn purge_history(db: &Db) -> anyhow::Result<u64> {
    let mut tx = db.global().await?;
    let org_ids = org_store::all_org_ids(&mut tx).await?;
    tx.commit().await?;
    let now = meridian_db::now();
    let history = now - HISTORY_RETENTION;
    let statements = [
        (
            "DELETE FROM webhook_deliveries WHERE org_id = $1 AND status <> 'pending' AND created_at < $2",
            history,
        ),
        (
            "DELETE FROM automation_runs WHERE org_id = $1 AND status IN ('succeeded', 'skipped', 'failed') \
             AND created_at < $2",
            history,
        ),
        (
            "DELETE FROM notifications WHERE org_id = $1 AND read_at IS NOT NULL AND created_at < $2",
            now - READ_NOTIFICATION_RETENTION,
        ),
        (
            "DELETE FROM inbound_submissions WHERE org_id = $1 AND created_at < $2",
            now - IDEMPOTENCY_RETENTION,
        ),
    ];
    let mut purged = 0;
    for org_id in org_ids {
        let tenant = Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await?;
        for (statement, cutoff) in &statements {
            purged += tx
                .execute(meridian_db::sql(*statement).bind(&org_id).bind(*cutoff))
                .await?;
        }
        tx.commit().await?;
    }
    Ok(purged)
}

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
    registry.register(PURGE_HISTORY, |ctx: JobContext, _| async move {
        let purged = purge_history(&ctx.db).await?;
        if purged > 0 {
            tracing::info!(rows = purged, "purged old history");
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
        Entry::new(
            PURGE_HISTORY,
            Recurrence::Every(Duration::from_secs(24 * 3600)),
        ),
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
