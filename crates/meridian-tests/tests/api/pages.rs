//! The tasks page, the dashboard and Settings → Pipelines as a browser uses them: plain form
//! POSTs with the CSRF token, answers checked in the HTML and through the API.

use meridian_tests::{
    Engine, PASSWORD, TestApp, Tokens, both_engines, browser, csrf_from_html, spawn_app,
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

both_engines!(
    tasks_are_grouped_by_due_time_and_complete_by_form,
    dashboard_counts_and_charts_the_leads,
    pipeline_settings_create_validate_and_reorder,
    page_forms_without_csrf_are_refused,
);

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

async fn created(app: &TestApp, who: &Tokens, path: &str, body: Value) -> Value {
    let reply = app.post(path, &who.access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.body);
    reply.body
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Where `needle` first appears in `html` (the test fails if it does not).
fn at(html: &str, needle: &str) -> usize {
    html.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the page"))
}

async fn signed_in(app: &TestApp, email: &str) -> Client {
    let client = browser();
    let login = app.web_login(&client, email, PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "{email} signs in");
    client
}

async fn tasks_are_grouped_by_due_time_and_complete_by_form(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let lead = created(
        &app,
        &owner,
        "/api/v1/leads",
        json!({"first_name": "Ann", "last_name": "Lee"}),
    )
    .await;
    let lead_id = id_of(&lead);
    let now = OffsetDateTime::now_utc();
    let overdue = created(
        &app,
        &owner,
        "/api/v1/tasks",
        json!({"title": "Call Ann back", "type": "call", "lead_id": lead_id,
               "due_at": rfc3339(now - Duration::hours(3))}),
    )
    .await;
    // Ten days ahead is past the end of this week whatever today is.
    created(
        &app,
        &owner,
        "/api/v1/tasks",
        json!({"title": "Send the renewal", "type": "email", "due_at": rfc3339(now + Duration::days(10))}),
    )
    .await;
    created(
        &app,
        &owner,
        "/api/v1/tasks",
        json!({"title": "Tidy the notes"}),
    )
    .await;

    let client = signed_in(&app, "ada@acme.test").await;
    let (status, html) = app.page(&client, "/tasks").await;
    assert_eq!(status, StatusCode::OK);
    let overdue_at = at(&html, "id=\"group-overdue\"");
    let later_at = at(&html, "id=\"group-later\"");
    let undated_at = at(&html, "id=\"group-undated\"");
    assert!(
        overdue_at < at(&html, "Call Ann back") && at(&html, "Call Ann back") < later_at,
        "the past task sits under Overdue"
    );
    assert!(
        later_at < at(&html, "Send the renewal") && at(&html, "Send the renewal") < undated_at,
        "the task in ten days sits under Later"
    );
    assert!(undated_at < at(&html, "Tidy the notes"));
    assert!(
        !html.contains("id=\"group-today\""),
        "empty groups are left out"
    );
    assert!(
        html.contains(&format!("href=\"/leads/{lead_id}\"")) && html.contains("#00001"),
        "the task links to its lead with its number"
    );
    assert!(
        html.contains("tasks-due is-overdue"),
        "overdue times are marked"
    );

    // Completing through the form: back to the list with an undo, and done in the API.
    let csrf = csrf_from_html(&html);
    let overdue_id = id_of(&overdue);
    let toggle = format!("/tasks/{overdue_id}/toggle");
    let (status, location, _) = app
        .post_form(
            &client,
            &toggle,
            &[("csrf_token", &csrf), ("done", "1"), ("scope", "mine")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/tasks?scope=mine"), "{location}");
    let task = app
        .get(&format!("/api/v1/tasks/{overdue_id}"), &owner.access)
        .await;
    assert!(task.body["completed_at"].is_string(), "{}", task.body);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Undo") && !html.contains("id=\"group-overdue\""));
    let (_, html) = app.page(&client, "/tasks?scope=mine&done=1").await;
    assert!(at(&html, "id=\"group-completed\"") < at(&html, "Call Ann back"));

    // Scripts get JSON and the row changes in place; here the task is reopened.
    let reopened: Value = client
        .post(app.url(&toggle))
        .header("accept", "application/json")
        .form(&[("csrf_token", csrf.as_str()), ("done", "0")])
        .send()
        .await
        .expect("toggle")
        .json()
        .await
        .expect("json");
    assert_eq!(reopened["done"], false);

    // Adding: errors come back inline with what was typed; a good form creates the task.
    let (status, _, html) = app
        .post_form(
            &client,
            "/tasks",
            &[
                ("csrf_token", &csrf),
                ("title", ""),
                ("task_type", "call"),
                ("due", "next tuesday"),
                ("assignee_id", &owner.user_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"due-error\"") && html.contains("value=\"next tuesday\""));
    let (status, location, _) = app
        .post_form(
            &client,
            "/tasks",
            &[
                ("csrf_token", &csrf),
                ("title", "Book the kickoff"),
                ("task_type", "meeting"),
                ("due", "2031-03-04T09:30"),
                ("tz_offset", "60"),
                ("assignee_id", &owner.user_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let list = app.get("/api/v1/tasks?q=kickoff", &owner.access).await;
    let booked = &list.body["items"][0];
    assert_eq!(booked["type"], "meeting");
    assert_eq!(
        booked["due_at"], "2031-03-04T08:30:00Z",
        "read on the viewer's clock"
    );

    // Deleting asks first.
    let booked_id = booked["id"].as_str().expect("id").to_owned();
    let (status, html) = app
        .page(&client, &format!("/tasks/{booked_id}/delete"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete \u{201c}Book the kickoff\u{201d}?"));
    let (status, location, _) = app
        .post_form(
            &client,
            &format!("/tasks/{booked_id}/delete?scope=all"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/tasks?scope=all"));
    let gone = app
        .get(&format!("/api/v1/tasks/{booked_id}"), &owner.access)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // "All tasks" shows other people's tasks; "My tasks" does not.
    let member = app.add_member(&owner, "mo@acme.test", "member").await;
    created(
        &app,
        &member,
        "/api/v1/tasks",
        json!({"title": "Mo's own errand"}),
    )
    .await;
    let (_, mine) = app.page(&client, "/tasks").await;
    let (_, all) = app.page(&client, "/tasks?scope=all").await;
    assert!(!mine.contains("Mo&#39;s own errand") && !mine.contains("Mo's own errand"));
    assert!(all.contains("Mo&#39;s own errand") || all.contains("Mo's own errand"));
}

/// The number a dashboard stat card shows.
fn stat(html: &str, name: &str) -> String {
    let marker = format!("data-stat=\"{name}\">");
    let start = at(html, &marker) + marker.len();
    html[start..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn dashboard_counts_and_charts_the_leads(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;

    // An empty organization: zeros, and an empty state instead of a chart.
    let client = signed_in(&app, "ada@acme.test").await;
    let (status, html) = app.page(&client, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stat(&html, "active"), "0");
    assert!(html.contains("No leads yet") && !html.contains("dash-chart-bar"));
    assert!(
        html.contains("Get started"),
        "the checklist shows while open"
    );

    for (first, stage) in [
        ("Ann", "new"),
        ("Bea", "new"),
        ("Cy", "new"),
        ("Dee", "contacted"),
    ] {
        created(
            &app,
            &owner,
            "/api/v1/leads",
            json!({"first_name": first, "stage": stage}),
        )
        .await;
    }
    let now = OffsetDateTime::now_utc();
    created(
        &app,
        &owner,
        "/api/v1/tasks",
        json!({"title": "Chase the invoice", "due_at": rfc3339(now - Duration::days(1))}),
    )
    .await;
    created(
        &app,
        &owner,
        "/api/v1/tasks",
        json!({"title": "Plan the offsite", "due_at": rfc3339(now + Duration::days(2))}),
    )
    .await;

    let (_, html) = app.page(&client, "/").await;
    assert_eq!(stat(&html, "active"), "4");
    assert_eq!(stat(&html, "new"), "4");
    assert_eq!(stat(&html, "pending"), "2");
    assert_eq!(stat(&html, "overdue"), "1");
    assert!(
        html.contains("stat stat-alert"),
        "overdue tasks are highlighted"
    );
    assert!(html.contains("<svg class=\"dash-chart\"") && html.contains("role=\"img\""));
    assert_eq!(
        html.matches("class=\"dash-chart-bar\"").count(),
        2,
        "one bar per stage with leads"
    );
    assert!(html.contains("aria-label=\"Leads by stage: New 3, Contacted 1.\""));
    assert!(
        html.contains("<th scope=\"row\">Contacted</th><td>1</td>"),
        "a table of the same numbers for screen readers"
    );
    assert!(
        at(&html, "Chase the invoice") < at(&html, "Plan the offsite"),
        "my tasks, soonest first"
    );
}

/// Form fields of the pipeline form: (name, value) pairs built from short row descriptions.
fn stage_fields(index: usize, fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(attr, value)| (format!("stages[{index}][{attr}]"), (*value).to_owned()))
        .collect()
}

async fn post_pairs(
    app: &TestApp,
    client: &Client,
    path: &str,
    pairs: &[(String, String)],
) -> (StatusCode, String, String) {
    let form: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.post_form(client, path, &form).await
}

fn stage_keys(pipeline: &Value) -> Vec<String> {
    pipeline["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn pipeline_settings_create_validate_and_reorder(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = signed_in(&app, "ada@acme.test").await;

    let (status, html) = app.page(&client, "/settings/pipelines").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Leads") && html.contains("6 stages"));
    let (status, html) = app.page(&client, "/settings/pipelines/new").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_from_html(&html);

    let details = |name: &str| -> Vec<(String, String)> {
        vec![
            ("csrf_token".to_owned(), csrf.clone()),
            ("name".to_owned(), name.to_owned()),
            ("singular_label".to_owned(), "Partner".to_owned()),
            ("plural_label".to_owned(), "Partners".to_owned()),
        ]
    };

    // A bad key is shown next to its row, with what was typed kept.
    let mut form = details("Partners");
    form.extend(stage_fields(
        0,
        &[
            ("key", "intro"),
            ("label", "Intro"),
            ("color", "#3b82f6"),
            ("category", "open"),
            ("position", "1"),
        ],
    ));
    form.extend(stage_fields(
        1,
        &[
            ("key", "Bad Key!"),
            ("label", "Signed"),
            ("color", "#16a34a"),
            ("category", "won"),
            ("position", "2"),
        ],
    ));
    let (status, _, html) = post_pairs(&app, &client, "/settings/pipelines/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"stage-1-key-error\""),
        "the error sits on row 2"
    );
    assert!(!html.contains("id=\"stage-0-key-error\""));
    assert!(html.contains("value=\"Bad Key!\""));

    // A good form creates the pipeline; an empty key is made from the label.
    let mut form = details("Partners");
    form.extend(stage_fields(
        0,
        &[
            ("key", "intro"),
            ("label", "Intro"),
            ("color", "#3b82f6"),
            ("category", "open"),
            ("position", "1"),
        ],
    ));
    form.extend(stage_fields(
        1,
        &[
            ("key", ""),
            ("label", "Contract signed"),
            ("color", "#16a34a"),
            ("category", "won"),
            ("sla_hours", "48"),
            ("position", "2"),
        ],
    ));
    // The blank row every form ends with is ignored.
    form.extend(stage_fields(
        2,
        &[
            ("key", ""),
            ("label", ""),
            ("color", "#6b7280"),
            ("position", "3"),
        ],
    ));
    form.extend([
        ("fields[0][label]".to_owned(), "Deal size".to_owned()),
        ("fields[0][field_type]".to_owned(), "select".to_owned()),
        ("fields[0][options]".to_owned(), "Small, Large".to_owned()),
        ("fields[0][required]".to_owned(), "1".to_owned()),
        ("fields[0][position]".to_owned(), "1".to_owned()),
    ]);
    let (status, location, _) = post_pairs(&app, &client, "/settings/pipelines/new", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = location
        .strip_prefix("/settings/pipelines/")
        .and_then(|rest| rest.split('?').next())
        .expect("pipeline id")
        .to_owned();
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Pipeline created."), "a toast confirms");
    let saved = app
        .get(&format!("/api/v1/pipelines/{id}"), &owner.access)
        .await;
    assert_eq!(stage_keys(&saved.body), ["intro", "contract_signed"]);
    assert_eq!(saved.body["stages"][1]["sla_hours"], 48);
    assert_eq!(saved.body["fields"][0]["key"], "deal_size");
    assert_eq!(
        saved.body["fields"][0]["options"],
        json!(["Small", "Large"])
    );

    // Reordering by position numbers (what dragging fills in) and adding a stage.
    let mut form = details("Partners");
    form.extend(stage_fields(
        0,
        &[
            ("existing", "1"),
            ("key", "intro"),
            ("label", "Intro"),
            ("color", "#3b82f6"),
            ("category", "open"),
            ("position", "2"),
        ],
    ));
    form.extend(stage_fields(
        1,
        &[
            ("existing", "1"),
            ("key", "contract_signed"),
            ("label", "Signed"),
            ("color", "#16a34a"),
            ("category", "won"),
            ("position", "1"),
        ],
    ));
    form.extend(stage_fields(
        2,
        &[
            ("key", "lost"),
            ("label", "Lost"),
            ("color", "#6b7280"),
            ("category", "lost"),
            ("position", "3"),
        ],
    ));
    let (status, location, _) =
        post_pairs(&app, &client, &format!("/settings/pipelines/{id}"), &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/settings/pipelines/{id}?saved=1"));
    let saved = app
        .get(&format!("/api/v1/pipelines/{id}"), &owner.access)
        .await;
    assert_eq!(
        stage_keys(&saved.body),
        ["contract_signed", "intro", "lost"]
    );
    assert_eq!(saved.body["stages"][0]["label"], "Signed");
    assert_eq!(
        saved.body["fields"],
        json!([]),
        "fields left out are removed"
    );

    // Existing keys are shown, not editable; the edit page shows what was saved.
    let (_, html) = app
        .page(&client, &format!("/settings/pipelines/{id}"))
        .await;
    assert!(html.contains("<code class=\"pipe-key\""));
    assert!(html.contains("name=\"stages[0][key]\" value=\"contract_signed\""));

    // Removing a stage that holds records is refused with the service's explanation.
    created(
        &app,
        &owner,
        "/api/v1/leads",
        json!({"first_name": "Ivy", "pipeline_id": id, "stage": "intro"}),
    )
    .await;
    let mut form = details("Partners");
    form.extend(stage_fields(
        0,
        &[
            ("existing", "1"),
            ("key", "contract_signed"),
            ("label", "Signed"),
            ("color", "#16a34a"),
            ("category", "won"),
            ("position", "1"),
        ],
    ));
    form.extend(stage_fields(
        1,
        &[
            ("existing", "1"),
            ("key", "intro"),
            ("label", "Intro"),
            ("color", "#3b82f6"),
            ("category", "open"),
            ("position", "2"),
            ("remove", "1"),
        ],
    ));
    let (status, _, html) =
        post_pairs(&app, &client, &format!("/settings/pipelines/{id}"), &form).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("Move the records out of the stages you are removing first"));

    // Deleting: a pipeline with records is refused on the list page.
    let (status, html) = app
        .page(&client, &format!("/settings/pipelines/{id}/delete"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete the \u{201c}Partners\u{201d} pipeline?"));
    let (status, _, html) = app
        .post_form(
            &client,
            &format!("/settings/pipelines/{id}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("alert-danger") && html.contains("holds 1 record"));

    // Members may not manage pipelines.
    app.add_member(&owner, "mo@acme.test", "member").await;
    let member = signed_in(&app, "mo@acme.test").await;
    let (_, html) = app.page(&member, "/").await;
    let member_csrf = csrf_from_html(&html);
    for path in [
        "/settings/pipelines".to_owned(),
        "/settings/pipelines/new".to_owned(),
        format!("/settings/pipelines/{id}"),
    ] {
        let (status, _) = app.page(&member, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let mut form = details("Sneaky");
    form[0].1 = member_csrf;
    form.extend(stage_fields(
        0,
        &[
            ("key", "a"),
            ("label", "A"),
            ("color", "#3b82f6"),
            ("position", "1"),
        ],
    ));
    let (status, _, _) = post_pairs(&app, &member, "/settings/pipelines/new", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn page_forms_without_csrf_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let task = created(&app, &owner, "/api/v1/tasks", json!({"title": "Keep me"})).await;
    let task_id = id_of(&task);
    let pipelines = app.get("/api/v1/pipelines", &owner.access).await;
    let pipeline_id = pipelines.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let client = signed_in(&app, "ada@acme.test").await;
    for path in [
        "/tasks".to_owned(),
        format!("/tasks/{task_id}/toggle"),
        format!("/tasks/{task_id}/delete"),
        "/settings/pipelines/new".to_owned(),
        format!("/settings/pipelines/{pipeline_id}"),
        format!("/settings/pipelines/{pipeline_id}/delete"),
    ] {
        let (status, _, _) = app
            .post_form(
                &client,
                &path,
                &[("title", "Forged"), ("done", "1"), ("name", "Forged")],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let task = app
        .get(&format!("/api/v1/tasks/{task_id}"), &owner.access)
        .await;
    assert!(task.body["completed_at"].is_null(), "nothing changed");
    let list = app.get("/api/v1/pipelines", &owner.access).await;
    assert_eq!(
        list.body["items"][0]["name"],
        pipelines.body["items"][0]["name"]
    );
}
