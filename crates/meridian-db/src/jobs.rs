//! Storage for the durable job queue (table `jobs`, migration 0006) and named leases (table
//! `leases`).
//!
//! Guarantees, on both engines:
//! - [`enqueue`] runs inside the caller's write transaction (a tenant's or the queue runner's), so
//!   the job exists exactly when the business write it belongs to commits.
//! - A job with a `unique_key` has at most one copy scheduled, available, running or retrying per
//!   (organization, kind, key); a second [`enqueue`] of it inserts nothing.
//! - [`claim`] hands each ready job to one worker: PostgreSQL locks the chosen rows with
//!   `FOR UPDATE SKIP LOCKED` (concurrent claimers skip each other's rows instead of waiting);
//!   SQLite runs the same statement under `BEGIN IMMEDIATE`, its single writer.
//! - Delivery is at least once: a job whose worker stops heartbeating is put back by [`rescue`]
//!   (or marked dead when out of attempts), and [`complete`] / [`fail`] of a job that was rescued
//!   meanwhile change nothing. Dead jobs are kept until retried or discarded.
//!
//! Times are taken from the application clock ([`crate::now`]) and bound, never SQL's `now()`, so
//! both engines compare the same values.

use std::time::Duration;

use time::OffsetDateTime;

use crate::pool::Db;
use crate::tx::{Tx, sql};

/// A job's state. Waiting: scheduled, available, retrying. Then running, and finally succeeded or
/// dead (a retry puts a dead job back to available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    Scheduled,
    Available,
    Running,
    Succeeded,
    Retrying,
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Scheduled,
        JobStatus::Available,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Retrying,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scheduled => "scheduled",
            JobStatus::Available => "available",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Retrying => "retrying",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Scheduled, available or retrying: counted in the queue depth.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            JobStatus::Scheduled | JobStatus::Available | JobStatus::Retrying
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const JOB_COLUMNS: &str = "id, org_id, kind, payload, priority, status, run_at, attempts, \
    max_attempts, unique_key, last_error, locked_by, heartbeat_at, started_at, finished_at, \
    created_at";

/// A stored job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    /// None for server-wide work.
    pub org_id: Option<String>,
    pub kind: String,
    /// JSON text.
    pub payload: String,
    pub priority: i64,
    pub status: String,
    pub run_at: OffsetDateTime,
    pub attempts: i64,
    pub max_attempts: i64,
    pub unique_key: Option<String>,
    pub last_error: Option<String>,
    pub locked_by: Option<String>,
    pub heartbeat_at: Option<OffsetDateTime>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl Job {
    pub fn status(&self) -> Option<JobStatus> {
        JobStatus::parse(&self.status)
    }
}

/// Default attempts before a job is dead.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 20;

/// A job to enqueue. Build it with [`NewJob::new`] and the setters.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    /// JSON text.
    pub payload: String,
    /// Lower runs first (default 0).
    pub priority: i64,
    /// When it may run; None for now.
    pub run_at: Option<OffsetDateTime>,
    pub max_attempts: i64,
    /// No second copy while one with the same (org, kind, key) is pending or running.
    pub unique_key: Option<String>,
    /// The organization the job works for; None for server-wide work (only the queue runner's
    /// transaction may enqueue those on PostgreSQL).
    pub org: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: impl Into<String>) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload: payload.into(),
            priority: 0,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
            org: None,
        }
    }

    pub fn org(mut self, org_id: impl Into<String>) -> NewJob {
        self.org = Some(org_id.into());
        self
    }

    pub fn priority(mut self, priority: i64) -> NewJob {
        self.priority = priority;
        self
    }

    pub fn run_at(mut self, at: OffsetDateTime) -> NewJob {
        self.run_at = Some(at);
        self
    }

    pub fn max_attempts(mut self, n: i64) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }

    pub fn unique_key(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }
}

/// `t + d`, saturating far in the future instead of overflowing.
pub fn plus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .unwrap_or(t + time::Duration::days(365 * 100))
}

/// `t - d`, saturating far in the past.
pub fn minus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d))
        .unwrap_or(t - time::Duration::days(365 * 100))
}

