//! The sequence pages as a browser uses them, without JavaScript: the editor (adding and moving a
//! step by re-rendering the form, errors next to the step they are about), the list, adding a lead
//! from its page (and the reasons a lead is refused), stopping by hand from either page, pausing,
//! deleting behind a confirmation, and who may do what.

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, csrf_from_html, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    sequences_are_written_by_form,
    leads_are_added_and_stopped_from_the_pages,
    sequences_are_paused_resumed_and_deleted,
    sequence_pages_follow_roles_and_organizations,
);

async fn template(app: &TestApp, who: &Tokens, name: &str) -> String {
    app.created(who,
        "/api/v1/email/templates",
        json!({"name": name, "subject": format!("{name}, {{{{lead.first_name}}}}"), "body_text": "Hello"}),
    )
    .await
}

async fn lead(app: &TestApp, who: &Tokens, first: &str, email: Option<&str>) -> String {
    app.created(
        who,
        "/api/v1/leads",
        json!({"first_name": first, "last_name": "Diaz", "email": email}),
    )
    .await
}

/// "Onboarding": Welcome right away, Follow-up an hour later.
async fn onboarding(app: &TestApp, who: &Tokens) -> String {
    let welcome = template(app, who, "Welcome").await;
    let follow_up = template(app, who, "Follow-up").await;
    app.created(
        who,
        "/api/v1/email/sequences",
        json!({"name": "Onboarding", "steps": [
            {"template_id": welcome, "delay_minutes": 0},
            {"template_id": follow_up, "delay_minutes": 60},
        ]}),
    )
    .await
}

/// The text between `start` and the next `end` after it (the test fails without `start`).
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the page"))
        + start.len();
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// The editor's fields: name, on/off, then each step as (template, days, hours, minutes).
fn editor_form<'a>(
    csrf: &'a str,
    name: &'a str,
    enabled: bool,
    steps: &[(&'a str, &'a str, &'a str, &'a str)],
    intent: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("csrf_token", csrf), ("name", name)];
    if enabled {
        form.push(("enabled", "true"));
    }
    for (template, days, hours, minutes) in steps {
        form.extend([
            ("step_template", *template),
            ("step_days", *days),
            ("step_hours", *hours),
            ("step_minutes", *minutes),
        ]);
    }
    form.push(("intent", intent));
    form
}

/// The template chosen in each step's select, in order.
fn chosen_templates(html: &str) -> Vec<String> {
    html.split("name=\"step_template\"")
        .skip(1)
        .map(|select| {
            let select = &select[..select.find("</select>").expect("select end")];
            let before = &select[..select.find(" selected>").expect("a selected option")];
            before
                .rsplit("value=\"")
                .next()
                .and_then(|v| v.split('"').next())
                .expect("value")
                .to_owned()
        })
        .collect()
}

async fn enrollment_of(app: &TestApp, who: &Tokens, lead: &str) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/email/enrollments?lead_id={lead}"),
            &who.access,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"][0].clone()
}

