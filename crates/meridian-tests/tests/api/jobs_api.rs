//! The jobs API and Settings → Operations: admins see their organization's queue (counts,
//! depth, throughput, latency, failures) and retry or discard jobs; members are refused; another
//! organization's jobs do not exist. Every test on both engines.

use meridian_app::jobs;
use meridian_db::jobs::{self as store, Backoff, Failure, NewJob};
use meridian_db::{Db, Tenant};
use meridian_tests::{Engine, PASSWORD, TestApp, both_engines, browser, csrf_from_html, spawn_app};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

both_engines!(
    admins_see_the_queue_and_retry_or_discard_jobs,
    metrics_report_every_organizations_queue,
    members_are_refused_and_other_orgs_jobs_do_not_exist,
    the_operations_page_shows_failures_and_retries_by_form,
);

fn tenant(org_id: &str) -> Tenant {
    Tenant::for_verified_credentials(org_id.to_owned(), None)
}

/// Enqueues `job` for `org_id` (committed); returns its id.
pub async fn enqueued(db: &Db, org_id: &str, job: NewJob) -> String {
    let mut tx = db.tenant(&tenant(org_id)).await.expect("tx");
    let id = jobs::enqueue_for_tenant(&mut tx, job)
        .await
        .expect("enqueue")
        .expect("inserted");
    tx.commit().await.expect("commit");
    id
}

/// Claims job `id` as a worker would (other jobs claimed with it are given back). It is left
/// running.
async fn claimed(db: &Db, id: &str) -> meridian_db::jobs::Job {
    let worker = format!("test-worker-{id}");
    let claimed = store::claim(db, &worker, 1000).await.expect("claim");
    let others: Vec<String> = claimed
        .iter()
        .filter(|j| j.id != id)
        .map(|j| j.id.clone())
        .collect();
    store::release(db, &worker, &others).await.expect("release");
    claimed
        .into_iter()
        .find(|j| j.id == id)
        .expect("the job was claimed")
}

/// A job of `org_id` that failed for good with `error`: enqueued, claimed and failed
/// permanently, as the runner does with a handler's permanent error.
pub async fn dead_job(app: &TestApp, org_id: &str, job: NewJob, error: &str) -> String {
    let id = enqueued(&app.db, org_id, job).await;
    let run = claimed(&app.db, &id).await;
    let worker = run.locked_by.clone().expect("locked");
    let status = store::fail(
        &app.db,
        &run,
        &worker,
        error,
        Failure::Permanent,
        &Backoff::default(),
    )
    .await
    .expect("fail");
    assert_eq!(status, Some(store::JobStatus::Dead));
    id
}

/// A job of `org_id` that ran and succeeded.
async fn succeeded_job(app: &TestApp, org_id: &str, kind: &str) -> String {
    let id = enqueued(&app.db, org_id, NewJob::new(kind, "{}")).await;
    let run = claimed(&app.db, &id).await;
    let worker = run.locked_by.clone().expect("locked");
    assert!(
        store::complete(&app.db, &run, &worker)
            .await
            .expect("complete")
    );
    id
}

/// The `meridian_jobs` and `meridian_job_queue_depth` lines of a `/metrics` scrape, sorted.
async fn job_lines(app: &TestApp) -> Vec<String> {
    let scrape = app.call("GET", "/metrics", None, None).await;
    assert_eq!(scrape.status, StatusCode::OK);
    let text = scrape.body.as_str().expect("text exposition");
    assert!(text.contains("meridian_job_metrics_up 1\n"), "{text}");
    // The runner's counters and durations (`meridian_jobs_total`, ...) are process-wide and
    // hold other tests' jobs: only the two families read from this app's database are compared.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| {
            line.starts_with("meridian_job_queue_depth ") || line.starts_with("meridian_jobs{")
        })
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

