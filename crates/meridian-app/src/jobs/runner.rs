//! The runner: claims due jobs into a fixed number of slots and runs each with its handler, under
//! a timeout, while heartbeating the jobs it holds and periodically rescuing jobs whose worker
//! died. On shutdown it stops claiming, lets running jobs finish for a grace period, and releases
//! the rest to other workers.
//!
//! The runner writes to the queue from its own loop, once per turn: the jobs that ended well since
//! the last turn are marked succeeded and the free slots' next jobs claimed in one transaction, so
//! a busy runner costs the database one transaction per batch of jobs rather than one per job (or
//! one to claim a batch and another to record it). Failures are recorded by the job's task as they
//! happen.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use meridian_db::jobs::{self as store, Backoff, Failure, Job, JobStatus};
use meridian_db::{Db, Pools};
use tokio::task::{Id, JoinSet};

use super::{JobContext, JobError, Registry};
use crate::config::JobsConfig;

/// How a runner paces itself.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub job_timeout: Duration,
    pub rescue_after: Duration,
    pub heartbeat_interval: Duration,
    pub rescue_interval: Duration,
    pub shutdown_grace: Duration,
    pub backoff: Backoff,
}

impl From<&JobsConfig> for RunnerConfig {
    fn from(c: &JobsConfig) -> Self {
        // Several heartbeats fit in one rescue window, so a live worker's jobs are never rescued
        // because of one slow beat.
        let beat = (c.rescue_after / 4).min(Duration::from_secs(30));
        RunnerConfig {
            concurrency: c.concurrency.max(1),
            poll_interval: c.poll_interval,
            job_timeout: c.job_timeout,
            rescue_after: c.rescue_after,
            heartbeat_interval: beat.max(Duration::from_millis(10)),
            rescue_interval: (c.rescue_after / 2)
                .min(Duration::from_secs(60))
                .max(Duration::from_millis(10)),
            shutdown_grace: c.shutdown_grace,
            backoff: Backoff {
                base: c.backoff_base,
                cap: c.backoff_cap,
            },
        }
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig::from(&JobsConfig::default())
    }
}

/// What a runner did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerReport {
    pub succeeded: u64,
    pub failed: u64,
    /// Jobs still running at the end of the grace period, given back to the queue.
    pub released: u64,
}

pub struct Runner {
    db: Db,
    registry: Arc<Registry>,
    config: RunnerConfig,
    worker_id: String,
}

/// How one attempt ended.
enum Outcome {
    Succeeded,
    Failed,
}

impl Runner {
    pub fn new(db: Db, registry: Registry, config: RunnerConfig) -> Runner {
        Runner {
            db,
            registry: Arc::new(registry),
            config,
            worker_id: super::new_worker_id(),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunnerReport {
        tokio::pin!(shutdown);
        let mut wake = super::wake_receiver();
        let mut running: JoinSet<Outcome> = JoinSet::new();
        // The job (id, attempt) each task runs.
        let mut held: HashMap<Id, Run> = HashMap::new();
        // Attempts that succeeded and are not written yet: the next turn's transaction marks them.
        let mut succeeded: Vec<Run> = Vec::new();
        let mut report = RunnerReport::default();
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rescue = tokio::time::interval(self.config.rescue_interval);
        rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether ready jobs may be waiting that this runner has not tried to claim: at start,
        // after a claim that got every job it asked for, on a wake-up and at each poll. A claim
        // that came back short drained the queue, so jobs that end afterwards free their slots
        // without another claim until something new is announced or the poll comes round.
        let mut may_have_work = true;
        // The poll is a deadline from the last claim, not a sleep restarted on every turn of the
        // loop, so a runner whose jobs keep ending still polls for other processes' jobs.
        let mut next_poll = tokio::time::Instant::now() + self.config.poll_interval;
        let listening = match self.db.pools() {
            Pools::Postgres(pool) => Some(tokio::spawn(listen_for_jobs(pool))),
            Pools::Sqlite(_) => None,
        };
        tracing::info!(worker = %self.worker_id, concurrency = self.config.concurrency, kinds = ?self.registry.kinds(), "job runner started");
        loop {
            // One transaction: record what ended well, and claim every free slot's job in one
            // statement. A full batch fills every slot, so the next claim waits for jobs to end.
            let free = self.config.concurrency.saturating_sub(held.len());
            let claim = if free > 0 && may_have_work { free } else { 0 };
            if claim > 0 || !succeeded.is_empty() {
                if claim > 0 {
                    // Wake-ups from now on count for the next wait.
                    wake.borrow_and_update();
                    next_poll = tokio::time::Instant::now() + self.config.poll_interval;
                }
                match self.record_and_claim(&succeeded, claim).await {
                    Ok((marked, jobs)) => {
                        if usize::try_from(marked).unwrap_or(usize::MAX) < succeeded.len() {
                            tracing::warn!(
                                finished = succeeded.len(),
                                recorded = marked,
                                "some jobs finished after they were rescued; another run may follow"
                            );
                        }
                        succeeded.clear();
                        if claim > 0 {
                            may_have_work = jobs.len() >= claim;
                        }
                        for job in jobs {
                            self.spawn(&mut running, &mut held, job);
                        }
                    }
                    Err(error) => {
                        // Nothing was written: the successes are tried again next turn, the claim
                        // at the next poll or wake-up. Until then the jobs stay running (and
                        // would be rescued and run again if this never succeeds: at least once).
                        if claim > 0 {
                            may_have_work = false;
                        }
                        tracing::error!(error = %error, jobs = succeeded.len(), "recording finished jobs and claiming failed; will retry");
                    }
                }
            }
            let has_room = held.len() < self.config.concurrency;
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    self.finished(done, &mut held, &mut succeeded, &mut report);
                    while let Some(done) = running.try_join_next_with_id() {
                        self.finished(done, &mut held, &mut succeeded, &mut report);
                    }
                }
                _ = heartbeat.tick() => self.beat(&held).await,
                _ = rescue.tick() => self.rescue().await,
                _ = wake.changed(), if has_room => may_have_work = true,
                _ = tokio::time::sleep_until(next_poll), if has_room => may_have_work = true,
            }
        }
        if let Some(listening) = listening {
            listening.abort();
        }
        let report = self.shut_down(running, held, succeeded, report).await;
        tracing::info!(worker = %self.worker_id, ?report, "job runner stopped");
        report
    }

