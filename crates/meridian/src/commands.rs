//! What each subcommand does. `serve` and `worker` share start-up (settings, logging, database,
//! migrations) and shut down gracefully on Ctrl-C or SIGTERM.

use std::future::Future;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use meridian_app::config::ServerTransport;
use meridian_app::http::ctx::{Ctx, OrgRef};
use meridian_app::orgs::service::{self as orgs, InviteInput, NewOrganization};
use meridian_app::secrets::KeySource;
use meridian_db::{ConnectOptions, Db, Engine, Migrator, Tenant};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::settings::{Environment, FlagSettings, Settings, redact_url, url_user};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [env: MERIDIAN_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the SQLite database and other local files [env: MERIDIAN_DATA_DIR] [default: ./data]
    #[arg(long)]
    data_dir: Option<String>,
    /// sqlite:// path or postgres:// URL [env: MERIDIAN_DATABASE_URL] [default: sqlite in the data directory]
    #[arg(long)]
    database_url: Option<String>,
    /// `invite` (default) or `open` (anyone may create an organization) [env: MERIDIAN_SIGNUP]
    #[arg(long)]
    signup: Option<String>,
    /// Seed a demo organization (people in every role) and print their sign-in details.
    #[arg(long)]
    demo: bool,
    /// Do not run the background worker in this process (run `meridian worker` elsewhere).
    #[arg(long)]
    no_worker: bool,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization and its owner; prints the owner's password when generated.
    Create {
        /// Organization name.
        #[arg(long)]
        name: String,
        /// Owner's email.
        #[arg(long)]
        owner_email: String,
        /// Owner's name.
        #[arg(long)]
        owner_name: String,
        /// Owner's password [env: MERIDIAN_OWNER_PASSWORD]; a random one is generated and printed when absent.
        #[arg(long, env = "MERIDIAN_OWNER_PASSWORD", hide_env_values = true)]
        owner_password: Option<String>,
        /// Pipelines to start with: `marketing` (one Leads pipeline) or `surrogacy` (Cases with
        /// intake-to-case-manager handoff, and Intended Parents).
        #[arg(long, default_value = "marketing")]
        template: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Invite someone to an organization; prints the link to accept.
    Invite {
        /// The organization's id.
        #[arg(long)]
        org: String,
        /// Their email.
        #[arg(long)]
        email: String,
        /// owner, admin, manager, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
    },
}

#[derive(Args)]
pub struct SeedArgs {
    /// Create (or refresh) the demo organization and print its people's sign-in details.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import leads from a CSV or XLSX file into a pipeline: the same upload, dry run and
    /// chunked commit as the web wizard, run here with a progress bar.
    Leads {
        /// The CSV (UTF-8) or XLSX file; its first row names the columns.
        file: std::path::PathBuf,
        /// The organization's id.
        #[arg(long)]
        org: String,
        /// The pipeline's id or name.
        #[arg(long)]
        pipeline: String,
        /// A JSON file mapping columns to lead fields: {"E-mail": "email", "Budget":
        /// "custom_fields.budget", "Notes": null}.
        #[arg(long, conflicts_with = "auto", value_name = "FILE")]
        mapping: Option<std::path::PathBuf>,
        /// Use the suggested mapping (the last one used for these headers, or guessed from them).
        #[arg(long)]
        auto: bool,
        /// What to do with rows whose email or phone matches an active lead.
        #[arg(long, default_value = "skip", value_parser = ["skip", "update", "create"])]
        on_duplicate: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and where each came from; check the database.
    Check,
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if settings.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(error) = result {
        eprintln!("logging already initialised: {error}");
    }
}

async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
    Db::connect(&ConnectOptions {
        url: url.to_owned(),
        max_connections,
    })
    .await
    .with_context(|| format!("connecting to {}", redact_url(url)))
}

/// On PostgreSQL with separate owner and app connections, the app's role (granted data access
/// after migrations).
fn app_role(owner: &Db, settings: &Settings) -> Option<String> {
    let separate = settings.migration_database_url != settings.database_url;
    (owner.engine() == Engine::Postgres && separate)
        .then(|| url_user(&settings.database_url))
        .flatten()
}

/// Brings the schema up to date (or refuses to run against it) and returns the app's pool.
async fn prepare_database(settings: &Settings, allow_migrate: bool) -> anyhow::Result<Db> {
    let owner = connect(&settings.migration_database_url, 2).await?;
    let status = Migrator::status(&owner)
        .await
        .context("reading migration status")?;
    if status.is_newer_than_binary() {
        bail!(
            "the database schema (version {}) is newer than this binary (version {}); run a newer Meridian",
            status.applied,
            status.known
        );
    }
    if !status.modified.is_empty() {
        bail!(
            "applied migrations {:?} differ from this binary's; the schema was changed by hand or by another build",
            status.modified
        );
    }
    if !status.pending.is_empty() {
        if !allow_migrate {
            bail!(
                "{} database migration(s) are pending; run `meridian migrate` first (production mode never migrates on start)",
                status.pending.len()
            );
        }
        let app_role = app_role(&owner, settings);
        let applied = Migrator::run(&owner, app_role.as_deref())
            .await
            .context("applying migrations")?;
        tracing::info!(?applied, "migrations applied");
    }
    owner.close().await;
    connect(&settings.database_url, settings.db_max_connections).await
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called, and resolves on the first. The
/// handlers are installed at once rather than when the future is first polled: a signal that
/// arrived while the server was still starting (after it bound its port) used to find no handler
/// and kill the process with a failure status instead of shutting it down gracefully.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "cannot listen for shutdown signals");
                    std::future::pending::<()>().await;
                }
            }
            tracing::info!("shutting down: finishing in-flight work");
        }
    }
    #[cfg(not(unix))]
    async move {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing in-flight work");
    }
}

