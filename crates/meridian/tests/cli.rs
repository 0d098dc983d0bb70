//! The `meridian` binary itself: start-up checks, CLI commands, graceful shutdown (SQLite; the
//! PostgreSQL paths of the same code are covered by the integration tests).

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `meridian ARGS` in `dir`, with its data directory there and no inherited database settings.
fn command(dir: &std::path::Path, args: &[&str], log: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("MERIDIAN_DATABASE_URL")
        .env_remove("MERIDIAN_CONFIG")
        .env("MERIDIAN_DATA_DIR", dir.join("data"))
        .env("MERIDIAN_LOG", log);
    command
}

fn meridian(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(dir, args, "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run meridian")
}

/// Starts a long-running command (serve, worker) with its output captured.
fn spawn(dir: &std::path::Path, args: &[&str]) -> Child {
    command(dir, args, "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Sends SIGTERM and waits for the process to exit.
fn terminate(child: Child) -> Output {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    child.wait_with_output().expect("wait")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn cli_creates_organizations_invites_and_checks_config() {
    let dir = tempfile::tempdir().expect("dir");
    let migrated = meridian(dir.path(), &["migrate"], &[]);
    assert!(migrated.status.success(), "{}", text(&migrated));
    let known = meridian_db::Migrator::known_version();
    assert!(
        text(&migrated).contains(&format!(
            "Applied {known} migration(s); the schema is at version {known}"
        )),
        "{}",
        text(&migrated)
    );
    let again = meridian(dir.path(), &["migrate"], &[]);
    assert!(text(&again).contains("up to date"));

    let created = meridian(
        dir.path(),
        &[
            "org",
            "create",
            "--name",
            "Acme Growth",
            "--owner-email",
            "ada@acme.test",
            "--owner-name",
            "Ada Lovelace",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", text(&created));
    let out = text(&created);
    assert!(out.contains("Owner's password: "), "{out}");
    let org_id = out
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("org id in output")
        .to_owned();

    let weak = meridian(
        dir.path(),
        &[
            "org",
            "create",
            "--name",
            "Other",
            "--owner-email",
            "bo@other.test",
            "--owner-name",
            "Bo",
            "--owner-password",
            "password",
        ],
        &[],
    );
    assert!(!weak.status.success());
    assert!(text(&weak).contains("password"), "{}", text(&weak));

    let invited = meridian(
        dir.path(),
        &[
            "user",
            "invite",
            "--org",
            &org_id,
            "--email",
            "sam@acme.test",
            "--role",
            "admin",
        ],
        &[],
    );
    assert!(invited.status.success(), "{}", text(&invited));
    assert!(text(&invited).contains("/invite?token=mrd_inv_"));
    let unknown = meridian(
        dir.path(),
        &["user", "invite", "--org", "nope", "--email", "x@acme.test"],
        &[],
    );
    assert!(!unknown.status.success());

    let check = meridian(
        dir.path(),
        &["config", "check"],
        &[("MERIDIAN_SIGNUP", "open")],
    );
    assert!(check.status.success(), "{}", text(&check));
    let out = text(&check);
    assert!(
        out.contains("MERIDIAN_SIGNUP") && out.contains("open") && out.contains("(environment)"),
        "{out}"
    );
    assert!(out.contains("configuration OK"));
    let bad = meridian(
        dir.path(),
        &["config", "check"],
        &[("MERIDIAN_LISTEN", "not an address")],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("MERIDIAN_LISTEN"));

    let seeded = meridian(dir.path(), &["seed", "--demo"], &[]);
    assert!(seeded.status.success(), "{}", text(&seeded));
    assert!(text(&seeded).contains("alex.morgan@northwind.example"));
}

#[test]
fn serve_refuses_unsafe_schemas() {
    let dir = tempfile::tempdir().expect("dir");
    // Production never migrates on start.
    let pending = meridian(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("MERIDIAN_ENV", "production")],
    );
    assert!(!pending.status.success());
    assert!(
        text(&pending).contains("meridian migrate"),
        "{}",
        text(&pending)
    );
    assert!(meridian(dir.path(), &["migrate"], &[]).status.success());
    // A schema written by a newer binary.
    let db = dir.path().join("data").join("meridian.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}", db.display());
        let db = meridian_db::Db::connect(&meridian_db::ConnectOptions { url, max_connections: 1 })
            .await
            .expect("open");
        let mut tx = db.global().await.expect("tx");
        tx.execute(meridian_db::sql(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', 'now')",
        ))
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        db.close().await;
    });
    let newer = meridian(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(!newer.status.success());
    assert!(
        text(&newer).contains("newer than this binary"),
        "{}",
        text(&newer)
    );
}

#[test]
fn serve_prints_the_setup_link_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = spawn(dir.path(), &["serve", "--listen", &listen]);
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "the server did not start");
    let output = terminate(child);
    let out = text(&output);
    assert!(output.status.success(), "graceful exit: {out}");
    assert!(
        out.contains(&format!("http://{listen}/setup?token=mrd_setup_")),
        "{out}"
    );
    assert!(out.contains("worker stopped"), "{out}");
    assert!(
        dir.path().join("data").join("meridian.db").exists(),
        "SQLite created under the data dir"
    );
}

#[test]
fn worker_runs_alone_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    assert!(meridian(dir.path(), &["migrate"], &[]).status.success());
    let child = spawn(dir.path(), &["worker"]);
    std::thread::sleep(Duration::from_millis(1500));
    let output = terminate(child);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("worker started") && out.contains("worker stopped"),
        "{out}"
    );
}

