//! Email sequences: steps sent on schedule, and every way a sequence stops (the series ends, a
//! reply, a stage change, an unsubscribe, a person).

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, http, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    sequences_are_validated_and_permissioned,
    steps_go_out_on_schedule_until_the_series_ends,
    a_reply_a_stage_change_or_an_unsubscribe_stops_a_sequence,
    enrolling_reports_each_lead_and_a_paused_sequence_resumes,
);

async fn template(app: &TestApp, owner: &Tokens, name: &str) -> String {
    let t = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": name, "subject": format!("{name} for {{{{lead.first_name}}}}"), "body_text": format!("{name} body")}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{:?}", t.body);
    t.body["id"].as_str().expect("id").to_owned()
}

async fn lead(app: &TestApp, owner: &Tokens, first: &str, email: Option<&str>) -> String {
    let l = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": first, "email": email}),
        )
        .await;
    assert_eq!(l.status, StatusCode::CREATED, "{:?}", l.body);
    l.body["id"].as_str().expect("id").to_owned()
}

/// A two-step sequence: the first step at once, the second an hour later.
async fn two_steps(app: &TestApp, owner: &Tokens) -> String {
    let first = template(app, owner, "Welcome").await;
    let second = template(app, owner, "Follow-up").await;
    let s = app
        .post(
            "/api/v1/email/sequences",
            &owner.access,
            json!({"name": "Onboarding", "steps": [
                {"template_id": first, "delay_minutes": 0},
                {"template_id": second, "delay_minutes": 60},
            ]}),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{:?}", s.body);
    s.body["id"].as_str().expect("id").to_owned()
}

async fn enroll(app: &TestApp, owner: &Tokens, sequence: &str, leads: &[&str]) -> Value {
    let r = app
        .post(
            &format!("/api/v1/email/sequences/{sequence}/enrollments"),
            &owner.access,
            json!({"lead_ids": leads}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn enrollment_of(app: &TestApp, owner: &Tokens, lead: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/email/enrollments?lead_id={lead}"),
            &owner.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"][0].clone()
}

async fn subjects(app: &TestApp, owner: &Tokens, lead: &str) -> Vec<String> {
    let r = app
        .get(
            &format!("/api/v1/email/messages?lead_id={lead}"),
            &owner.access,
        )
        .await;
    let mut subjects: Vec<String> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    subjects.reverse();
    subjects
}

/// Waits until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes every scheduled step due now (the test does not wait an hour).
async fn fast_forward(app: &TestApp) {
    app.admin_exec(
        "UPDATE jobs SET run_at = created_at WHERE kind = 'email.sequence_step' AND status = 'scheduled'",
    )
    .await;
}

async fn sequences_are_validated_and_permissioned(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let welcome = template(&app, &owner, "Standalone").await;

    let bad = app
        .post(
            "/api/v1/email/sequences",
            &owner.access,
            json!({"name": "", "steps": [
                {"template_id": "nope", "delay_minutes": 0},
                {"template_id": welcome, "delay_minutes": -5},
            ]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        ["name", "steps[0].template_id", "steps[1].delay_minutes"]
    );
    let empty = app
        .post(
            "/api/v1/email/sequences",
            &owner.access,
            json!({"name": "Empty", "steps": []}),
        )
        .await;
    assert_eq!(empty.body["errors"][0]["field"], "steps");

    let id = two_steps(&app, &owner).await;
    let taken = app
        .post(
            "/api/v1/email/sequences",
            &owner.access,
            json!({"name": "onboarding", "steps": [{"template_id": welcome, "delay_minutes": 0}]}),
        )
        .await;
    assert_eq!(taken.body["errors"][0]["field"], "name");

    let renamed = app
        .patch(
            &format!("/api/v1/email/sequences/{id}"),
            &owner.access,
            json!({"name": "Onboarding v2", "steps": [{"template_id": welcome, "delay_minutes": 30}]}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(renamed.body["name"], "Onboarding v2");
    assert_eq!(renamed.body["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(renamed.body["steps"][0]["delay_minutes"], 30);

    let listed = app.get("/api/v1/email/sequences", &member.access).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let refused = app
        .patch(
            &format!("/api/v1/email/sequences/{id}"),
            &member.access,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let deleted = app
        .delete(&format!("/api/v1/email/sequences/{id}"), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/api/v1/email/sequences/{id}"), &owner.access)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn steps_go_out_on_schedule_until_the_series_ends(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sequence = two_steps(&app, &owner).await;
    let ana = lead(&app, &owner, "Ana", Some("ana@example.com")).await;
    let worker = app.start_worker();

    let enrolled = enroll(&app, &owner, &sequence, &[&ana]).await;
    assert_eq!(enrolled["results"][0]["status"], 201);
    eventually("the first step is sent", || async {
        subjects(&app, &owner, &ana).await == ["Welcome for Ana"]
    })
    .await;
    let after_first = enrollment_of(&app, &owner, &ana).await;
    assert_eq!(after_first["status"], "active");
    assert_eq!(after_first["next_position"], 1);
    assert_eq!(after_first["steps_sent"], 1);
    // The second step waits its hour.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subjects(&app, &owner, &ana).await.len(), 1);

    fast_forward(&app).await;
    eventually("the second step is sent and the series ends", || async {
        enrollment_of(&app, &owner, &ana).await["status"] == "completed"
    })
    .await;
    assert_eq!(
        subjects(&app, &owner, &ana).await,
        ["Welcome for Ana", "Follow-up for Ana"]
    );
    let done = enrollment_of(&app, &owner, &ana).await;
    assert_eq!(done["steps_sent"], 2);
    assert!(done["finished_at"].is_string());
    let sequence_now = app
        .get(
            &format!("/api/v1/email/sequences/{sequence}"),
            &owner.access,
        )
        .await;
    assert_eq!(sequence_now.body["active_enrollments"], 0);
    let activity = app
        .get(&format!("/api/v1/leads/{ana}/activity"), &owner.access)
        .await;
    assert!(
        activity.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|a| a["kind"] == "sequence_started")
    );
    worker.stop().await;
}

async fn a_reply_a_stage_change_or_an_unsubscribe_stops_a_sequence(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sequence = two_steps(&app, &owner).await;
    let replier = lead(&app, &owner, "Rita", Some("rita@example.com")).await;
    let mover = lead(&app, &owner, "Max", Some("max@example.com")).await;
    let leaver = lead(&app, &owner, "Lea", Some("lea@example.com")).await;
    let manual = lead(&app, &owner, "Manu", Some("manu@example.com")).await;
    let worker = app.start_worker();
    enroll(
        &app,
        &owner,
        &sequence,
        &[&replier, &mover, &leaver, &manual],
    )
    .await;
    for lead in [&replier, &mover, &leaver, &manual] {
        eventually("the first step is sent", || async {
            subjects(&app, &owner, lead).await.len() == 1
        })
        .await;
    }

    // A reply, reported by a mail provider's inbound hook with the message it answers.
    let first = app
        .get(
            &format!("/api/v1/email/messages?lead_id={replier}"),
            &owner.access,
        )
        .await;
    let answered = first.body["items"][0]["message_id"].as_str().expect("id");
    let reply = app
        .post(
            "/api/v1/email/replies",
            &owner.access,
            json!({"from": "someone-else@example.com", "in_reply_to": format!("<{answered}>"),
                   "subject": "Re: Welcome", "text": "Yes, call me tomorrow."}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["lead_id"], replier.as_str());
    assert_eq!(reply.body["sequences_stopped"], 1);
    let unknown = app
        .post(
            "/api/v1/email/replies",
            &owner.access,
            json!({"from": "stranger@example.com"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A stage change: noticed when the next step comes due.
    let moved = app
        .post(
            &format!("/api/v1/leads/{mover}/stage"),
            &owner.access,
            json!({"stage": "contacted"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);

    // An unsubscribe through the link in the first email (marketing mail carries one).
    let mail = app
        .get(
            &format!("/api/v1/email/messages?lead_id={leaver}"),
            &owner.access,
        )
        .await;
    let link = mail.body["items"][0]["body_text"]
        .as_str()
        .and_then(|t| t.split("Unsubscribe: ").nth(1))
        .expect("an unsubscribe link")
        .trim()
        .to_owned();
    let response = http().post(&link).send().await.expect("unsubscribe");
    assert_eq!(response.status(), StatusCode::OK);
    let leaver_now = enrollment_of(&app, &owner, &leaver).await;
    assert_eq!(leaver_now["status"], "stopped");
    assert_eq!(leaver_now["stop_reason"], "unsubscribed");

    // A person stops one by hand.
    let manual_enrollment = enrollment_of(&app, &owner, &manual).await;
    let id = manual_enrollment["id"].as_str().expect("id");
    let stopped = app
        .post(
            &format!("/api/v1/email/enrollments/{id}/stop"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(stopped.status, StatusCode::OK, "{:?}", stopped.body);
    assert_eq!(stopped.body["stop_reason"], "manual");
    let again = app
        .post(
            &format!("/api/v1/email/enrollments/{id}/stop"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    fast_forward(&app).await;
    eventually("the mover's sequence stops at its next step", || async {
        enrollment_of(&app, &owner, &mover).await["status"] == "stopped"
    })
    .await;
    assert_eq!(
        enrollment_of(&app, &owner, &mover).await["stop_reason"],
        "stage_changed"
    );
    let replier_now = enrollment_of(&app, &owner, &replier).await;
    assert_eq!(replier_now["stop_reason"], "replied");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for lead in [&replier, &mover, &leaver, &manual] {
        assert_eq!(
            subjects(&app, &owner, lead).await.len(),
            1,
            "no second step after the sequence stopped"
        );
    }
    let activity = app
        .get(&format!("/api/v1/leads/{replier}/activity"), &owner.access)
        .await;
    let replied = activity.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["kind"] == "email_replied")
        .cloned()
        .expect("the reply is on the lead's activity");
    assert_eq!(replied["data"]["snippet"], "Yes, call me tomorrow.");
    worker.stop().await;
}

async fn enrolling_reports_each_lead_and_a_paused_sequence_resumes(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sequence = two_steps(&app, &owner).await;
    let ok = lead(&app, &owner, "Ok", Some("ok@example.com")).await;
    let no_email = lead(&app, &owner, "Nomail", None).await;
    let suppressed = lead(&app, &owner, "Sup", Some("sup@example.com")).await;
    app.post(
        "/api/v1/email/suppressions",
        &owner.access,
        json!({"email": "sup@example.com"}),
    )
    .await;
    let other = app.create_org("Other", "owner@other.test").await;
    let foreign = lead(&app, &other, "Foreign", Some("f@example.com")).await;

    let results = enroll(
        &app,
        &owner,
        &sequence,
        &[&ok, &no_email, &suppressed, &foreign, &ok],
    )
    .await;
    let statuses: Vec<i64> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(statuses, [201, 422, 422, 404, 409]);
    assert!(
        results["results"][1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no email address")
    );

    // Paused: nothing is sent and no one can join; turned on again, the due step goes out.
    let paused = app
        .patch(
            &format!("/api/v1/email/sequences/{sequence}"),
            &owner.access,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(paused.body["enabled"], false);
    let refused = app
        .post(
            &format!("/api/v1/email/sequences/{sequence}/enrollments"),
            &owner.access,
            json!({"lead_ids": [no_email]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let worker = app.start_worker();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(subjects(&app, &owner, &ok).await.is_empty(), "paused");
    app.patch(
        &format!("/api/v1/email/sequences/{sequence}"),
        &owner.access,
        json!({"enabled": true}),
    )
    .await;
    eventually("the due step goes out once resumed", || async {
        subjects(&app, &owner, &ok).await == ["Welcome for Ok"]
    })
    .await;
    worker.stop().await;
}
