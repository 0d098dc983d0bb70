//! `meridian`: the server and its command-line tools, in one binary.

mod commands;
mod jobs;
mod secrets;
mod settings;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc (see the workspace's Cargo.toml and BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian: self-hostable marketing and lead operations.",
    long_about = "Meridian: self-hostable, multi-tenant marketing and lead operations.\n\n\
    Settings come from defaults, then a TOML file (--config, MERIDIAN_CONFIG or ./meridian.toml), then \
    MERIDIAN_* environment variables, then flags. See the README for every setting."
)]
struct Cli {
    /// Settings file (TOML). Default: $MERIDIAN_CONFIG, or ./meridian.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server with an in-process background worker.
    ///
    /// On a fresh database it applies migrations (development) and prints a one-time setup link
    /// for creating the first organization.
    Serve(commands::ServeArgs),
    /// Run only the background worker, so web and worker nodes can scale apart.
    Worker,
    /// Apply pending database migrations (as the schema owner on PostgreSQL).
    Migrate,
    /// Manage organizations.
    #[command(subcommand)]
    Org(commands::OrgCommand),
    /// Manage people.
    #[command(subcommand)]
    User(commands::UserCommand),
    /// Load data: `seed --demo` creates a demo organization with people in every role.
    Seed(commands::SeedArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(commands::ConfigCommand),
    /// Import records from files.
    #[command(subcommand)]
    Import(commands::ImportCommand),
    /// Inspect the background job queue server-wide; retry or discard jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Secrets at rest: rotate the key that seals them.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = cli.config.as_deref();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve(config, args).await,
            Command::Worker => commands::worker(config).await,
            Command::Migrate => commands::migrate(config).await,
            Command::Org(command) => commands::org(config, command).await,
            Command::User(command) => commands::user(config, command).await,
            Command::Seed(args) => commands::seed(config, args).await,
            Command::Config(command) => commands::config(config, command).await,
            Command::Import(command) => commands::import(config, command).await,
            Command::Jobs(command) => jobs::jobs(config, command).await,
            Command::Secrets(command) => secrets::secrets(config, command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