fn watch_shutdown(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

fn print_demo(credentials: &[meridian_app::demo::DemoCredential]) {
    println!(
        "\nDemo organization \u{201c}{}\u{201d}: sign in as any of these people\n",
        meridian_app::demo::DEMO_ORG
    );
    for c in credentials {
        println!("  {:<8} {:<34} {}", c.role.as_str(), c.email, c.password);
    }
    println!();
}

pub async fn serve(config: Option<&str>, args: ServeArgs) -> anyhow::Result<()> {
    let flags = FlagSettings {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        signup: args.signup,
    };
    let mut settings = Settings::load(config, &flags)?;
    init_logging(&settings);
    log_key_source(&settings.load_secrets()?);
    let shutdown = shutdown_signal();
    let db = prepare_database(&settings, settings.env == Environment::Development).await?;
    let state = meridian_app::build_state(db.clone(), settings.app.clone()).await?;
    if args.demo {
        print_demo(&meridian_app::demo::seed_demo(&state).await?);
    } else if let Some(token) = orgs::prepare_setup(&db)
        .await
        .map_err(|e| anyhow::anyhow!(e.detail()))?
    {
        println!(
            "\nNo organization yet. Create the first one (link valid 24 hours):\n\n  {}/setup?token={token}\n",
            settings.app.public_url
        );
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    tracing::info!(address = %settings.listen, database = db.engine().as_str(), "Meridian is serving");
    println!("Meridian is running at {}", settings.app.public_url);

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = (!args.no_worker).then(|| {
        tokio::spawn(meridian_app::housekeeping::run_worker(
            db.clone(),
            settings.app.clone(),
            settings.worker_interval,
            watch_shutdown(&stop_rx),
        ))
    });
    let metrics = match settings.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("listening for metrics on {address}"))?;
            tracing::info!(%address, "metrics listener");
            Some(tokio::spawn(meridian_app::serve(
                listener,
                meridian_app::metrics_router(state.clone()),
                watch_shutdown(&stop_rx),
            )))
        }
        None => None,
    };
    let router = meridian_app::router(state.clone());
    let served = meridian_app::serve(listener, router, async move {
        shutdown.await;
        state.close_streams();
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    db.close().await;
    served.context("serving HTTP")
}

pub async fn worker(config: Option<&str>) -> anyhow::Result<()> {
    let mut settings = Settings::load(config, &FlagSettings::default())?;
    init_logging(&settings);
    log_key_source(&settings.load_secrets()?);
    let shutdown = shutdown_signal();
    let db = prepare_database(&settings, false).await?;
    tracing::info!(database = db.engine().as_str(), "worker started");
    meridian_app::housekeeping::run_worker(
        db.clone(),
        settings.app.clone(),
        settings.worker_interval,
        shutdown,
    )
    .await;
    db.close().await;
    Ok(())
}

pub async fn migrate(config: Option<&str>) -> anyhow::Result<()> {
    let settings = Settings::load(config, &FlagSettings::default())?;
    init_logging(&settings);
    let owner = connect(&settings.migration_database_url, 2).await?;
    let app_role = app_role(&owner, &settings);
    let applied = Migrator::run(&owner, app_role.as_deref())
        .await
        .context("applying migrations")?;
    let status = Migrator::status(&owner).await?;
    owner.close().await;
    if applied.is_empty() {
        println!("The schema is up to date (version {}).", status.applied);
    } else {
        println!(
            "Applied {} migration(s); the schema is at version {}.",
            applied.len(),
            status.applied
        );
    }
    Ok(())
}

fn log_key_source(source: &KeySource) {
    match source {
        KeySource::Environment => tracing::info!("secret key from MERIDIAN_SECRET_KEY"),
        KeySource::File(path) => tracing::info!(path = %path.display(), "secret key file"),
        KeySource::Generated(path) => {
            tracing::warn!(path = %path.display(), "generated a new secret key file: back it up with the database, or the secrets it seals are lost")
        }
    }
}

pub(crate) async fn open_for_cli(config: Option<&str>) -> anyhow::Result<(Settings, Db)> {
    let mut settings = Settings::load(config, &FlagSettings::default())?;
    init_logging(&settings);
    settings.load_secrets()?;
    let db = prepare_database(&settings, settings.env == Environment::Development).await?;
    Ok((settings, db))
}

pub async fn org(config: Option<&str>, command: OrgCommand) -> anyhow::Result<()> {
    let (settings, db) = open_for_cli(config).await?;
    match command {
        OrgCommand::Create {
            name,
            owner_email,
            owner_name,
            owner_password,
            template,
        } => {
            let generated = owner_password.is_none();
            let password = owner_password
                .unwrap_or_else(|| meridian_app::auth::tokens::new_secret("")[..20].to_owned());
            let state = meridian_app::build_state(db.clone(), settings.app.clone()).await?;
            let who = orgs::create_organization(
                &db,
                &state.hasher,
                NewOrganization {
                    org_name: name,
                    name: owner_name,
                    email: owner_email,
                    password: password.clone(),
                    template,
                },
                None,
                &Default::default(),
            )
            .await
            .map_err(describe)?;
            println!(
                "Created organization \u{201c}{}\u{201d} ({})",
                who.org.name, who.org.id
            );
            println!("Owner: {} <{}>", who.user.name, who.user.email);
            if generated {
                println!("Owner's password: {password}");
            }
            println!("Sign in at {}/login", settings.app.public_url);
        }
    }
    db.close().await;
    Ok(())
}

fn describe(error: meridian_app::http::error::AppError) -> anyhow::Error {
    let fields: Vec<String> = error
        .field_errors()
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect();
    if fields.is_empty() {
        anyhow::anyhow!(error.detail())
    } else {
        anyhow::anyhow!(fields.join("; "))
    }
}

pub async fn user(config: Option<&str>, command: UserCommand) -> anyhow::Result<()> {
    let (settings, db) = open_for_cli(config).await?;
    match command {
        UserCommand::Invite { org, email, role } => {
            let state = meridian_app::build_state(db.clone(), settings.app.clone()).await?;
            let tenant = Tenant::for_verified_credentials(&org, None);
            let mut tx = db.tenant_read(&tenant).await?;
            let found = meridian_app::orgs::store::get_org(&mut tx).await;
            tx.commit().await?;
            let row = found.with_context(|| format!("no organization with id {org}"))?;
            let ctx = Ctx::operator(
                OrgRef {
                    id: row.id,
                    name: row.name,
                },
                "meridian CLI",
            );
            let (invite, token) = orgs::create_invite(&state, &ctx, InviteInput { email, role })
                .await
                .map_err(describe)?;
            println!(
                "Invited {} as {}. Share this link (valid 7 days):\n\n  {}\n",
                invite.email,
                invite.role,
                orgs::accept_url(&state, &token)
            );
        }
    }
    db.close().await;
    Ok(())
}

pub async fn seed(config: Option<&str>, args: SeedArgs) -> anyhow::Result<()> {
    if !args.demo {
        bail!("nothing to seed: pass --demo");
    }
    let (settings, db) = open_for_cli(config).await?;
    let state = meridian_app::build_state(db.clone(), settings.app.clone()).await?;
    print_demo(&meridian_app::demo::seed_demo(&state).await?);
    db.close().await;
    Ok(())
}

pub async fn config(config: Option<&str>, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => {
            let settings = Settings::load(config, &FlagSettings::default())?;
            let source = |key: &str| settings.sources.get(key).copied().unwrap_or("default");
            let jobs = &settings.app.jobs;
            let rows: Vec<(&str, String)> = vec![
                ("listen", settings.listen.to_string()),
                ("data_dir", settings.data_dir.display().to_string()),
                ("database_url", redact_url(&settings.database_url)),
                (
                    "migration_database_url",
                    redact_url(&settings.migration_database_url),
                ),
                (
                    "db_max_connections",
                    settings.db_max_connections.to_string(),
                ),
                (
                    "signup",
                    format!("{:?}", settings.app.signup).to_lowercase(),
                ),
                ("public_url", settings.app.public_url.clone()),
                (
                    "metrics_listen",
                    settings
                        .metrics_listen
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "(main listener)".into()),
                ),
                (
                    "session_idle_timeout",
                    format!("{}s", settings.app.session_idle_timeout.as_secs()),
                ),
                (
                    "session_lifetime",
                    format!("{}s", settings.app.session_absolute_lifetime.as_secs()),
                ),
                ("max_body_bytes", settings.app.max_body_bytes.to_string()),
                (
                    "trust_proxy_headers",
                    settings.app.trust_proxy_headers.to_string(),
                ),
                ("env", format!("{:?}", settings.env).to_lowercase()),
                ("log", settings.log.clone()),
                (
                    "log_format",
                    if settings.log_json {
                        "json".into()
                    } else {
                        "pretty".into()
                    },
                ),
                (
                    "worker_interval",
                    format!("{}s", settings.worker_interval.as_secs()),
                ),
                (
                    "password_hash_concurrency",
                    settings.app.password_hash_concurrency.to_string(),
                ),
                ("worker_concurrency", jobs.concurrency.to_string()),
                ("job_poll_interval", format!("{:?}", jobs.poll_interval)),
                ("job_timeout", format!("{:?}", jobs.job_timeout)),
                ("job_rescue_after", format!("{:?}", jobs.rescue_after)),
                ("job_shutdown_grace", format!("{:?}", jobs.shutdown_grace)),
                ("job_backoff_base", format!("{:?}", jobs.backoff_base)),
                ("job_backoff_cap", format!("{:?}", jobs.backoff_cap)),
                ("job_retention", format!("{:?}", jobs.retention)),
                (
                    "smtp_url",
                    match &settings.app.email.transport {
                        ServerTransport::Smtp(url) => redact_url(url),
                        ServerTransport::Files(dir) => {
                            format!("(none: .eml files in {})", dir.display())
                        }
                    },
                ),
                ("email_from", settings.app.email.from.clone()),
                (
                    "allow_private_network",
                    settings.app.allow_private_network.to_string(),
                ),
                (
                    "secret_key",
                    match &settings.secret_keys.current {
                        Some(_) => "(set)".to_owned(),
                        None => format!(
                            "(none: key file {})",
                            settings.data_dir.join("secret.key").display()
                        ),
                    },
                ),
                (
                    "secret_key_previous",
                    if settings.secret_keys.previous.is_some() {
                        "(set)".to_owned()
                    } else {
                        "(none)".to_owned()
                    },
                ),
            ];
            for (key, value) in &rows {
                println!(
                    "{:<32} {:<48} ({})",
                    format!("MERIDIAN_{}", key.to_uppercase()),
                    value,
                    source(key)
                );
            }
            let db = connect(&settings.database_url, 1).await?;
            db.ping().await.context("the database does not answer")?;
            let status = Migrator::status(&db).await?;
            db.close().await;
            println!(
                "\ndatabase: reachable ({}); schema version {} of {}; {} pending",
                db.engine().as_str(),
                status.applied,
                status.known,
                status.pending.len()
            );
            if status.is_newer_than_binary() {
                bail!("the database schema is newer than this binary");
            }
            println!("configuration OK");
        }
    }
    Ok(())
}