/// `$first, $first+1, ...` for an `IN (...)` list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `job` to the queue inside `tx`, which must be a write transaction: a tenant transaction
/// for its own organization's jobs, or the queue runner's ([`Db::queue`]). Returns the new job's
/// id, or None when a copy with the same unique key is already pending or running (nothing is
/// inserted and the transaction stays usable).
#[tracing::instrument(skip_all, fields(kind = %job.kind))]
pub async fn enqueue(tx: &mut Tx, job: &NewJob) -> Result<Option<String>, sqlx::Error> {
    let now = crate::now();
    let run_at = job.run_at.map(crate::truncate_to_micros).unwrap_or(now);
    let status = if run_at > now {
        JobStatus::Scheduled
    } else {
        JobStatus::Available
    };
    let id = crate::new_id();
    let inserted: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "INSERT INTO jobs (id, org_id, kind, payload, priority, status, run_at, attempts, \
                 max_attempts, unique_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&id)
            .bind(job.org.clone())
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(job.priority)
            .bind(status.as_str())
            .bind(run_at)
            .bind(job.max_attempts.max(1))
            .bind(job.unique_key.clone())
            .bind(now),
        )
        .await?;
    Ok(inserted.map(|(id,)| id))
}

/// Claims up to `limit` ready jobs (waiting and due) for `worker_id`, in priority then run_at
/// order: they become running, with the attempt counted and the heartbeat set.
#[tracing::instrument(skip_all)]
pub async fn claim(db: &Db, worker_id: &str, limit: usize) -> Result<Vec<Job>, sqlx::Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = db.queue().await?;
    let jobs = claim_in(&mut tx, worker_id, limit).await?;
    tx.commit().await?;
    Ok(jobs)
}

/// [`claim`] inside the queue runner's transaction ([`Db::queue`]), which the caller commits; the
/// claimed rows stay locked until then. A runner uses it to record the jobs that ended in the same
/// transaction ([`complete_many_in`]).
pub async fn claim_in(tx: &mut Tx, worker_id: &str, limit: usize) -> Result<Vec<Job>, sqlx::Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = crate::now();
    let lock = match tx.engine() {
        crate::Engine::Postgres => {
            // Walk `jobs_ready` in order and stop after `limit` rows. Under row-level security the
            // planner underestimates the ready rows (it cannot see through the policy's
            // `current_setting` test), and with a stale estimate it prefers reading every ready
            // job and sorting them: a claim then costs O(queue length), 4.5 ms instead of 0.6 ms
            // at 10,000 waiting jobs (see BENCHMARKS.md). Sorting is the plan to rule out, for
            // this transaction only.
            tx.execute(sql("SELECT set_config('enable_sort', 'off', true)"))
                .await?;
            " FOR UPDATE SKIP LOCKED"
        }
        crate::Engine::Sqlite => "",
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut jobs: Vec<Job> = tx
        .fetch_all(
            sql(format!(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
                 heartbeat_at = $2, started_at = $2, finished_at = NULL \
                 WHERE id IN (SELECT id FROM jobs \
                   WHERE status IN ('scheduled', 'available', 'retrying') AND run_at <= $2 \
                   ORDER BY priority, run_at LIMIT $3{lock}) \
                 RETURNING {JOB_COLUMNS}"
            ))
            .bind(worker_id)
            .bind(now)
            .bind(limit),
        )
        .await?;
    jobs.sort_by_key(|j| (j.priority, j.run_at));
    Ok(jobs)
}

