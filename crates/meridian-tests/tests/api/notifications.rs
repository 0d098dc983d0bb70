//! In-app notifications: who gets what (assignments, stage changes, handoffs, tasks, imports,
//! failed automations, tasks due), deduplication, settings, reading, the live stream, pages.

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    assignments_stage_changes_and_tasks_notify_the_right_people,
    handoffs_notify_the_role_and_the_person_who_handed_off,
    duplicates_settings_and_reading,
    the_stream_pushes_the_unread_count,
    failed_automations_and_due_tasks_notify,
    the_notifications_page_opens_and_marks_read,
    watchers_hear_of_stage_changes,
);

async fn inbox(app: &TestApp, who: &Tokens) -> Value {
    let r = app.get("/api/v1/me/notifications", &who.access).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

fn kinds(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn lead(app: &TestApp, owner: &Tokens, body: Value) -> String {
    let l = app.post("/api/v1/leads", &owner.access, body).await;
    assert_eq!(l.status, StatusCode::CREATED, "{:?}", l.body);
    l.body["id"].as_str().expect("id").to_owned()
}

async fn assignments_stage_changes_and_tasks_notify_the_right_people(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let ana = lead(
        &app,
        &owner,
        json!({"first_name": "Ana", "last_name": "Diaz"}),
    )
    .await;

    let assigned = app
        .post(
            &format!("/api/v1/leads/{ana}/assign"),
            &owner.access,
            json!({"user_id": sam.user_id}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK);
    let page = inbox(&app, &sam).await;
    assert_eq!(kinds(&page), ["lead_assigned"]);
    assert_eq!(page["unread_count"], 1);
    assert_eq!(page["items"][0]["title"], "#00001 Ana Diaz is yours");
    assert_eq!(page["items"][0]["link"], format!("/leads/{ana}"));
    assert!(
        page["items"][0]["actor"]
            .as_str()
            .unwrap_or_default()
            .contains("owner@acme.test")
    );

    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &owner.access,
        json!({"stage": "contacted"}),
    )
    .await;
    assert_eq!(
        kinds(&inbox(&app, &sam).await),
        ["stage_changed", "lead_assigned"]
    );
    // Sam's own change does not notify Sam.
    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &sam.access,
        json!({"stage": "qualified"}),
    )
    .await;
    assert_eq!(inbox(&app, &sam).await["unread_count"], 2);

    let task = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": "Call Ana", "lead_id": ana, "assignee_id": sam.user_id}),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED);
    let page = inbox(&app, &sam).await;
    assert_eq!(kinds(&page)[0], "task_assigned");
    assert_eq!(page["items"][0]["title"], "Task for you: Call Ana");
    // The owner acted every time and has nothing.
    assert_eq!(inbox(&app, &owner).await["unread_count"], 0);
    // API keys have no inbox.
    let key = app
        .post(
            "/api/v1/api-keys",
            &owner.access,
            json!({"name": "bot", "role": "viewer"}),
        )
        .await;
    let secret = key.body["secret"].as_str().expect("secret");
    let refused = app.get("/api/v1/me/notifications", secret).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

async fn handoffs_notify_the_role_and_the_person_who_handed_off(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app
        .create_org_from("Hope Surrogacy", "owner@hope.test", "surrogacy")
        .await;
    let intake = app.add_member(&owner, "intake@hope.test", "intake").await;
    let cm = app.add_member(&owner, "cm@hope.test", "case_manager").await;
    let cm2 = app
        .add_member(&owner, "cm2@hope.test", "case_manager")
        .await;
    let pipelines = app.get("/api/v1/pipelines", &owner.access).await;
    let cases = pipelines.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == "Cases")
        .expect("cases pipeline")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let case = lead(
        &app,
        &intake,
        json!({"first_name": "Case", "pipeline_id": cases, "assigned_to": intake.user_id}),
    )
    .await;
    let handed = app
        .post(
            &format!("/api/v1/leads/{case}/stage"),
            &intake.access,
            json!({"stage": "pending_handoff"}),
        )
        .await;
    assert_eq!(handed.status, StatusCode::OK, "{:?}", handed.body);
    for who in [&cm, &cm2] {
        let page = inbox(&app, who).await;
        assert_eq!(kinds(&page), ["handoff_ready"], "{page:?}");
    }
    let denied = app
        .post(
            &format!("/api/v1/leads/{case}/deny"),
            &cm.access,
            json!({"reason": "missing documents"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::OK, "{:?}", denied.body);
    let page = inbox(&app, &intake).await;
    assert_eq!(kinds(&page), ["handoff_denied"]);
    app.post(
        &format!("/api/v1/leads/{case}/stage"),
        &intake.access,
        json!({"stage": "pending_handoff"}),
    )
    .await;
    let accepted = app
        .post(
            &format!("/api/v1/leads/{case}/accept"),
            &cm2.access,
            json!({}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    assert_eq!(kinds(&inbox(&app, &intake).await)[0], "handoff_accepted");
}

async fn duplicates_settings_and_reading(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;
    for user in [&sam.user_id, &owner.user_id, &sam.user_id] {
        app.post(
            &format!("/api/v1/leads/{ana}/assign"),
            &owner.access,
            json!({"user_id": user}),
        )
        .await;
    }
    assert_eq!(
        kinds(&inbox(&app, &sam).await),
        ["lead_assigned"],
        "the same kind about the same lead within an hour is one notification"
    );

    let settings = app
        .get("/api/v1/me/notification-settings", &sam.access)
        .await;
    assert_eq!(settings.body.as_array().map(Vec::len), Some(12));
    assert!(
        settings
            .body
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["enabled"] == true)
    );
    let bad = app
        .call(
            "PUT",
            "/api/v1/me/notification-settings",
            Some(&sam.access),
            Some(json!({"carrier_pigeon": false})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let off = app
        .call(
            "PUT",
            "/api/v1/me/notification-settings",
            Some(&sam.access),
            Some(json!({"stage_changed": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &owner.access,
        json!({"stage": "contacted"}),
    )
    .await;
    assert_eq!(
        kinds(&inbox(&app, &sam).await),
        ["lead_assigned"],
        "turned off"
    );

    let page = inbox(&app, &sam).await;
    let id = page["items"][0]["id"].as_str().expect("id");
    let other = app
        .post(
            &format!("/api/v1/me/notifications/{id}/read"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "another person's notification"
    );
    let read = app
        .post(
            &format!("/api/v1/me/notifications/{id}/read"),
            &sam.access,
            json!({}),
        )
        .await;
    assert_eq!(read.body["unread_count"], 0);
    let unread = app
        .get("/api/v1/me/notifications?unread=true", &sam.access)
        .await;
    assert_eq!(unread.body["items"].as_array().map(Vec::len), Some(0));
    let task = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": "One", "assignee_id": sam.user_id}),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED);
    assert_eq!(inbox(&app, &sam).await["unread_count"], 1);
    let all = app
        .post("/api/v1/me/notifications/read-all", &sam.access, json!({}))
        .await;
    assert_eq!(all.body["unread_count"], 0);
    assert_eq!(inbox(&app, &sam).await["unread_count"], 0);
}

async fn the_stream_pushes_the_unread_count(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;
    let mut response = meridian_tests::http()
        .get(app.url("/api/v1/me/notifications/stream"))
        .bearer_auth(&sam.access)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let first = "\"count\":0";
    while !seen.contains(first) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("the first count arrives")
            .expect("chunk")
            .expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: unread"), "{seen}");
    app.post(
        &format!("/api/v1/leads/{ana}/assign"),
        &owner.access,
        json!({"user_id": sam.user_id}),
    )
    .await;
    seen.clear();
    while !seen.contains("\"count\":1") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("the new count arrives at once, not at the next check")
            .expect("chunk")
            .expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Shutting down ends open streams, so they do not hold the graceful shutdown open.
    app.state.close_streams();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when the server shuts down");
}

async fn failed_automations_and_due_tasks_notify(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let admin = app.add_member(&owner, "admin@acme.test", "admin").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let automation = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "Route", "definition": {"trigger": {"type": "lead_created"},
                   "actions": [{"type": "assign", "assignee": {"to": "round_robin", "role": "intake"}}]}}),
        )
        .await;
    assert_eq!(automation.status, StatusCode::CREATED);
    let worker = app.start_worker();
    lead(&app, &owner, json!({"first_name": "Ana"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while kinds(&inbox(&app, &admin).await).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = inbox(&app, &admin).await;
    assert_eq!(kinds(&page), ["automation_failed"]);
    assert_eq!(page["items"][0]["title"], "Automation “Route” failed");
    assert_eq!(kinds(&inbox(&app, &owner).await), ["automation_failed"]);
    assert!(
        kinds(&inbox(&app, &sam).await).is_empty(),
        "members are not alerted"
    );
    worker.stop().await;

    // The daily pass: tasks due today and overdue, once per day however often it runs.
    let later_today = time::OffsetDateTime::now_utc().replace_time(time::macros::time!(23:59));
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    for (title, due) in [("Today", later_today), ("Late", yesterday)] {
        let created = app
            .post(
                "/api/v1/tasks",
                &owner.access,
                json!({"title": title, "assignee_id": sam.user_id, "due_at": fmt(due)}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    }
    app.post("/api/v1/me/notifications/read-all", &sam.access, json!({}))
        .await;
    for _ in 0..2 {
        meridian_app::notifications::store::notify_due_tasks(&app.db)
            .await
            .expect("daily pass");
    }
    let page = app
        .get("/api/v1/me/notifications?unread=true", &sam.access)
        .await;
    let mut got = kinds(&page.body);
    got.sort();
    assert_eq!(got, ["task_due_today", "task_overdue"]);
}

async fn the_notifications_page_opens_and_marks_read(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;
    app.post(
        &format!("/api/v1/leads/{ana}/assign"),
        &owner.access,
        json!({"user_id": sam.user_id}),
    )
    .await;
    let browser = meridian_tests::browser();
    app.web_login(&browser, "sam@acme.test", meridian_tests::PASSWORD)
        .await;
    let (_, home) = app.page(&browser, "/").await;
    assert!(
        home.contains("data-bell-badge>1</span>"),
        "the bell shows one unread: {home}"
    );
    assert!(home.contains("Notifications, 1 unread"));
    let (status, html) = app.page(&browser, "/notifications").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("#00001 Ana is yours"), "{html}");
    let csrf = meridian_tests::csrf_from_html(&html);
    let id = inbox(&app, &sam).await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, location, _) = app
        .post_form(
            &browser,
            &format!("/notifications/{id}/open"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/leads/{ana}"));
    assert_eq!(inbox(&app, &sam).await["unread_count"], 0);
    let (_, home) = app.page(&browser, "/").await;
    assert!(home.contains("data-bell-badge hidden>0</span>"), "{home}");

    let (_, settings) = app.page(&browser, "/settings/notifications").await;
    assert!(settings.contains("A lead is assigned to me"), "{settings}");
    let (status, location, _) = app
        .post_form(
            &browser,
            "/settings/notifications",
            &[("csrf_token", &csrf), ("kind", "lead_assigned")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/settings/notifications?notice=saved");
    let saved = app
        .get("/api/v1/me/notification-settings", &sam.access)
        .await;
    let on: Vec<&str> = saved
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter(|s| s["enabled"] == true)
        .map(|s| s["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(on, ["lead_assigned"]);
    let other = app.create_org("Other", "owner@other.test").await;
    let (status, _, _) = app
        .post_form(
            &browser,
            &format!("/notifications/{}/open", other.org_id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn watchers_hear_of_stage_changes(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let vic = app.add_member(&owner, "vic@acme.test", "viewer").await;
    let ana = lead(&app, &owner, json!({"first_name": "Ana"})).await;

    let watched = app
        .call(
            "PUT",
            &format!("/api/v1/leads/{ana}/watchers/me"),
            Some(&vic.access),
            None,
        )
        .await;
    assert_eq!(watched.status, StatusCode::OK, "{:?}", watched.body);
    assert_eq!(watched.body[0]["user_id"], vic.user_id.as_str());
    // Twice is still once.
    app.call(
        "PUT",
        &format!("/api/v1/leads/{ana}/watchers/me"),
        Some(&vic.access),
        None,
    )
    .await;
    let listed = app
        .get(&format!("/api/v1/leads/{ana}/watchers"), &owner.access)
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));

    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &sam.access,
        json!({"stage": "contacted"}),
    )
    .await;
    let page = inbox(&app, &vic).await;
    assert_eq!(kinds(&page), ["stage_changed"]);
    assert_eq!(page["items"][0]["title"], "#00001 Ana moved to Contacted");

    let unwatched = app
        .call(
            "DELETE",
            &format!("/api/v1/leads/{ana}/watchers/me"),
            Some(&vic.access),
            None,
        )
        .await;
    assert_eq!(unwatched.body.as_array().map(Vec::len), Some(0));
    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &sam.access,
        json!({"stage": "qualified"}),
    )
    .await;
    assert_eq!(
        inbox(&app, &vic).await["unread_count"],
        1,
        "no longer watching"
    );

    // From the lead's page.
    let browser = meridian_tests::browser();
    app.web_login(&browser, "sam@acme.test", meridian_tests::PASSWORD)
        .await;
    let (_, html) = app.page(&browser, &format!("/leads/{ana}")).await;
    assert!(html.contains(">Watch<"), "a Watch button");
    let csrf = meridian_tests::csrf_from_html(&html);
    let (status, location, _) = app
        .post_form(
            &browser,
            &format!("/leads/{ana}/action"),
            &[
                ("csrf_token", &csrf),
                ("action", "watch"),
                ("value", "true"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/leads/{ana}?notice=watching"));
    let (_, html) = app.page(&browser, &location).await;
    assert!(html.contains("Watching"), "{html}");
    app.post(
        &format!("/api/v1/leads/{ana}/stage"),
        &owner.access,
        json!({"stage": "proposal"}),
    )
    .await;
    assert_eq!(kinds(&inbox(&app, &sam).await), ["stage_changed"]);

    let other = app.create_org("Other", "owner@other.test").await;
    let foreign = app
        .call(
            "PUT",
            &format!("/api/v1/leads/{ana}/watchers/me"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}