pub async fn import(config: Option<&str>, command: ImportCommand) -> anyhow::Result<()> {
    use meridian_app::imports::{plan::OnDuplicate, service};

    let ImportCommand::Leads {
        file,
        org,
        pipeline,
        mapping,
        auto,
        on_duplicate,
    } = command;
    if mapping.is_none() && !auto {
        bail!("choose the mapping: --mapping FILE (JSON {{\"column\": \"field\"}}) or --auto");
    }
    let on_duplicate = OnDuplicate::parse(&on_duplicate)
        .with_context(|| format!("--on-duplicate {on_duplicate:?}"))?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let chosen: Option<std::collections::BTreeMap<String, Option<String>>> = match &mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} must be a JSON object of column names to lead fields (or null)",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let (_settings, db) = open_for_cli(config).await?;
    let tenant = Tenant::for_verified_credentials(&org, None);
    let mut tx = db.tenant_read(&tenant).await?;
    let found = meridian_app::orgs::store::get_org(&mut tx).await;
    let pipelines = meridian_app::pipelines::store::list(&mut tx).await?;
    tx.commit().await?;
    let row = found.with_context(|| format!("no organization with id {org}"))?;
    let Some(target) = pipelines.iter().find(|p| p.id == pipeline).or_else(|| {
        pipelines
            .iter()
            .find(|p| p.spec.name.eq_ignore_ascii_case(&pipeline))
    }) else {
        let names: Vec<&str> = pipelines.iter().map(|p| p.spec.name.as_str()).collect();
        bail!(
            "no pipeline {pipeline:?} in this organization; it has: {}",
            names.join(", ")
        );
    };
    let ctx = Ctx::operator(
        OrgRef {
            id: row.id,
            name: row.name,
        },
        "meridian CLI",
    );
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload.csv".to_owned());
    let uploaded = service::upload(&db, &ctx, &target.id, &file_name, bytes)
        .await
        .map_err(describe)?;
    let id = uploaded.import.id.clone();
    println!(
        "Read {} rows from {file_name} ({} empty rows skipped) into {}.",
        uploaded.import.rows_total, uploaded.import.empty_rows, target.spec.name
    );
    let mapping = chosen.unwrap_or_else(|| service::mapping_of(&uploaded.import));
    for (column, field) in &mapping {
        println!(
            "  {column:<28} -> {}",
            field.as_deref().unwrap_or("(not imported)")
        );
    }
    let (report, problems) = service::validate(&db, &ctx, &id, &mapping, on_duplicate)
        .await
        .map_err(describe)?;
    println!(
        "Checked: {} to create, {} to update, {} to skip, {} with problems.",
        report.would_create, report.would_update, report.would_skip, report.failed
    );
    for problem in problems.iter().take(10) {
        println!(
            "  row {}: {}{}",
            problem.row,
            if problem.column.is_empty() {
                String::new()
            } else {
                format!("{}: ", problem.column)
            },
            problem.message
        );
    }
    let run = service::start(&db, &ctx, &id).await.map_err(describe)?;
    let bar = indicatif::ProgressBar::new(u64::try_from(uploaded.import.rows_total).unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} rows ({per_sec}, {eta} left) {msg}",
    ) {
        bar.set_style(style);
    }
    let end = service::run(&db, &run, None, &|p| {
        bar.set_position(u64::try_from(p.rows_done).unwrap_or(0));
        bar.set_message(format!(
            "{} created, {} updated, {} skipped, {} failed",
            p.created, p.updated, p.skipped, p.failed
        ));
    })
    .await;
    bar.finish_and_clear();
    end?;
    let done = service::get(&db, &ctx, &id).await.map_err(describe)?;
    println!(
        "Import {id} {}: {} created, {} updated, {} skipped, {} failed.",
        done.status, done.created, done.updated, done.skipped, done.failed
    );
    if done.failed > 0 {
        println!(
            "Every problem, by row and column: GET /api/v1/imports/{id}/errors.csv or the page /leads/import/{id}."
        );
    }
    db.close().await;
    Ok(())
}