async fn metrics_report_every_organizations_queue(engine: Engine) {
    let app = spawn_app(engine).await;
    let acme = app.create_org("Acme Growth", "ada@acme.test").await;
    let globex = app.create_org("Globex", "hank@globex.test").await;
    assert_eq!(job_lines(&app).await, ["meridian_job_queue_depth 0"]);

    dead_job(
        &app,
        &globex.org_id,
        NewJob::new("test.email", "{}"),
        "SMTP said 550",
    )
    .await;
    succeeded_job(&app, &acme.org_id, "test.noop").await;
    let busy = enqueued(&app.db, &acme.org_id, NewJob::new("test.slow", "{}")).await;
    claimed(&app.db, &busy).await;
    enqueued(&app.db, &acme.org_id, NewJob::new("test.noop", "{}")).await;
    enqueued(&app.db, &globex.org_id, NewJob::new("test.noop", "{}")).await;
    enqueued(
        &app.db,
        &globex.org_id,
        NewJob::new("test.digest", "{}").run_at(meridian_db::now() + time::Duration::hours(2)),
    )
    .await;

    // Both organizations' jobs, the succeeded one left out; the depth counts the waiting ones.
    assert_eq!(
        job_lines(&app).await,
        [
            "meridian_job_queue_depth 3",
            "meridian_jobs{kind=\"test.digest\",status=\"scheduled\"} 1",
            "meridian_jobs{kind=\"test.email\",status=\"dead\"} 1",
            "meridian_jobs{kind=\"test.noop\",status=\"available\"} 2",
            "meridian_jobs{kind=\"test.slow\",status=\"running\"} 1",
        ]
    );
}

fn problem_detail(body: &Value) -> String {
    body["detail"].as_str().unwrap_or_default().to_owned()
}

