//! Email: templates, previews, sending to a lead through a real SMTP server on loopback (the
//! sink) or `.eml` files, the message log, unsubscribe links, bounces and the suppression list,
//! the organization's own SMTP server with its password sealed at rest.

use std::time::Duration;

use meridian_app::config::ServerTransport;
use meridian_tests::smtp::{Reply, SmtpSink};
use meridian_tests::{Engine, TestApp, Tokens, both_engines, http, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    templates_are_checked_saved_and_permissioned,
    preview_renders_for_a_lead_and_sanitizes,
    an_email_reaches_the_smtp_server_with_headers_body_and_log,
    unsubscribing_suppresses_the_address_for_good,
    a_hard_bounce_suppresses_and_a_passing_failure_retries,
    the_default_transport_writes_eml_files,
    an_organization_smtp_server_is_used_with_its_sealed_password,
    an_organization_smtp_server_inside_the_network_is_refused,
    suppressions_are_listed_added_and_removed,
);

async fn sink_app(engine: Engine) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://127.0.0.1:{}", sink.port());
    let app = spawn_app_with(engine, move |config| {
        config.email.transport = ServerTransport::Smtp(url);
    })
    .await;
    (app, sink)
}

async fn lead(app: &TestApp, owner: &Tokens, first: &str, email: &str) -> String {
    let lead = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": first, "last_name": "Diaz", "email": email}),
        )
        .await;
    assert_eq!(lead.status, StatusCode::CREATED, "{:?}", lead.body);
    lead.body["id"].as_str().expect("lead id").to_owned()
}

async fn welcome_template(app: &TestApp, owner: &Tokens) -> String {
    let template = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({
                "name": "Welcome",
                "subject": "Welcome, {{lead.first_name}}",
                "body_html": "<h1>Hi {{ lead.first_name }}</h1><p>{{owner.name}} from {{org.name}} will call you.</p>",
            }),
        )
        .await;
    assert_eq!(template.status, StatusCode::CREATED, "{:?}", template.body);
    template.body["id"]
        .as_str()
        .expect("template id")
        .to_owned()
}

