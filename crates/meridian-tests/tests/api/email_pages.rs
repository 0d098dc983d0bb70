//! The email pages as a browser uses them, without JavaScript: the template editor (inline errors,
//! the server-rendered preview in a sandboxed frame), writing to a lead from its page, the outbox
//! before and after the worker delivers, Settings → Email with its write-only password, the
//! suppression list, and who may see which page.

use std::time::Duration;

use meridian_tests::{Engine, TestApp, Tokens, both_engines, csrf_from_html, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    templates_are_written_previewed_and_deleted_by_form,
    an_email_from_the_lead_page_reaches_the_outbox,
    email_settings_never_show_the_password,
    suppressions_are_added_paged_and_removed_by_form,
    email_pages_follow_roles_and_organizations,
);

async fn lead(app: &TestApp, who: &Tokens, first: &str, email: Option<&str>) -> String {
    app.created(
        who,
        "/api/v1/leads",
        json!({"first_name": first, "last_name": "Diaz", "email": email}),
    )
    .await
}

async fn welcome_template(app: &TestApp, who: &Tokens) -> String {
    app.created(
        who,
        "/api/v1/email/templates",
        json!({
            "name": "Welcome",
            "subject": "Welcome, {{lead.first_name}}",
            "body_html": "<p>Hi {{lead.first_name}}, {{org.name}} here.</p>",
        }),
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

async fn templates_are_written_previewed_and_deleted_by_form(engine: Engine) {
    let app = spawn_app(engine).await;
    app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;

    let (status, html) = app.page(&client, "/email/templates").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No templates yet"), "empty state");
    assert!(
        html.contains("{{lead.first_name}}"),
        "the empty state explains variables"
    );
    assert!(html.contains("href=\"/email/templates/new\""), "{html}");

    let (status, html) = app.page(&client, "/email/templates/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("{{lead.custom_fields.KEY}}"), "help box");
    assert!(html.contains("{{unsubscribe_url}}"), "help box");
    let csrf = csrf_from_html(&html);

    // A misspelled variable: refused next to the HTML body, with everything typed kept.
    let typo = "<p>Hello</p>\n<p>{{lead.frist_name}}</p>";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Welcome"),
        ("category", "transactional"),
        ("subject", "Hi {{lead.first_name}}"),
        ("body_html", typo),
        ("body_text", ""),
        ("intent", "save"),
    ];
    let (status, _, html) = app.post_form(&client, "/email/templates/new", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = between(&html, "id=\"html-error\">", "</p>");
    assert!(
        error.contains("line 2") && error.contains("does not exist"),
        "{error}"
    );
    assert!(html.contains("value=\"Welcome\""), "the name is kept");
    assert!(html.contains("value=\"Hi {{lead.first_name}}\""));
    assert!(
        html.contains("&#60;p&#62;{{lead.frist_name}}&#60;/p&#62;</textarea>"),
        "the body is kept"
    );
    assert!(html.contains("<option value=\"transactional\" selected>"));
    let (_, list) = app.page(&client, "/email/templates").await;
    assert!(list.contains("No templates yet"), "nothing was saved");

    // Preview: rendered with the sample lead, sanitized, inside a sandboxed frame's srcdoc.
    let risky = "<script>alert(1)</script><p style=\"color:#0d9488\" onclick=\"x()\">Hi {{lead.first_name}} & co</p>";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Welcome"),
        ("category", "marketing"),
        ("subject", "Hi {{lead.first_name}}"),
        ("body_html", risky),
        ("body_text", ""),
        ("intent", "preview"),
    ];
    let response = client
        .post(app.url("/email/templates/new"))
        .form(&form)
        .send()
        .await
        .expect("preview");
    assert_eq!(response.status(), StatusCode::OK);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .expect("policy")
        .to_owned();
    assert!(
        policy.contains("style-src-attr 'unsafe-inline'"),
        "{policy}"
    );
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = response.text().await.expect("html");
    assert!(!html.contains("<script>alert"), "no raw script anywhere");
    let frame = between(&html, "<iframe", ">");
    assert!(frame.contains(" sandbox "), "{frame}");
    assert!(!frame.contains("allow-scripts"), "{frame}");
    let srcdoc = between(frame, "srcdoc=\"", "\"");
    assert_eq!(
        srcdoc, "&#60;p style=&#34;color:#0d9488&#34;&#62;Hi Jordan &#38;amp; co&#60;/p&#62;",
        "escaped, without the script or the handler"
    );
    assert!(html.contains("data-preview-subject>Hi Jordan</span>"));
    assert!(
        between(&html, "<pre data-preview-text>", "</pre>").contains("Hi Jordan &#38; co"),
        "the text version"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "the typed text is kept"
    );

    // Saved: it is listed with its category.
    let body = "<p>Hi {{lead.first_name}}</p>";
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Welcome"),
        ("category", "marketing"),
        ("subject", "Hi {{lead.first_name}}"),
        ("body_html", body),
        ("body_text", ""),
        ("intent", "save"),
    ];
    let (status, location, _) = app.post_form(&client, "/email/templates/new", &form).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/email/templates?notice=created")
    );
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Template created."));
    assert!(html.contains(">Welcome</a>") && html.contains(">Marketing</span>"));
    assert!(html.contains("Hi {{lead.first_name}}"), "the subject");
    let id = between(&html, "class=\"lead-link\" href=\"/email/templates/", "\"").to_owned();

    // The editor shows the stored template with its preview; a blank subject is refused.
    let editor = format!("/email/templates/{id}");
    let (status, html) = app.page(&client, &editor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("srcdoc=\"&#60;p&#62;Hi Jordan&#60;/p&#62;\""),
        "{html}"
    );
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Welcome"),
        ("category", "marketing"),
        ("subject", " "),
        ("body_html", body),
        ("intent", "save"),
    ];
    let (status, _, html) = app.post_form(&client, &editor, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&html, "id=\"subject-error\">", "</p>").contains("required"));
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "Welcome back"),
        ("category", "transactional"),
        ("subject", "Hello {{lead.first_name}}"),
        ("body_html", body),
        ("intent", "save"),
    ];
    let (status, location, _) = app.post_form(&client, &editor, &form).await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("{editor}?notice=saved"))
    );
    let (_, html) = app.page(&client, &format!("{editor}?notice=saved")).await;
    assert!(html.contains("Template saved.") && html.contains("value=\"Welcome back\""));

    // Deleting goes through a confirmation page.
    let (status, html) = app.page(&client, &format!("{editor}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete the template \u{201c}Welcome back\u{201d}?"));
    let (status, location, _) = app
        .post_form(
            &client,
            &format!("{editor}/delete"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/email/templates?notice=deleted")
    );
    let (status, _) = app.page(&client, &editor).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn an_email_from_the_lead_page_reaches_the_outbox(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let lead_id = lead(&app, &owner, "Ana", Some("ana@example.com")).await;
    let template = welcome_template(&app, &owner).await;
    let client = app.signed_in("ada@acme.test").await;

    let (status, html) = app.page(&client, "/email/outbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No emails yet"), "empty outbox");

    let page = format!("/leads/{lead_id}?tab=emails");
    let (status, html) = app.page(&client, &page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Write an email") && html.contains("Write from scratch"));
    assert!(html.contains(&format!("<option value=\"{template}\">Welcome</option>")));
    assert!(html.contains("No emails yet"));
    let csrf = csrf_from_html(&html);
    let action = format!("/leads/{lead_id}/action");

    // Preview from the template, for this lead: the form comes back with the template's text.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "email"),
        ("template_id", template.as_str()),
        ("subject", ""),
        ("body_html", ""),
        ("intent", "preview"),
    ];
    let (status, _, html) = app.post_form(&client, &action, &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-preview-subject>Welcome, Ana</span>"));
    assert!(between(&html, "srcdoc=\"", "\"").contains("Hi Ana, Acme Growth here."));
    assert!(
        html.contains("value=\"Welcome, {{lead.first_name}}\""),
        "subject kept"
    );
    assert!(html.contains(&format!("<option value=\"{template}\" selected>")));

    // Nothing written and no template: refused next to the fields.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "email"),
        ("template_id", ""),
        ("subject", ""),
        ("body_html", ""),
        ("intent", "send"),
    ];
    let (status, _, html) = app.post_form(&client, &action, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&html, "id=\"compose-subject-error\">", "</p>").contains("required"));
    assert!(
        between(&html, "id=\"compose-body-error\">", "</p>").contains("write a message"),
        "{html}"
    );

    // Sent: back on the lead page with a notice, listed there and in the outbox as queued.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "email"),
        ("template_id", template.as_str()),
        ("subject", "Welcome, {{lead.first_name}}"),
        ("body_html", "<p>Hi {{lead.first_name}}, see you soon.</p>"),
        ("intent", "send"),
    ];
    let (status, location, _) = app.post_form(&client, &action, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let prefix = format!("/leads/{lead_id}?tab=emails&notice=emailed&message=");
    assert!(location.starts_with(&prefix), "{location}");
    let message_id = location.trim_start_matches(&prefix).to_owned();
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Email queued to ana@example.com."), "notice");
    let row = between(&html, "<tbody>", "</tbody>");
    assert!(row.contains("email-status-queued") && row.contains(">Welcome, Ana</a>"));
    assert!(row.contains("Template: Welcome"));
    assert!(row.contains(&format!("href=\"/email/outbox/{message_id}\"")));
    assert!(html.contains("Emails <span class=\"count\">1</span>"));

    let (_, html) = app.page(&client, "/email/outbox").await;
    let rows = between(&html, "<tbody>", "</tbody>");
    assert!(rows.contains(">Welcome, Ana</a>") && rows.contains("ana@example.com"));
    assert!(rows.contains(&format!("href=\"/leads/{lead_id}\">#00001 Ana Diaz</a>")));
    assert!(rows.contains(">Queued</span>"));

    // The worker delivers it (an .eml file here); the outbox says so.
    let worker = app.start_worker();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, html) = app.page(&client, "/email/outbox").await;
        if between(&html, "<tbody>", "</tbody>").contains("email-status-sent") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never sent: {html}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    let files = std::fs::read_dir(app.mail_dir.path())
        .expect("mail dir")
        .count();
    assert_eq!(files, 1, "one .eml file written");
    let (_, html) = app.page(&client, "/email/outbox?status=sent").await;
    assert!(html.contains(">Welcome, Ana</a>"));
    assert!(
        html.contains("Sent <span class=\"chip-meta\">1</span>"),
        "{html}"
    );
    let (_, html) = app.page(&client, "/email/outbox?status=failed").await;
    assert!(html.contains("No failed emails"));

    // The message's own page: headers, the HTML in a sandboxed frame, the text.
    let (status, html) = app
        .page(&client, &format!("/email/outbox/{message_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "Message-ID",
        "Receipt",
        "Attempts",
        "ana@example.com",
        ">Sent</span>",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(between(&html, "<iframe", ">").contains(" sandbox "));
    assert!(between(&html, "srcdoc=\"", "\"").contains("see you soon."));
    assert!(between(&html, "<pre data-preview-text>", "</pre>").contains("Hi Ana, see you soon."));

    // A suppressed address is refused at the top of the form, with what was typed kept.
    app.post(
        "/api/v1/email/suppressions",
        &owner.access,
        json!({"email": "ana@example.com"}),
    )
    .await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("action", "email"),
        ("template_id", ""),
        ("subject", "One more thing"),
        ("body_html", "<p>Hello again</p>"),
        ("intent", "send"),
    ];
    let (status, _, html) = app.post_form(&client, &action, &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let alert = between(
        &html,
        "<div class=\"alert alert-danger\" role=\"alert\">",
        "</div>",
    );
    assert!(alert.contains("is on the suppression list"), "{alert}");
    assert!(html.contains("value=\"One more thing\""));

    // A lead without an address: the form is there, disabled, saying why.
    let silent = lead(&app, &owner, "Bo", None).await;
    let (_, html) = app
        .page(&client, &format!("/leads/{silent}?tab=emails"))
        .await;
    assert!(html.contains("has no email address yet"));
    assert!(html.contains("<fieldset class=\"stack\" disabled>"));

    // The outbox narrowed to one lead.
    let (_, html) = app
        .page(&client, &format!("/email/outbox?lead_id={lead_id}"))
        .await;
    assert!(html.contains("#00001 Ana Diaz</a> only."));
    let (_, html) = app
        .page(&client, &format!("/email/outbox?lead_id={silent}"))
        .await;
    assert!(html.contains("No emails to this lead yet"));
}

async fn email_settings_never_show_the_password(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;
    let secret = "hunter2-correct-horse";

    let (status, html) = app.page(&client, "/settings/email").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No password is stored"));
    assert!(
        html.contains("href=\"/settings/email\""),
        "settings navigation"
    );
    let csrf = csrf_from_html(&html);
    let settings = |password: &'static str, remove: bool, from: &'static str| {
        let mut form = vec![
            ("csrf_token", csrf.clone()),
            ("from_name", "Acme Growth".to_owned()),
            ("from_address", from.to_owned()),
            ("reply_to", "team@acme.test".to_owned()),
            ("smtp_host", "smtp.acme.test".to_owned()),
            ("smtp_port", String::new()),
            ("smtp_security", "starttls".to_owned()),
            ("smtp_username", "mailer".to_owned()),
            ("smtp_password", password.to_owned()),
        ];
        if remove {
            form.push(("smtp_password_remove", "1".to_owned()));
        }
        form
    };
    let post = |form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = app.url("/settings/email");
        async move {
            let response = client.post(url).form(&form).send().await.expect("post");
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("location").to_owned())
                .unwrap_or_default();
            (status, location, response.text().await.expect("body"))
        }
    };

    let (status, location, _) = post(settings(secret, false, "hello@acme.test")).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/settings/email?notice=saved")
    );
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Email settings saved."));
    assert!(html.contains("A password is stored (••••••••). Leave blank to keep it."));
    assert!(html.contains("Remove stored password"));
    assert!(html.contains("value=\"smtp.acme.test\"") && html.contains("value=\"mailer\""));
    assert!(!html.contains(secret), "the password is never on the page");
    assert!(html.contains("name=\"smtp_password\" type=\"password\""));

    // A refused form keeps what was typed, except the password.
    let (status, _, html) = post(settings("another-secret", false, "not an address")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"from_address-error\""));
    assert!(html.contains("value=\"not an address\""));
    assert!(!html.contains("another-secret"));

    // Blank keeps the stored password; the checkbox removes it.
    let (status, _, _) = post(settings("", false, "hello@acme.test")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = app.get("/api/v1/email/settings", &owner.access).await;
    assert_eq!(api.body["smtp_password_set"], true, "{}", api.body);
    assert_eq!(api.body["reply_to"], "team@acme.test");
    let (status, _, _) = post(settings("", true, "hello@acme.test")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let api = app.get("/api/v1/email/settings", &owner.access).await;
    assert_eq!(api.body["smtp_password_set"], false, "{}", api.body);
    let (_, html) = app.page(&client, "/settings/email").await;
    assert!(html.contains("No password is stored"));
    assert!(!html.contains("Remove stored password"));

    // An unreadable port is refused without saving anything.
    let mut form = settings("", false, "changed@acme.test");
    form.retain(|(k, _)| *k != "smtp_port");
    form.push(("smtp_port", "five".to_owned()));
    let (status, _, html) = post(form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(between(&html, "id=\"smtp_port-error\">", "</p>").contains("number"));
    let api = app.get("/api/v1/email/settings", &owner.access).await;
    assert_eq!(api.body["from_address"], "hello@acme.test");
}

async fn suppressions_are_added_paged_and_removed_by_form(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = app.signed_in("ada@acme.test").await;

    let (status, html) = app.page(&client, "/email/suppressions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Nobody is suppressed"));
    let csrf = csrf_from_html(&html);

    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "not-an-address"),
        ("detail", "asked by phone"),
    ];
    let (status, _, html) = app.post_form(&client, "/email/suppressions", &form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"sup-email-error\""));
    assert!(html.contains("value=\"not-an-address\"") && html.contains("value=\"asked by phone\""));

    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "Zoe@Example.com"),
        ("detail", "asked by phone"),
    ];
    let (status, location, _) = app.post_form(&client, "/email/suppressions", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("zoe@example.com is on the list."), "notice");
    let rows = between(&html, "<tbody>", "</tbody>");
    assert!(rows.contains("zoe@example.com") && rows.contains(">Added by hand</span>"));
    assert!(rows.contains("asked by phone"));
    let (_, location, _) = app.post_form(&client, "/email/suppressions", &form).await;
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("was on the list already"));

    // Removing asks first.
    let remove = "/email/suppressions/remove?email=zoe%40example.com";
    let (status, html) = app.page(&client, remove).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Send mail to zoe@example.com again?"));
    assert!(html.contains("added by hand"));
    let (status, location, _) = app
        .post_form(&client, remove, &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("zoe@example.com was removed."));
    assert!(html.contains("Nobody is suppressed"));
    let (status, _) = app.page(&client, remove).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A long list is paged by address.
    for n in 0..51 {
        let reply = app
            .post(
                "/api/v1/email/suppressions",
                &owner.access,
                json!({"email": format!("person{n:02}@example.com")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let (_, html) = app.page(&client, "/email/suppressions").await;
    assert!(html.contains("person49@example.com") && !html.contains("person50@example.com"));
    let next = between(&html, "href=\"/email/suppressions?cursor=", "\"");
    let (_, html) = app
        .page(&client, &format!("/email/suppressions?cursor={next}"))
        .await;
    let rows = between(&html, "<tbody>", "</tbody>");
    assert!(rows.contains("person50@example.com") && !rows.contains("person49@example.com"));
    assert!(html.contains("First page"));
}

async fn email_pages_follow_roles_and_organizations(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "mo@acme.test", "member").await;
    app.add_member(&owner, "vi@acme.test", "viewer").await;
    let template = welcome_template(&app, &owner).await;
    let lead_id = lead(&app, &owner, "Ana", Some("ana@example.com")).await;

    let viewer = app.signed_in("vi@acme.test").await;
    for path in [
        "/email/templates/new",
        "/email/templates",
        "/email/suppressions",
        "/email/outbox",
        "/settings/email",
    ] {
        let (status, _) = app.page(&viewer, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "viewer: {path}");
    }
    let (_, html) = app.page(&viewer, "/").await;
    assert!(
        !html.contains("href=\"/email/outbox\""),
        "no Email navigation"
    );
    let (_, html) = app
        .page(&viewer, &format!("/leads/{lead_id}?tab=emails"))
        .await;
    assert!(
        !html.contains("Write an email"),
        "no Emails tab for viewers"
    );

    let member = app.signed_in("mo@acme.test").await;
    for path in [
        "/settings/email",
        "/email/templates/new",
        "/email/suppressions",
    ] {
        let (status, _) = app.page(&member, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "member: {path}");
    }
    let (status, html) = app.page(&member, "/email/templates").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(">Welcome</a>"));
    assert!(!html.contains("href=\"/email/templates/new\""));
    assert!(html.contains("href=\"/email/outbox\"") && !html.contains("href=\"/settings/email\""));
    assert!(!html.contains("href=\"/email/suppressions\""));
    let (status, html) = app
        .page(&member, &format!("/email/templates/{template}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Only managers and admins change templates"));
    assert!(html.contains("<fieldset class=\"stack\" disabled>"));
    assert!(!html.contains("name=\"intent\""), "no buttons");
    let csrf = csrf_from_html(&html);
    let (status, _, _) = app
        .post_form(
            &member,
            &format!("/email/templates/{template}"),
            &[
                ("csrf_token", csrf.as_str()),
                ("name", "Mine"),
                ("intent", "save"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.page(&member, "/email/outbox").await;
    assert_eq!(status, StatusCode::OK, "members read the log");
    let (_, html) = app
        .page(&member, &format!("/leads/{lead_id}?tab=emails"))
        .await;
    assert!(html.contains("Write an email"), "members write to leads");

    // Another organization's template and message are not found.
    let other = app.create_org("Globex", "hank@globex.test").await;
    let their_template = welcome_template(&app, &other).await;
    let their_lead = lead(&app, &other, "Otto", Some("otto@example.com")).await;
    let sent = app
        .post(
            &format!("/api/v1/leads/{their_lead}/emails"),
            &other.access,
            json!({"template_id": their_template}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let their_message = sent.body["id"].as_str().expect("message id").to_owned();
    let client = app.signed_in("ada@acme.test").await;
    for path in [
        format!("/email/templates/{their_template}"),
        format!("/email/templates/{their_template}/delete"),
        format!("/email/outbox/{their_message}"),
    ] {
        let (status, _) = app.page(&client, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, html) = app.page(&client, "/email/templates").await;
    let csrf = csrf_from_html(&html);
    let (status, _, _) = app
        .post_form(
            &client,
            &format!("/email/templates/{their_template}/delete"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, html) = app.page(&client, "/email/outbox").await;
    assert!(
        !html.contains("Otto"),
        "their messages are not in our outbox"
    );
    let still = app
        .get(
            &format!("/api/v1/email/templates/{their_template}"),
            &other.access,
        )
        .await;
    assert_eq!(still.status, StatusCode::OK);
}