async fn admins_see_the_queue_and_retry_or_discard_jobs(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let admin = app.add_member(&owner, "sam@acme.test", "admin").await;
    let org = owner.org_id.clone();

    // Empty: zeros everywhere.
    let empty = app.get("/api/v1/jobs", &owner.access).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["queue_depth"], 0);
    assert_eq!(empty.body["recent_failures"], json!([]));
    assert!(empty.body["last_hour"]["latency_p50_ms"].is_null());

    let done = succeeded_job(&app, &org, "test.noop").await;
    let dead = dead_job(
        &app,
        &org,
        NewJob::new("test.email", r#"{"lead_id": "L1"}"#).max_attempts(3),
        "SMTP said 550: mailbox unavailable",
    )
    .await;
    let waiting = enqueued(&app.db, &org, NewJob::new("test.noop", "{}")).await;
    let later = enqueued(
        &app.db,
        &org,
        NewJob::new("test.digest", "{}").run_at(meridian_db::now() + time::Duration::hours(2)),
    )
    .await;

    let overview = app.get("/api/v1/jobs", &admin.access).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    let body = &overview.body;
    assert_eq!(body["queue_depth"], 2, "{body}");
    assert_eq!(
        body["by_status"],
        json!({"scheduled": 1, "available": 1, "running": 0, "succeeded": 1, "retrying": 0, "dead": 1})
    );
    let counts = body["counts"].as_array().expect("counts");
    assert!(counts.contains(&json!({"kind": "test.email", "status": "dead", "count": 1})));
    assert!(counts.contains(&json!({"kind": "test.noop", "status": "succeeded", "count": 1})));
    let kinds = body["kinds"].as_array().expect("kinds");
    let noop = kinds
        .iter()
        .find(|k| k["kind"] == "test.noop")
        .expect("test.noop");
    assert_eq!(noop["succeeded_last_hour"], 1);
    assert_eq!(noop["waiting"], 1);
    assert_eq!(body["last_hour"]["succeeded"], 1);
    assert_eq!(
        body["last_hour"]["latency_samples"], 2,
        "the succeeded and the dead attempt finished this hour"
    );
    assert!(body["last_hour"]["latency_p50_ms"].as_f64().expect("p50") >= 0.0);
    assert!(
        body["last_hour"]["latency_p95_ms"].as_f64().expect("p95")
            >= body["last_hour"]["latency_p50_ms"].as_f64().expect("p50")
    );
    let failures = body["recent_failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["id"], dead.as_str());
    assert_eq!(failures[0]["status"], "dead");
    assert_eq!(failures[0]["attempts"], 1);
    assert_eq!(
        failures[0]["last_error"],
        "SMTP said 550: mailbox unavailable"
    );
    assert!(failures[0]["finished_at"].is_string());
    assert!(
        failures[0].get("payload").is_none(),
        "lists leave payloads out"
    );
    let bad = app.get("/api/v1/jobs?limit=0", &owner.access).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "limit");

    let one = app
        .get(&format!("/api/v1/jobs/{dead}"), &owner.access)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["kind"], "test.email");
    assert_eq!(one.body["payload"], json!({"lead_id": "L1"}));
    assert_eq!(
        app.get("/api/v1/jobs/no-such-job", &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Retry: only dead or retrying jobs.
    for (id, status) in [(&done, "succeeded"), (&waiting, "available")] {
        let refused = app
            .post(
                &format!("/api/v1/jobs/{id}/retry"),
                &owner.access,
                json!({}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
        assert_eq!(refused.headers["content-type"], "application/problem+json");
        assert!(
            problem_detail(&refused.body).contains(&format!("This job is {status}")),
            "{}",
            refused.body
        );
    }
    let retried = app
        .post(
            &format!("/api/v1/jobs/{dead}/retry"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["status"], "available");
    assert_eq!(retried.body["attempts"], 1);
    let after = app.get("/api/v1/jobs", &owner.access).await;
    assert_eq!(after.body["by_status"]["dead"], 0);
    assert_eq!(after.body["by_status"]["available"], 2);
    assert_eq!(after.body["recent_failures"], json!([]));
    let twice = app
        .post(
            &format!("/api/v1/jobs/{dead}/retry"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);

    // A running job can be neither retried nor discarded.
    let busy = enqueued(&app.db, &org, NewJob::new("test.slow", "{}")).await;
    claimed(&app.db, &busy).await;
    for action in ["retry", "discard"] {
        let refused = app
            .post(
                &format!("/api/v1/jobs/{busy}/{action}"),
                &owner.access,
                json!({}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{action}");
        assert!(
            problem_detail(&refused.body).contains("running"),
            "{}",
            refused.body
        );
    }
    let succeeded = app
        .post(
            &format!("/api/v1/jobs/{done}/discard"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(succeeded.status, StatusCode::CONFLICT);
    assert!(problem_detail(&succeeded.body).contains("succeeded"));

    // Discard: the retried (now available) job, a scheduled one, and a dead one.
    let another_dead = dead_job(&app, &org, NewJob::new("test.email", "{}"), "bounced").await;
    for id in [&dead, &later, &another_dead] {
        let discarded = app
            .post(
                &format!("/api/v1/jobs/{id}/discard"),
                &owner.access,
                json!({}),
            )
            .await;
        assert_eq!(
            discarded.status,
            StatusCode::NO_CONTENT,
            "{}",
            discarded.body
        );
        assert_eq!(
            app.get(&format!("/api/v1/jobs/{id}"), &owner.access)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "discarded jobs are gone"
        );
    }
    let again = app
        .post(
            &format!("/api/v1/jobs/{dead}/discard"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // A unique job whose key has another copy waiting cannot come back beside it.
    let unique = || NewJob::new("test.sync", "{}").unique_key("lead-7");
    let dead_unique = dead_job(&app, &org, unique(), "timeout").await;
    let copy = enqueued(&app.db, &org, unique()).await;
    let clash = app
        .post(
            &format!("/api/v1/jobs/{dead_unique}/retry"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.body);
    assert!(problem_detail(&clash.body).contains("unique key"));
    let kept = app
        .get(&format!("/api/v1/jobs/{dead_unique}"), &owner.access)
        .await;
    assert_eq!(
        kept.body["status"], "dead",
        "the refused retry changed nothing"
    );
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{copy}"), &owner.access)
            .await
            .body["status"],
        "available"
    );

    // Both operations are in the audit log.
    for action in ["job.retried", "job.discarded"] {
        let log = app
            .get(&format!("/api/v1/audit-log?action={action}"), &owner.access)
            .await;
        let items = log.body["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{action} is audited");
        assert_eq!(items[0]["target"]["type"], "job");
    }

    // The endpoints are in the OpenAPI description.
    let spec = app.call("GET", "/api/openapi.json", None, None).await;
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/retry",
        "/api/v1/jobs/{id}/discard",
    ] {
        assert!(spec.body["paths"].get(path).is_some(), "{path} documented");
    }
}

async fn members_are_refused_and_other_orgs_jobs_do_not_exist(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let manager = app.add_member(&a, "max@acme.test", "manager").await;
    let member = app.add_member(&a, "mo@acme.test", "member").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    let mine = dead_job(&app, &a.org_id, NewJob::new("test.email", "{}"), "boom").await;
    let theirs = dead_job(
        &app,
        &b.org_id,
        NewJob::new("test.secret", "{}"),
        "bright.test private failure",
    )
    .await;

    for who in [&manager, &member] {
        let list = app.get("/api/v1/jobs", &who.access).await;
        assert_eq!(list.status, StatusCode::FORBIDDEN, "{}", list.body);
        assert!(problem_detail(&list.body).contains("jobs.manage"));
        assert_eq!(list.headers["content-type"], "application/problem+json");
        for (method, path) in [
            ("GET", format!("/api/v1/jobs/{mine}")),
            ("POST", format!("/api/v1/jobs/{mine}/retry")),
            ("POST", format!("/api/v1/jobs/{mine}/discard")),
        ] {
            let reply = app
                .call(method, &path, Some(&who.access), Some(json!({})))
                .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    let me = app.get("/api/v1/auth/me", &a.access).await;
    assert!(
        me.body["permissions"]
            .as_array()
            .expect("permissions")
            .contains(&json!("jobs.manage"))
    );

    // A's owner: B's job does not exist, and B's failures never show.
    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{theirs}")),
        ("POST", format!("/api/v1/jobs/{theirs}/retry")),
        ("POST", format!("/api/v1/jobs/{theirs}/discard")),
    ] {
        let reply = app
            .call(method, &path, Some(&a.access), Some(json!({})))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let list = app.get("/api/v1/jobs", &a.access).await;
    let text = list.body.to_string();
    assert!(text.contains(&mine));
    assert!(!text.contains(&theirs) && !text.contains("test.secret"));
    assert!(!text.contains("bright.test"));
    let b_view = app.get(&format!("/api/v1/jobs/{theirs}"), &b.access).await;
    assert_eq!(b_view.body["status"], "dead", "B's job is untouched");
    assert_eq!(b_view.body["last_error"], "bright.test private failure");
}

async fn signed_in(app: &TestApp, email: &str) -> Client {
    let client = browser();
    let login = app.web_login(&client, email, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "{email} signs in");
    client
}

async fn the_operations_page_shows_failures_and_retries_by_form(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "mo@acme.test", "member").await;
    let org = owner.org_id.clone();
    let client = signed_in(&app, "ada@acme.test").await;

    // Nothing yet: an empty state, and the entry under Settings.
    let (status, html) = app.page(&client, "/settings/operations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No background work yet"), "{html}");
    assert!(html.contains("No failures"));
    assert!(html.contains("href=\"/settings/operations\" class=\"nav-item active\""));

    succeeded_job(&app, &org, "test.noop").await;
    let dead = dead_job(
        &app,
        &org,
        NewJob::new("test.email", "{}"),
        "SMTP said 550: <mailbox> unavailable",
    )
    .await;
    let (status, html) = app.page(&client, "/settings/operations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("No background work yet"));
    assert!(html.contains("<code>test.email</code>") && html.contains("<code>test.noop</code>"));
    assert!(
        html.contains("SMTP said 550: &#60;mailbox&#62; unavailable")
            && !html.contains("<mailbox>"),
        "the error is shown, escaped"
    );
    assert!(html.contains("job-status-dead"));
    assert!(
        html.contains("stat stat-alert"),
        "dead jobs are highlighted"
    );
    assert!(!html.contains("style="), "no inline styles (CSP)");
    let retry_action = format!("action=\"/settings/operations/jobs/{dead}/retry\"");
    assert!(html.contains(&retry_action));
    assert!(html.contains(&format!(
        "href=\"/settings/operations/jobs/{dead}/discard\""
    )));
    let csrf = csrf_from_html(&html);

    // The form needs its CSRF token.
    let retry_path = format!("/settings/operations/jobs/{dead}/retry");
    let (status, _, _) = app.post_form(&client, &retry_path, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, location, _) = app
        .post_form(&client, &retry_path, &[("csrf_token", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/settings/operations?notice=retried");
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Job queued to run again."));
    assert!(html.contains("No failures"));
    let job = app
        .get(&format!("/api/v1/jobs/{dead}"), &owner.access)
        .await;
    assert_eq!(job.body["status"], "available");
    // Retrying it again explains why not, on the page.
    let (status, _, html) = app
        .post_form(&client, &retry_path, &[("csrf_token", &csrf)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("cannot be retried") && html.contains("alert-danger"));

    // Discard asks first, then removes the job.
    let doomed = dead_job(&app, &org, NewJob::new("test.webhook", "{}"), "410 Gone").await;
    let discard_path = format!("/settings/operations/jobs/{doomed}/discard");
    let (status, html) = app.page(&client, &discard_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Discard this test.webhook job?"), "{html}");
    assert!(html.contains(&format!("action=\"{discard_path}\"")));
    let (status, location, _) = app
        .post_form(&client, &discard_path, &[("csrf_token", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/settings/operations?notice=discarded");
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Job discarded."));
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{doomed}"), &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Members have no Operations page.
    let member = signed_in(&app, "mo@acme.test").await;
    let (status, _) = app.page(&member, "/settings/operations").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, home) = app.page(&member, "/").await;
    assert!(!home.contains("href=\"/settings/operations\""));
    let member_csrf = csrf_from_html(&home);
    let (status, _, _) = app
        .post_form(
            &member,
            &format!("/settings/operations/jobs/{dead}/discard"),
            &[("csrf_token", &member_csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
