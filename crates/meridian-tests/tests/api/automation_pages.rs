//! The automation pages as a browser uses them, without JavaScript: building an automation with
//! the form (rows added by re-rendering, refusals next to their rows with what was typed kept),
//! the list's on/off switches, the gallery, branches saved from the JSON editor, the run history
//! and a run's steps after a worker ran it, Retry on a failed run, deleting behind a confirmation,
//! and who may see which page.

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, csrf_from_html, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    an_automation_is_built_with_the_form,
    the_list_switches_automations_and_the_gallery_creates_them_off,
    branches_are_saved_from_the_json_editor,
    runs_show_their_steps_and_a_failed_run_is_retried,
    automation_pages_follow_roles_and_organizations,
);

/// The text between `start` and the next `end` after it (the test fails without `start`).
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the page"))
        + start.len();
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// The automation id a redirect to `/automations/{id}?notice=…` names.
fn id_from(location: &str) -> String {
    let rest = location
        .strip_prefix("/automations/")
        .unwrap_or_else(|| panic!("not an automation page: {location}"));
    rest.split('?').next().unwrap_or_default().to_owned()
}

async fn lead(app: &TestApp, who: &Tokens, first: &str) -> Value {
    let reply = app
        .post(
            "/api/v1/leads",
            &who.access,
            json!({"first_name": first, "last_name": "Diaz"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

/// Polls the automation's runs (through the API) until none is queued or waiting.
async fn settled(app: &TestApp, who: &Tokens, automation: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = app
            .get(
                &format!("/api/v1/automations/{automation}/runs"),
                &who.access,
            )
            .await;
        let runs = reply.body["items"].as_array().cloned().unwrap_or_default();
        if !runs.is_empty()
            && runs
                .iter()
                .all(|r| !matches!(r["status"].as_str(), Some("queued" | "waiting")))
        {
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs never settled: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_automation_is_built_with_the_form(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;

    let (status, html) = app.page(&client, "/automations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No automations yet"), "empty state");
    assert!(html.contains("href=\"/automations/new\""));
    assert!(html.contains("href=\"/automations\" class=\"nav-item active\""));

    let (status, html) = app.page(&client, "/automations/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("How it works") && html.contains("No steps yet"));
    let csrf = csrf_from_html(&html);

    // Rows are added by posting the form back: what was typed stays.
    let base = [
        ("csrf_token", csrf.as_str()),
        ("name", "Qualified follow-up"),
        ("enabled", "1"),
        ("trigger", "stage_changed"),
        ("pipeline_id", ""),
        ("from", ""),
        ("to", "qualified"),
    ];
    let mut form = base.to_vec();
    form.extend([("new_action", "create_task"), ("intent", "add_action")]);
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("value=\"Qualified follow-up\""), "name kept");
    assert!(html.contains("<option value=\"qualified\" selected>Qualified</option>"));
    assert!(html.contains("name=\"actions[0][type]\""), "a step row");
    assert!(html.contains("<option value=\"create_task\" selected>Create a task</option>"));
    let mut form = base.to_vec();
    form.extend([
        ("actions[0][type]", "create_task"),
        ("actions[0][title]", "Call back"),
        ("intent", "add_condition"),
    ]);
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"rules[0][field]\""), "a condition row");
    assert!(html.contains("value=\"Call back\""), "the step is kept");

    // Refused: each reason next to its row, with everything typed kept.
    let mut form = base.to_vec();
    form.extend([
        ("match", "all"),
        ("rules[0][field]", "source"),
        ("rules[0][op]", "equals"),
        ("rules[0][value]", "referral"),
        ("actions[0][type]", "create_task"),
        ("actions[0][title]", "Call back"),
        ("actions[0][task_type]", "call"),
        ("actions[0][due_amount]", "2"),
        ("actions[0][due_unit]", "days"),
        ("actions[0][assignee]", "owner"),
        ("actions[1][type]", "change_stage"),
        ("actions[1][stage]", "archived_forever"),
        ("actions[2][type]", "add_tag"),
        ("actions[2][tag]", ""),
        ("intent", "save"),
    ]);
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("2 things need fixing"), "the summary");
    assert_eq!(
        between(&html, "id=\"a1-stage-error\">", "</p>"),
        "&#34;archived_forever&#34; is not a stage"
    );
    assert!(between(&html, "id=\"a2-tag-error\">", "</p>").starts_with("Is required"));
    assert!(html.contains("value=\"Call back\"") && html.contains("value=\"referral\""));
    assert!(html.contains("<option value=\"call\" selected>Call</option>"));
    let (_, list) = app.page(&client, "/automations").await;
    assert!(list.contains("No automations yet"), "nothing was saved");

    // A choice not made is caught by the form itself.
    let mut form = base.to_vec();
    form.extend([("actions[0][type]", "send_email"), ("intent", "save")]);
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        between(&html, "id=\"a0-template-error\">", "</p>"),
        "Choose a template."
    );

    // Saved: the editor shows it as stored, at version 1.
    let mut form = base.to_vec();
    form.extend([
        ("match", "any"),
        ("rules[0][field]", "source"),
        ("rules[0][op]", "in"),
        ("rules[0][value]", "referral, web_form"),
        ("actions[0][type]", "create_task"),
        ("actions[0][title]", "Call back"),
        ("actions[0][task_type]", "call"),
        ("actions[0][due_amount]", "2"),
        ("actions[0][due_unit]", "days"),
        ("actions[0][assignee]", "owner"),
        ("actions[1][type]", "add_tag"),
        ("actions[1][tag]", "hot"),
        ("intent", "save"),
    ]);
    let (status, location, _) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("?notice=created"), "{location}");
    let id = id_from(&location);
    let (status, html) = app.page(&client, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Automation created."));
    assert!(html.contains("value=\"referral, web_form\""));
    assert!(html.contains("<option value=\"any\" selected>"));
    assert!(html.contains("Version 1</span><span class=\"badge badge-accent\">Current</span>"));
    assert!(between(&html, "name=\"actions[0][due_amount]\"", ">").contains("value=\"2\""));
    let stored = app
        .get(&format!("/api/v1/automations/{id}"), &owner.access)
        .await;
    assert_eq!(
        stored.body["definition"]["actions"][0],
        json!({"type": "create_task", "title": "Call back", "task_type": "call",
               "due_in_minutes": 2880, "assignee": {"to": "owner"}})
    );
    assert_eq!(
        stored.body["definition"]["conditions"]["rules"][0]["value"],
        json!(["referral", "web_form"])
    );

    // Listed with its trigger in words and its step count, switched on.
    let (_, html) = app.page(&client, "/automations").await;
    let row = between(&html, &format!("data-automation=\"{id}\""), "</tr>");
    assert!(row.contains(">Qualified follow-up</a>"), "{row}");
    assert!(row.contains("When a lead moves to Qualified"), "{row}");
    assert!(
        row.contains("2 steps") && row.contains("Never ran"),
        "{row}"
    );
    assert!(row.contains("aria-checked=\"true\""), "{row}");

    // An edit that changes the steps is version 2; one that changes nothing keeps the version.
    let editor = format!("/automations/{id}");
    let (status, location, _) = app.post_form(&client, &editor, &form).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, &*format!("{editor}?notice=saved"))
    );
    let (_, html) = app.page(&client, &editor).await;
    assert!(!html.contains("Version 2"), "nothing changed");
    let mut changed = form.clone();
    changed.retain(|(k, _)| !k.starts_with("actions[1]"));
    let (status, _, _) = app.post_form(&client, &editor, &changed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = app.page(&client, &format!("{editor}?notice=saved")).await;
    assert!(html.contains("Automation saved."));
    assert!(html.contains("Version 2</span><span class=\"badge badge-accent\">Current</span>"));
    assert!(
        html.contains("Version 1</span>"),
        "the first version is listed"
    );
    assert!(html.contains("by Owner of Acme Growth"));
}

