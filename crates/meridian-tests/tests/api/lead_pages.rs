//! The lead pages over HTTP as a browser uses them: list, board, new-lead form, the lead page's
//! actions, notes, tasks and bulk actions, each a plain form POST with the CSRF token.

use meridian_tests::{Engine, PASSWORD, both_engines, browser, csrf_from_html, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    lead_pages_work_without_javascript,
    handoff_from_the_lead_page
);

fn leads(reply: &Value) -> &Vec<Value> {
    reply["items"].as_array().expect("items")
}

async fn lead_pages_work_without_javascript(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let client = browser();
    app.web_login(&client, "owner@acme.test", PASSWORD).await;

    let (status, html) = app.page(&client, "/leads").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No leads yet"), "empty state");
    let csrf = csrf_from_html(&html);
    let pipeline = app.get("/api/v1/pipelines", &owner.access).await;
    let pipeline_id = pipeline.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // New lead: a bad phone comes back inline with what was typed; a good form creates it.
    let bad = [
        ("csrf_token", csrf.as_str()),
        ("pipeline_id", pipeline_id.as_str()),
        ("first_name", "Ada"),
        ("phone", "12"),
        ("email", "ada@example.com"),
        ("cf.budget", "lots"),
    ];
    let (status, _, html) = app.post_form(&client, "/leads/new", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("is not a valid phone number") || html.contains("phone"),
        "{html}"
    );
    assert!(
        html.contains("value=\"ada@example.com\""),
        "typed values are kept"
    );
    assert!(
        html.contains("must be a number value"),
        "custom field error shown"
    );
    let good = [
        ("csrf_token", csrf.as_str()),
        ("pipeline_id", pipeline_id.as_str()),
        ("first_name", "Ada"),
        ("last_name", "Lovelace"),
        ("phone", "(415) 555-0123"),
        ("email", "ada@example.com"),
        ("state", "California"),
        ("tags", "vip, east"),
        ("cf.budget", "5000"),
        ("is_priority", "on"),
        ("assigned_to", owner.user_id.as_str()),
    ];
    let (status, location, _) = app.post_form(&client, "/leads/new", &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "created");
    let id = location
        .trim_start_matches("/leads/")
        .split('?')
        .next()
        .expect("id")
        .to_owned();
    let api = app.get(&format!("/api/v1/leads/{id}"), &owner.access).await;
    assert_eq!(api.body["phone"], "+14155550123");
    assert_eq!(api.body["custom_fields"]["budget"], 5000.0);
    assert_eq!(api.body["tags"], json!(["east", "vip"]));
    assert_eq!(api.body["is_priority"], true);
    assert_eq!(api.body["assigned_to"], owner.user_id.as_str());

    let (status, html) = app
        .page(&client, &format!("/leads/{id}?notice=created"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Ada Lovelace") && html.contains("#00001") && html.contains("Created."));
    for tab in ["notes", "tasks", "activity"] {
        let (status, _) = app.page(&client, &format!("/leads/{id}?tab={tab}")).await;
        assert_eq!(status, StatusCode::OK, "{tab}");
    }

    // Header actions, note, task, edit.
    let action = format!("/leads/{id}/action");
    let (status, location, _) = app
        .post_form(
            &client,
            &action,
            &[
                ("csrf_token", &csrf),
                ("action", "stage"),
                ("stage", "qualified"),
                ("reason", "Budget confirmed"),
            ],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            format!("/leads/{id}?notice=stage").as_str()
        )
    );
    app.post_form(
        &client,
        &format!("/leads/{id}/notes"),
        &[
            ("csrf_token", &csrf),
            (
                "body_html",
                "Prefers\r\n\r\nevening calls <script>x</script>",
            ),
        ],
    )
    .await;
    let notes = app
        .get(&format!("/api/v1/leads/{id}/notes"), &owner.access)
        .await;
    assert_eq!(
        notes.body["items"][0]["body_html"],
        "<p>Prefers</p><p>evening calls &lt;script&gt;x&lt;/script&gt;</p>"
    );
    let (status, _, _) = app
        .post_form(
            &client,
            &format!("/leads/{id}/tasks"),
            &[
                ("csrf_token", &csrf),
                ("title", "Send the contract"),
                ("type", "email"),
                ("due_at", "2030-01-02T09:30"),
                ("assignee_id", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let tasks = app
        .get(&format!("/api/v1/tasks?lead_id={id}"), &owner.access)
        .await;
    assert_eq!(tasks.body["items"][0]["due_at"], "2030-01-02T09:30:00Z");
    let task_id = tasks.body["items"][0]["id"]
        .as_str()
        .expect("task")
        .to_owned();
    app.post_form(
        &client,
        &format!("/leads/{id}/tasks/{task_id}/toggle"),
        &[("csrf_token", &csrf), ("done", "true")],
    )
    .await;
    let task = app
        .get(&format!("/api/v1/tasks/{task_id}"), &owner.access)
        .await;
    assert!(task.body["completed_at"].is_string());
    let (status, _, html) = app
        .post_form(
            &client,
            &format!("/leads/{id}"),
            &[
                ("csrf_token", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", "not-an-email"),
                ("tags", "vip"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("is not an email address") && html.contains("value=\"King\""));
    let (status, _, _) = app
        .post_form(
            &client,
            &format!("/leads/{id}"),
            &[
                ("csrf_token", &csrf),
                ("first_name", "Ada"),
                ("last_name", "King"),
                ("email", ""),
                ("tags", "vip"),
                ("cf.budget", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = app.get(&format!("/api/v1/leads/{id}"), &owner.access).await;
    assert_eq!(
        (&api.body["last_name"], &api.body["email"]),
        (&json!("King"), &Value::Null)
    );
    assert_eq!(api.body["custom_fields"], json!({}));
    let (_, html) = app
        .page(&client, &format!("/leads/{id}?tab=activity"))
        .await;
    assert!(
        html.contains("moved it from New to Qualified")
            && html.contains("Reason: Budget confirmed"),
        "{html}"
    );
    assert!(html.contains("completed the task"));

    // List filters, columns and the board.
    for n in 0..3 {
        app.post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": format!("Grace {n}"), "source": "meta"}),
        )
        .await;
    }
    let (_, html) = app.page(&client, &format!("/leads?pipeline_id={pipeline_id}&source=meta&col=name&col=source&col=custom_fields.budget")).await;
    assert!(
        html.contains("Grace 0") && !html.contains("Ada King"),
        "filtered"
    );
    assert!(
        html.contains("<th scope=\"col\">Budget</th>"),
        "custom column"
    );
    let (status, html) = app
        .page(&client, &format!("/leads/board?pipeline_id={pipeline_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-column=\"qualified\"") && html.contains("Ada King"));

    // Bulk: archive the three Graces from the list form.
    let all = app.get("/api/v1/leads?source=meta", &owner.access).await;
    let ids: Vec<String> = leads(&all.body)
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf_token", &csrf),
        ("action", "archive"),
        ("back", "/leads?source=meta"),
    ];
    for id in &ids {
        form.push(("ids", id));
    }
    let (status, location, _) = app.post_form(&client, "/leads/bulk", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/leads?source=meta&notice=bulk&ok=3&failed=0");
    assert!(
        leads(
            &app.get("/api/v1/leads?source=meta", &owner.access)
                .await
                .body
        )
        .is_empty()
    );

    // Saved view from the list's filters.
    let (status, location, _) = app
        .post_form(
            &client,
            "/leads/views",
            &[
                ("csrf_token", &csrf),
                ("name", "Qualified"),
                ("f.pipeline_id", &pipeline_id),
                ("f.stage", "qualified"),
                ("f.columns", "number,name,stage"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("View saved.") && html.contains("Ada King"));

    // Without the CSRF token nothing changes.
    let (status, _, _) = app
        .post_form(&client, &action, &[("action", "archive")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Delete asks first, then deletes.
    let (status, html) = app.page(&client, &format!("/leads/{id}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete for good"));
    app.post_form(
        &client,
        &format!("/leads/{id}/delete"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/leads/{id}"), &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn handoff_from_the_lead_page(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app
        .create_org_from("Bright Futures", "owner@bright.test", "surrogacy")
        .await;
    app.add_member(&owner, "intake@bright.test", "intake").await;
    app.add_member(&owner, "cm@bright.test", "case_manager")
        .await;
    let pipelines = app.get("/api/v1/pipelines", &owner.access).await;
    let cases = pipelines.body["items"][0]["id"]
        .as_str()
        .expect("cases")
        .to_owned();
    let case = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "Maria", "pipeline_id": cases, "stage": "approved"}),
        )
        .await;
    let id = case.body["id"].as_str().expect("id").to_owned();

    let intake = browser();
    app.web_login(&intake, "intake@bright.test", PASSWORD).await;
    let (_, html) = app.page(&intake, &format!("/leads/{id}")).await;
    assert!(
        html.contains("Pending match (another role)"),
        "owned stages are offered disabled"
    );
    let csrf = csrf_from_html(&html);
    let (status, location, _) = app
        .post_form(
            &intake,
            &format!("/leads/{id}/action"),
            &[
                ("csrf_token", &csrf),
                ("action", "stage"),
                ("stage", "pending_handoff"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("notice=handed_off"), "{location}");
    assert_eq!(
        app.page(&intake, &format!("/leads/{id}")).await.0,
        StatusCode::NOT_FOUND
    );

    let cm = browser();
    app.web_login(&cm, "cm@bright.test", PASSWORD).await;
    let (_, html) = app
        .page(&cm, &format!("/leads?pipeline_id={cases}&queue=handoff"))
        .await;
    assert!(html.contains("Maria") && html.contains("Handoff queue"));
    let (_, html) = app.page(&cm, &format!("/leads/{id}")).await;
    assert!(html.contains("Waiting for your decision"));
    let csrf = csrf_from_html(&html);
    let (status, _, html) = app
        .post_form(
            &cm,
            &format!("/leads/{id}/action"),
            &[("csrf_token", &csrf), ("action", "deny"), ("reason", "")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("reason is required"), "{html}");
    let (status, location, _) = app
        .post_form(
            &cm,
            &format!("/leads/{id}/action"),
            &[("csrf_token", &csrf), ("action", "accept")],
        )
        .await;
    assert_eq!(
        (status, location),
        (
            StatusCode::SEE_OTHER,
            format!("/leads/{id}?notice=accepted")
        )
    );
    let accepted = app.get(&format!("/api/v1/leads/{id}"), &owner.access).await;
    assert_eq!(accepted.body["stage"], "pending_match");
}
