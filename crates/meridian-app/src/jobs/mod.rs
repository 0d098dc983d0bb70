//! Background jobs: one durable queue (storage in `meridian_db::jobs`) for everything that runs
//! without anyone clicking.
//!
//! - A feature enqueues a job with [`enqueue`] inside the transaction of the business write that
//!   asks for it, and calls [`wake`] after the commit so a runner in this process starts it at
//!   once (runners in other processes find it at their next poll).
//! - A [`runner::Runner`] claims jobs and runs each with the handler registered for its kind in a
//!   [`Registry`]; a handler returns a [`JobError`] that says whether another attempt may help.
//!   Delivery is at least once: a handler that has an outside effect uses an idempotency key (the
//!   job id) so a second run has none.
//! - A [`schedule::Scheduler`] enqueues recurring jobs (cron expressions or fixed periods); only the
//!   node holding the `scheduler` lease does, and each tick is enqueued once.
//! - Admins see their organization's queue (counts, throughput, latency, failures) and retry or
//!   discard jobs through `/api/v1/jobs` ([`api`]) and Settings → Operations ([`web`]); operators
//!   do the same server-wide with `meridian jobs`.

pub mod api;
pub mod runner;
pub mod schedule;
pub mod service;
pub mod web;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

pub use meridian_db::jobs::{Backoff, Job, JobStatus, NewJob};
use meridian_db::{Db, Tenant, TenantTx, Tx};
use serde::Serialize;

use crate::config::JobsConfig;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;

pub use runner::{Runner, RunnerConfig};
pub use schedule::{Entry, Recurrence, Scheduler, SchedulerConfig};

/// The jobs endpoints under `/api/v1`.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(api::overview))
        .route("/jobs/{id}", get(api::get))
        .route("/jobs/{id}/retry", post(api::retry))
        .route("/jobs/{id}/discard", post(api::discard))
}

/// Settings → Operations.
pub fn web_routes() -> Router<AppState> {
    Router::new()
        .route("/settings/operations", get(web::page))
        .route(
            "/settings/operations/jobs/{id}/retry",
            post(web::retry_submit),
        )
        .route(
            "/settings/operations/jobs/{id}/discard",
            get(web::discard_confirm).post(web::discard_submit),
        )
}

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A passing problem (a database or network error): retried with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (a payload that does not parse, a record that is gone): dead now.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retryable(error: impl std::fmt::Display) -> JobError {
        JobError::Retryable(error.to_string())
    }

    pub fn permanent(error: impl std::fmt::Display) -> JobError {
        JobError::Permanent(error.to_string())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Retryable(format!("database: {error}"))
    }
}

impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> Self {
        JobError::Retryable(format!("{error:#}"))
    }
}

/// What a handler knows about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub db: Db,
    pub job_id: String,
    pub kind: String,
    /// The organization the job works for (None: server-wide).
    pub org_id: Option<String>,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// The worker running it.
    pub worker_id: String,
}

impl JobContext {
    /// The tenant to open transactions for. The organization comes from the job's row, which
    /// only that organization's tenant transaction (or the queue runner) could write.
    pub fn tenant(&self) -> Option<Tenant> {
        self.org_id
            .as_ref()
            .map(|org| Tenant::for_verified_credentials(org.clone(), None))
    }

    /// The job id: a stable idempotency key across attempts.
    pub fn idempotency_key(&self) -> &str {
        &self.job_id
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type Handler = Arc<dyn Fn(JobContext, serde_json::Value) -> HandlerFuture + Send + Sync>;

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Handler>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&String> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("Registry").field("kinds", &kinds).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers the handler for `kind` (replacing any earlier one).
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F) -> &mut Registry
    where
        F: Fn(JobContext, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx, payload| Box::pin(handler(ctx, payload)));
        self.handlers.insert(kind.to_owned(), handler);
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    pub(crate) fn get(&self, kind: &str) -> Option<Handler> {
        self.handlers.get(kind).cloned()
    }
}

/// A registry with every feature's handlers: what `serve` and `meridian worker` run.
pub fn registry(config: &crate::config::AppConfig) -> Registry {
    let mut registry = Registry::new();
    crate::housekeeping::register(&mut registry, config);
    crate::email::deliver::register(&mut registry, config);
    crate::webhooks::deliver::register(&mut registry, config);
    crate::email::sequences::register(&mut registry, config);
    crate::automations::register(&mut registry, config);
    crate::notifications::register(&mut registry);
    registry
}

/// Reads a handler's payload into its type; a payload that does not fit is a permanent failure.
pub fn payload<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, JobError> {
    serde_json::from_value(value).map_err(|e| JobError::Permanent(format!("bad payload: {e}")))
}

/// A job of `kind` carrying `payload` as JSON; set its organization, priority, run_at, attempts
/// and unique key with the [`NewJob`] setters.
pub fn new_job(kind: &str, payload: &impl Serialize) -> Result<NewJob, serde_json::Error> {
    Ok(NewJob::new(kind, serde_json::to_string(payload)?))
}

/// Enqueues `job` in `tx` (see [`meridian_db::jobs::enqueue`]); call [`wake`] after committing.
/// Returns the job's id, or None when a copy with the same unique key is already pending.
pub async fn enqueue(tx: &mut Tx, job: &NewJob) -> Result<Option<String>, sqlx::Error> {
    meridian_db::jobs::enqueue(tx, job).await
}

/// Enqueues `job` for the transaction's own organization (whatever `job.org` said), the usual
/// call from a feature's service; call [`wake`] after committing.
pub async fn enqueue_for_tenant(
    tx: &mut TenantTx,
    job: NewJob,
) -> Result<Option<String>, sqlx::Error> {
    let job = NewJob {
        org: Some(tx.org_id()),
        ..job
    };
    meridian_db::jobs::enqueue(tx, &job).await
}

/// Bumped by [`wake`]; every runner in this process watches it. A watch channel rather than a
/// bare `Notify`: a wake-up sent while a runner is busy claiming is not lost, the runner sees the
/// changed value when it next waits.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells the runners in this process that jobs were committed; they claim at once instead of at
/// their next poll.
pub fn wake() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

pub(crate) fn wake_receiver() -> watch::Receiver<u64> {
    WAKE.subscribe()
}

/// Runs a job runner and a scheduler on `db` until `shutdown` resolves, then shuts both down
/// gracefully.
pub async fn run(
    db: Db,
    registry: Registry,
    entries: Vec<Entry>,
    config: &JobsConfig,
    scheduler: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> runner::RunnerReport {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let scheduler = Scheduler::new(db.clone(), entries, scheduler);
    let scheduling = tokio::spawn(scheduler.run(stopped()));
    let runner = Runner::new(db, registry, RunnerConfig::from(config));
    let running = tokio::spawn(runner.run(stopped()));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = scheduling.await;
    running.await.unwrap_or_default()
}

/// A worker id that names the process in logs and in `jobs.locked_by`: host, process id and a
/// random suffix (two runners in one process differ).
pub fn new_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meridian".to_owned());
    let suffix = meridian_db::new_id();
    let short = suffix
        .get(suffix.len().saturating_sub(8)..)
        .unwrap_or(&suffix);
    format!("{host}:{}:{short}", std::process::id())
}