async fn the_list_switches_automations_and_the_gallery_creates_them_off(engine: Engine) {
    let app = spawn_app(engine).await;
    app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;
    let (_, html) = app.page(&client, "/automations").await;
    let csrf = csrf_from_html(&html);
    for key in [
        "welcome_email",
        "follow_up_after_contacted",
        "notify_managers_pending_handoff",
        "task_reminder",
    ] {
        assert!(
            html.contains(&format!("action=\"/automations/gallery/{key}\"")),
            "{key} is offered"
        );
    }

    // Use: created turned off, opened in the editor to review.
    let (status, location, _) = app
        .post_form(
            &client,
            "/automations/gallery/welcome_email",
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("?notice=gallery"), "{location}");
    let id = id_from(&location);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Created from the gallery, turned off"));
    assert!(html.contains("Welcome email on a new lead"));
    assert!(
        html.contains("<input type=\"checkbox\" name=\"enabled\" value=\"1\" aria-describedby=\"enabled-hint\">"),
        "the switch is off"
    );
    assert!(html.contains("<option value=\"send_email\" selected>Send an email</option>"));
    assert!(html.contains("<option value=\"is_not_empty\" selected>is not empty</option>"));

    // A gallery item this organization cannot use says why.
    let (status, _, html) = app
        .post_form(
            &client,
            "/automations/gallery/notify_managers_pending_handoff",
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("pending_handoff"), "{html}");

    // The switch: a form that posts back to the list...
    let (_, html) = app.page(&client, "/automations").await;
    let row = between(&html, &format!("data-automation=\"{id}\""), "</tr>");
    assert!(
        row.contains("aria-checked=\"false\"") && row.contains("value=\"1\""),
        "{row}"
    );
    let toggle = format!("/automations/{id}/toggle");
    let (status, location, _) = app
        .post_form(
            &client,
            &toggle,
            &[("csrf_token", csrf.as_str()), ("enabled", "1")],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/automations?notice=on")
    );
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Automation turned on."));
    let row = between(&html, &format!("data-automation=\"{id}\""), "</tr>");
    assert!(
        row.contains("aria-checked=\"true\"") && row.contains("value=\"0\""),
        "{row}"
    );

    // ...and, for the script, JSON.
    let reply = client
        .post(app.url(&toggle))
        .header("accept", "application/json")
        .form(&[("csrf_token", csrf.as_str()), ("enabled", "0")])
        .send()
        .await
        .expect("toggle");
    assert_eq!(reply.status(), StatusCode::OK);
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body, json!({"id": id, "enabled": false}));
    let (_, html) = app.page(&client, "/automations").await;
    let row = between(&html, &format!("data-automation=\"{id}\""), "</tr>");
    assert!(row.contains("aria-checked=\"false\""), "{row}");
}