/// Marks a running job succeeded. False when the job is no longer this worker's run (it was
/// rescued, and perhaps claimed again, meanwhile).
#[tracing::instrument(skip_all)]
pub async fn complete(db: &Db, job: &Job, worker_id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.queue().await?;
    let n = tx
        .execute(
            sql(
                "UPDATE jobs SET status = 'succeeded', finished_at = $4, heartbeat_at = NULL \
                 WHERE id = $1 AND status = 'running' AND locked_by = $2 AND attempts = $3",
            )
            .bind(&job.id)
            .bind(worker_id)
            .bind(job.attempts)
            .bind(crate::now()),
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Largest batch [`complete_many`] writes in one statement.
const COMPLETE_BATCH: usize = 500;

/// Marks many running jobs succeeded in one transaction: each `(id, attempts)` is this worker's
/// run of a job. Runs that are no longer this worker's (rescued meanwhile) are left alone.
/// Returns how many were marked.
#[tracing::instrument(skip_all, fields(jobs = runs.len()))]
pub async fn complete_many(
    db: &Db,
    worker_id: &str,
    runs: &[(String, i64)],
) -> Result<u64, sqlx::Error> {
    if runs.is_empty() {
        return Ok(0);
    }
    let mut tx = db.queue().await?;
    let marked = complete_many_in(&mut tx, worker_id, runs).await?;
    tx.commit().await?;
    Ok(marked)
}

/// [`complete_many`] inside the queue runner's transaction ([`Db::queue`]), which the caller
/// commits.
pub async fn complete_many_in(
    tx: &mut Tx,
    worker_id: &str,
    runs: &[(String, i64)],
) -> Result<u64, sqlx::Error> {
    let now = crate::now();
    let mut marked = 0;
    for chunk in runs.chunks(COMPLETE_BATCH) {
        let rows = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 3 + 2 * i, 4 + 2 * i))
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sql(format!(
            "UPDATE jobs SET status = 'succeeded', finished_at = $1, heartbeat_at = NULL \
             WHERE status = 'running' AND locked_by = $2 AND (id, attempts) IN (VALUES {rows})"
        ))
        .bind(now)
        .bind(worker_id);
        for (id, attempts) in chunk {
            q = q.bind(id).bind(*attempts);
        }
        marked += tx.execute(q).await?;
    }
    Ok(marked)
}

/// Exponential backoff with full jitter: attempt n waits a random time between zero and
/// `min(cap, base * 2^(n-1))`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(15),
            cap: Duration::from_secs(6 * 3600),
        }
    }
}

impl Backoff {
    /// The upper bound of the wait after attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: i64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 62)).unwrap_or(62);
        let factor = 1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random wait in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: i64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Without randomness (it never fails on supported systems) wait the whole ceiling.
        let random = getrandom::u64().unwrap_or(u64::MAX);
        Duration::from_nanos(random % nanos.saturating_add(1))
    }
}

/// How a failed attempt should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again after the backoff, unless the attempts are used up.
    Retryable,
    /// Do not try again: dead now.
    Permanent,
}

/// Records a failed attempt of a running job: `retrying` with `run_at` after the backoff, or
/// `dead` when it was permanent or the last attempt. `error` is kept in `last_error`. Returns the
/// new status, or None when the job was no longer this worker's run.
#[tracing::instrument(skip_all)]
pub async fn fail(
    db: &Db,
    job: &Job,
    worker_id: &str,
    error: &str,
    failure: Failure,
    backoff: &Backoff,
) -> Result<Option<JobStatus>, sqlx::Error> {
    let now = crate::now();
    let status = if failure == Failure::Permanent || job.attempts >= job.max_attempts {
        JobStatus::Dead
    } else {
        JobStatus::Retrying
    };
    let run_at = match status {
        JobStatus::Retrying => crate::truncate_to_micros(plus(now, backoff.delay(job.attempts))),
        _ => now,
    };
    let mut tx = db.queue().await?;
    let n = tx
        .execute(
            sql(
                "UPDATE jobs SET status = $4, run_at = $5, last_error = $6, finished_at = $7, \
                 heartbeat_at = NULL \
                 WHERE id = $1 AND status = 'running' AND locked_by = $2 AND attempts = $3",
            )
            .bind(&job.id)
            .bind(worker_id)
            .bind(job.attempts)
            .bind(status.as_str())
            .bind(run_at)
            .bind(truncate_error(error))
            .bind(now),
        )
        .await?;
    tx.commit().await?;
    Ok((n == 1).then_some(status))
}

/// Longest error text kept.
const MAX_ERROR_CHARS: usize = 4000;

fn truncate_error(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => format!("{}…", &error[..at]),
        None => error.to_owned(),
    }
}

/// Refreshes the heartbeat of this worker's running jobs among `ids`. Returns how many it still
/// holds.
#[tracing::instrument(skip_all)]
pub async fn heartbeat(db: &Db, worker_id: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut q = sql(format!(
        "UPDATE jobs SET heartbeat_at = $1 WHERE status = 'running' AND locked_by = $2 \
         AND id IN ({})",
        placeholders(3, ids.len())
    ))
    .bind(crate::now())
    .bind(worker_id);
    for id in ids {
        q = q.bind(id);
    }
    let mut tx = db.queue().await?;
    let n = tx.execute(q).await?;
    tx.commit().await?;
    Ok(n)
}

