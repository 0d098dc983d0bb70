//! The operator's view of an organization's background jobs (the API's `/jobs` endpoints and the
//! Operations page share it): counts by kind and status, queue depth, throughput and
//! enqueue-to-start latency over the last hour, recent failures, and retry and discard.
//!
//! Every function requires [`Permission::JobsManage`] and works in a tenant transaction for the
//! caller's organization, so another organization's job answers 404 (and on PostgreSQL row-level
//! security hides it too).

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_core::Permission;
use meridian_db::jobs::{self as store, Job, JobCount, JobStatus, Scope};
use meridian_db::{Db, TenantTx};
use serde_json::json;

use crate::audit::store::{self as audit, Entry};
use crate::http::ctx::Ctx;
use crate::http::error::{AppError, AppResult};

/// The window throughput and latency are measured over.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// At most this many recent attempts are read to compute the latency percentiles.
pub const LATENCY_SAMPLES: i64 = 10_000;

/// Jobs by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub scheduled: i64,
    pub available: i64,
    pub running: i64,
    pub succeeded: i64,
    pub retrying: i64,
    pub dead: i64,
}

impl StatusCounts {
    fn add(&mut self, status: JobStatus, n: i64) {
        let slot = match status {
            JobStatus::Scheduled => &mut self.scheduled,
            JobStatus::Available => &mut self.available,
            JobStatus::Running => &mut self.running,
            JobStatus::Succeeded => &mut self.succeeded,
            JobStatus::Retrying => &mut self.retrying,
            JobStatus::Dead => &mut self.dead,
        };
        *slot += n;
    }

    /// Queue depth: jobs waiting to run (scheduled, available and retrying).
    pub fn waiting(&self) -> i64 {
        self.scheduled + self.available + self.retrying
    }

    pub fn total(&self) -> i64 {
        self.waiting() + self.running + self.succeeded + self.dead
    }
}

/// One kind of job: its counts by status and its throughput.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindSummary {
    pub kind: String,
    pub statuses: StatusCounts,
    /// Succeeded within [`WINDOW`].
    pub succeeded_last_hour: i64,
}

/// Enqueue-to-start latency of the attempts that finished within [`WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub samples: usize,
    pub p50: Option<Duration>,
    pub p95: Option<Duration>,
}

impl Latency {
    /// Nearest-rank percentiles of `delays`.
    pub fn of(mut delays: Vec<Duration>) -> Latency {
        delays.sort_unstable();
        Latency {
            samples: delays.len(),
            p50: percentile(&delays, 50),
            p95: percentile(&delays, 95),
        }
    }
}

/// The nearest-rank `p`th percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Everything the Operations page and `GET /api/v1/jobs` show.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub counts: Vec<JobCount>,
    pub statuses: StatusCounts,
    /// By kind, in kind order.
    pub kinds: Vec<KindSummary>,
    pub succeeded_last_hour: i64,
    pub latency: Latency,
    /// Retrying and dead jobs with their last error, newest first.
    pub failures: Vec<Job>,
}

/// The caller's organization's queue: counts, throughput, latency and the latest `failures`
/// failed jobs.
#[tracing::instrument(skip_all)]
pub async fn overview(db: &Db, ctx: &Ctx, failures: i64) -> AppResult<Overview> {
    ctx.require(Permission::JobsManage)?;
    let org = ctx.tenant.org_id();
    let scope = Scope::Org(org);
    let since = store::minus(meridian_db::now(), WINDOW);
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let counts = store::counts(&mut tx, scope).await?;
    let succeeded = store::succeeded_since(&mut tx, scope, since).await?;
    let delays = store::start_delays(&mut tx, scope, since, LATENCY_SAMPLES).await?;
    let failures = store::recent_failures(&mut tx, scope, failures).await?;
    tx.commit().await?;

    let mut statuses = StatusCounts::default();
    let mut kinds: BTreeMap<String, KindSummary> = BTreeMap::new();
    for c in &counts {
        let Some(status) = JobStatus::parse(&c.status) else {
            continue;
        };
        statuses.add(status, c.count);
        let entry = kinds.entry(c.kind.clone()).or_default();
        entry.statuses.add(status, c.count);
    }
    let mut succeeded_last_hour = 0;
    for s in succeeded {
        succeeded_last_hour += s.count;
        kinds.entry(s.kind).or_default().succeeded_last_hour = s.count;
    }
    let kinds = kinds
        .into_iter()
        .map(|(kind, summary)| KindSummary { kind, ..summary })
        .collect();
    Ok(Overview {
        counts,
        statuses,
        kinds,
        succeeded_last_hour,
        latency: Latency::of(delays),
        failures,
    })
}

/// One of the organization's jobs.
#[tracing::instrument(skip_all)]
pub async fn get(db: &Db, ctx: &Ctx, id: &str) -> AppResult<Job> {
    ctx.require(Permission::JobsManage)?;
    let mut tx = db.tenant_read(&ctx.tenant).await?;
    let job = find(&mut tx, ctx, id).await?;
    tx.commit().await?;
    Ok(job)
}

async fn find(tx: &mut TenantTx, ctx: &Ctx, id: &str) -> AppResult<Job> {
    store::find(tx, Scope::Org(ctx.tenant.org_id()), id)
        .await?
        .ok_or(AppError::NotFound)
}