const BRANCHED: &str = r#"{"trigger": {"type": "lead_created"},
  "actions": [{"type": "branch",
    "conditions": {"rules": [{"field": "source", "op": "equals", "value": "referral"}]},
    "then": [{"type": "add_tag", "tag": "referred"}],
    "else": [{"type": "wait", "minutes": 60}, {"type": "add_tag", "tag": "other"}]}]}"#;

async fn branches_are_saved_from_the_json_editor(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;
    let (_, html) = app.page(&client, "/automations/new").await;
    assert!(html.contains("Advanced: edit as JSON"));
    let csrf = csrf_from_html(&html);

    // Text that is not JSON is refused, and kept.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Sort by source"),
        ("enabled", "1"),
        ("definition_json", "{\"trigger\": "),
        ("intent", "save_json"),
    ];
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("is not valid JSON"), "{html}");
    assert!(
        html.contains("{&#34;trigger&#34;: </textarea>"),
        "the text is kept"
    );
    assert!(html.contains("Back to the form"));

    // A stage that does not exist inside a branch is named by its path.
    let bad = BRANCHED.replace(
        r#"{"type": "add_tag", "tag": "referred"}"#,
        r#"{"type": "change_stage", "stage": "nowhere"}"#,
    );
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Sort by source"),
        ("enabled", "1"),
        ("definition_json", bad.as_str()),
        ("intent", "save_json"),
    ];
    let (status, _, html) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("actions[0].then[0].stage: &#34;nowhere&#34; is not a stage"),
        "{}",
        between(&html, "auto-problems", "</ul>")
    );

    // Saved: the editor shows the JSON (the form cannot show branches), with a note.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Sort by source"),
        ("enabled", "1"),
        ("definition_json", BRANCHED),
        ("intent", "save_json"),
    ];
    let (status, location, _) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "saved");
    let id = id_from(&location);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("has if/else branches, which the form cannot show"));
    assert!(!html.contains("name=\"trigger\""), "no form sections");
    assert!(!html.contains("Back to the form"));
    let json = between(&html, "name=\"definition_json\"", "</textarea>");
    assert!(json.contains("&#34;type&#34;: &#34;branch&#34;"), "{json}");
    let (_, list) = app.page(&client, "/automations").await;
    assert!(list.contains("4 steps"), "the branch and the steps in it");

    // An edit through the JSON editor is a new version.
    let changed = BRANCHED.replace("\"minutes\": 60", "\"minutes\": 120");
    let editor = format!("/automations/{id}");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Sort by source"),
        ("enabled", "1"),
        ("definition_json", changed.as_str()),
        ("intent", "save_json"),
    ];
    let (status, _, _) = app.post_form(&client, &editor, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = app
        .get(&format!("/api/v1/automations/{id}"), &owner.access)
        .await;
    assert_eq!(stored.body["version"], 2);
    assert_eq!(
        stored.body["definition"]["actions"][0]["else"][0]["minutes"],
        120
    );
}

