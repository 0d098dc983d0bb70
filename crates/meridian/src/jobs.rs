//! `meridian jobs`: the operator's view of the job queue, server-wide (every organization's jobs
//! and the server's own), through the queue runner's scope: list, retry, discard.

use anyhow::{Context, bail};
use clap::Subcommand;
use meridian_db::jobs::{self as store, Job, JobStatus, Scope};
use meridian_db::{Db, Tenant};

use crate::commands::open_for_cli;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first, with a summary of the queue by status.
    List {
        /// Only this organization's jobs (its id); server-wide by default.
        #[arg(long)]
        org: Option<String>,
        /// Only jobs in this status.
        #[arg(long, value_parser = ["scheduled", "available", "running", "succeeded", "retrying", "dead"])]
        status: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run a dead or retrying job again now (a dead job out of attempts gets one more).
    Retry {
        /// The job's id.
        id: String,
    },
    /// Delete a scheduled, available, retrying or dead job so it never runs.
    Discard {
        /// The job's id.
        id: String,
    },
}

pub async fn jobs(config: Option<&str>, command: JobsCommand) -> anyhow::Result<()> {
    let (_settings, db) = open_for_cli(config).await?;
    let result = match command {
        JobsCommand::List { org, status, limit } => list(&db, org, status, limit).await,
        JobsCommand::Retry { id } => retry(&db, &id).await,
        JobsCommand::Discard { id } => discard(&db, &id).await,
    };
    db.close().await;
    result
}

/// The first line of an error, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(max) {
        Some((at, _)) => format!("{}\u{2026}", &line[..at]),
        None => line.to_owned(),
    }
}

fn when(job: &Job) -> String {
    let at = match job.status() {
        Some(JobStatus::Running) => job.started_at.unwrap_or(job.run_at),
        Some(JobStatus::Succeeded | JobStatus::Dead) => job.finished_at.unwrap_or(job.run_at),
        _ => job.run_at,
    };
    meridian_app::web::exact(at)
}

async fn list(
    db: &Db,
    org: Option<String>,
    status: Option<String>,
    limit: i64,
) -> anyhow::Result<()> {
    if let Some(org) = &org {
        let tenant = Tenant::for_verified_credentials(org, None);
        let mut tx = db.tenant_read(&tenant).await?;
        let found = meridian_app::orgs::store::get_org(&mut tx).await;
        tx.commit().await?;
        found.with_context(|| format!("no organization with id {org}"))?;
    }
    let status = match status.as_deref() {
        Some(text) => {
            Some(JobStatus::parse(text).with_context(|| format!("unknown job status {text:?}"))?)
        }
        None => None,
    };
    let scope = match &org {
        Some(org) => Scope::Org(org),
        None => Scope::All,
    };
    let mut tx = db.queue_read().await?;
    let counts = store::counts(&mut tx, scope).await?;
    let jobs = store::list(&mut tx, scope, status, limit.clamp(1, 10_000)).await?;
    tx.commit().await?;

    let by_status = |s: JobStatus| -> i64 {
        counts
            .iter()
            .filter(|c| c.status == s.as_str())
            .map(|c| c.count)
            .sum()
    };
    let waiting = by_status(JobStatus::Scheduled)
        + by_status(JobStatus::Available)
        + by_status(JobStatus::Retrying);
    println!(
        "{} waiting ({} available, {} scheduled, {} retrying), {} running, {} dead, {} succeeded (kept).",
        waiting,
        by_status(JobStatus::Available),
        by_status(JobStatus::Scheduled),
        by_status(JobStatus::Retrying),
        by_status(JobStatus::Running),
        by_status(JobStatus::Dead),
        by_status(JobStatus::Succeeded),
    );
    if jobs.is_empty() {
        match status {
            Some(status) => println!("No {status} jobs."),
            None => println!("No jobs."),
        }
        return Ok(());
    }
    let header = [
        "ID",
        "KIND",
        "STATUS",
        "ATTEMPTS",
        "ORGANIZATION",
        "WHEN (UTC)",
        "LAST ERROR",
    ];
    println!(
        "\n{:<36}  {:<24}  {:<9}  {:>8}  {:<36}  {:<27}  {}",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    );
    for job in &jobs {
        let attempts = format!("{}/{}", job.attempts, job.max_attempts);
        println!(
            "{:<36}  {:<24}  {:<9}  {:>8}  {:<36}  {:<27}  {}",
            job.id,
            job.kind,
            job.status,
            attempts,
            job.org_id.as_deref().unwrap_or("(server)"),
            when(job),
            job.last_error
                .as_deref()
                .map(|e| one_line(e, 80))
                .unwrap_or_default()
        );
    }
    if i64::try_from(jobs.len()).unwrap_or(i64::MAX) >= limit {
        println!("\n(the newest {limit}; pass --limit for more)");
    }
    Ok(())
}

async fn find(db: &Db, id: &str) -> anyhow::Result<Job> {
    let mut tx = db.queue_read().await?;
    let job = store::find(&mut tx, Scope::All, id).await?;
    tx.commit().await?;
    job.with_context(|| format!("no job with id {id}"))
}

async fn retry(db: &Db, id: &str) -> anyhow::Result<()> {
    let job = find(db, id).await?;
    if !matches!(job.status(), Some(JobStatus::Dead | JobStatus::Retrying)) {
        bail!(
            "job {id} is {}: only dead or retrying jobs can be retried",
            job.status
        );
    }
    let mut tx = db.queue().await?;
    let retried = match store::retry(&mut tx, Scope::All, id).await {
        Ok(retried) => retried,
        Err(error) if meridian_db::unique_violation(&error).is_some() => bail!(
            "another copy of this {} job (same unique key) is already waiting or running; \
             discard this one instead",
            job.kind
        ),
        Err(error) => return Err(error.into()),
    };
    tx.commit().await?;
    if !retried {
        bail!("job {id} changed meanwhile (a worker picked it up); nothing was retried");
    }
    println!(
        "Job {id} ({}) is available again after {} attempt(s); a worker starts it at its next poll.",
        job.kind, job.attempts
    );
    Ok(())
}

async fn discard(db: &Db, id: &str) -> anyhow::Result<()> {
    let job = find(db, id).await?;
    match job.status() {
        Some(JobStatus::Running) => {
            bail!("job {id} is running: wait until it finishes or fails, then discard it")
        }
        Some(JobStatus::Succeeded) => {
            bail!(
                "job {id} has already succeeded; succeeded jobs are purged after the retention period"
            )
        }
        _ => {}
    }
    let mut tx = db.queue().await?;
    let discarded = store::discard(&mut tx, Scope::All, id).await?;
    tx.commit().await?;
    if !discarded {
        bail!("job {id} changed meanwhile (a worker picked it up); nothing was discarded");
    }
    println!(
        "Discarded job {id} ({}, was {}); it will not run.",
        job.kind, job.status
    );
    Ok(())
}
