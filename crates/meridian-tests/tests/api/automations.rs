//! Automations: checked definitions and versions, runs fired by lead events with each step
//! recorded, conditions and branches, waits, round-robin, retries that end in a failed run, loop
//! cutting, manual runs and the gallery.

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    definitions_are_checked_and_versioned,
    a_new_lead_runs_its_actions_and_each_step_is_recorded,
    conditions_branches_and_waits_steer_a_run,
    a_failing_step_retries_then_fails_and_can_be_retried,
    an_automation_that_retriggers_itself_is_cut,
    round_robin_manual_runs_and_the_gallery,
    a_schedule_runs_once_per_tick_on_the_leads_that_qualify,
);

async fn create(app: &TestApp, owner: &Tokens, body: Value) -> Value {
    let created = app.post("/api/v1/automations", &owner.access, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body
}

async fn lead(app: &TestApp, owner: &Tokens, body: Value) -> String {
    let l = app.post("/api/v1/leads", &owner.access, body).await;
    assert_eq!(l.status, StatusCode::CREATED, "{:?}", l.body);
    l.body["id"].as_str().expect("id").to_owned()
}

async fn runs(app: &TestApp, owner: &Tokens, automation: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/automations/{automation}/runs?limit=100"),
            &owner.access,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until every run of the automation has ended and there are `n` of them.
async fn settled(app: &TestApp, owner: &Tokens, automation: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = runs(app, owner, automation).await;
        if all.len() == n
            && all
                .iter()
                .all(|r| !matches!(r["status"].as_str(), Some("queued") | Some("waiting")))
        {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs never settled at {n}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_detail(app: &TestApp, owner: &Tokens, run: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/automation-runs/{run}"), &owner.access)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn tags(app: &TestApp, owner: &Tokens, lead: &str) -> Vec<String> {
    let l = app
        .get(&format!("/api/v1/leads/{lead}"), &owner.access)
        .await;
    l.body["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn template(app: &TestApp, owner: &Tokens) -> String {
    let t = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": "Hello", "subject": "Hello {{lead.first_name}}", "body_text": "Hi"}),
        )
        .await;
    t.body["id"].as_str().expect("id").to_owned()
}

fn field_errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn definitions_are_checked_and_versioned(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let manager = app.add_member(&owner, "manager@acme.test", "manager").await;

    let unknown_type = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "X", "definition": {"trigger": {"type": "lead_created"},
                   "actions": [{"type": "launch_rocket"}]}}),
        )
        .await;
    assert_eq!(unknown_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_errors(&unknown_type.body),
        ["definition.actions[0].type"]
    );

    let bad_refs = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "X", "definition": {
                "trigger": {"type": "stage_changed", "to": "nowhere"},
                "conditions": {"rules": [{"field": "shoe_size", "op": "equals", "value": 9}]},
                "actions": [
                    {"type": "send_email", "template_id": "missing"},
                    {"type": "branch", "conditions": {}, "then": [{"type": "change_stage", "stage": "limbo"}]},
                    {"type": "wait"},
                ]}}),
        )
        .await;
    assert_eq!(bad_refs.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_errors(&bad_refs.body),
        [
            "definition.trigger.to",
            "definition.conditions.rules[0].field",
            "definition.actions[0].template_id",
            "definition.actions[1].then[0].stage",
            "definition.actions[2]",
        ]
    );

    let created = create(
        &app,
        &owner,
        json!({"name": "Tag new leads", "definition": {"trigger": {"type": "lead_created"},
               "actions": [{"type": "add_tag", "tag": "new"}]}}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["version"], 1);
    assert_eq!(created["enabled"], true);
    let renamed = app
        .patch(
            &format!("/api/v1/automations/{id}"),
            &manager.access,
            json!({"name": "Tag and stage new leads"}),
        )
        .await;
    assert_eq!(renamed.body["version"], 1, "a rename is not a new version");
    let changed = app
        .patch(
            &format!("/api/v1/automations/{id}"),
            &manager.access,
            json!({"definition": {"trigger": {"type": "lead_created"},
                   "actions": [{"type": "add_tag", "tag": "new"}, {"type": "change_stage", "stage": "contacted"}]}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["version"], 2);
    let versions = app
        .get(&format!("/api/v1/automations/{id}/versions"), &owner.access)
        .await;
    assert_eq!(versions.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        versions.body["items"][1]["definition"]["actions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let forbidden = app.get("/api/v1/automations", &member.access).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let audit = app.get("/api/v1/audit-log", &owner.access).await;
    assert!(audit.body.to_string().contains("automation.changed"));

    let deleted = app
        .delete(&format!("/api/v1/automations/{id}"), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

async fn a_new_lead_runs_its_actions_and_each_step_is_recorded(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let manager = app.add_member(&owner, "manager@acme.test", "manager").await;
    let template = template(&app, &owner).await;
    let automation = create(
        &app,
        &owner,
        json!({"name": "Welcome", "definition": {"trigger": {"type": "lead_created"},
               "actions": [
                   {"type": "send_email", "template_id": template},
                   {"type": "add_tag", "tag": "welcomed"},
                   {"type": "create_task", "title": "Call them", "task_type": "call", "due_in_minutes": 60},
                   {"type": "change_stage", "stage": "contacted"},
                   {"type": "notify", "audience": {"to": "role", "role": "manager"}, "message": "A new lead came in"},
               ]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let worker = app.start_worker();
    let ana = lead(
        &app,
        &owner,
        json!({"first_name": "Ana", "email": "ana@example.com", "assigned_to": owner.user_id}),
    )
    .await;

    let all = settled(&app, &owner, id, 1).await;
    assert_eq!(all[0]["status"], "succeeded", "{all:#?}");
    assert_eq!(all[0]["version"], 1);
    assert_eq!(all[0]["lead_id"], ana.as_str());
    assert_eq!(all[0]["event"]["trigger"], "lead_created");
    let detail = run_detail(&app, &owner, all[0]["id"].as_str().expect("id")).await;
    let steps = detail["steps"].as_array().expect("steps");
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "send_email",
            "add_tag",
            "create_task",
            "change_stage",
            "notify"
        ]
    );
    assert!(steps.iter().all(|s| s["status"] == "succeeded"));
    let inbox = app.get("/api/v1/me/notifications", &manager.access).await;
    assert_eq!(inbox.body["items"][0]["kind"], "automation_message");
    assert_eq!(inbox.body["items"][0]["title"], "A new lead came in");
    assert!(steps[0]["output"]["message_id"].is_string());

    assert_eq!(tags(&app, &owner, &ana).await, ["welcomed"]);
    let l = app
        .get(&format!("/api/v1/leads/{ana}"), &owner.access)
        .await;
    assert_eq!(l.body["stage"], "contacted");
    let tasks = app
        .get(&format!("/api/v1/tasks?lead_id={ana}"), &owner.access)
        .await;
    assert_eq!(tasks.body["items"][0]["title"], "Call them");
    assert_eq!(
        tasks.body["items"][0]["assignee_id"],
        owner.user_id.as_str()
    );
    let messages = app
        .get(
            &format!("/api/v1/email/messages?lead_id={ana}"),
            &owner.access,
        )
        .await;
    assert_eq!(messages.body["items"][0]["subject"], "Hello Ana");
    let activity = app
        .get(&format!("/api/v1/leads/{ana}/activity"), &owner.access)
        .await;
    assert!(
        activity.body.to_string().contains("Automation “Welcome”"),
        "the activity names the automation: {}",
        activity.body
    );

    // Turned off, it does nothing.
    app.patch(
        &format!("/api/v1/automations/{id}"),
        &owner.access,
        json!({"enabled": false}),
    )
    .await;
    lead(&app, &owner, json!({"first_name": "Bo"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&app, &owner, id).await.len(), 1);
    worker.stop().await;
}

async fn conditions_branches_and_waits_steer_a_run(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let automation = create(
        &app,
        &owner,
        json!({"name": "Qualified", "definition": {
            "trigger": {"type": "stage_changed", "to": "qualified"},
            "conditions": {"match": "any", "rules": [
                {"field": "source", "op": "in", "value": ["referral", "web_form"]},
                {"field": "tags", "op": "contains", "value": "vip"},
            ]},
            "actions": [
                {"type": "branch",
                 "conditions": {"rules": [{"field": "tags", "op": "contains", "value": "vip"}]},
                 "then": [{"type": "add_tag", "tag": "fast-track"}],
                 "else": [{"type": "add_tag", "tag": "standard"}, {"type": "wait", "minutes": 60}, {"type": "add_tag", "tag": "waited"}]},
            ]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let worker = app.start_worker();
    let vip = lead(&app, &owner, json!({"first_name": "Vi", "tags": ["vip"]})).await;
    let referral = lead(
        &app,
        &owner,
        json!({"first_name": "Re", "source": "referral"}),
    )
    .await;
    let cold = lead(&app, &owner, json!({"first_name": "Co", "source": "meta"})).await;
    for l in [&vip, &referral, &cold] {
        let moved = app
            .post(
                &format!("/api/v1/leads/{l}/stage"),
                &owner.access,
                json!({"stage": "qualified"}),
            )
            .await;
        assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    }
    // The referral's run waits; the others end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = runs(&app, &owner, id).await;
        let waiting = all.iter().filter(|r| r["status"] == "waiting").count();
        let ended = all
            .iter()
            .filter(|r| matches!(r["status"].as_str(), Some("succeeded") | Some("skipped")))
            .count();
        if waiting == 1 && ended == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tags(&app, &owner, &vip).await, ["fast-track", "vip"]);
    assert_eq!(tags(&app, &owner, &referral).await, ["standard"]);
    assert!(tags(&app, &owner, &cold).await.is_empty());
    let all = runs(&app, &owner, id).await;
    let skipped = all
        .iter()
        .find(|r| r["lead_id"] == cold.as_str())
        .expect("cold run");
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(skipped["error"], "the conditions did not hold");
    let waiting = all
        .iter()
        .find(|r| r["status"] == "waiting")
        .expect("waiting run");
    assert!(waiting["resume_at"].is_string());

    app.admin_exec(
        "UPDATE jobs SET run_at = created_at WHERE kind = 'automation.run' AND status = 'scheduled'",
    )
    .await;
    let all = settled(&app, &owner, id, 3).await;
    assert!(all.iter().all(|r| r["status"] != "failed"), "{all:#?}");
    assert_eq!(tags(&app, &owner, &referral).await, ["standard", "waited"]);
    let detail = run_detail(
        &app,
        &owner,
        all.iter()
            .find(|r| r["lead_id"] == referral.as_str())
            .and_then(|r| r["id"].as_str())
            .expect("id"),
    )
    .await;
    let actions: Vec<&str> = detail["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["branch", "add_tag", "wait", "add_tag"]);
    assert_eq!(detail["steps"][0]["output"]["branch"], "else");
    worker.stop().await;
}

async fn a_failing_step_retries_then_fails_and_can_be_retried(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let automation = create(
        &app,
        &owner,
        json!({"name": "Hand to intake", "definition": {"trigger": {"type": "lead_created"},
               "actions": [{"type": "add_tag", "tag": "routed"},
                           {"type": "assign", "assignee": {"to": "round_robin", "role": "intake"}}]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let worker = app.start_worker();
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;
    let all = settled(&app, &owner, id, 1).await;
    assert_eq!(all[0]["status"], "failed", "{all:#?}");
    let error = all[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no active member has the role intake"),
        "{error}"
    );
    let detail = run_detail(&app, &owner, all[0]["id"].as_str().expect("id")).await;
    let steps = detail["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["action"], "add_tag");
    let failures: Vec<&Value> = steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failures.len(), 5, "one failed step per attempt: {steps:#?}");
    assert_eq!(failures[4]["attempt"], 5);
    assert_eq!(
        tags(&app, &owner, &ana).await,
        ["routed"],
        "the done step is not repeated"
    );
    let audit = app.get("/api/v1/audit-log", &owner.access).await;
    assert!(audit.body.to_string().contains("automation.failed"));

    // Someone joins intake; the run is retried from the failed step.
    let intake = app.add_member(&owner, "intake@acme.test", "intake").await;
    let run_id = all[0]["id"].as_str().expect("id");
    let retried = app
        .post(
            &format!("/api/v1/automation-runs/{run_id}/retry"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    let all = settled(&app, &owner, id, 1).await;
    assert_eq!(all[0]["status"], "succeeded", "{all:#?}");
    let l = app
        .get(&format!("/api/v1/leads/{ana}"), &owner.access)
        .await;
    assert_eq!(l.body["assigned_to"], intake.user_id.as_str());
    let again = app
        .post(
            &format!("/api/v1/automation-runs/{run_id}/retry"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    worker.stop().await;
}

async fn an_automation_that_retriggers_itself_is_cut(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let automation = create(
        &app,
        &owner,
        json!({"name": "Flip-flop", "definition": {"trigger": {"type": "field_changed", "field": "tags"},
               "actions": [{"type": "branch",
                            "conditions": {"rules": [{"field": "tags", "op": "contains", "value": "a"}]},
                            "then": [{"type": "remove_tag", "tag": "a"}],
                            "else": [{"type": "add_tag", "tag": "a"}]}]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let worker = app.start_worker();
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;
    let patched = app
        .patch(
            &format!("/api/v1/leads/{ana}"),
            &owner.access,
            json!({"tags": ["start"]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    // One run from the person's change, five caused by the automation itself, then the cut.
    let all = settled(&app, &owner, id, 7).await;
    let cut: Vec<&Value> = all.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(cut.len(), 1, "{all:#?}");
    assert!(
        cut[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped a loop"),
        "{cut:?}"
    );
    assert_eq!(cut[0]["caused_by"], id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        runs(&app, &owner, id).await.len(),
        7,
        "nothing runs after the cut"
    );
    worker.stop().await;
}

async fn round_robin_manual_runs_and_the_gallery(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let first = app.add_member(&owner, "m1@acme.test", "member").await;
    let second = app.add_member(&owner, "m2@acme.test", "member").await;
    let automation = create(
        &app,
        &owner,
        json!({"name": "Share out", "definition": {"trigger": {"type": "manual"},
               "actions": [{"type": "assign", "assignee": {"to": "round_robin", "role": "member"}}]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let worker = app.start_worker();
    let mut leads = Vec::new();
    for n in 0..3 {
        leads.push(lead(&app, &owner, json!({"first_name": format!("L{n}")})).await);
        // One at a time, so each pick sees the one before.
        let started = app
            .post(
                &format!("/api/v1/automations/{id}/runs"),
                &owner.access,
                json!({"lead_ids": [leads[n]]}),
            )
            .await;
        assert_eq!(started.status, StatusCode::OK, "{:?}", started.body);
        assert_eq!(started.body["results"][0]["status"], 202);
        settled(&app, &owner, id, n + 1).await;
    }
    let mut assignees = Vec::new();
    for l in &leads {
        let got = app.get(&format!("/api/v1/leads/{l}"), &owner.access).await;
        assignees.push(
            got.body["assigned_to"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let mut members = [first.user_id.clone(), second.user_id.clone()];
    members.sort();
    assert_eq!(
        assignees,
        [members[0].clone(), members[1].clone(), members[0].clone()]
    );
    let missing = app
        .post(
            &format!("/api/v1/automations/{id}/runs"),
            &owner.access,
            json!({"lead_ids": ["nope"]}),
        )
        .await;
    assert_eq!(missing.body["results"][0]["status"], 404);

    let gallery = app.get("/api/v1/automations/gallery", &owner.access).await;
    assert_eq!(gallery.body["items"].as_array().map(Vec::len), Some(4));
    let welcome = app
        .post(
            "/api/v1/automations/gallery/welcome_email",
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(welcome.status, StatusCode::CREATED, "{:?}", welcome.body);
    assert_eq!(
        welcome.body["enabled"], false,
        "gallery automations start off"
    );
    let follow_up = app
        .post(
            "/api/v1/automations/gallery/follow_up_after_contacted",
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(
        follow_up.status,
        StatusCode::CREATED,
        "{:?}",
        follow_up.body
    );
    let handoff = app
        .post(
            "/api/v1/automations/gallery/notify_managers_pending_handoff",
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(
        handoff.status,
        StatusCode::CONFLICT,
        "the marketing template has no handoff stage"
    );
    let welcome_id = welcome.body["id"].as_str().expect("id");
    app.patch(
        &format!("/api/v1/automations/{welcome_id}"),
        &owner.access,
        json!({"enabled": true}),
    )
    .await;
    let newcomer = lead(
        &app,
        &owner,
        json!({"first_name": "Nia", "email": "nia@example.com"}),
    )
    .await;
    settled(&app, &owner, welcome_id, 1).await;
    let messages = app
        .get(
            &format!("/api/v1/email/messages?lead_id={newcomer}"),
            &owner.access,
        )
        .await;
    assert_eq!(messages.body["items"][0]["subject"], "Welcome, Nia");
    worker.stop().await;
}

async fn a_schedule_runs_once_per_tick_on_the_leads_that_qualify(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let bad = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "Bad", "definition": {"trigger": {"type": "schedule", "cron": "every monday"},
                   "actions": [{"type": "add_tag", "tag": "x"}]}}),
        )
        .await;
    assert_eq!(field_errors(&bad.body), ["definition.trigger.cron"]);
    let automation = create(
        &app,
        &owner,
        json!({"name": "Referral sweep", "definition": {
            "trigger": {"type": "schedule", "cron": "* * * * *", "stage": "new"},
            "conditions": {"rules": [{"field": "source", "op": "equals", "value": "referral"}]},
            "actions": [{"type": "add_tag", "tag": "swept"}]}}),
    )
    .await;
    let id = automation["id"].as_str().expect("id");
    let referral = lead(
        &app,
        &owner,
        json!({"first_name": "Re", "source": "referral"}),
    )
    .await;
    let other = lead(&app, &owner, json!({"first_name": "Ot", "source": "meta"})).await;
    let moved = lead(
        &app,
        &owner,
        json!({"first_name": "Mo", "source": "referral"}),
    )
    .await;
    app.post(
        &format!("/api/v1/leads/{moved}/stage"),
        &owner.access,
        json!({"stage": "contacted"}),
    )
    .await;
    // The pass may run twice in a minute (two schedulers, a late job): one run per tick and lead.
    // Both passes must see the same minute's tick, so not in a minute's last seconds.
    let second = time::OffsetDateTime::now_utc().second();
    if second >= 55 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
    let first = meridian_app::automations::service::scheduled(&app.db)
        .await
        .expect("pass");
    meridian_app::automations::service::scheduled(&app.db)
        .await
        .expect("pass again");
    assert_eq!(first, 1);
    let worker = app.start_worker();
    let all = settled(&app, &owner, id, 1).await;
    assert_eq!(all[0]["status"], "succeeded");
    assert_eq!(all[0]["event"]["trigger"], "schedule");
    assert_eq!(tags(&app, &owner, &referral).await, ["swept"]);
    assert!(tags(&app, &owner, &other).await.is_empty());
    assert!(tags(&app, &owner, &moved).await.is_empty());
    worker.stop().await;
}