fn status_of(job: &Job) -> String {
    job.status()
        .map(|s| s.to_string())
        .unwrap_or_else(|| job.status.clone())
}

/// Why a job in `status` cannot be retried.
fn not_retryable(job: &Job) -> AppError {
    let status = status_of(job);
    let why = match job.status() {
        Some(JobStatus::Running) => "it is running now",
        Some(JobStatus::Succeeded) => "it has already succeeded",
        Some(JobStatus::Scheduled | JobStatus::Available) => "it is already waiting to run",
        _ => "only dead or retrying jobs can be retried",
    };
    AppError::Conflict(format!(
        "This job is {status}, so it cannot be retried: {why}. Only dead or retrying jobs can be retried."
    ))
}

/// Why a job in `status` cannot be discarded.
fn not_discardable(job: &Job) -> AppError {
    let status = status_of(job);
    let why = match job.status() {
        Some(JobStatus::Running) => {
            "a worker is running it now; wait until it finishes or fails, then discard it"
        }
        Some(JobStatus::Succeeded) => {
            "it has already succeeded (succeeded jobs are deleted after the retention period)"
        }
        _ => "only waiting, retrying or dead jobs can be discarded",
    };
    AppError::Conflict(format!(
        "This job is {status}, so it cannot be discarded: {why}."
    ))
}

/// Makes a dead or retrying job available now (a dead job out of attempts gets one more). Other
/// states answer 409; a unique job with another copy waiting answers 409 too. Returns the job
/// as it is now; call [`super::wake`] so a runner in this process starts it at once.
#[tracing::instrument(skip_all)]
pub async fn retry(db: &Db, ctx: &Ctx, id: &str) -> AppResult<Job> {
    ctx.require(Permission::JobsManage)?;
    let org = ctx.tenant.org_id().to_owned();
    let mut tx = db.tenant(&ctx.tenant).await?;
    let before = find(&mut tx, ctx, id).await?;
    if !matches!(before.status(), Some(JobStatus::Dead | JobStatus::Retrying)) {
        return Err(not_retryable(&before));
    }
    let retried = match store::retry(&mut tx, Scope::Org(&org), id).await {
        Ok(retried) => retried,
        Err(error) if meridian_db::unique_violation(&error).is_some() => {
            return Err(AppError::Conflict(format!(
                "Another copy of this {} job (same unique key) is already waiting or running; \
                 discard this one instead, or retry it once that copy has finished.",
                before.kind
            )));
        }
        Err(error) => return Err(error.into()),
    };
    if !retried {
        // A worker changed it between the read and the update.
        let now = find(&mut tx, ctx, id).await?;
        return Err(not_retryable(&now));
    }
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "job.retried",
            target_type: "job",
            target_id: Some(before.id.as_str()),
            target_label: Some(before.kind.as_str()),
            before: Some(json!({"status": before.status, "attempts": before.attempts})),
            after: Some(json!({"status": "available"})),
        },
    )
    .await?;
    let after = find(&mut tx, ctx, id).await?;
    tx.commit().await?;
    super::wake();
    Ok(after)
}

/// Deletes a job that is waiting (scheduled, available), retrying or dead: it will not run.
/// Running and succeeded jobs answer 409. Returns the job as it was.
#[tracing::instrument(skip_all)]
pub async fn discard(db: &Db, ctx: &Ctx, id: &str) -> AppResult<Job> {
    ctx.require(Permission::JobsManage)?;
    let org = ctx.tenant.org_id().to_owned();
    let mut tx = db.tenant(&ctx.tenant).await?;
    let job = find(&mut tx, ctx, id).await?;
    if matches!(
        job.status(),
        Some(JobStatus::Running | JobStatus::Succeeded)
    ) {
        return Err(not_discardable(&job));
    }
    if !store::discard(&mut tx, Scope::Org(&org), id).await? {
        let now = find(&mut tx, ctx, id).await?;
        return Err(not_discardable(&now));
    }
    audit::record(
        &mut tx,
        ctx,
        Entry {
            action: "job.discarded",
            target_type: "job",
            target_id: Some(job.id.as_str()),
            target_label: Some(job.kind.as_str()),
            before: Some(json!({"status": job.status, "attempts": job.attempts})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(Latency::of(Vec::new()), Latency::default());
        let one = Latency::of(vec![ms(7)]);
        assert_eq!((one.p50, one.p95), (Some(ms(7)), Some(ms(7))));
        let hundred = Latency::of((1..=100).rev().map(ms).collect());
        assert_eq!(hundred.samples, 100);
        assert_eq!(hundred.p50, Some(ms(50)));
        assert_eq!(hundred.p95, Some(ms(95)));
        let three = Latency::of(vec![ms(30), ms(10), ms(20)]);
        assert_eq!((three.p50, three.p95), (Some(ms(20)), Some(ms(30))));
    }

    #[test]
    fn waiting_is_scheduled_available_and_retrying() {
        let mut s = StatusCounts::default();
        s.add(JobStatus::Scheduled, 1);
        s.add(JobStatus::Available, 2);
        s.add(JobStatus::Retrying, 4);
        s.add(JobStatus::Running, 8);
        s.add(JobStatus::Dead, 16);
        s.add(JobStatus::Succeeded, 32);
        assert_eq!(s.waiting(), 7);
        assert_eq!(s.total(), 63);
    }
}
