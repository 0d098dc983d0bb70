//! Meridian load benchmarks.
//!
//! `cargo run --release -p meridian-bench -- api` starts the real app (the test harness's
//! `spawn_app_with`) on SQLite and on a throwaway PostgreSQL cluster, drives authenticated
//! requests over loopback with a fixed number in flight, and compares the app with the same SQL
//! issued straight through the database layer (the "floor"). See BENCHMARKS.md.

mod api;
mod crm;
mod http1;
mod import;
mod jobs;
mod load;
mod machine;
mod report;

use std::time::Duration;

/// The server's allocator (see `crates/meridian/src/main.rs`), so the app measured here is the
/// app that runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand, ValueEnum};
use meridian_db::Engine;

#[derive(Parser)]
#[command(about = "Meridian load benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP API against the raw-driver floor: GET /auth/me, GET /members, POST /auth/login
    /// (and GET /health for the cost of HTTP alone).
    Api(ApiArgs),
    /// The CRM at scale: a million leads in one organization (and ten others), then list,
    /// filter, search, detail and stats requests against the issue's latency targets.
    Crm(CrmArgs),
    /// Lead import at scale: a CSV of a million leads uploaded, checked and committed through the
    /// API, against loading the same rows straight into the database (COPY on PostgreSQL, one
    /// transaction of multi-row INSERTs on SQLite).
    Import(ImportArgs),
    /// The job queue: no-op jobs through one runner (the app's Runner) against its claim and
    /// complete SQL in a loop (the floor), and enqueue-to-start latency when idle, with and
    /// without a wake-up.
    Jobs(JobsArgs),
}

#[derive(clap::Args)]
struct JobsArgs {
    #[arg(long, value_enum, default_value = "both")]
    engine: EngineChoice,
    /// No-op jobs enqueued then run (for the runner, and again for each floor).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// The runner's slots (jobs running at once; also the floor's claim batch). Default: the
    /// app's default (`MERIDIAN_WORKER_CONCURRENCY`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: Option<u32>,
    /// Jobs per enqueuing transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    enqueue_batch: u64,
    /// Jobs enqueued one at a time, each followed by `wake()`, for the latency.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    latency_samples: u32,
    /// Jobs enqueued one at a time without `wake()` (found by the poll; about a poll interval
    /// each); 0 skips them.
    #[arg(long, default_value_t = 40)]
    poll_samples: u32,
}

#[derive(clap::Args)]
struct ImportArgs {
    #[arg(long, value_enum, default_value = "both")]
    engine: EngineChoice,
    /// Rows in the CSV (each one a new lead).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    rows: u64,
    /// Other organizations in the same database.
    #[arg(long, default_value_t = 10)]
    other_orgs: u32,
    /// Leads in each other organization.
    #[arg(long, default_value_t = 10_000)]
    other_leads: u64,
}

#[derive(clap::Args)]
struct CrmArgs {
    #[arg(long, value_enum, default_value = "both")]
    engine: EngineChoice,
    /// Leads in the benchmarked organization.
    #[arg(long, default_value_t = 1_000_000)]
    leads: u64,
    /// Other organizations in the same database.
    #[arg(long, default_value_t = 10)]
    other_orgs: u32,
    /// Leads in each other organization.
    #[arg(long, default_value_t = 10_000)]
    other_leads: u64,
    /// Members of the benchmarked organization (leads are spread among them).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    members: u32,
    /// Requests in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unrecorded warm-up seconds before each scenario.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(clap::Args)]
struct ApiArgs {
    /// Which database engine(s) to benchmark.
    #[arg(long, value_enum, default_value = "both")]
    engine: EngineChoice,
    /// Requests in flight for the GET scenarios and their floors.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unrecorded warm-up seconds before each scenario's measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Members of the benchmark organization, the owner included.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=1000))]
    members: u32,
    /// Logins in flight in the login scenarios.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    login_concurrency: u32,
    /// The app's `password_hash_concurrency` (argon2 hashes running at once); default: the
    /// app's own default, half the cores.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    hash_concurrency: Option<u32>,
    /// Serve the benchmarked app from its own pool of this many connections instead of the
    /// harness's (8), to see what the pool size does.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool: Option<u32>,
    /// Whether the app's pool pings each connection it hands out (sqlx's `test_before_acquire`,
    /// on in meridian-db). `false` serves the app from a pool of its own with the ping off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ping_on_acquire: bool,
    /// Scenarios to run (comma-separated); `what-if` (batched SQL floors) is not in the default.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,me,members,login"
    )]
    scenarios: Vec<api::Scenario>,
    /// Also print the tables in Markdown (for BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("--{what} must be a non-negative number of seconds"))
}