/// Polls the message until its status is `want`.
async fn message_reaches(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = app
            .get(&format!("/api/v1/email/messages/{id}"), token)
            .await;
        assert_eq!(message.status, StatusCode::OK, "{:?}", message.body);
        if message.body["status"] == want {
            return message.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message never became {want}: {:?}",
            message.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn templates_are_checked_saved_and_permissioned(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;

    let typo = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": "Typo", "subject": "Hi", "body_html": "<p>ok</p>\n<p>{{lead.frist_name}}</p>"}),
        )
        .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = field_errors(&typo.body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "body_html");
    assert!(errors[0].1.starts_with("line 2"), "{errors:?}");

    let missing = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": " ", "body_html": "<p>x</p>", "category": "spam"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = field_errors(&missing.body)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, ["name", "subject", "category"]);

    let id = welcome_template(&app, &owner).await;
    let again = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": "welcome", "subject": "x", "body_text": "x"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&again.body)[0].0, "name");

    let changed = app
        .patch(
            &format!("/api/v1/email/templates/{id}"),
            &owner.access,
            json!({"subject": "Hello {{lead.first_name}}", "category": "transactional"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["subject"], "Hello {{lead.first_name}}");
    assert_eq!(changed.body["category"], "transactional");
    assert_eq!(changed.body["name"], "Welcome");

    // Members pick templates but do not write them.
    let listed = app.get("/api/v1/email/templates", &member.access).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let refused = app
        .post(
            "/api/v1/email/templates",
            &member.access,
            json!({"name": "Mine", "subject": "x", "body_text": "x"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("email.manage")
    );

    let deleted = app
        .delete(&format!("/api/v1/email/templates/{id}"), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/api/v1/email/templates/{id}"), &owner.access)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn preview_renders_for_a_lead_and_sanitizes(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let template = welcome_template(&app, &owner).await;

    let sample = app
        .post(
            "/api/v1/email/preview",
            &owner.access,
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(sample.status, StatusCode::OK, "{:?}", sample.body);
    assert_eq!(sample.body["subject"], "Welcome, Jordan");

    let for_lead = app
        .post(
            "/api/v1/email/preview",
            &owner.access,
            json!({"template_id": template, "lead_id": lead_id}),
        )
        .await;
    assert_eq!(for_lead.body["subject"], "Welcome, Ana");
    let html = for_lead.body["html"].as_str().unwrap_or_default();
    assert!(html.contains("<h1>Hi Ana</h1>"), "{html}");
    assert!(html.contains("from Acme will call"), "{html}");
    // Marketing mail carries its unsubscribe link.
    assert!(html.contains("/unsubscribe/"), "{html}");
    let text = for_lead.body["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("Hi Ana\n\n"), "{text}");

    let draft = app
        .post(
            "/api/v1/email/preview",
            &owner.access,
            json!({
                "subject": "Note for {{lead.first_name}}",
                "body_html": "<p onclick=\"steal()\">Hello {{lead.last_name}}</p><script>alert(1)</script>",
                "lead_id": lead_id,
            }),
        )
        .await;
    assert_eq!(draft.status, StatusCode::OK, "{:?}", draft.body);
    assert_eq!(draft.body["html"], "<p>Hello Diaz</p>");
    assert_eq!(draft.body["subject"], "Note for Ana");

    let other = app.create_org("Other", "owner@other.test").await;
    let hidden = app
        .post(
            "/api/v1/email/preview",
            &other.access,
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(hidden.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&hidden.body)[0].0, "template_id");
}

async fn an_email_reaches_the_smtp_server_with_headers_body_and_log(engine: Engine) {
    let (app, sink) = sink_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let template = welcome_template(&app, &owner).await;
    let worker = app.start_worker();

    let queued = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{:?}", queued.body);
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["to"], "ana@example.com");
    let id = queued.body["id"].as_str().expect("id").to_owned();

    let received = sink.wait_for(1, Duration::from_secs(20)).await;
    let mail = &received[0];
    assert_eq!(mail.rcpt_to, ["ana@example.com"]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Welcome, Ana"));
    assert_eq!(mail.header("To").as_deref(), Some("ana@example.com"));
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Meridian <meridian@localhost>")
    );
    let message_id = queued.body["message_id"].as_str().expect("message id");
    assert_eq!(mail.header("Message-ID"), Some(format!("<{message_id}>")));
    let unsubscribe = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with(&format!("<{}/unsubscribe/", app.base)),
        "{unsubscribe}"
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let html = mail.html_body().expect("html part");
    assert!(html.contains("<h1>Hi Ana</h1>"), "{html}");
    let text = mail.text_body().expect("text part");
    assert!(text.contains("Hi Ana"), "{text}");
    assert!(text.contains("Unsubscribe: "), "{text}");

    let sent = message_reaches(&app, &owner.access, &id, "sent").await;
    assert_eq!(sent["attempts"], 1);
    assert!(sent["sent_at"].is_string());
    assert!(
        sent["provider_message_id"]
            .as_str()
            .unwrap_or_default()
            .contains("queued as"),
        "{sent:?}"
    );
    assert_eq!(sent["template_name"], "Welcome");
    assert_eq!(sent["lead_number"], 1);

    let log = app
        .get(
            &format!("/api/v1/email/messages?lead_id={lead_id}"),
            &owner.access,
        )
        .await;
    assert_eq!(log.body["items"].as_array().map(Vec::len), Some(1));
    let activity = app
        .get(&format!("/api/v1/leads/{lead_id}/activity"), &owner.access)
        .await;
    assert!(
        activity.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|a| a["kind"] == "email_queued"),
        "{:?}",
        activity.body
    );

    // A one-off email written on the lead's page: transactional, no unsubscribe header.
    let one_off = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"subject": "Your documents", "body_html": "<p>Dear {{lead.first_name}}, attached.</p>"}),
        )
        .await;
    assert_eq!(one_off.status, StatusCode::ACCEPTED, "{:?}", one_off.body);
    let received = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        received[1].header("Subject").as_deref(),
        Some("Your documents")
    );
    assert_eq!(received[1].header("List-Unsubscribe"), None);
    assert_eq!(
        received[1].text_body().as_deref().map(str::trim),
        Some("Dear Ana, attached.")
    );

    // A lead without an address, and a bad request, are refused with the field.
    let no_email = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "Noemail"}),
        )
        .await;
    let no_email_id = no_email.body["id"].as_str().expect("id");
    let refused = app
        .post(
            &format!("/api/v1/leads/{no_email_id}/emails"),
            &owner.access,
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&refused.body)[0].0, "to");
    let empty = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"subject": "x"}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&empty.body)[0].0, "body_html");
    worker.stop().await;
}

