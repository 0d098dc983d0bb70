//! The `jobs` benchmark: no-op jobs through one runner of the durable job queue (issue 4), against
//! the same SQL issued straight through the database layer (the "floor"), and the time from a
//! job's commit to its handler's start when the queue is idle.
//!
//! Per engine, in a fresh database with two organizations:
//!
//! - enqueue: N jobs in tenant transactions of `--enqueue-batch` jobs, one `jobs::enqueue_for_tenant`
//!   (one INSERT) per job, as a feature's service enqueues them. Timed: the enqueue rate.
//! - runner: the app's [`Runner`] with a [`Registry`] holding a no-op handler and the app's default
//!   settings (but `--concurrency` slots), from its start until it has stopped with every
//!   completion written. Every job must have run once and ended `succeeded`, or the run fails.
//! - floor: `jobs::claim` of a batch (the runner's slot count) then `jobs::complete_many` of it,
//!   in a loop, with nothing else: the cost of the queue's own SQL for the same work. A second
//!   floor overlaps the two statements (completing one batch while claiming the next), as the
//!   runner can.
//! - latency: one job at a time, enqueued in a tenant transaction and committed, followed by
//!   `jobs::wake()` as a request handler does, with a pause between jobs so the runner is idle
//!   each time; measured from the commit's return to the handler's first line. Then the same
//!   without `wake()`: what a job enqueued by another process waits, bound by the poll interval.
//!
//! The queue is emptied (and on PostgreSQL vacuumed) between steps, so each starts from the same
//! table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meridian_app::jobs::runner::RunnerReport;
use meridian_app::jobs::{self, JobError, Registry, Runner, RunnerConfig};
use meridian_db::jobs::{self as store, JobCount, NewJob, Scope};
use meridian_db::{Db, Engine, Pools, Tenant};
use meridian_tests::{Admin, TestApp};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::crm::mix;
use crate::machine::CpuSnapshot;

/// The kind of the throughput jobs.
const NOOP: &str = "bench.noop";
/// The kind of the latency jobs.
const PING: &str = "bench.ping";

/// The targets (reported, never asserted).
pub const TARGET_POSTGRES: f64 = 5_000.0;
pub const TARGET_SQLITE: f64 = 2_000.0;
pub const TARGET_P50_MS: f64 = 50.0;
/// Published PostgreSQL job queues, per node, on bigger machines.
pub const PUBLISHED_LOW: f64 = 10_000.0;
pub const PUBLISHED_HIGH: f64 = 46_000.0;

#[derive(Debug, Clone)]
pub struct Settings {
    pub jobs: u64,
    pub concurrency: usize,
    pub enqueue_batch: u64,
    pub latency_samples: usize,
    pub poll_samples: usize,
}

/// A timed step, with how busy the machine and this process were meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub seconds: f64,
    pub jobs: u64,
    pub machine_busy: Option<f64>,
    pub process_busy: Option<f64>,
}

impl Timed {
    pub fn rate(&self) -> f64 {
        self.jobs as f64 / self.seconds.max(1e-9)
    }
}

struct Clock {
    started: Instant,
    cpu: Option<CpuSnapshot>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            cpu: CpuSnapshot::take(),
            started: Instant::now(),
        }
    }

    fn stop(self, jobs: u64) -> Timed {
        let seconds = self.started.elapsed().as_secs_f64();
        let after = CpuSnapshot::take();
        let (machine_busy, process_busy) = match (&self.cpu, &after) {
            (Some(before), Some(after)) => (
                after.machine_busy_since(before),
                after.process_busy_since(before),
            ),
            _ => (None, None),
        };
        Timed {
            seconds,
            jobs,
            machine_busy,
            process_busy,
        }
    }
}

/// Latencies in milliseconds, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    fn new(mut ms: Vec<f64>) -> Latencies {
        ms.sort_by(f64::total_cmp);
        Latencies(ms)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentile; NaN when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }
}

