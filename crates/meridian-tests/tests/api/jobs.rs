//! The durable job queue: enqueue in the business transaction, unique keys, retries with backoff,
//! dead jobs and retry, rescue of a dead worker's jobs, two runners sharing one queue, the
//! scheduler lease, and graceful shutdown; every test on both engines.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_app::jobs::runner::RunnerReport;
use meridian_app::jobs::{
    self, Entry, JobContext, JobError, Recurrence, Registry, Runner, RunnerConfig, Scheduler,
    SchedulerConfig,
};
use meridian_db::jobs::{self as store, Backoff, Failure, Job, JobCount, JobStatus, NewJob, Scope};
use meridian_db::{ConnectOptions, Db, Tenant, sql};
use meridian_tests::{Engine, TestApp, both_engines, spawn_app, spawn_app_with};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

both_engines!(
    a_job_commits_with_the_business_write_or_not_at_all,
    a_unique_job_has_one_pending_copy,
    a_failing_job_backs_off_dies_and_comes_back_on_retry,
    a_dead_workers_jobs_are_rescued,
    two_runners_run_500_jobs_each_once_and_never_twice_at_once,
    one_scheduler_holds_the_lease_and_each_tick_fires_once,
    graceful_shutdown_finishes_short_jobs_and_releases_long_ones,
    a_job_enqueued_in_this_process_starts_at_once,
    the_worker_runs_housekeeping_as_scheduled_jobs,
    a_job_that_hangs_panics_or_fails_for_good_is_recorded,
);

/// PostgreSQL only: SQLite is served by one process, whose runners are woken in memory.
#[tokio::test]
async fn a_job_enqueued_by_another_process_wakes_the_runner_on_postgres() {
    let app = spawn_app(Engine::Postgres).await;
    let (a, _) = two_orgs(&app).await;
    let pg = app.pg.as_ref().expect("a PostgreSQL test database");
    let mut listener = sqlx::postgres::PgListener::connect(&pg.app_url)
        .await
        .expect("listener");
    listener.listen("meridian_jobs").await.expect("listen");
    let other_process = second_pool(&app).await;

    // A rolled-back enqueue announces nothing; a committed one announces itself at commit.
    let mut tx = other_process.tenant(&tenant(&a)).await.expect("tx");
    jobs::enqueue_for_tenant(&mut tx, NewJob::new("test.ping", "{}").org(&a))
        .await
        .expect("enqueue");
    drop(tx);
    let silent = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(silent.is_err(), "no notification for a rolled-back job");

    let ran = Arc::new(Notify::new());
    let mut registry = Registry::new();
    {
        let ran = ran.clone();
        registry.register("test.ping", move |_, _| {
            let ran = ran.clone();
            async move {
                ran.notify_one();
                Ok(())
            }
        });
    }
    // Polling alone would take a minute.
    let runner = start(
        &app.db,
        registry,
        RunnerConfig {
            poll_interval: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(60),
            rescue_interval: Duration::from_secs(60),
            ..fast()
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Enqueued through the other pool and without `jobs::wake()`, as a web node would.
    let mut tx = other_process.tenant(&tenant(&a)).await.expect("tx");
    jobs::enqueue_for_tenant(&mut tx, NewJob::new("test.ping", "{}").org(&a))
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    tokio::time::timeout(Duration::from_secs(2), listener.recv())
        .await
        .expect("a notification at commit")
        .expect("notification");
    tokio::time::timeout(Duration::from_secs(5), ran.notified())
        .await
        .expect("the runner started the job without waiting for its poll");
    runner.stop().await;
}

/// Short intervals so tests run in milliseconds.
fn fast() -> RunnerConfig {
    RunnerConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        job_timeout: Duration::from_secs(5),
        rescue_after: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(100),
        rescue_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(500),
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
    }
}

struct Started {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<RunnerReport>,
}

fn start(db: &Db, registry: Registry, config: RunnerConfig) -> Started {
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = Runner::new(db.clone(), registry, config);
    let handle = tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));
    Started { stop, handle }
}