async fn unsubscribing_suppresses_the_address_for_good(engine: Engine) {
    let (app, sink) = sink_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let template = welcome_template(&app, &owner).await;
    let worker = app.start_worker();
    app.post(
        &format!("/api/v1/leads/{lead_id}/emails"),
        &owner.access,
        json!({"template_id": template}),
    )
    .await;
    let mail = sink.wait_for(1, Duration::from_secs(20)).await.remove(0);
    let link = mail
        .header("List-Unsubscribe")
        .expect("header")
        .trim_matches(['<', '>'])
        .to_owned();
    let path = link
        .strip_prefix(&app.base)
        .expect("our address")
        .to_owned();

    // Opening the link asks first (scanners follow links).
    let client = http();
    let (status, page) = app.page(&client, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Unsubscribe from Acme?"), "{page}");
    let listed = app.get("/api/v1/email/suppressions", &owner.access).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));

    // A tampered token is refused.
    let tampered = format!("{}x", path.trim_end_matches(|c: char| c != '.'));
    let (status, page) = app.page(&client, &tampered).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not valid"), "{page}");

    // One-click, as a mail program does it (RFC 8058).
    let response = client
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("You're unsubscribed")
    );

    let listed = app.get("/api/v1/email/suppressions", &owner.access).await;
    assert_eq!(listed.body["items"][0]["email"], "ana@example.com");
    assert_eq!(listed.body["items"][0]["reason"], "unsubscribe");

    let refused = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"template_id": template}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = field_errors(&refused.body);
    assert_eq!(errors[0].0, "to");
    assert!(errors[0].1.contains("they unsubscribed"), "{errors:?}");

    // Another organization's list is its own: the same address is not suppressed there.
    let other = app.create_org("Other", "owner@other.test").await;
    let other_lead = lead(&app, &other, "Ana", "ana@example.com").await;
    let allowed = app
        .post(
            &format!("/api/v1/leads/{other_lead}/emails"),
            &other.access,
            json!({"subject": "Hi", "body_text": "Hello"}),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED, "{:?}", allowed.body);
    worker.stop().await;
}

async fn a_hard_bounce_suppresses_and_a_passing_failure_retries(engine: Engine) {
    let (app, sink) = sink_app(engine).await;
    sink.set_recipient_policy(|to| {
        if to.starts_with("gone@") {
            Reply::Permanent
        } else {
            Reply::Accept
        }
    });
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let gone = lead(&app, &owner, "Gone", "gone@example.com").await;
    let flaky = lead(&app, &owner, "Flaky", "flaky@example.com").await;
    let worker = app.start_worker();

    let bounced = app
        .post(
            &format!("/api/v1/leads/{gone}/emails"),
            &owner.access,
            json!({"subject": "Hi", "body_text": "Hello"}),
        )
        .await;
    let id = bounced.body["id"].as_str().expect("id").to_owned();
    let bounced = message_reaches(&app, &owner.access, &id, "bounced").await;
    assert!(
        bounced["error"]
            .as_str()
            .unwrap_or_default()
            .contains("550"),
        "{bounced:?}"
    );
    let listed = app.get("/api/v1/email/suppressions", &owner.access).await;
    assert_eq!(listed.body["items"][0]["email"], "gone@example.com");
    assert_eq!(listed.body["items"][0]["reason"], "bounce");

    sink.fail_next_deliveries(2);
    let retried = app
        .post(
            &format!("/api/v1/leads/{flaky}/emails"),
            &owner.access,
            json!({"subject": "Hi", "body_text": "Hello"}),
        )
        .await;
    let id = retried.body["id"].as_str().expect("id").to_owned();
    let sent = message_reaches(&app, &owner.access, &id, "sent").await;
    assert_eq!(sent["attempts"], 3, "{sent:?}");
    assert!(sent["error"].is_null(), "{sent:?}");
    let received = sink.messages();
    assert_eq!(
        received.len(),
        1,
        "only the successful attempt was accepted"
    );
    assert_eq!(
        received[0].header("Message-ID"),
        Some(format!(
            "<{}>",
            sent["message_id"].as_str().unwrap_or_default()
        ))
    );

    let failed_only = app
        .get("/api/v1/email/messages?status=bounced", &owner.access)
        .await;
    assert_eq!(failed_only.body["items"].as_array().map(Vec::len), Some(1));
    let bad_status = app
        .get("/api/v1/email/messages?status=lost", &owner.access)
        .await;
    assert_eq!(bad_status.status, StatusCode::UNPROCESSABLE_ENTITY);
    worker.stop().await;
}

async fn the_default_transport_writes_eml_files(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let worker = app.start_worker();
    let queued = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"subject": "Offline", "body_text": "Written to disk"}),
        )
        .await;
    let id = queued.body["id"].as_str().expect("id").to_owned();
    let sent = message_reaches(&app, &owner.access, &id, "sent").await;
    let path = sent["provider_message_id"]
        .as_str()
        .expect("file")
        .to_owned();
    assert!(
        path.starts_with(&app.mail_dir.path().display().to_string()),
        "{path}"
    );
    assert!(path.contains(&owner.org_id), "{path}");
    let eml = std::fs::read_to_string(&path).expect("the .eml file");
    assert!(eml.contains("Subject: Offline"), "{eml}");
    assert!(
        eml.contains(&format!(
            "Message-ID: <{}>",
            sent["message_id"].as_str().unwrap_or_default()
        )),
        "{eml}"
    );
    assert!(eml.contains("Written to disk"), "{eml}");
    worker.stop().await;
}