async fn sequences_are_written_by_form(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let welcome = template(&app, &owner, "Welcome").await;
    let follow_up = template(&app, &owner, "Follow-up").await;
    let client = app.signed_in("ada@acme.test").await;

    let (status, html) = app.page(&client, "/email/sequences").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No sequences yet"), "empty state");
    assert!(
        html.contains("replies") && html.contains("unsubscribes") && html.contains("archived"),
        "the empty state says when a sequence stops"
    );
    assert!(html.contains("href=\"/email/sequences/new\""));
    assert!(
        html.contains("aria-current=\"page\">Sequences</a>"),
        "its tab"
    );

    let (status, html) = app.page(&client, "/email/sequences/new").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        html.matches("name=\"step_template\"").count(),
        1,
        "one step"
    );
    assert!(html.contains(&format!("<option value=\"{welcome}\">Welcome</option>")));
    let csrf = csrf_from_html(&html);

    // Add step: the same form again with a second, blank step and everything typed kept.
    let first = (welcome.as_str(), "0", "0", "30");
    let form = editor_form(&csrf, "Onboarding", true, &[first], "add_step");
    let (status, _, html) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("value=\"Onboarding\""), "the name is kept");
    assert_eq!(html.matches("name=\"step_template\"").count(), 2, "{html}");
    assert!(html.contains(&format!("<option value=\"{welcome}\" selected>")));
    assert!(between(&html, "id=\"step-0-minutes\"", ">").contains("value=\"30\""));
    assert!(between(&html, "id=\"step-1-template\"", ">").contains("autofocus"));
    assert!(html.contains("Wait after step 1"));
    let (_, list) = app.page(&client, "/email/sequences").await;
    assert!(list.contains("No sequences yet"), "nothing was saved");

    // Saved without a template for step 2: refused next to that step, values kept.
    let second = ("", "2", "0", "0");
    let form = editor_form(&csrf, "Onboarding", true, &[first, second], "save");
    let (status, _, html) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        between(&html, "id=\"step-1-template-error\">", "</p>"),
        "choose a template"
    );
    assert!(!html.contains("id=\"step-0-template-error\""));
    assert!(between(&html, "id=\"step-1-days\"", ">").contains("value=\"2\""));
    assert!(html.contains("value=\"Onboarding\""));

    // A wait longer than a year: refused next to the wait.
    let second = (follow_up.as_str(), "400", "0", "0");
    let form = editor_form(&csrf, "Onboarding", true, &[first, second], "save");
    let (status, _, html) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&html, "id=\"step-1-wait-error\">", "</p>").contains("a year at most"));
    assert!(between(&html, "id=\"step-1-days\"", ">").contains("value=\"400\""));

    // Move step 2 up, then save: created, and back on its page.
    let second = (follow_up.as_str(), "2", "0", "0");
    let form = editor_form(&csrf, "Onboarding", true, &[first, second], "up:1");
    let (status, _, html) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        chosen_templates(&html),
        [follow_up.clone(), welcome.clone()]
    );
    let form = editor_form(&csrf, "Onboarding", true, &[second, first], "save");
    let (status, location, _) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let id = location
        .strip_prefix("/email/sequences/")
        .and_then(|rest| rest.strip_suffix("?notice=created"))
        .expect("the new sequence's page")
        .to_owned();
    let stored = app
        .get(&format!("/api/v1/email/sequences/{id}"), &owner.access)
        .await;
    assert_eq!(stored.body["enabled"], true);
    assert_eq!(stored.body["steps"][0]["template_id"], follow_up.as_str());
    assert_eq!(stored.body["steps"][0]["delay_minutes"], 2 * 24 * 60);
    assert_eq!(stored.body["steps"][1]["delay_minutes"], 30);

    let (status, html) = app.page(&client, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sequence created."), "notice");
    assert!(html.contains("Nobody is in it yet"));
    assert!(between(&html, "id=\"step-0-days\"", ">").contains("value=\"2\""));
    assert!(between(&html, "id=\"step-1-minutes\"", ">").contains("value=\"30\""));

    // The name is unique: refused next to the name.
    let form = editor_form(&csrf, "onboarding", true, &[first], "save");
    let (status, _, html) = app.post_form(&client, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&html, "id=\"name-error\">", "</p>").contains("another sequence"));

    let (_, html) = app.page(&client, "/email/sequences").await;
    assert!(html.contains(&format!("href=\"/email/sequences/{id}\">Onboarding</a>")));
    assert!(html.contains("sequence-on\">On</span>"));
    assert!(html.contains("2 steps"));
    assert!(
        html.contains("2 days after being added, then 30 minutes later"),
        "the waits in words"
    );
}