impl Started {
    async fn stop(self) -> RunnerReport {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the runner stops within its grace period")
            .expect("runner task")
    }
}

/// Polls `check` until it holds, failing the test after 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tenant(org_id: &str) -> Tenant {
    Tenant::for_verified_credentials(org_id.to_owned(), None)
}

/// Enqueues `job` for its organization in a tenant transaction, commits and wakes the runners.
async fn enqueue(db: &Db, job: NewJob) -> Option<String> {
    let org = job.org.clone().expect("an organization's job");
    let mut tx = db.tenant(&tenant(&org)).await.expect("tx");
    let id = jobs::enqueue_for_tenant(&mut tx, job)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    jobs::wake();
    id
}

async fn job(db: &Db, id: &str) -> Job {
    let mut tx = db.queue_read().await.expect("tx");
    store::find(&mut tx, Scope::All, id)
        .await
        .expect("find")
        .expect("the job exists")
}

async fn status_of(db: &Db, id: &str) -> JobStatus {
    job(db, id).await.status().expect("a known status")
}

async fn counts(db: &Db, scope: Scope<'_>) -> Vec<JobCount> {
    let mut tx = db.queue_read().await.expect("tx");
    store::counts(&mut tx, scope).await.expect("counts")
}

fn count(kind: &str, status: &str, count: i64) -> JobCount {
    JobCount {
        kind: kind.to_owned(),
        status: status.to_owned(),
        count,
    }
}

/// A second pool on the same database, as a second process would have.
async fn second_pool(app: &TestApp) -> Db {
    match &app.pg {
        Some(pg) => Db::connect(&ConnectOptions {
            url: pg.app_url.clone(),
            max_connections: 8,
        })
        .await
        .expect("second pool"),
        None => app.db.clone(),
    }
}

async fn two_orgs(app: &TestApp) -> (String, String) {
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    (a.org_id, b.org_id)
}

async fn a_job_commits_with_the_business_write_or_not_at_all(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, b) = two_orgs(&app).await;

    let mut tx = app.db.tenant(&tenant(&a)).await.expect("tx");
    let id = jobs::enqueue(&mut tx, &NewJob::new("test.noop", "{}").org(&a))
        .await
        .expect("enqueue");
    assert!(id.is_some());
    drop(tx);
    assert!(
        counts(&app.db, Scope::All).await.is_empty(),
        "a rolled-back request leaves no job"
    );

    let id = enqueue(&app.db, NewJob::new("test.noop", "{}").org(&a))
        .await
        .expect("inserted");
    assert_eq!(
        counts(&app.db, Scope::Org(&a)).await,
        vec![count("test.noop", "available", 1)],
        "a committed request leaves exactly one"
    );
    let stored = job(&app.db, &id).await;
    assert_eq!(stored.org_id.as_deref(), Some(a.as_str()));
    assert_eq!(stored.attempts, 0);

    // Another organization sees none of it.
    let mut tx = app.db.tenant_read(&tenant(&b)).await.expect("tx");
    assert!(
        store::counts(&mut tx, Scope::Org(&b))
            .await
            .expect("counts")
            .is_empty()
    );
    assert!(
        store::find(&mut tx, Scope::Org(&b), &id)
            .await
            .expect("find")
            .is_none()
    );
    if engine == Engine::Postgres {
        // Row-level security: even an unfiltered read in B's transaction sees no job of A's,
        // and B cannot enqueue a job for A.
        assert!(
            store::counts(&mut tx, Scope::All)
                .await
                .expect("counts")
                .is_empty()
        );
        drop(tx);
        let mut tx = app.db.tenant(&tenant(&b)).await.expect("tx");
        let refused = jobs::enqueue(&mut tx, &NewJob::new("test.noop", "{}").org(&a)).await;
        assert!(refused.is_err(), "RLS refuses a job for another org");
    }
}