pub struct Report {
    pub engine: Engine,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub enqueue: Timed,
    pub runner: Timed,
    pub runner_report: RunnerReport,
    /// The floors, the first (in turn) the reference.
    pub floors: Vec<(FloorMode, Timed)>,
    pub woken: Latencies,
    pub polled: Latencies,
}

fn tenant(org_id: &str) -> Tenant {
    Tenant::for_verified_credentials(org_id.to_owned(), None)
}

/// Enqueues `n` no-op jobs for `orgs` in turn, `per_tx` to a tenant transaction.
async fn enqueue_many(db: &Db, orgs: &[String], n: u64, per_tx: u64) -> anyhow::Result<Timed> {
    let clock = Clock::start();
    let mut done = 0;
    let mut turn = 0;
    while done < n {
        let org = &orgs[turn % orgs.len()];
        turn += 1;
        let take = per_tx.max(1).min(n - done);
        let mut tx = db.tenant(&tenant(org)).await?;
        for i in done..done + take {
            let job = NewJob::new(NOOP, format!("{{\"n\":{i}}}"));
            if jobs::enqueue_for_tenant(&mut tx, job).await?.is_none() {
                bail!("job {i} was not inserted");
            }
        }
        tx.commit().await?;
        done += take;
    }
    Ok(clock.stop(n))
}

/// Fails unless the queue holds exactly `n` no-op jobs, all succeeded.
async fn all_succeeded(db: &Db, n: u64, what: &str) -> anyhow::Result<()> {
    let mut tx = db.queue_read().await?;
    let counts = store::counts(&mut tx, Scope::All).await?;
    tx.commit().await?;
    let expected = vec![JobCount {
        kind: NOOP.to_owned(),
        status: "succeeded".to_owned(),
        count: i64::try_from(n)?,
    }];
    if counts != expected {
        bail!("{what}: the jobs did not all end succeeded (want {n}): {counts:?}");
    }
    Ok(())
}

/// Empties the queue, and on PostgreSQL vacuums it, so the next step starts from the same table.
async fn reset(app: &TestApp) -> anyhow::Result<()> {
    match &app.admin {
        Admin::Postgres(pool) => {
            sqlx::query("DELETE FROM jobs").execute(pool).await?;
            sqlx::query("VACUUM ANALYZE jobs").execute(pool).await?;
            sqlx::query("CHECKPOINT").execute(pool).await?;
        }
        Admin::Sqlite(db) => {
            let mut tx = db.global().await?;
            tx.execute(meridian_db::sql("DELETE FROM jobs")).await?;
            tx.commit().await?;
            if let Pools::Sqlite(pool) = db.pools() {
                sqlx::query("ANALYZE").execute(&pool).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await?;
            }
        }
    }
    Ok(())
}

/// A generous bound on any one step, so a stuck runner fails the run instead of hanging it.
fn step_limit(jobs: u64) -> Duration {
    Duration::from_secs(120 + jobs / 100)
}

/// The app's runner with a no-op handler, from its start until every job has run and it has
/// stopped (its completions written).
async fn through_runner(
    db: &Db,
    n: u64,
    concurrency: usize,
) -> anyhow::Result<(Timed, RunnerReport)> {
    let runs = Arc::new(AtomicU64::new(0));
    let all_ran = Arc::new(Notify::new());
    let mut registry = Registry::new();
    {
        let runs = runs.clone();
        let all_ran = all_ran.clone();
        registry.register(NOOP, move |_, _| {
            let runs = runs.clone();
            let all_ran = all_ran.clone();
            async move {
                if runs.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    all_ran.notify_one();
                }
                Ok::<(), JobError>(())
            }
        });
    }
    let config = RunnerConfig {
        concurrency,
        ..RunnerConfig::default()
    };
    let runner = Runner::new(db.clone(), registry, config);
    let clock = Clock::start();
    let handle = tokio::spawn(runner.run(async move { all_ran.notified().await }));
    let report = tokio::time::timeout(step_limit(n), handle)
        .await
        .with_context(|| {
            format!(
                "the runner did not finish within {:?} ({} of {n} jobs ran)",
                step_limit(n),
                runs.load(Ordering::Relaxed)
            )
        })??;
    let timed = clock.stop(n);
    let ran = runs.load(Ordering::Relaxed);
    if ran != n || report.succeeded != n || report.failed != 0 || report.released != 0 {
        bail!("the runner ran {ran} handlers for {n} jobs: {report:?}");
    }
    all_succeeded(db, n, "runner").await?;
    Ok((timed, report))
}

