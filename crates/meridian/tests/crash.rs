//! The crash test: `meridian worker` processes are killed with SIGKILL, again and again, while
//! they deliver 2,000 emails to an SMTP server on loopback. Every email must arrive; an email
//! delivered twice must be the same message (same Message-ID and text, the at-least-once
//! contract); and no job may be left running once the rescue window has passed.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meridian_app::config::ServerTransport;
use meridian_app::email::service::queue;
use meridian_app::email::store::NewMessage;
use meridian_db::{Tenant, sql};
use meridian_tests::smtp::SmtpSink;
use meridian_tests::{Engine, TestApp, both_engines, spawn_app_with};

both_engines!(killed_workers_lose_no_email);

const EMAILS: usize = 2_000;
const RESCUE_AFTER: &str = "3s";

fn worker(app: &TestApp, sink: &SmtpSink, data_dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("worker")
        .env_remove("MERIDIAN_CONFIG")
        .env("MERIDIAN_DATABASE_URL", app.database_url())
        .env("MERIDIAN_DATA_DIR", data_dir)
        .env(
            "MERIDIAN_SMTP_URL",
            format!("smtp://127.0.0.1:{}", sink.port()),
        )
        .env("MERIDIAN_WORKER_CONCURRENCY", "8")
        .env("MERIDIAN_JOB_POLL_INTERVAL", "100ms")
        .env("MERIDIAN_JOB_TIMEOUT", "2s")
        .env("MERIDIAN_JOB_RESCUE_AFTER", RESCUE_AFTER)
        .env("MERIDIAN_JOB_BACKOFF_BASE", "100ms")
        .env("MERIDIAN_JOB_BACKOFF_CAP", "1s")
        .env("MERIDIAN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start meridian worker")
}

async fn count(app: &TestApp, tenant: &Tenant, query: &str) -> i64 {
    let mut tx = app.db.tenant(tenant).await.expect("tx");
    let n = tx
        .fetch_count(sql(query).bind(tenant.org_id()))
        .await
        .expect("count");
    tx.commit().await.expect("commit");
    n
}

async fn killed_workers_lose_no_email(engine: Engine) {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port());
    let app = spawn_app_with(engine, move |config| {
        config.email.transport = ServerTransport::Smtp(url);
    })
    .await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let tenant = Tenant::for_verified_credentials(owner.org_id.clone(), None);

    // 2,000 messages queued as the app queues them: the log row and its job in one transaction.
    let mut expected = HashSet::new();
    for batch in 0..20 {
        let mut tx = app.db.tenant(&tenant).await.expect("tx");
        for n in 0..EMAILS / 20 {
            let id = meridian_db::new_id();
            let message_id = format!("{id}@crash.test");
            let message = NewMessage {
                lead_id: None,
                template_id: None,
                to_address: format!("person{batch}-{n}@example.com"),
                from_address: "Acme <team@acme.test>".to_owned(),
                reply_to: None,
                subject: format!("Message {batch}-{n}"),
                body_html: format!("<p>Body {batch}-{n}</p>"),
                body_text: format!("Body {batch}-{n}"),
                category: "transactional".to_owned(),
                message_id: message_id.clone(),
                unsubscribe_url: None,
                created_by: None,
            };
            queue(&mut tx, &id, &message).await.expect("queue");
            expected.insert(format!("<{message_id}>"));
        }
        tx.commit().await.expect("commit");
    }

    let sent_query = "SELECT COUNT(*) FROM email_messages WHERE org_id = $1 AND status = 'sent'";
    let data_dir = tempfile::tempdir().expect("data dir");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut kills = 0;
    let mut current = worker(&app, &sink, data_dir.path());
    // Kill each worker once it has made progress (so every kill lands mid-delivery), until ten
    // kills or until the work is nearly done; then one last worker finishes the job.
    while kills < 10 {
        let before = count(&app, &tenant, sent_query).await;
        if before as usize >= EMAILS * 9 / 10 {
            break;
        }
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = count(&app, &tenant, sent_query).await;
            if now > before + 40 || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        current.kill().expect("SIGKILL");
        current.wait().expect("reap");
        kills += 1;
        current = worker(&app, &sink, data_dir.path());
        assert!(Instant::now() < deadline, "the crash loop took too long");
    }
    loop {
        if count(&app, &tenant, sent_query).await as usize == EMAILS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {EMAILS} emails were sent after {kills} kills",
            count(&app, &tenant, sent_query).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = current.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("SIGTERM");
    current.wait().expect("the last worker exits");
    assert!(
        kills >= 3,
        "the workers were killed mid-delivery ({kills} times)"
    );

    // Nothing lost; duplicates are the same message.
    let received = sink.messages();
    let mut by_id: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for mail in &received {
        let id = mail
            .header("Message-ID")
            .expect("every email has a Message-ID");
        by_id.entry(id).or_default().push((
            mail.header("Subject").unwrap_or_default(),
            mail.text_body().unwrap_or_default(),
        ));
    }
    let arrived: HashSet<String> = by_id.keys().cloned().collect();
    assert_eq!(
        arrived.difference(&expected).count(),
        0,
        "unknown messages arrived"
    );
    assert_eq!(expected.difference(&arrived).count(), 0, "emails were lost");
    let mut duplicates = 0;
    for (id, copies) in &by_id {
        for copy in &copies[1..] {
            assert_eq!(
                copy, &copies[0],
                "{id} was delivered twice with different content"
            );
            duplicates += 1;
        }
    }
    eprintln!(
        "{engine:?}: {EMAILS} emails, {kills} kills, {} deliveries ({duplicates} repeated with the same Message-ID)",
        received.len()
    );

    // No job was left running, and the rescues happened (killed jobs ran again).
    let running = count(
        &app,
        &tenant,
        "SELECT COUNT(*) FROM jobs WHERE org_id = $1 AND status = 'running'",
    )
    .await;
    assert_eq!(running, 0, "jobs left running after the rescue window");
    let unfinished = count(
        &app,
        &tenant,
        "SELECT COUNT(*) FROM jobs WHERE org_id = $1 AND kind = 'email.send' AND status <> 'succeeded'",
    )
    .await;
    assert_eq!(unfinished, 0);
    let rescued = count(
        &app,
        &tenant,
        "SELECT COUNT(*) FROM jobs WHERE org_id = $1 AND kind = 'email.send' AND attempts > 1",
    )
    .await;
    assert!(rescued > 0, "no job was interrupted by the kills");
}