async fn a_unique_job_has_one_pending_copy(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, b) = two_orgs(&app).await;
    let unique = |org: &str| {
        NewJob::new("test.unique", "{}")
            .org(org)
            .unique_key("lead-1")
    };
    let first = enqueue(&app.db, unique(&a)).await.expect("first copy");
    assert_eq!(
        enqueue(&app.db, unique(&a)).await,
        None,
        "no second pending copy"
    );
    // Within one transaction the refusal leaves the transaction usable.
    let mut tx = app.db.tenant(&tenant(&a)).await.expect("tx");
    assert_eq!(
        jobs::enqueue(&mut tx, &unique(&a)).await.expect("enqueue"),
        None
    );
    assert!(
        jobs::enqueue(&mut tx, &NewJob::new("test.other", "{}").org(&a))
            .await
            .expect("enqueue")
            .is_some()
    );
    tx.commit().await.expect("commit");
    let other_org = enqueue(&app.db, unique(&b))
        .await
        .expect("the key is per organization");

    // Running still counts as pending; once finished, a new copy may be enqueued.
    let claimed = store::claim(&app.db, "worker-1", 10).await.expect("claim");
    let ids: HashSet<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(claimed.len(), 3, "the runner claims across organizations");
    assert!(ids.contains(first.as_str()) && ids.contains(other_org.as_str()));
    assert_eq!(enqueue(&app.db, unique(&a)).await, None);
    for j in &claimed {
        assert!(
            store::complete(&app.db, j, "worker-1")
                .await
                .expect("complete")
        );
    }
    assert!(enqueue(&app.db, unique(&a)).await.is_some());

    // A copy scheduled for later is pending too, and is not claimed before its time.
    let later = meridian_db::now() + time::Duration::hours(1);
    let scheduled = enqueue(
        &app.db,
        NewJob::new("test.later", "{}")
            .org(&a)
            .unique_key("k")
            .run_at(later),
    )
    .await
    .expect("scheduled");
    assert_eq!(status_of(&app.db, &scheduled).await, JobStatus::Scheduled);
    assert_eq!(
        enqueue(
            &app.db,
            NewJob::new("test.later", "{}").org(&a).unique_key("k")
        )
        .await,
        None
    );
    let claimed = store::claim(&app.db, "worker-2", 10).await.expect("claim");
    assert!(claimed.iter().all(|j| j.id != scheduled));
}