    /// Marks `succeeded` and claims up to `claim` jobs, in one transaction.
    async fn record_and_claim(
        &self,
        succeeded: &[Run],
        claim: usize,
    ) -> Result<(u64, Vec<Job>), sqlx::Error> {
        let mut tx = self.db.queue().await?;
        let marked = store::complete_many_in(&mut tx, &self.worker_id, succeeded).await?;
        let jobs = store::claim_in(&mut tx, &self.worker_id, claim).await?;
        tx.commit().await?;
        Ok((marked, jobs))
    }

    fn spawn(&self, running: &mut JoinSet<Outcome>, held: &mut HashMap<Id, Run>, job: Job) {
        let ctx = JobContext {
            db: self.db.clone(),
            job_id: job.id.clone(),
            kind: job.kind.clone(),
            org_id: job.org_id.clone(),
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            worker_id: self.worker_id.clone(),
        };
        let run = (job.id.clone(), job.attempts);
        let handle = running.spawn(execute(
            ctx,
            self.registry.clone(),
            job,
            self.config.job_timeout,
            self.config.backoff,
        ));
        held.insert(handle.id(), run);
    }

    fn finished(
        &self,
        done: Result<(Id, Outcome), tokio::task::JoinError>,
        held: &mut HashMap<Id, Run>,
        succeeded: &mut Vec<Run>,
        report: &mut RunnerReport,
    ) {
        match done {
            Ok((id, outcome)) => {
                let run = held.remove(&id);
                match outcome {
                    Outcome::Succeeded => {
                        report.succeeded += 1;
                        succeeded.extend(run);
                    }
                    Outcome::Failed => report.failed += 1,
                }
            }
            Err(error) => {
                // The task itself panicked or was cancelled outside a handler (handler panics are
                // caught). The job stays running and is rescued after the heartbeat timeout.
                let job = held.remove(&error.id());
                tracing::error!(job = ?job.map(|(id, _)| id), error = %error, "a job task ended abnormally");
                report.failed += 1;
            }
        }
    }

    async fn beat(&self, held: &HashMap<Id, Run>) {
        let ids: Vec<String> = held.values().map(|(id, _)| id.clone()).collect();
        if let Err(error) = store::heartbeat(&self.db, &self.worker_id, &ids).await {
            tracing::error!(error = %error, "heartbeat failed; will retry");
        }
    }

    async fn rescue(&self) {
        match store::rescue(&self.db, self.config.rescue_after).await {
            Ok(jobs) => {
                for job in &jobs {
                    tracing::warn!(job = %job.id, kind = %job.kind, worker = ?job.locked_by, status = %job.status, "rescued a job whose worker stopped reporting");
                    metrics::counter!("meridian_jobs_rescued_total", "kind" => job.kind.clone())
                        .increment(1);
                }
                if !jobs.is_empty() {
                    super::wake();
                }
            }
            Err(error) => tracing::error!(error = %error, "rescuing jobs failed; will retry"),
        }
    }