/// How a floor issues the queue's SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorMode {
    /// `claim` a batch, then `complete_many` it, each in its own transaction.
    InTurn,
    /// The completion of one batch alongside the claim of the next (two connections).
    Pipelined,
    /// One transaction per turn: complete the previous batch, claim the next.
    OneTransaction,
}

/// The floor: claim a batch, complete it, again, until the queue is empty.
async fn floor(db: &Db, n: u64, batch: usize, mode: FloorMode) -> anyhow::Result<Timed> {
    let worker = match mode {
        FloorMode::InTurn => "bench-floor",
        FloorMode::Pipelined => "bench-floor-pipelined",
        FloorMode::OneTransaction => "bench-floor-one-tx",
    };
    let clock = Clock::start();
    let mut marked = 0u64;
    let mut pending: Vec<(String, i64)> = Vec::new();
    loop {
        let (claimed, done) = match mode {
            FloorMode::InTurn => {
                let claimed = store::claim(db, worker, batch).await?;
                let runs: Vec<(String, i64)> =
                    claimed.iter().map(|j| (j.id.clone(), j.attempts)).collect();
                let done = store::complete_many(db, worker, &runs).await?;
                if done != runs.len() as u64 {
                    bail!("the floor marked {done} of {} jobs", runs.len());
                }
                (Vec::new(), done)
            }
            FloorMode::Pipelined => {
                let completing = async {
                    if pending.is_empty() {
                        Ok(0)
                    } else {
                        store::complete_many(db, worker, &pending).await
                    }
                };
                let (claimed, done) = tokio::join!(store::claim(db, worker, batch), completing);
                (claimed?, done?)
            }
            FloorMode::OneTransaction => {
                let mut tx = db.queue().await?;
                let done = store::complete_many_in(&mut tx, worker, &pending).await?;
                let claimed = store::claim_in(&mut tx, worker, batch).await?;
                tx.commit().await?;
                (claimed, done)
            }
        };
        if mode != FloorMode::InTurn && done != pending.len() as u64 {
            bail!("the floor marked {done} of {} jobs", pending.len());
        }
        marked += done;
        let claimed_any = done > 0 || !claimed.is_empty();
        pending = claimed.into_iter().map(|j| (j.id, j.attempts)).collect();
        if !claimed_any {
            break;
        }
    }
    let timed = clock.stop(n);
    if marked != n {
        bail!("the floor completed {marked} jobs, not {n}");
    }
    all_succeeded(db, n, "floor").await?;
    Ok(timed)
}