async fn leads_are_added_and_stopped_from_the_pages(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "mo@acme.test", "member").await;
    let sequence = onboarding(&app, &owner).await;
    let ana = lead(&app, &owner, "Ana", Some("ana@example.com")).await;
    let bea = lead(&app, &owner, "Bea", Some("bea@example.com")).await;
    let nomail = lead(&app, &owner, "Cy", None).await;
    let member = app.signed_in("mo@acme.test").await;

    let page = format!("/leads/{ana}?tab=emails");
    let (status, html) = app.page(&member, &page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Add to a sequence"));
    assert!(html.contains(&format!("<option value=\"{sequence}\">Onboarding</option>")));
    let csrf = csrf_from_html(&html);
    let enroll = |lead: &str, sequence: &str| {
        let path = format!("/leads/{lead}/action");
        let (csrf, sequence, member, app) = (csrf.clone(), sequence.to_owned(), &member, &app);
        async move {
            let form = [
                ("csrf_token", csrf.as_str()),
                ("action", "enroll"),
                ("sequence_id", sequence.as_str()),
            ];
            app.post_form(member, &path, &form).await
        }
    };

    // A member adds Ana: back on her Emails tab, where the enrollment shows.
    let (status, location, _) = enroll(&ana, &sequence).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/leads/{ana}?tab=emails&notice=enrolled"));
    let (_, html) = app.page(&member, &location).await;
    assert!(html.contains("Added to the sequence."), "notice");
    assert!(html.contains(&format!(
        "href=\"/email/sequences/{sequence}\">Onboarding</a>"
    )));
    assert!(html.contains("sequence-status-active\">Active</span>"));
    assert!(html.contains("0 of 2 sent"));
    assert!(html.contains("Next email"));

    // Refused: shown next to the form, with the sequence still chosen.
    let (status, _, html) = enroll(&ana, &sequence).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        between(&html, "id=\"enroll-error\" role=\"alert\">", "</p>").contains("already enrolled")
    );
    assert!(html.contains(&format!(
        "<option value=\"{sequence}\" selected>Onboarding</option>"
    )));
    let (status, _, html) = enroll(&nomail, &sequence).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        between(&html, "id=\"enroll-error\" role=\"alert\">", "</p>").contains("no email address"),
        "{html}"
    );
    let (status, _, html) = enroll(&nomail, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        between(&html, "id=\"enroll-error\" role=\"alert\">", "</p>").contains("Choose a sequence")
    );
    assert!(!html.contains("sequence-status-"), "Cy is in none");

    // The worker sends the first step: progress moves on both pages.
    let worker = app.start_worker();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while enrollment_of(&app, &owner, &ana).await["steps_sent"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first step is never sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    let (status, html) = app
        .page(&member, &format!("/email/sequences/{sequence}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Only managers and admins change sequences"),
        "read-only"
    );
    assert!(!html.contains("value=\"save\""), "no Save for members");
    assert!(html.contains(&format!("href=\"/leads/{ana}\">#00001 Ana Diaz</a>")));
    assert!(html.contains("1 of 2 sent"));
    assert!(html.contains("1 active"));
    let (_, lead_html) = app.page(&member, &page).await;
    assert!(lead_html.contains("1 of 2 sent"));

    // Stop from the sequence's page.
    let enrollment = between(&html, "action=\"/email/enrollments/", "/stop").to_owned();
    let back = format!("/email/sequences/{sequence}");
    let stop = format!("/email/enrollments/{enrollment}/stop");
    let form = [("csrf_token", csrf.as_str()), ("back", back.as_str())];
    let (status, location, _) = app.post_form(&member, &stop, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{back}?notice=sequence_stopped"));
    let (_, html) = app.page(&member, &location).await;
    assert!(html.contains("Stopped. No more emails of this sequence go to them."));
    assert!(html.contains("sequence-status-stopped\">Stopped</span>"));
    assert!(html.contains("Stopped by hand"));
    assert!(
        !html.contains("action=\"/email/enrollments/"),
        "no Stop for an ended one"
    );
    assert_eq!(
        enrollment_of(&app, &owner, &ana).await["stop_reason"],
        "manual"
    );
    let (status, location, _) = app.post_form(&member, &stop, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{back}?notice=sequence_ended"));

    // Stop from the lead's page: back there.
    let (status, _, _) = enroll(&bea, &sequence).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let bea_page = format!("/leads/{bea}?tab=emails");
    let (_, html) = app.page(&member, &bea_page).await;
    let enrollment = between(&html, "action=\"/email/enrollments/", "/stop").to_owned();
    let form = [("csrf_token", csrf.as_str()), ("back", bea_page.as_str())];
    let (status, location, _) = app
        .post_form(
            &member,
            &format!("/email/enrollments/{enrollment}/stop"),
            &form,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{bea_page}&notice=sequence_stopped"));
    let (_, html) = app.page(&member, &location).await;
    assert!(html.contains("Stopped by hand"));
    assert!(html.contains("Stopped. No more emails"), "notice");

    // Only local pages to go back to.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("back", "https://evil.example/"),
    ];
    let (_, location, _) = app
        .post_form(
            &member,
            &format!("/email/enrollments/{enrollment}/stop"),
            &form,
        )
        .await;
    assert_eq!(location, "/?notice=sequence_ended");
}

async fn sequences_are_paused_resumed_and_deleted(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let sequence = onboarding(&app, &owner).await;
    let ana = lead(&app, &owner, "Ana", Some("ana@example.com")).await;
    let enrolled = app
        .post(
            &format!("/api/v1/email/sequences/{sequence}/enrollments"),
            &owner.access,
            json!({"lead_ids": [ana]}),
        )
        .await;
    assert_eq!(enrolled.body["results"][0]["status"], 201);
    let client = app.signed_in("ada@acme.test").await;
    let page = format!("/email/sequences/{sequence}");
    let (_, html) = app.page(&client, &page).await;
    let csrf = csrf_from_html(&html);
    let steps = chosen_templates(&html);
    let (welcome, follow_up) = (steps[0].as_str(), steps[1].as_str());
    let step_rows = [(welcome, "0", "0", "0"), (follow_up, "0", "1", "0")];

    // Pause: saved with the box unchecked.
    let form = editor_form(&csrf, "Onboarding", false, &step_rows, "save");
    let (status, location, _) = app.post_form(&client, &page, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{page}?notice=saved"));
    let stored = app
        .get(
            &format!("/api/v1/email/sequences/{sequence}"),
            &owner.access,
        )
        .await;
    assert_eq!(stored.body["enabled"], false);
    assert_eq!(stored.body["steps"][1]["delay_minutes"], 60);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Sequence saved."));
    assert!(!between(&html, "name=\"enabled\"", ">").contains("checked"));
    assert!(html.contains(">Paused</span>"), "its enrollment waits");
    let (_, html) = app.page(&client, "/email/sequences").await;
    assert!(html.contains("sequence-off\">Off</span>"));
    let (_, html) = app.page(&client, &format!("/leads/{ana}?tab=emails")).await;
    assert!(
        html.contains("No sequence is on right now"),
        "nothing to add to"
    );
    assert!(html.contains(">Paused</span>"));

    // Resume.
    let form = editor_form(&csrf, "Onboarding", true, &step_rows, "save");
    let (status, _, _) = app.post_form(&client, &page, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let stored = app
        .get(
            &format!("/api/v1/email/sequences/{sequence}"),
            &owner.access,
        )
        .await;
    assert_eq!(stored.body["enabled"], true);
    let (_, html) = app.page(&client, &page).await;
    assert!(between(&html, "name=\"enabled\"", ">").contains("checked"));
    assert!(html.contains("Next email"));

    // Delete behind a confirmation that says what happens.
    assert!(html.contains(&format!("href=\"/email/sequences/{sequence}/delete\"")));
    let (status, html) = app.page(&client, &format!("{page}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete the sequence \u{201c}Onboarding\u{201d}?"));
    assert!(html.contains("1 lead in it now will get none of its remaining emails"));
    assert!(
        html.contains(&format!("href=\"{page}\"")),
        "cancel goes back"
    );
    let form = [("csrf_token", csrf.as_str())];
    let (status, location, _) = app
        .post_form(&client, &format!("{page}/delete"), &form)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/email/sequences?notice=deleted");
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Sequence deleted."));
    assert!(html.contains("No sequences yet"));
    let (status, _) = app.page(&client, &page).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn sequence_pages_follow_roles_and_organizations(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "mo@acme.test", "member").await;
    app.add_member(&owner, "vi@acme.test", "viewer").await;
    let sequence = onboarding(&app, &owner).await;
    let ana = lead(&app, &owner, "Ana", Some("ana@example.com")).await;

    // Viewers neither read nor write sequences.
    let viewer = app.signed_in("vi@acme.test").await;
    for path in [
        "/email/sequences".to_owned(),
        "/email/sequences/new".to_owned(),
        format!("/email/sequences/{sequence}"),
    ] {
        let (status, _) = app.page(&viewer, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "viewer: {path}");
    }
    let (_, html) = app.page(&viewer, "/").await;
    let csrf = csrf_from_html(&html);
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Mine"),
        ("intent", "save"),
    ];
    let (status, _, _) = app.post_form(&viewer, "/email/sequences/new", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot create");
    let (_, html) = app.page(&viewer, &format!("/leads/{ana}?tab=emails")).await;
    assert!(!html.contains("Add to a sequence"));

    // Members read and add leads, but do not write sequences.
    let member = app.signed_in("mo@acme.test").await;
    let (status, html) = app.page(&member, "/email/sequences").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!(
        "href=\"/email/sequences/{sequence}\">Onboarding</a>"
    )));
    assert!(
        !html.contains("href=\"/email/sequences/new\""),
        "no New sequence"
    );
    let (status, _) = app.page(&member, "/email/sequences/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = csrf_from_html(&html);
    for path in [
        "/email/sequences/new".to_owned(),
        format!("/email/sequences/{sequence}"),
        format!("/email/sequences/{sequence}/delete"),
    ] {
        let form = [
            ("csrf_token", csrf.as_str()),
            ("name", "Mine"),
            ("intent", "save"),
        ];
        let (status, _, _) = app.post_form(&member, &path, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "member: {path}");
    }
    let (status, _) = app
        .page(&member, &format!("/email/sequences/{sequence}/delete"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "enroll"),
        ("sequence_id", sequence.as_str()),
    ];
    let (status, _, _) = app
        .post_form(&member, &format!("/leads/{ana}/action"), &form)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a member adds a lead");

    // Another organization's sequence and enrollment are not found.
    let other = app.create_org("Globex", "hank@globex.test").await;
    let theirs = onboarding(&app, &other).await;
    let otto = lead(&app, &other, "Otto", Some("otto@example.com")).await;
    let enrolled = app
        .post(
            &format!("/api/v1/email/sequences/{theirs}/enrollments"),
            &other.access,
            json!({"lead_ids": [otto]}),
        )
        .await;
    let their_enrollment = enrolled.body["results"][0]["enrollment"]["id"]
        .as_str()
        .expect("enrollment")
        .to_owned();
    let client = app.signed_in("ada@acme.test").await;
    for path in [
        format!("/email/sequences/{theirs}"),
        format!("/email/sequences/{theirs}/delete"),
    ] {
        let (status, _) = app.page(&client, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, html) = app.page(&client, "/email/sequences").await;
    assert!(!html.contains(&theirs), "not in our list");
    let csrf = csrf_from_html(&html);
    for path in [
        format!("/email/sequences/{theirs}"),
        format!("/email/sequences/{theirs}/delete"),
        format!("/email/enrollments/{their_enrollment}/stop"),
    ] {
        let form = [
            ("csrf_token", csrf.as_str()),
            ("name", "Mine"),
            ("intent", "save"),
        ];
        let (status, _, _) = app.post_form(&client, &path, &form).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "enroll"),
        ("sequence_id", theirs.as_str()),
    ];
    let (status, _, html) = app
        .post_form(&client, &format!("/leads/{ana}/action"), &form)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        between(&html, "id=\"enroll-error\" role=\"alert\">", "</p>").contains("no longer exists")
    );
    let still = app
        .get(&format!("/api/v1/email/sequences/{theirs}"), &other.access)
        .await;
    assert_eq!(still.body["active_enrollments"], 1, "untouched");
}