    async fn shut_down(
        &self,
        mut running: JoinSet<Outcome>,
        mut held: HashMap<Id, Run>,
        mut succeeded: Vec<Run>,
        mut report: RunnerReport,
    ) -> RunnerReport {
        tracing::info!(worker = %self.worker_id, running = held.len(), "job runner stopping: finishing running jobs");
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        while !running.is_empty() {
            tokio::select! {
                Some(done) = running.join_next_with_id() => self.finished(done, &mut held, &mut succeeded, &mut report),
                _ = heartbeat.tick() => self.beat(&held).await,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !running.is_empty() {
            running.abort_all();
            while let Some(done) = running.join_next_with_id().await {
                if let Ok(done) = done {
                    self.finished(Ok(done), &mut held, &mut succeeded, &mut report);
                }
            }
        }
        if let Err(error) = store::complete_many(&self.db, &self.worker_id, &succeeded).await {
            tracing::error!(jobs = succeeded.len(), error = %error, "recording finished jobs failed; they will be rescued and run again");
        }
        if !held.is_empty() {
            let ids: Vec<String> = held.values().map(|(id, _)| id.clone()).collect();
            match store::release(&self.db, &self.worker_id, &ids).await {
                Ok(n) => {
                    report.released = n;
                    tracing::info!(released = n, "released unfinished jobs to other workers");
                }
                Err(error) => {
                    tracing::error!(error = %error, "releasing jobs failed; they will be rescued")
                }
            }
        }
        report
    }
}

/// A job's run: (job id, attempt).
type Run = (String, i64);

/// Runs one attempt and records a failure (a success is recorded by the runner's next turn). A
/// failure to record is logged: the job stays running and the rescue puts it back (at least once).
async fn execute(
    ctx: JobContext,
    registry: Arc<Registry>,
    job: Job,
    timeout: Duration,
    backoff: Backoff,
) -> Outcome {
    let started = Instant::now();
    let db = ctx.db.clone();
    let worker_id = ctx.worker_id.clone();
    let result = match registry.get(&job.kind) {
        None => Err(JobError::Retryable(format!(
            "no handler for job kind {:?} on worker {worker_id}",
            job.kind
        ))),
        Some(handler) => match serde_json::from_str::<serde_json::Value>(&job.payload) {
            Err(error) => Err(JobError::Permanent(format!(
                "the payload is not JSON: {error}"
            ))),
            Ok(payload) => {
                let attempt = AssertUnwindSafe(handler(ctx, payload)).catch_unwind();
                match tokio::time::timeout(timeout, attempt).await {
                    Err(_) => Err(JobError::Retryable(format!("timed out after {timeout:?}"))),
                    Ok(Err(panic)) => Err(JobError::Retryable(format!(
                        "the handler panicked: {}",
                        panic_message(panic.as_ref())
                    ))),
                    Ok(Ok(result)) => result,
                }
            }
        },
    };
    let elapsed = started.elapsed();
    metrics::histogram!("meridian_job_duration_seconds", "kind" => job.kind.clone())
        .record(elapsed.as_secs_f64());
    match result {
        Ok(()) => {
            metrics::counter!("meridian_jobs_total", "kind" => job.kind.clone(), "outcome" => "succeeded").increment(1);
            Outcome::Succeeded
        }
        Err(error) => {
            let (failure, message) = match &error {
                JobError::Retryable(m) => (Failure::Retryable, m),
                JobError::Permanent(m) => (Failure::Permanent, m),
            };
            match store::fail(&db, &job, &worker_id, message, failure, &backoff).await {
                Ok(Some(JobStatus::Dead)) => {
                    metrics::counter!("meridian_jobs_total", "kind" => job.kind.clone(), "outcome" => "dead").increment(1);
                    tracing::error!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, "a job failed for good (dead)")
                }
                Ok(_) => {
                    metrics::counter!("meridian_jobs_total", "kind" => job.kind.clone(), "outcome" => "retrying").increment(1);
                    tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, "a job failed; it will be retried")
                }
                Err(db_error) => {
                    tracing::error!(job = %job.id, error = %db_error, "recording a job's failure failed; it will be rescued")
                }
            }
            Outcome::Failed
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// The channel a trigger on `jobs` notifies at the commit of every enqueue (migration 0007).
const JOBS_CHANNEL: &str = "meridian_jobs";

/// On PostgreSQL, wakes this process's runners when any process enqueues a job, so a job from a
/// web node starts on a worker node at once instead of at the worker's next poll. A lost
/// connection is reopened; meanwhile the poll still finds every job.
async fn listen_for_jobs(pool: sqlx::PgPool) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(JOBS_CHANNEL).await {
                Ok(()) => loop {
                    match listener.recv().await {
                        Ok(_) => super::wake(),
                        Err(error) => {
                            tracing::warn!(%error, "job notifications interrupted; reconnecting");
                            break;
                        }
                    }
                },
                Err(error) => tracing::warn!(%error, "cannot listen for job notifications"),
            },
            Err(error) => tracing::warn!(%error, "cannot connect to listen for job notifications"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