/// The command line as it was typed, in its `cargo run` form.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|arg| {
            if arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:".contains(c))
            {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!(
        "cargo run --release -p meridian-bench -- {}",
        args.join(" ")
    )
}

fn now_text() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

async fn api(args: ApiArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful numbers");
    }
    let window = load::Window {
        warmup: seconds(args.warmup, "warmup")?,
        duration: seconds(args.duration, "duration")?,
    };
    if window.duration.is_zero() {
        anyhow::bail!("--duration must be positive");
    }
    let settings = api::Settings {
        concurrency: args.concurrency as usize,
        login_concurrency: args.login_concurrency as usize,
        window,
        members: args.members as usize,
        hash_concurrency: args
            .hash_concurrency
            .map(|n| n as usize)
            .unwrap_or_else(meridian_app::config::default_password_hash_concurrency),
        db_pool: args.db_pool,
        ping_on_acquire: args.ping_on_acquire,
        scenarios: args.scenarios,
    };
    let engines = engines_of(args.engine);
    let started = now_text();
    let mut reports = Vec::new();
    for engine in engines {
        let report = api::run_engine(engine, &settings).await?;
        println!("{}", report::text(&report, &settings));
        reports.push(report);
    }
    print!("{}", report::summary(&reports));
    if args.markdown {
        for report in &reports {
            print!("{}", report::markdown(report, &settings));
        }
    }
    print!(
        "{}",
        report::environment(&machine::Machine::probe(), &started, &command_line())
    );
    println!(
        "build: {}; tokio worker threads: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

fn engines_of(choice: EngineChoice) -> Vec<Engine> {
    match choice {
        EngineChoice::Sqlite => vec![Engine::Sqlite],
        EngineChoice::Postgres => vec![Engine::Postgres],
        EngineChoice::Both => vec![Engine::Sqlite, Engine::Postgres],
    }
}

async fn crm(args: CrmArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful numbers");
    }
    let settings = crm::Settings {
        leads: args.leads,
        other_orgs: args.other_orgs,
        other_leads: args.other_leads,
        members: args.members as usize,
        concurrency: args.concurrency as usize,
        window: load::Window {
            warmup: seconds(args.warmup, "warmup")?,
            duration: seconds(args.duration, "duration")?,
        },
    };
    let started = now_text();
    for engine in engines_of(args.engine) {
        eprintln!("{}:", engine.as_str());
        let report = crm::run_engine(engine, &settings).await?;
        println!("{}", crm::text(&report, &settings));
    }
    print!(
        "{}",
        report::environment(&machine::Machine::probe(), &started, &command_line())
    );
    Ok(())
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful numbers");
    }
    let settings = import::Settings {
        rows: args.rows,
        other_orgs: args.other_orgs,
        other_leads: args.other_leads,
    };
    let started = now_text();
    for engine in engines_of(args.engine) {
        eprintln!("{}:", engine.as_str());
        let report = import::run_engine(engine, &settings).await?;
        println!("{}", import::text(&report, &settings));
    }
    print!(
        "{}",
        report::environment(&machine::Machine::probe(), &started, &command_line())
    );
    Ok(())
}

async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful numbers");
    }
    let settings = jobs::Settings {
        jobs: args.jobs,
        concurrency: args.concurrency.map_or_else(
            || meridian_app::config::JobsConfig::default().concurrency,
            |n| n as usize,
        ),
        enqueue_batch: args.enqueue_batch,
        latency_samples: args.latency_samples as usize,
        poll_samples: args.poll_samples as usize,
    };
    let started = now_text();
    for engine in engines_of(args.engine) {
        eprintln!("{}:", engine.as_str());
        let report = jobs::run_engine(engine, &settings).await?;
        println!("{}", jobs::text(&report, &settings));
    }
    print!(
        "{}",
        report::environment(&machine::Machine::probe(), &started, &command_line())
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Api(args) => api(args).await,
        Command::Crm(args) => crm(args).await,
        Command::Import(args) => import(args).await,
        Command::Jobs(args) => jobs(args).await,
    }
}