/// Creates the organization "Acme Growth" (owner ada@acme.test) with `org create`; its id.
fn create_acme(dir: &std::path::Path) -> String {
    let created = meridian(
        dir,
        &[
            "org",
            "create",
            "--name",
            "Acme Growth",
            "--owner-email",
            "ada@acme.test",
            "--owner-name",
            "Ada Lovelace",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", text(&created));
    text(&created)
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("org id in output")
        .to_owned()
}

#[test]
fn cli_imports_leads_from_a_csv() {
    let dir = tempfile::tempdir().expect("dir");
    let org_id = create_acme(dir.path());
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "Given,Email,Phone,Budget\nGrace,grace@example.com,(415) 555-0124,\"1,200\"\n\
         Alan,alan@example.com,not a phone,\nAda,ada@example.com,,\n",
    )
    .expect("csv");
    let file = csv.to_str().expect("path");

    let unmapped = meridian(
        dir.path(),
        &[
            "import",
            "leads",
            file,
            "--org",
            &org_id,
            "--pipeline",
            "Leads",
        ],
        &[],
    );
    assert!(!unmapped.status.success());
    assert!(text(&unmapped).contains("--auto"), "{}", text(&unmapped));
    let no_pipeline = meridian(
        dir.path(),
        &[
            "import",
            "leads",
            file,
            "--org",
            &org_id,
            "--pipeline",
            "Nope",
            "--auto",
        ],
        &[],
    );
    assert!(!no_pipeline.status.success());
    assert!(
        text(&no_pipeline).contains("Leads"),
        "{}",
        text(&no_pipeline)
    );

    let mapping = dir.path().join("mapping.json");
    std::fs::write(
        &mapping,
        r#"{"Given": "first_name", "Email": "email", "Phone": "phone", "Budget": "custom_fields.budget"}"#,
    )
    .expect("mapping");
    let imported = meridian(
        dir.path(),
        &[
            "import",
            "leads",
            file,
            "--org",
            &org_id,
            "--pipeline",
            "Leads",
            "--mapping",
            mapping.to_str().expect("path"),
        ],
        &[],
    );
    let out = text(&imported);
    assert!(imported.status.success(), "{out}");
    assert!(out.contains("Read 3 rows from people.csv"), "{out}");
    assert!(out.contains("row 3: Phone: phone "), "{out}");
    assert!(
        out.contains("completed: 2 created, 0 updated, 0 skipped, 1 failed."),
        "{out}"
    );

    // The same headers again: the saved mapping is suggested, and duplicates are updated.
    let again = meridian(
        dir.path(),
        &[
            "import",
            "leads",
            file,
            "--org",
            &org_id,
            "--pipeline",
            "Leads",
            "--auto",
            "--on-duplicate",
            "update",
        ],
        &[],
    );
    let out = text(&again);
    assert!(again.status.success(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("Given") && l.ends_with("-> first_name")),
        "{out}"
    );
    assert!(
        out.contains("completed: 0 created, 2 updated, 0 skipped, 1 failed."),
        "{out}"
    );
}

#[test]
fn cli_lists_retries_and_discards_jobs() {
    use meridian_db::jobs::{self as store, Backoff, Failure, NewJob};

    let dir = tempfile::tempdir().expect("dir");
    let org_id = create_acme(dir.path());

    // A job that failed for good and one waiting to run, written as the app would.
    let db_path = dir.path().join("data").join("meridian.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (dead, waiting) = runtime.block_on(async {
        let url = format!("sqlite://{}", db_path.display());
        let db = meridian_db::Db::connect(&meridian_db::ConnectOptions {
            url,
            max_connections: 1,
        })
        .await
        .expect("open");
        let tenant = meridian_db::Tenant::for_verified_credentials(org_id.clone(), None);
        let mut tx = db.tenant(&tenant).await.expect("tx");
        let dead = store::enqueue(&mut tx, &NewJob::new("email.send", "{}").org(&org_id))
            .await
            .expect("enqueue")
            .expect("inserted");
        tx.commit().await.expect("commit");
        let claimed = store::claim(&db, "cli-test", 10).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        store::fail(
            &db,
            &claimed[0],
            "cli-test",
            "SMTP said 550: mailbox unavailable",
            Failure::Permanent,
            &Backoff::default(),
        )
        .await
        .expect("fail");
        let mut tx = db.tenant(&tenant).await.expect("tx");
        let waiting = store::enqueue(&mut tx, &NewJob::new("webhook.deliver", "{}").org(&org_id))
            .await
            .expect("enqueue")
            .expect("inserted");
        tx.commit().await.expect("commit");
        db.close().await;
        (dead, waiting)
    });

    let listed = meridian(dir.path(), &["jobs", "list", "--status", "dead"], &[]);
    let out = text(&listed);
    assert!(listed.status.success(), "{out}");
    assert!(
        out.contains("1 waiting (1 available, 0 scheduled, 0 retrying), 0 running, 1 dead"),
        "{out}"
    );
    assert!(out.contains(&dead) && out.contains("email.send"), "{out}");
    assert!(out.contains("SMTP said 550: mailbox unavailable"), "{out}");
    assert!(!out.contains(&waiting), "only dead jobs: {out}");
    let by_org = meridian(dir.path(), &["jobs", "list", "--org", &org_id], &[]);
    let out = text(&by_org);
    assert!(by_org.status.success(), "{out}");
    assert!(out.contains(&dead) && out.contains(&waiting), "{out}");
    let no_org = meridian(dir.path(), &["jobs", "list", "--org", "nope"], &[]);
    assert!(!no_org.status.success());
    assert!(text(&no_org).contains("no organization with id nope"));

    let retried = meridian(dir.path(), &["jobs", "retry", &dead], &[]);
    let out = text(&retried);
    assert!(retried.status.success(), "{out}");
    assert!(out.contains("is available again"), "{out}");
    let again = meridian(dir.path(), &["jobs", "retry", &dead], &[]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("only dead or retrying jobs can be retried"),
        "{}",
        text(&again)
    );
    let unknown = meridian(dir.path(), &["jobs", "retry", "no-such-job"], &[]);
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("no job with id no-such-job"));

    let discarded = meridian(dir.path(), &["jobs", "discard", &waiting], &[]);
    let out = text(&discarded);
    assert!(discarded.status.success(), "{out}");
    assert!(out.contains("Discarded job"), "{out}");
    let gone = meridian(dir.path(), &["jobs", "discard", &waiting], &[]);
    assert!(!gone.status.success());
    assert!(text(&gone).contains("no job with id"));
    let unknown = meridian(dir.path(), &["jobs", "discard", "no-such-job"], &[]);
    assert!(!unknown.status.success());

    let listed = meridian(dir.path(), &["jobs", "list"], &[]);
    let out = text(&listed);
    assert!(listed.status.success(), "{out}");
    assert!(out.contains(&dead) && !out.contains(&waiting), "{out}");
    assert!(out.contains("0 dead"), "{out}");
}
