//! A throwaway PostgreSQL cluster for tests, started once per test process from the installed
//! binaries (no Docker), with a fresh database per test. As root, PostgreSQL runs as the
//! `postgres` user. A watchdog process stops the cluster and removes its files when the test
//! process exits, however it exits.
//!
//! Set `MERIDIAN_TEST_PG_ADMIN_URL` to use an existing server instead (a superuser URL).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// Roles every test database uses: the owner runs migrations, the app role owns nothing and has
/// neither SUPERUSER nor BYPASSRLS, as in production.
pub const OWNER_ROLE: &str = "meridian_owner";
pub const APP_ROLE: &str = "meridian_app";

pub struct Cluster {
    /// Superuser connection URL without a database name.
    admin_base: String,
    host_port: String,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("MERIDIAN_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    // Debian keeps server binaries per major version; take the newest.
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|bin| bin.join("initdb").exists());
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().context(
        "PostgreSQL server binaries not found (no initdb): install PostgreSQL (Debian: apt-get install postgresql) \
         or set MERIDIAN_PG_BINDIR",
    )
}

fn run_as_postgres(root: bool, program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start() -> anyhow::Result<Cluster> {
    if let Ok(url) = std::env::var("MERIDIAN_TEST_PG_ADMIN_URL") {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
        let host_port = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        let host_port = host_port.split('/').next().unwrap_or(host_port).to_owned();
        return Ok(Cluster {
            admin_base: url
                .trim_end_matches('/')
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or(url),
            host_port,
        });
    }
    let root = is_root();
    let bin = bindir()?;
    let dir = tempfile::Builder::new()
        .prefix("meridian-pg-")
        .tempdir()
        .context("creating the cluster directory")?
        .keep();
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            bail!("chown of the cluster directory to postgres failed");
        }
    }
    let data = dir.join("data");
    let data_str = data.to_string_lossy().to_string();
    let dir_str = dir.to_string_lossy().to_string();
    run_as_postgres(
        root,
        &bin.join("initdb"),
        &[
            "-D",
            &data_str,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {dir_str} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB"
    );
    let log = dir.join("postgres.log").to_string_lossy().to_string();
    run_as_postgres(
        root,
        &bin.join("pg_ctl"),
        &["-D", &data_str, "-l", &log, "-w", "-o", &options, "start"],
    )?;
    // Stop the cluster and remove it when this process exits, whatever the reason.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if root {
        format!(
            "runuser -u postgres -- {} -D {data_str} -m immediate stop",
            pg_ctl.display()
        )
    } else {
        format!("{} -D {data_str} -m immediate stop", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir_str}",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cluster watchdog")?;
    let host_port = format!("127.0.0.1:{port}");
    Ok(Cluster {
        admin_base: format!("postgres://postgres@{host_port}"),
        host_port,
    })
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The shared cluster; panics (failing the test) when PostgreSQL cannot be started: the
/// PostgreSQL half of the suite is never skipped silently.
pub fn cluster() -> &'static Cluster {
    let result = CLUSTER.get_or_init(|| start().map_err(|e| format!("{e:#}")));
    match result {
        Ok(cluster) => cluster,
        Err(error) => panic!("PostgreSQL could not be started for the tests: {error}"),
    }
}

/// URLs of a fresh database: (superuser, schema owner, app role).
pub struct TestDatabase {
    pub admin_url: String,
    pub owner_url: String,
    pub app_url: String,
}

static ROLES: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl Cluster {
    async fn admin(&self, database: &str) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{}/{database}", self.admin_base))
            .await?)
    }

    pub async fn fresh_database(&self) -> anyhow::Result<TestDatabase> {
        ROLES
            .get_or_try_init(|| async {
                let admin = self.admin("postgres").await?;
                for role in [OWNER_ROLE, APP_ROLE] {
                    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_roles WHERE rolname = $1")
                        .bind(role)
                        .fetch_optional(&admin)
                        .await?;
                    if exists.is_none() {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
                        )))
                        .execute(&admin)
                        .await?;
                    }
                }
                admin.close().await;
                anyhow::Ok(())
            })
            .await?;
        let name = format!("t_{}", uuid_simple());
        let admin = self.admin("postgres").await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER {OWNER_ROLE}"
        )))
        .execute(&admin)
        .await?;
        admin.close().await;
        Ok(TestDatabase {
            admin_url: format!("{}/{name}", self.admin_base),
            owner_url: format!("postgres://{OWNER_ROLE}@{}/{name}", self.host_port),
            app_url: format!("postgres://{APP_ROLE}@{}/{name}", self.host_port),
        })
    }
}

fn uuid_simple() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{nanos:x}_{n}", std::process::id())
}