async fn an_organization_smtp_server_is_used_with_its_sealed_password(engine: Engine) {
    let sink = SmtpSink::start().await;
    sink.require_auth("acme-mailer", "pa55-w0rd-sealed");
    let app = spawn_app_with(engine, |config| {
        config.allow_private_network = true;
    })
    .await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;

    let defaults = app.get("/api/v1/email/settings", &owner.access).await;
    assert_eq!(defaults.status, StatusCode::OK);
    assert_eq!(defaults.body["custom"], false);
    assert_eq!(defaults.body["smtp_password_set"], false);

    let bad = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({"from_name": "Acme", "from_address": "nope", "smtp_port": 0, "smtp_host": "x", "smtp_security": "ssl"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = field_errors(&bad.body)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, ["from_address", "smtp_security", "smtp_port"]);

    let saved = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({
                "from_name": "Acme Team",
                "from_address": "Team@Acme.test",
                "reply_to": "help@acme.test",
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port(),
                "smtp_security": "none",
                "smtp_username": "acme-mailer",
                "smtp_password": "pa55-w0rd-sealed",
            })),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    assert_eq!(saved.body["smtp_password_set"], true);
    assert_eq!(saved.body["from_address"], "team@acme.test");
    assert!(!saved.body.to_string().contains("pa55-w0rd-sealed"));
    let read = app.get("/api/v1/email/settings", &owner.access).await;
    assert!(!read.body.to_string().contains("pa55-w0rd-sealed"));
    assert_eq!(read.body["smtp_password_hint"], "••••••••");
    assert!(
        !app.dump_text().await.contains("pa55-w0rd-sealed"),
        "the database holds the SMTP password in plaintext"
    );
    let forbidden = app.get("/api/v1/email/settings", &member.access).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    // Saving again without a password keeps the stored one.
    let kept = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({
                "from_name": "Acme Team",
                "from_address": "team@acme.test",
                "reply_to": "help@acme.test",
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port(),
                "smtp_security": "none",
                "smtp_username": "acme-mailer",
            })),
        )
        .await;
    assert_eq!(kept.body["smtp_password_set"], true, "{:?}", kept.body);

    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let worker = app.start_worker();
    let queued = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &member.access,
            json!({"subject": "Hi", "body_text": "From our own server"}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{:?}", queued.body);
    let mail = sink.wait_for(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(mail.auth_user.as_deref(), Some("acme-mailer"));
    assert_eq!(
        mail.header("From").as_deref(),
        Some("\"Acme Team\" <team@acme.test>")
    );
    assert_eq!(mail.header("Reply-To").as_deref(), Some("help@acme.test"));
    worker.stop().await;
}

async fn an_organization_smtp_server_inside_the_network_is_refused(engine: Engine) {
    let sink = SmtpSink::start().await;
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let saved = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({
                "from_name": "Acme",
                "from_address": "team@acme.test",
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.port(),
                "smtp_security": "none",
            })),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    let lead_id = lead(&app, &owner, "Ana", "ana@example.com").await;
    let worker = app.start_worker();
    let queued = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"subject": "Hi", "body_text": "x"}),
        )
        .await;
    let id = queued.body["id"].as_str().expect("id").to_owned();
    let failed = message_reaches(&app, &owner.access, &id, "failed").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("internal address"),
        "{failed:?}"
    );
    assert_eq!(sink.connections(), 0, "no connection was made");
    worker.stop().await;
}

async fn suppressions_are_listed_added_and_removed(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    for n in 0..3 {
        let added = app
            .post(
                "/api/v1/email/suppressions",
                &owner.access,
                json!({"email": format!(" Person{n}@Example.com "), "detail": "asked by phone"}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
        assert_eq!(added.body["email"], format!("person{n}@example.com"));
        assert_eq!(added.body["reason"], "manual");
    }
    let again = app
        .post(
            "/api/v1/email/suppressions",
            &owner.access,
            json!({"email": "person0@example.com"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let bad = app
        .post(
            "/api/v1/email/suppressions",
            &owner.access,
            json!({"email": "not an address"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(field_errors(&bad.body)[0].0, "email");

    let first = app
        .get("/api/v1/email/suppressions?limit=2", &owner.access)
        .await;
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(2));
    let cursor = first.body["next_cursor"].as_str().expect("cursor");
    let second = app
        .get(
            &format!("/api/v1/email/suppressions?limit=2&cursor={cursor}"),
            &owner.access,
        )
        .await;
    assert_eq!(second.body["items"][0]["email"], "person2@example.com");
    assert!(second.body["next_cursor"].is_null());

    let forbidden = app.get("/api/v1/email/suppressions", &member.access).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let removed = app
        .delete(
            "/api/v1/email/suppressions/person1@example.com",
            &owner.access,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let missing = app
        .delete(
            "/api/v1/email/suppressions/person1@example.com",
            &owner.access,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