/// Puts back running jobs whose heartbeat is older than `older_than` (their worker died or hung):
/// `retrying`, due now, or `dead` when out of attempts. Returns the jobs put back.
#[tracing::instrument(skip_all)]
pub async fn rescue(db: &Db, older_than: Duration) -> Result<Vec<Job>, sqlx::Error> {
    let now = crate::now();
    let cutoff = minus(now, older_than);
    let mut tx = db.queue().await?;
    let jobs: Vec<Job> = tx
        .fetch_all(
            sql(format!(
                "UPDATE jobs SET \
                   status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'retrying' END, \
                   last_error = 'the worker ' || COALESCE(locked_by, '') || \
                     ' stopped reporting while running this job', \
                   run_at = $1, finished_at = $1, heartbeat_at = NULL \
                 WHERE status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $2) \
                 RETURNING {JOB_COLUMNS}"
            ))
            .bind(now)
            .bind(cutoff),
        )
        .await?;
    tx.commit().await?;
    Ok(jobs)
}

/// Gives this worker's unfinished running jobs back (graceful shutdown): available now, the
/// attempt not counted. Returns how many were released.
#[tracing::instrument(skip_all)]
pub async fn release(db: &Db, worker_id: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut q = sql(format!(
        "UPDATE jobs SET status = 'available', attempts = attempts - 1, run_at = $1, \
         locked_by = NULL, heartbeat_at = NULL, started_at = NULL \
         WHERE status = 'running' AND locked_by = $2 AND id IN ({})",
        placeholders(3, ids.len())
    ))
    .bind(crate::now())
    .bind(worker_id);
    for id in ids {
        q = q.bind(id);
    }
    let mut tx = db.queue().await?;
    let n = tx.execute(q).await?;
    tx.commit().await?;
    Ok(n)
}

/// `org_id = $n` or `org_id IS NULL`, binding the organization when there is one.
fn org_predicate(q_text: &mut String, org: Option<&str>, n: usize) -> bool {
    match org {
        Some(_) => {
            q_text.push_str(&format!(" AND org_id = ${n}"));
            true
        }
        None => {
            q_text.push_str(" AND org_id IS NULL");
            false
        }
    }
}

/// Which jobs a report covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One organization's jobs (a tenant transaction).
    Org(&'a str),
    /// Every job, server-wide ones included (the queue runner's transaction).
    All,
}

fn scope_filter(scope: Scope<'_>, n: usize) -> (String, Option<String>) {
    match scope {
        Scope::Org(org) => (format!("org_id = ${n}"), Some(org.to_owned())),
        Scope::All => ("1 = 1".to_owned(), None),
    }
}

/// Jobs by kind and status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobCount {
    pub kind: String,
    pub status: String,
    pub count: i64,
}

#[tracing::instrument(skip_all)]
pub async fn counts(tx: &mut Tx, scope: Scope<'_>) -> Result<Vec<JobCount>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 1);
    let mut q = sql(format!(
        "SELECT kind, status, COUNT(*) AS count FROM jobs WHERE {filter} \
         GROUP BY kind, status ORDER BY kind, status"
    ));
    if let Some(org) = org {
        q = q.bind(org);
    }
    tx.fetch_all(q).await
}

/// Every organization's unfinished jobs (scheduled, available, retrying, running) and dead ones,
/// by kind and status: what `/metrics` reports. Call it in the queue runner's scope
/// ([`Db::queue_read`]). Each part reads through its partial index (`jobs_ready`, `jobs_running`,
/// `jobs_failed`), so the succeeded jobs kept for a month are never scanned.
#[tracing::instrument(skip_all)]
pub async fn open_counts(tx: &mut Tx) -> Result<Vec<JobCount>, sqlx::Error> {
    let q = sql("SELECT kind, status, COUNT(*) AS count FROM jobs \
         WHERE status IN ('scheduled', 'available', 'retrying') GROUP BY kind, status \
         UNION ALL SELECT kind, status, COUNT(*) AS count FROM jobs \
         WHERE status = 'running' GROUP BY kind, status \
         UNION ALL SELECT kind, status, COUNT(*) AS count FROM jobs \
         WHERE last_error IS NOT NULL AND status = 'dead' GROUP BY kind, status \
         ORDER BY kind, status");
    tx.fetch_all(q).await
}