/// One job at a time through an idle runner: milliseconds from the enqueuing transaction's commit
/// to the handler's start. `wake`: call `jobs::wake()` after the commit (a request in this
/// process); otherwise the runner finds it at its next poll (a job from another process).
async fn latency(
    db: &Db,
    org: &str,
    samples: usize,
    wake: bool,
    config: &RunnerConfig,
) -> anyhow::Result<Latencies> {
    if samples == 0 {
        return Ok(Latencies::default());
    }
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Instant>();
    let mut registry = Registry::new();
    registry.register(PING, move |_, _| {
        let at = Instant::now();
        let started_tx = started_tx.clone();
        async move {
            let _ = started_tx.send(at);
            Ok::<(), JobError>(())
        }
    });
    let runner = Runner::new(db.clone(), registry, config.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(runner.run(async move {
        let _ = stopped.await;
    }));
    // Let it settle: the first claim, heartbeat and rescue happen at start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let poll_ms = config.poll_interval.as_millis().max(1) as u64;
    let wait = config.poll_interval * 3 + Duration::from_secs(5);
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        let mut tx = db.tenant(&tenant(org)).await?;
        if jobs::enqueue_for_tenant(&mut tx, NewJob::new(PING, "{}"))
            .await?
            .is_none()
        {
            bail!("the latency job was not inserted");
        }
        tx.commit().await?;
        let committed = Instant::now();
        if wake {
            jobs::wake();
        }
        let started = tokio::time::timeout(wait, started_rx.recv())
            .await
            .with_context(|| format!("job {i} did not start within {wait:?}"))?
            .context("the runner stopped")?;
        ms.push(started.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        // Idle between jobs; without a wake-up, a random pause within the poll interval so the
        // commits land at every phase of the poll.
        let pause = if wake {
            20 + mix(i) % 30
        } else {
            mix(i) % poll_ms
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let _ = stop.send(());
    let report = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .context("the latency runner did not stop")??;
    if report.succeeded != samples as u64 || report.failed != 0 {
        bail!("the latency runner ran {report:?} for {samples} jobs");
    }
    Ok(Latencies::new(ms))
}

pub async fn run_engine(engine: Engine, settings: &Settings) -> anyhow::Result<Report> {
    let app = meridian_tests::spawn_app(engine).await;
    let a = app.create_org("Bench Jobs A", "owner@jobs-a.test").await;
    let b = app.create_org("Bench Jobs B", "owner@jobs-b.test").await;
    let orgs = [a.org_id.clone(), b.org_id.clone()];
    let n = settings.jobs;
    let batch = settings.concurrency;
    reset(&app).await?;

    eprintln!("  enqueuing {n} jobs…");
    let enqueue = enqueue_many(&app.db, &orgs, n, settings.enqueue_batch).await?;
    eprintln!(
        "  enqueue: {:.2} s ({:.0} jobs/s)",
        enqueue.seconds,
        enqueue.rate()
    );
    eprintln!("  runner: {} slots…", settings.concurrency);
    let (runner, runner_report) = through_runner(&app.db, n, settings.concurrency).await?;
    eprintln!(
        "  runner: {:.2} s ({:.0} jobs/s)",
        runner.seconds,
        runner.rate()
    );
    reset(&app).await?;

    let mut floors = Vec::new();
    for mode in [
        FloorMode::InTurn,
        FloorMode::Pipelined,
        FloorMode::OneTransaction,
    ] {
        enqueue_many(&app.db, &orgs, n, settings.enqueue_batch).await?;
        let timed = floor(&app.db, n, batch, mode).await?;
        eprintln!(
            "  floor {mode:?}: {:.2} s ({:.0} jobs/s)",
            timed.seconds,
            timed.rate()
        );
        floors.push((mode, timed));
        reset(&app).await?;
    }

    let config = RunnerConfig::default();
    eprintln!(
        "  latency: {} jobs one at a time with wake()…",
        settings.latency_samples
    );
    let woken = latency(&app.db, &a.org_id, settings.latency_samples, true, &config).await?;
    eprintln!(
        "  latency: {} jobs one at a time without wake() (poll every {:?})…",
        settings.poll_samples, config.poll_interval
    );
    let polled = latency(&app.db, &a.org_id, settings.poll_samples, false, &config).await?;
    Ok(Report {
        engine,
        concurrency: settings.concurrency,
        poll_interval: config.poll_interval,
        enqueue,
        runner,
        runner_report,
        floors,
        woken,
        polled,
    })
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "n/a".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn text(report: &Report, settings: &Settings) -> String {
    let r = report;
    let mut out = format!(
        "\n{} — {} no-op jobs through one runner with {} slots (the app's Runner, Registry and \
         default settings otherwise)\n",
        r.engine.as_str(),
        settings.jobs,
        r.concurrency
    );
    out.push_str(
        "| step | jobs | seconds | jobs/s | CPU machine / bench |\n|---|---:|---:|---:|---:|\n",
    );
    let mut lines = vec![
        (
            format!(
                "enqueue: tenant transactions of {}, one INSERT per job",
                settings.enqueue_batch
            ),
            r.enqueue,
        ),
        (
            "**runner**: start to last completion written".to_owned(),
            r.runner,
        ),
    ];
    for (mode, timed) in &r.floors {
        let label = match mode {
            FloorMode::InTurn => format!(
                "floor: claim {} then complete_many them, in turn",
                r.concurrency
            ),
            FloorMode::Pipelined => format!(
                "floor, pipelined: complete one batch while claiming the next {}",
                r.concurrency
            ),
            FloorMode::OneTransaction => format!(
                "floor, one transaction: complete the last batch and claim the next {}",
                r.concurrency
            ),
        };
        lines.push((label, *timed));
    }
    for (label, timed) in &lines {
        out.push_str(&format!(
            "| {label} | {} | {:.2} | {:.0} | {} / {} |\n",
            timed.jobs,
            timed.seconds,
            timed.rate(),
            percent(timed.machine_busy),
            percent(timed.process_busy)
        ));
    }
    let rate = r.runner.rate();
    let target = match r.engine {
        Engine::Postgres => TARGET_POSTGRES,
        Engine::Sqlite => TARGET_SQLITE,
    };
    let ratios: Vec<String> = r
        .floors
        .iter()
        .map(|(mode, timed)| format!("{mode:?} {:.2}", rate / timed.rate().max(1e-9)))
        .collect();
    out.push_str(&format!("runner / floor: {}\n", ratios.join(", ")));
    out.push_str(&format!(
        "target: >= {target:.0} jobs/s through one worker: **{}** ({rate:.0} jobs/s)\n",
        verdict(rate >= target)
    ));
    out.push_str(&format!(
        "published PostgreSQL queues reach {:.0}k–{:.0}k jobs/s per node on bigger machines: this \
         run is {:.2}–{:.2} of that ({:.0}% of the low end)\n",
        PUBLISHED_LOW / 1000.0,
        PUBLISHED_HIGH / 1000.0,
        rate / PUBLISHED_HIGH,
        rate / PUBLISHED_LOW,
        rate / PUBLISHED_LOW * 100.0
    ));
    if settings.jobs < 10_000 {
        out.push_str("(a short run: fixed costs weigh on the rate)\n");
    }
    out.push_str(&format!(
        "\n{} — enqueue commit to handler start, one job at a time with the runner idle (default \
         settings: poll every {:?})\n",
        r.engine.as_str(),
        r.poll_interval
    ));
    out.push_str("| path | jobs | p50 ms | p95 ms | p99 ms | max ms | target |\n|---|---:|---:|---:|---:|---:|---|\n");
    let p50 = r.woken.percentile(50.0);
    out.push_str(&format!(
        "| wake() after commit (a request in this process) | {} | {} | {} | {} | {} | p50 < {TARGET_P50_MS:.0} ms: **{}** |\n",
        r.woken.len(),
        ms(p50),
        ms(r.woken.percentile(95.0)),
        ms(r.woken.percentile(99.0)),
        ms(r.woken.max()),
        verdict(p50 < TARGET_P50_MS)
    ));
    if !r.polled.is_empty() {
        let p50 = r.polled.percentile(50.0);
        out.push_str(&format!(
            "| no wake() (another process): NOTIFY on PostgreSQL, the next poll on SQLite | {} | {} | {} | {} | {} | p50 < {TARGET_P50_MS:.0} ms: {} |\n",
            r.polled.len(),
            ms(p50),
            ms(r.polled.percentile(95.0)),
            ms(r.polled.percentile(99.0)),
            ms(r.polled.max()),
            verdict(p50 < TARGET_P50_MS)
        ));
    }
    let report = &r.runner_report;
    out.push_str(&format!(
        "checked: every job ran once and ended succeeded (runner report: {} succeeded, {} failed, \
         {} released)\n",
        report.succeeded, report.failed, report.released
    ));
    out
}