async fn a_failing_job_backs_off_dies_and_comes_back_on_retry(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, b) = two_orgs(&app).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    {
        let healthy = healthy.clone();
        let attempts = attempts.clone();
        registry.register("test.flaky", move |ctx: JobContext, _| {
            let healthy = healthy.clone();
            let attempts = attempts.clone();
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                if healthy.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(JobError::retryable(format!(
                        "the mail server refused attempt {}",
                        ctx.attempt
                    )))
                }
            }
        });
    }
    let id = enqueue(
        &app.db,
        NewJob::new("test.flaky", "{}").org(&a).max_attempts(3),
    )
    .await
    .expect("id");
    let runner = start(&app.db, registry, fast());
    eventually("the job to die", || async {
        status_of(&app.db, &id).await == JobStatus::Dead
    })
    .await;
    let dead = job(&app.db, &id).await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("the mail server refused attempt 3")
    );
    let mut tx = app.db.tenant_read(&tenant(&a)).await.expect("tx");
    let failures = store::recent_failures(&mut tx, Scope::Org(&a), 10)
        .await
        .expect("failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, id);
    drop(tx);

    // Another organization cannot retry it.
    let mut tx = app.db.tenant(&tenant(&b)).await.expect("tx");
    assert!(
        !store::retry(&mut tx, Scope::Org(&b), &id)
            .await
            .expect("retry")
    );
    tx.commit().await.expect("commit");

    healthy.store(true, Ordering::SeqCst);
    let mut tx = app.db.tenant(&tenant(&a)).await.expect("tx");
    assert!(
        store::retry(&mut tx, Scope::Org(&a), &id)
            .await
            .expect("retry")
    );
    tx.commit().await.expect("commit");
    jobs::wake();
    eventually("the retried job to succeed", || async {
        status_of(&app.db, &id).await == JobStatus::Succeeded
    })
    .await;
    assert_eq!(job(&app.db, &id).await.attempts, 4);
    let report = runner.stop().await;
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.failed, 3);

    // The backoff: a retryable failure waits a random time up to the ceiling before it is due.
    let manual = enqueue(&app.db, NewJob::new("test.manual", "{}").org(&a))
        .await
        .expect("id");
    let claimed = store::claim(&app.db, "w-manual", 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let backoff = Backoff {
        base: Duration::from_secs(3600),
        cap: Duration::from_secs(7200),
    };
    let before = meridian_db::now();
    let status = store::fail(
        &app.db,
        &claimed[0],
        "w-manual",
        "boom",
        Failure::Retryable,
        &backoff,
    )
    .await
    .expect("fail");
    assert_eq!(status, Some(JobStatus::Retrying));
    let waiting = job(&app.db, &manual).await;
    assert!(waiting.run_at >= before);
    assert!(waiting.run_at <= before + time::Duration::seconds(3601));
    assert_eq!(waiting.last_error.as_deref(), Some("boom"));
    assert!(
        store::claim(&app.db, "w-other", 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its backoff"
    );
    // A recorded failure of a run that is no longer this worker's changes nothing.
    assert_eq!(
        store::fail(
            &app.db,
            &claimed[0],
            "w-manual",
            "late",
            Failure::Permanent,
            &backoff
        )
        .await
        .expect("fail"),
        None
    );
    // Discarding removes it.
    let mut tx = app.db.tenant(&tenant(&a)).await.expect("tx");
    assert!(
        store::discard(&mut tx, Scope::Org(&a), &manual)
            .await
            .expect("discard")
    );
    tx.commit().await.expect("commit");
    let mut tx = app.db.queue_read().await.expect("tx");
    assert!(
        store::find(&mut tx, Scope::All, &manual)
            .await
            .expect("find")
            .is_none()
    );
}

async fn a_dead_workers_jobs_are_rescued(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, _) = two_orgs(&app).await;
    let again = enqueue(
        &app.db,
        NewJob::new("test.rescued", "{}").org(&a).max_attempts(5),
    )
    .await
    .expect("id");
    let last = enqueue(
        &app.db,
        NewJob::new("test.rescued", "{}").org(&a).max_attempts(1),
    )
    .await
    .expect("id");
    let claimed = store::claim(&app.db, "crashed-worker", 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    // The worker dies: its heartbeats stop.
    app.admin_exec(&format!(
        "UPDATE jobs SET heartbeat_at = {}",
        crate::auth::past(engine)
    ))
    .await;

    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    {
        let runs = runs.clone();
        registry.register("test.rescued", move |_, _| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    }
    let runner = start(&app.db, registry, fast());
    eventually("the rescued job to run", || async {
        status_of(&app.db, &again).await == JobStatus::Succeeded
    })
    .await;
    let done = job(&app.db, &again).await;
    assert_eq!(done.attempts, 2, "the lost run counts as an attempt");
    let out = job(&app.db, &last).await;
    assert_eq!(out.status().expect("status"), JobStatus::Dead);
    assert!(
        out.last_error
            .as_deref()
            .is_some_and(|e| e.contains("crashed-worker")),
        "{:?}",
        out.last_error
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The crashed worker's late report changes nothing.
    let lost = claimed.iter().find(|j| j.id == again).expect("claimed");
    assert!(
        !store::complete(&app.db, lost, "crashed-worker")
            .await
            .expect("complete")
    );
    assert_eq!(status_of(&app.db, &again).await, JobStatus::Succeeded);
    runner.stop().await;
}

#[derive(Default)]
struct Ledger {
    running: HashSet<String>,
    runs: HashMap<String, usize>,
    overlaps: usize,
}

async fn two_runners_run_500_jobs_each_once_and_never_twice_at_once(engine: Engine) {
    const JOBS: usize = 500;
    let app = spawn_app(engine).await;
    let (a, b) = two_orgs(&app).await;
    for org in [&a, &b] {
        let mut tx = app.db.tenant(&tenant(org)).await.expect("tx");
        for n in 0..JOBS / 2 {
            let job = NewJob::new("test.count", format!("{{\"n\": {n}}}")).org(org.as_str());
            jobs::enqueue(&mut tx, &job).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut registry = Registry::new();
    {
        let ledger = ledger.clone();
        registry.register("test.count", move |ctx: JobContext, _| {
            let ledger = ledger.clone();
            async move {
                {
                    let mut l = ledger.lock().expect("ledger");
                    if !l.running.insert(ctx.job_id.clone()) {
                        l.overlaps += 1;
                    }
                    *l.runs.entry(ctx.job_id.clone()).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                ledger.lock().expect("ledger").running.remove(&ctx.job_id);
                Ok(())
            }
        });
    }
    let other = second_pool(&app).await;
    let config = RunnerConfig {
        concurrency: 8,
        ..fast()
    };
    let one = start(&app.db, registry.clone(), config.clone());
    let two = start(&other, registry, config);
    eventually("every job to run", || async {
        ledger.lock().expect("ledger").runs.len() == JOBS
            && counts(&app.db, Scope::All).await == vec![count("test.count", "succeeded", 500)]
    })
    .await;
    let (r1, r2) = (one.stop().await, two.stop().await);
    let l = ledger.lock().expect("ledger");
    assert_eq!(l.overlaps, 0, "no job ran twice at once");
    assert!(l.runs.values().all(|n| *n == 1), "every job ran once");
    assert_eq!(r1.succeeded + r2.succeeded, 500);
    assert_eq!(r1.failed + r2.failed, 0);
    println!(
        "{engine:?}: runner one ran {}, runner two ran {}",
        r1.succeeded, r2.succeeded
    );
}

async fn one_scheduler_holds_the_lease_and_each_tick_fires_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let other = second_pool(&app).await;
    let period = Duration::from_millis(100);
    let entries = vec![Entry::new("test.tick", Recurrence::Every(period))];
    let config = SchedulerConfig {
        tick: Duration::from_millis(10),
        lease_ttl: Duration::from_millis(400),
        catch_up: Duration::from_secs(3600),
    };
    let first = Scheduler::new(app.db.clone(), entries.clone(), config.clone());
    let second = Scheduler::new(other.clone(), entries.clone(), config.clone());
    let pass = first.pass().await.expect("pass");
    assert!(pass.leader);
    assert_eq!(pass.enqueued, 1);
    assert!(!second.pass().await.expect("pass").leader);
    let mut tx = app.db.queue_read().await.expect("tx");
    let (holder,): (String,) = tx
        .fetch_one(sql("SELECT holder FROM leases WHERE name = 'scheduler'"))
        .await
        .expect("lease");
    assert_eq!(holder, first.holder());
    drop(tx);

    // Both run side by side for a while.
    let (stop_first, first_stopped) = oneshot::channel::<()>();
    let (stop_second, second_stopped) = oneshot::channel::<()>();
    let one = tokio::spawn(first.run(async move {
        let _ = first_stopped.await;
    }));
    let two = tokio::spawn(second.run(async move {
        let _ = second_stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The leader stops; the other takes over at once (the lease is given up) and carries on.
    let _ = stop_first.send(());
    one.await.expect("first scheduler");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = stop_second.send(());
    two.await.expect("second scheduler");

    let mut tx = app.db.queue_read().await.expect("tx");
    let ticks: Vec<(String, i64)> = tx
        .fetch_all(sql(
            "SELECT unique_key, COUNT(*) FROM jobs WHERE kind = 'test.tick' \
             GROUP BY unique_key ORDER BY unique_key",
        ))
        .await
        .expect("ticks");
    assert!(ticks.len() >= 8, "ticks fired: {ticks:?}");
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "each tick fired once: {ticks:?}"
    );
    let times: Vec<(time::OffsetDateTime,)> = tx
        .fetch_all(sql(
            "SELECT run_at FROM jobs WHERE kind = 'test.tick' ORDER BY run_at",
        ))
        .await
        .expect("times");
    for pair in times.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            time::Duration::milliseconds(100),
            "no tick missed across the hand-over: {times:?}"
        );
    }
    drop(tx);

    // A holder that stops renewing loses the lease once it expires.
    let x = Scheduler::new(app.db.clone(), Vec::new(), config.clone());
    let y = Scheduler::new(other, Vec::new(), config.clone());
    assert!(x.pass().await.expect("pass").leader);
    assert!(!y.pass().await.expect("pass").leader);
    tokio::time::sleep(config.lease_ttl + Duration::from_millis(50)).await;
    assert!(y.pass().await.expect("pass").leader);
    assert!(!x.pass().await.expect("pass").leader);
}

async fn graceful_shutdown_finishes_short_jobs_and_releases_long_ones(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, _) = two_orgs(&app).await;
    let mut registry = Registry::new();
    registry.register("test.slow", |_, _| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    registry.register("test.quick", |_, _| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    });
    let slow = enqueue(&app.db, NewJob::new("test.slow", "{}").org(&a))
        .await
        .expect("id");
    let quick = enqueue(&app.db, NewJob::new("test.quick", "{}").org(&a))
        .await
        .expect("id");
    let config = RunnerConfig {
        job_timeout: Duration::from_secs(120),
        rescue_after: Duration::from_secs(240),
        shutdown_grace: Duration::from_millis(600),
        ..fast()
    };
    let runner = start(&app.db, registry, config);
    eventually("both jobs to start", || async {
        status_of(&app.db, &slow).await == JobStatus::Running
            && status_of(&app.db, &quick).await == JobStatus::Running
    })
    .await;
    let began = std::time::Instant::now();
    let report = runner.stop().await;
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(
        report.succeeded, 1,
        "the short job finished in the grace period"
    );
    assert_eq!(report.released, 1, "the long job was released");
    assert_eq!(status_of(&app.db, &quick).await, JobStatus::Succeeded);
    let released = job(&app.db, &slow).await;
    assert_eq!(released.status().expect("status"), JobStatus::Available);
    assert_eq!(released.attempts, 0, "a released run is not counted");
    assert_eq!(released.locked_by, None);
}

async fn a_job_enqueued_in_this_process_starts_at_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, _) = two_orgs(&app).await;
    let ran = Arc::new(Notify::new());
    let mut registry = Registry::new();
    {
        let ran = ran.clone();
        registry.register("test.ping", move |_, _| {
            let ran = ran.clone();
            async move {
                ran.notify_one();
                Ok(())
            }
        });
    }
    // Polling alone would take a minute.
    let config = RunnerConfig {
        poll_interval: Duration::from_secs(60),
        heartbeat_interval: Duration::from_secs(60),
        rescue_interval: Duration::from_secs(60),
        ..fast()
    };
    let runner = start(&app.db, registry, config);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = std::time::Instant::now();
    enqueue(&app.db, NewJob::new("test.ping", "{}").org(&a)).await;
    tokio::time::timeout(Duration::from_secs(5), ran.notified())
        .await
        .expect("the job ran without waiting for a poll");
    let latency = began.elapsed();
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    runner.stop().await;
}

async fn the_worker_runs_housekeeping_as_scheduled_jobs(engine: Engine) {
    use meridian_app::housekeeping::{PURGE_CREDENTIALS, PURGE_JOBS, RESUME_IMPORTS};
    let app = spawn_app_with(engine, |c| {
        c.jobs.poll_interval = Duration::from_millis(50);
    })
    .await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    app.admin_exec(&format!(
        "UPDATE access_tokens SET expires_at = {} WHERE user_id = '{}'",
        crate::auth::past(engine),
        a.user_id
    ))
    .await;
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(meridian_app::housekeeping::run_worker(
        app.db.clone(),
        app.state.config.clone(),
        Duration::from_secs(3600),
        async move {
            let _ = stopped.await;
        },
    ));
    let expected = vec![
        count(PURGE_CREDENTIALS, "succeeded", 1),
        count(RESUME_IMPORTS, "succeeded", 1),
        count(PURGE_JOBS, "succeeded", 1),
    ];
    eventually("each housekeeping job to run once", || async {
        // Features schedule their own recurring work too (automations, notifications); this test
        // is about housekeeping's.
        let mut found = counts(&app.db, Scope::All).await;
        found.retain(|c| expected.iter().any(|e| e.kind == c.kind));
        found.sort_by(|x, y| {
            expected
                .iter()
                .position(|e| e.kind == x.kind)
                .cmp(&expected.iter().position(|e| e.kind == y.kind))
        });
        found == expected
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops")
        .expect("worker task");
    let remaining = admin_count(
        &app,
        &format!(
            "SELECT COUNT(*) FROM access_tokens WHERE user_id = '{}'",
            a.user_id
        ),
    )
    .await;
    assert_eq!(remaining, 0, "the expired access tokens were purged");
}

/// A count read past row-level security.
async fn admin_count(app: &TestApp, query: &str) -> i64 {
    match &app.admin {
        meridian_tests::Admin::Sqlite(db) => {
            let mut tx = db.global_read().await.expect("tx");
            tx.fetch_count(sql(query)).await.expect("count")
        }
        meridian_tests::Admin::Postgres(pool) => {
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_one(pool)
                .await
                .expect("count");
            n
        }
    }
}

async fn a_job_that_hangs_panics_or_fails_for_good_is_recorded(engine: Engine) {
    let app = spawn_app(engine).await;
    let (a, _) = two_orgs(&app).await;
    let mut registry = Registry::new();
    registry.register("test.hang", |_, _| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    registry.register("test.panic", |_, payload| async move {
        if payload["boom"] == true {
            panic!("the handler blew up");
        }
        Ok(())
    });
    registry.register("test.permanent", |_, _| async {
        Err(JobError::permanent("the lead is gone"))
    });
    let hang = enqueue(
        &app.db,
        NewJob::new("test.hang", "{}").org(&a).max_attempts(2),
    )
    .await
    .expect("id");
    let panic = enqueue(
        &app.db,
        NewJob::new("test.panic", r#"{"boom": true}"#)
            .org(&a)
            .max_attempts(1),
    )
    .await
    .expect("id");
    let permanent = enqueue(
        &app.db,
        NewJob::new("test.permanent", "{}").org(&a).max_attempts(5),
    )
    .await
    .expect("id");
    let unknown = enqueue(
        &app.db,
        NewJob::new("test.unknown", "{}").org(&a).max_attempts(1),
    )
    .await
    .expect("id");
    let config = RunnerConfig {
        job_timeout: Duration::from_millis(200),
        rescue_after: Duration::from_secs(5),
        ..fast()
    };
    let runner = start(&app.db, registry, config);
    for id in [&hang, &panic, &permanent, &unknown] {
        eventually("the job to die", || async {
            status_of(&app.db, id).await == JobStatus::Dead
        })
        .await;
    }
    let report = runner.stop().await;
    assert_eq!(
        report.failed, 5,
        "two timeouts, a panic, a permanent error, no handler"
    );
    let error = |j: Job| j.last_error.unwrap_or_default();
    let hung = job(&app.db, &hang).await;
    assert_eq!(hung.attempts, 2);
    assert!(error(hung).contains("timed out"));
    assert!(error(job(&app.db, &panic).await).contains("the handler blew up"));
    let gone = job(&app.db, &permanent).await;
    assert_eq!(gone.attempts, 1, "a permanent failure is not retried");
    assert_eq!(error(gone), "the lead is gone");
    assert!(error(job(&app.db, &unknown).await).contains("no handler"));
}