/// The latest failed attempts (retrying or dead jobs with an error), newest first.
#[tracing::instrument(skip_all)]
pub async fn recent_failures(
    tx: &mut Tx,
    scope: Scope<'_>,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 2);
    let mut q = sql(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE last_error IS NOT NULL \
         AND status IN ('retrying', 'dead') AND {filter} \
         ORDER BY finished_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit.max(0));
    if let Some(org) = org {
        q = q.bind(org);
    }
    tx.fetch_all(q).await
}

/// One job by id, within `scope`.
#[tracing::instrument(skip_all)]
pub async fn find(tx: &mut Tx, scope: Scope<'_>, id: &str) -> Result<Option<Job>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 2);
    let mut q = sql(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND {filter}"
    ))
    .bind(id);
    if let Some(org) = org {
        q = q.bind(org);
    }
    tx.fetch_optional(q).await
}

/// Deletes succeeded jobs that finished more than `older_than` ago. Dead jobs are kept until
/// retried or discarded. Returns the rows deleted.
#[tracing::instrument(skip_all)]
pub async fn purge_finished(db: &Db, older_than: Duration) -> Result<u64, sqlx::Error> {
    let cutoff = minus(crate::now(), older_than);
    let mut tx = db.queue().await?;
    let n = tx
        .execute(
            sql("DELETE FROM jobs WHERE status = 'succeeded' AND finished_at < $1").bind(cutoff),
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Takes, renews or keeps lease `name` for `holder` for `ttl`: inserts it, renews it when
/// `holder` already has it, or takes it over once it has expired. Returns whether `holder` holds
/// it now.
#[tracing::instrument(skip_all)]
pub async fn try_lease(
    db: &Db,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.queue().await?;
    let held = try_lease_in(&mut tx, name, holder, ttl).await?;
    tx.commit().await?;
    Ok(held)
}

/// [`try_lease`] inside a transaction the caller commits: on PostgreSQL the lease row stays
/// locked until then, so work done in the same transaction (the scheduler's enqueues) is done by
/// the holder alone.
pub async fn try_lease_in(
    tx: &mut Tx,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let now = crate::now();
    let row: Option<(String,)> = tx
        .fetch_optional(
            sql(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                   expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(plus(now, ttl))
            .bind(now),
        )
        .await?;
    Ok(row.is_some_and(|(h,)| h == holder))
}

/// Gives up lease `name` if `holder` has it (a clean shutdown lets another node take over at
/// once).
#[tracing::instrument(skip_all)]
pub async fn drop_lease(db: &Db, name: &str, holder: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.queue().await?;
    let n = tx
        .execute(
            sql("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder),
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Whether a job of `kind` with `unique_key` exists in any state, for `org` (None: server-wide).
/// The scheduler uses it so a tick that already ran is not enqueued again.
#[tracing::instrument(skip_all)]
pub async fn exists_with_key(
    tx: &mut Tx,
    org: Option<&str>,
    kind: &str,
    unique_key: &str,
) -> Result<bool, sqlx::Error> {
    let mut text = "SELECT COUNT(*) FROM jobs WHERE kind = $1 AND unique_key = $2".to_owned();
    let bind_org = org_predicate(&mut text, org, 3);
    let mut q = sql(text).bind(kind).bind(unique_key);
    if bind_org {
        q = q.bind(org);
    }
    Ok(tx.fetch_count(q).await? > 0)
}

/// Jobs of one kind, counted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KindCount {
    pub kind: String,
    pub count: i64,
}

/// Throughput: how many jobs of each kind succeeded at or after `since`, by kind.
#[tracing::instrument(skip_all)]
pub async fn succeeded_since(
    tx: &mut Tx,
    scope: Scope<'_>,
    since: OffsetDateTime,
) -> Result<Vec<KindCount>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 2);
    let mut q = sql(format!(
        "SELECT kind, COUNT(*) AS count FROM jobs \
         WHERE status = 'succeeded' AND finished_at >= $1 AND {filter} \
         GROUP BY kind ORDER BY kind"
    ))
    .bind(since);
    if let Some(org) = org {
        q = q.bind(org);
    }
    tx.fetch_all(q).await
}

/// Enqueue-to-start latency: how long each attempt that finished at or after `since` waited
/// between being due (`run_at`) and being claimed (`started_at`), newest first, at most `limit`
/// of them. A claim a little before `run_at` (clock skew between nodes) counts as zero.
#[tracing::instrument(skip_all)]
pub async fn start_delays(
    tx: &mut Tx,
    scope: Scope<'_>,
    since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Duration>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 3);
    let mut q = sql(format!(
        "SELECT run_at, started_at FROM jobs \
         WHERE finished_at >= $1 AND started_at IS NOT NULL AND {filter} \
         ORDER BY finished_at DESC LIMIT $2"
    ))
    .bind(since)
    .bind(limit.max(0));
    if let Some(org) = org {
        q = q.bind(org);
    }
    let rows: Vec<(OffsetDateTime, OffsetDateTime)> = tx.fetch_all(q).await?;
    Ok(rows
        .into_iter()
        .map(|(run_at, started_at)| Duration::try_from(started_at - run_at).unwrap_or_default())
        .collect())
}

/// The newest jobs within `scope` (in `status` when given), newest first, at most `limit`: an
/// operator's listing.
#[tracing::instrument(skip_all)]
pub async fn list(
    tx: &mut Tx,
    scope: Scope<'_>,
    status: Option<JobStatus>,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 2);
    let mut text = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {filter}");
    let status_at = if org.is_some() { 3 } else { 2 };
    if status.is_some() {
        text.push_str(&format!(" AND status = ${status_at}"));
    }
    // Ids are UUIDv7: descending id order is newest first, read from the primary key.
    text.push_str(" ORDER BY id DESC LIMIT $1");
    let mut q = sql(text).bind(limit.max(0));
    if let Some(org) = org {
        q = q.bind(org);
    }
    if let Some(status) = status {
        q = q.bind(status.as_str());
    }
    tx.fetch_all(q).await
}

/// Makes a dead or retrying job within `scope` available now (a dead job out of attempts gets one
/// more). With [`Scope::All`] (the queue runner's transaction:
/// an operator's command) it finds the job whichever organization it belongs to. Returns false
/// when there is no such job in those states; a unique job whose key has another pending copy
/// fails with a unique violation.
#[tracing::instrument(skip_all)]
pub async fn retry(tx: &mut Tx, scope: Scope<'_>, id: &str) -> Result<bool, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 3);
    let mut q = sql(format!(
        "UPDATE jobs SET status = 'available', run_at = $2, \
         max_attempts = CASE WHEN attempts >= max_attempts THEN attempts + 1 ELSE max_attempts END \
         WHERE id = $1 AND status IN ('dead', 'retrying') AND {filter}"
    ))
    .bind(id)
    .bind(crate::now());
    if let Some(org) = org {
        q = q.bind(org);
    }
    Ok(tx.execute(q).await? == 1)
}

/// Deletes a job within `scope` that is not running and has not succeeded: scheduled, available,
/// retrying or dead (an operator gave up on it, or it should not run). Returns false when there
/// is no such job in those states (a claim that won the race leaves it running).
#[tracing::instrument(skip_all)]
pub async fn discard(tx: &mut Tx, scope: Scope<'_>, id: &str) -> Result<bool, sqlx::Error> {
    let (filter, org) = scope_filter(scope, 2);
    let mut q = sql(format!(
        "DELETE FROM jobs WHERE id = $1 \
         AND status IN ('scheduled', 'available', 'retrying', 'dead') AND {filter}"
    ))
    .bind(id);
    if let Some(org) = org {
        q = q.bind(org);
    }
    Ok(tx.execute(q).await? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_full_jitter() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(4), Duration::from_secs(8));
        assert_eq!(b.ceiling(10), Duration::from_secs(60));
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
        for attempt in 1..20 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("nope"), None);
    }

    #[test]
    fn long_errors_are_cut() {
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        assert_eq!(truncate_error(&long).chars().count(), MAX_ERROR_CHARS + 1);
        assert_eq!(truncate_error("short"), "short");
    }
}