async fn runs_show_their_steps_and_a_failed_run_is_retried(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;
    let (_, html) = app.page(&client, "/automations/new").await;
    let csrf = csrf_from_html(&html);

    // Round-robin to a role nobody has: the assignment fails.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Hand to intake"),
        ("enabled", "1"),
        ("trigger", "lead_created"),
        ("pipeline_id", ""),
        ("actions[0][type]", "add_tag"),
        ("actions[0][tag]", "routed"),
        ("actions[1][type]", "assign"),
        ("actions[1][assignee]", "round_robin"),
        ("actions[1][assignee_role]", "intake"),
        ("intent", "save"),
    ];
    let (status, location, _) = app.post_form(&client, "/automations/new", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = id_from(&location);
    let runs_page = format!("/automations/{id}/runs");
    let (status, html) = app.page(&client, &runs_page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No runs yet"));

    let worker = app.start_worker();
    let ana = lead(&app, &owner, "Ana").await;
    let ana_id = ana["id"].as_str().expect("id");
    let runs = settled(&app, &owner, &id).await;
    assert_eq!(runs[0]["status"], "failed", "{runs:#?}");
    let run_id = runs[0]["id"].as_str().expect("run id").to_owned();

    // The history: the lead, the status, the version and the error.
    let (_, html) = app.page(&client, &runs_page).await;
    let row = between(&html, &format!("data-run=\"{run_id}\""), "</tr>");
    let number = ana["display_number"].as_str().expect("number");
    assert!(
        row.contains(&format!(
            "<a href=\"/leads/{ana_id}\">#{number} Ana Diaz</a>"
        )),
        "{row}"
    );
    assert!(row.contains("badge badge-danger\">Failed</span>"), "{row}");
    assert!(row.contains(">v1<"), "{row}");
    assert!(
        row.contains("no active member has the role intake"),
        "{row}"
    );
    assert!(
        row.contains(&format!("href=\"/automation-runs/{run_id}\"")),
        "{row}"
    );
    let (_, html) = app
        .page(&client, &format!("{runs_page}?status=succeeded"))
        .await;
    assert!(html.contains("No succeeded runs"), "the filter");
    assert!(html.contains("class=\"chip active\" href=\"/automations/"));

    // The run: the event, each step and a Retry button.
    let run_page = format!("/automation-runs/{run_id}");
    let (status, html) = app.page(&client, &run_page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<dt>Trigger</dt><dd>A lead is created</dd>"),
        "the event"
    );
    assert!(html.contains("<dt>Pipeline</dt><dd>Leads</dd>"));
    let steps = between(&html, "<tbody>", "</tbody>");
    assert!(steps.contains("<strong>Add a tag</strong>"), "{steps}");
    assert!(
        steps.contains("<dt>Tag</dt><dd>routed</dd>"),
        "readable output: {steps}"
    );
    assert_eq!(
        steps.matches("<strong>Assign the lead</strong>").count(),
        5,
        "five attempts"
    );
    assert!(steps.contains("no active member has the role intake"));
    assert!(html.contains(&format!("action=\"/automation-runs/{run_id}/retry\"")));

    // Someone joins intake; Retry carries on from the failed step.
    let intake = app.add_member(&owner, "ivy@acme.test", "intake").await;
    let retry = format!("/automation-runs/{run_id}/retry");
    let (status, location, _) = app
        .post_form(&client, &retry, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            &*format!("{run_page}?notice=retried")
        )
    );
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Retrying from the step that failed."));
    let runs = settled(&app, &owner, &id).await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let (_, html) = app.page(&client, &run_page).await;
    assert!(html.contains("badge badge-success\">Succeeded</span>"));
    assert!(
        html.contains(&format!(
            "<dt>Assigned to</dt><dd>Member {}</dd>",
            intake.email
        )),
        "the assignee by name"
    );
    assert!(
        !html.contains(&format!("action=\"{retry}\"")),
        "no Retry once it succeeded"
    );

    // Retrying a run that did not fail is refused with the reason.
    let (status, _, html) = app
        .post_form(&client, &retry, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        html.contains("Only failed runs can be retried; this one is succeeded."),
        "{html}"
    );
    let (_, html) = app.page(&client, &format!("/automations/{id}")).await;
    assert!(
        html.contains("badge badge-success\">Succeeded</span>"),
        "last run in the editor"
    );
    worker.stop().await;
}

