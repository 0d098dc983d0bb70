//! The background worker's duties until the job queue arrives: purge expired sessions, tokens,
//! throttling rows and setup tokens, and resume imports whose runner died. Runs in `serve`
//! (in-process) and in `meridian worker`.

use std::future::Future;
use std::time::Duration;

use meridian_db::{Db, Tenant};

use crate::auth::store;
use crate::config::AppConfig;
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

/// Runs the worker loop until `shutdown` resolves. A pass that has started is finished before
/// the loop exits, so shutdown never leaves half-done work.
pub async fn run_worker(
    db: Db,
    config: AppConfig,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                match purge_once(&db, &config).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "purged expired credentials"),
                    Err(error) => tracing::error!(error = ?error, "housekeeping pass failed; will retry"),
                }
                // Imports whose runner died (a restart mid-import) continue in the background.
                if let Err(error) = crate::imports::service::resume_stale(
                    &db,
                    crate::imports::service::STALE_AFTER,
                )
                .await
                {
                    tracing::error!(error = ?error, "resuming imports failed; will retry");
                }
            }
        }
    }
    tracing::info!("worker stopped");
}