async fn automation_pages_follow_roles_and_organizations(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "mo@acme.test", "member").await;
    app.add_member(&owner, "max@acme.test", "manager").await;
    let created = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "By hand", "definition": {"trigger": {"type": "manual"},
                   "actions": [{"type": "add_tag", "tag": "picked"}]}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let ana = lead(&app, &owner, "Ana").await;
    let started = app
        .post(
            &format!("/api/v1/automations/{id}/runs"),
            &owner.access,
            json!({"lead_ids": [ana["id"]]}),
        )
        .await;
    let run_id = started.body["results"][0]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();

    // Members have no automations.
    let member = app.signed_in("mo@acme.test").await;
    for path in [
        "/automations".to_owned(),
        "/automations/new".to_owned(),
        format!("/automations/{id}"),
        format!("/automations/{id}/runs"),
        format!("/automation-runs/{run_id}"),
    ] {
        let (status, _) = app.page(&member, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "member: {path}");
    }
    let (_, html) = app.page(&member, "/").await;
    assert!(
        !html.contains("href=\"/automations\""),
        "no navigation entry"
    );

    // Managers do: the page of a queued run, and the navigation entry.
    let manager = app.signed_in("max@acme.test").await;
    let (status, html) = app
        .page(&manager, &format!("/automation-runs/{run_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<dt>Trigger</dt><dd>Someone runs it on leads</dd>"));
    assert!(html.contains("href=\"/automations\" class=\"nav-item active\""));

    // Another organization's ids are not found.
    app.create_org("Other Co", "olga@other.test").await;
    let other = app.signed_in("olga@other.test").await;
    for path in [
        format!("/automations/{id}"),
        format!("/automations/{id}/runs"),
        format!("/automations/{id}/delete"),
        format!("/automation-runs/{run_id}"),
    ] {
        let (status, _) = app.page(&other, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "other organization: {path}");
    }
    let (_, html) = app.page(&other, "/automations").await;
    let other_csrf = csrf_from_html(&html);
    for path in [
        format!("/automations/{id}/toggle"),
        format!("/automations/{id}/delete"),
        format!("/automation-runs/{run_id}/retry"),
    ] {
        let (status, _, _) = app
            .post_form(
                &other,
                &path,
                &[("csrf_token", other_csrf.as_str()), ("enabled", "0")],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "other organization: POST {path}"
        );
    }

    // Deleting goes through a confirmation page.
    let client = app.signed_in("ada@acme.test").await;
    let confirm = format!("/automations/{id}/delete");
    let (status, html) = app.page(&client, &confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete the automation \u{201c}By hand\u{201d}?"));
    let csrf = csrf_from_html(&html);
    let (status, location, _) = app
        .post_form(&client, &confirm, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/automations?notice=deleted")
    );
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Automation deleted.") && html.contains("No automations yet"));
    let (status, _) = app.page(&client, &format!("/automations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .page(&client, &format!("/automation-runs/{run_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "its runs went with it");
}
