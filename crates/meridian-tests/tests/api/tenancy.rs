//! Tenant isolation: the cross-tenant matrix, row-level security in the PostgreSQL catalog and in
//! practice, and what a database dump contains.

use meridian_tests::{Admin, Engine, PASSWORD, TestApp, Tokens, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(cross_tenant_matrix, dumps_hold_no_plaintext_secrets);

struct OrgFixture {
    owner: Tokens,
    member: Tokens,
    invite_id: String,
    key_id: String,
    pipeline_id: String,
    lead_id: String,
    note_id: String,
    task_id: String,
    view_id: String,
    import_id: String,
    job_id: String,
    template_id: String,
    message_id: String,
    sequence_id: String,
    enrollment_id: String,
    automation_id: String,
    run_id: String,
    notification_id: String,
    webhook_id: String,
    /// The signing secret's mask, to see that nobody rotated it.
    webhook_hint: String,
    delivery_id: String,
    form_id: String,
}

async fn org_fixture(app: &TestApp, name: &str, domain: &str) -> OrgFixture {
    let owner = app.create_org(name, &format!("owner@{domain}")).await;
    let member = app
        .add_member(&owner, &format!("member@{domain}"), "member")
        .await;
    let invite = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": format!("pending@{domain}"), "role": "viewer"}),
        )
        .await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &owner.access,
            json!({"name": format!("{name} key"), "role": "viewer"}),
        )
        .await;
    let pipeline = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": format!("{name} partners"), "stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    let lead = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": format!("{name} lead"), "email": format!("lead@{domain}"), "tags": ["secret-tag"]}),
        )
        .await;
    let lead_id = lead.body["id"].as_str().expect("lead id").to_owned();
    let note = app
        .post(
            &format!("/api/v1/leads/{lead_id}/notes"),
            &owner.access,
            json!({"body_html": format!("Private note of {name}")}),
        )
        .await;
    let task = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": format!("Task of {name}"), "lead_id": lead_id}),
        )
        .await;
    let view = app
        .post(
            "/api/v1/views",
            &owner.access,
            json!({"name": format!("{name} view"), "shared": true, "filters": {"stage": "new"}}),
        )
        .await;
    let leads_pipeline = crate::imports::pipeline_id(app, &owner, "Leads").await;
    let import = crate::imports::upload(
        app,
        &owner,
        &leads_pipeline,
        "people.csv",
        format!("first_name,email\n{name} import,import@{domain}\n").as_bytes(),
    )
    .await;
    let job_id = crate::jobs_api::dead_job(
        app,
        &owner.org_id,
        meridian_db::jobs::NewJob::new("test.email", "{}"),
        &format!("{name} failure at {domain}"),
    )
    .await;
    let template = app
        .post(
            "/api/v1/email/templates",
            &owner.access,
            json!({"name": format!("{name} welcome"), "subject": format!("Hello from {domain}"), "body_text": "Hi {{lead.first_name}}"}),
        )
        .await;
    let template_id = template.body["id"]
        .as_str()
        .expect("template id")
        .to_owned();
    let message = app
        .post(
            &format!("/api/v1/leads/{lead_id}/emails"),
            &owner.access,
            json!({"template_id": template_id}),
        )
        .await;
    let suppressed = app
        .post(
            "/api/v1/email/suppressions",
            &owner.access,
            json!({"email": format!("suppressed@{domain}")}),
        )
        .await;
    assert_eq!(suppressed.status, StatusCode::CREATED);
    let settings = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({"from_name": name, "from_address": format!("team@{domain}"),
                "smtp_host": format!("smtp.{domain}"), "smtp_username": "mailer", "smtp_password": format!("smtp-password-{domain}")})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{:?}", settings.body);
    let sequence = app
        .post(
            "/api/v1/email/sequences",
            &owner.access,
            json!({"name": format!("{name} nurture"), "steps": [{"template_id": template_id, "delay_minutes": 60}]}),
        )
        .await;
    let sequence_id = sequence.body["id"]
        .as_str()
        .expect("sequence id")
        .to_owned();
    let enrolled = app
        .post(
            &format!("/api/v1/email/sequences/{sequence_id}/enrollments"),
            &owner.access,
            json!({"lead_ids": [lead_id]}),
        )
        .await;
    let enrollment_id = enrolled.body["results"][0]["enrollment"]["id"]
        .as_str()
        .expect("enrollment id")
        .to_owned();
    let automation = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": format!("{name} tagger"), "definition": {"trigger": {"type": "manual"},
                   "actions": [{"type": "add_tag", "tag": "tagged"}]}}),
        )
        .await;
    let automation_id = automation.body["id"]
        .as_str()
        .expect("automation id")
        .to_owned();
    let run = app
        .post(
            &format!("/api/v1/automations/{automation_id}/runs"),
            &owner.access,
            json!({"lead_ids": [lead_id]}),
        )
        .await;
    let run_id = run.body["results"][0]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    // The owner gets a notification: the member hands them the lead.
    app.post(
        &format!("/api/v1/leads/{lead_id}/assign"),
        &member.access,
        json!({"user_id": owner.user_id}),
    )
    .await;
    let inbox = app.get("/api/v1/me/notifications", &owner.access).await;
    let notification_id = inbox.body["items"][0]["id"]
        .as_str()
        .expect("notification id")
        .to_owned();
    let webhook = app
        .post(
            "/api/v1/webhooks",
            &owner.access,
            json!({"url": format!("https://hooks.{domain}/in"), "event_types": ["lead.created"]}),
        )
        .await;
    let webhook_id = webhook.body["id"].as_str().expect("webhook id").to_owned();
    let webhook_hint = webhook.body["secret_hint"]
        .as_str()
        .expect("secret hint")
        .to_owned();
    // A lead for the webhook: its delivery waits (no worker runs here).
    app.post(
        "/api/v1/leads",
        &owner.access,
        json!({"first_name": format!("{name} hooked"), "email": format!("hooked@{domain}")}),
    )
    .await;
    let delivered = app
        .get(
            &format!("/api/v1/webhooks/{webhook_id}/deliveries"),
            &owner.access,
        )
        .await;
    let delivery_id = delivered.body["items"][0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let form = app
        .post(
            "/api/v1/inbound-forms",
            &owner.access,
            json!({"name": format!("{name} contact form")}),
        )
        .await;
    let form_id = form.body["id"].as_str().expect("form id").to_owned();
    OrgFixture {
        webhook_id,
        webhook_hint,
        delivery_id,
        form_id,
        notification_id,
        automation_id,
        run_id,
        sequence_id,
        enrollment_id,
        template_id,
        message_id: message.body["id"].as_str().expect("message id").to_owned(),
        job_id,
        import_id: import.body["id"].as_str().expect("import id").to_owned(),
        view_id: view.body["id"].as_str().expect("view id").to_owned(),
        owner,
        member,
        invite_id: invite.body["id"].as_str().expect("invite id").to_owned(),
        key_id: key.body["id"].as_str().expect("key id").to_owned(),
        pipeline_id: pipeline.body["id"]
            .as_str()
            .expect("pipeline id")
            .to_owned(),
        lead_id,
        note_id: note.body["id"].as_str().expect("note id").to_owned(),
        task_id: task.body["id"].as_str().expect("task id").to_owned(),
    }
}

/// One row per resource endpoint and method that takes an id. Later endpoints join by adding a row.
fn id_matrix(b: &OrgFixture) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        (
            "PATCH",
            format!("/api/v1/members/{}", b.member.user_id),
            Some(json!({"role": "admin"})),
        ),
        (
            "PATCH",
            format!("/api/v1/members/{}", b.member.user_id),
            Some(json!({"disabled": true})),
        ),
        (
            "DELETE",
            format!("/api/v1/members/{}", b.member.user_id),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/members/{}", b.owner.user_id),
            None,
        ),
        ("DELETE", format!("/api/v1/invites/{}", b.invite_id), None),
        ("DELETE", format!("/api/v1/api-keys/{}", b.key_id), None),
        ("GET", format!("/api/v1/pipelines/{}", b.pipeline_id), None),
        (
            "PATCH",
            format!("/api/v1/pipelines/{}", b.pipeline_id),
            Some(json!({"name": "Taken over"})),
        ),
        (
            "DELETE",
            format!("/api/v1/pipelines/{}", b.pipeline_id),
            None,
        ),
        ("GET", format!("/api/v1/leads/{}", b.lead_id), None),
        (
            "PATCH",
            format!("/api/v1/leads/{}", b.lead_id),
            Some(json!({"first_name": "Hijacked"})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/stage", b.lead_id),
            Some(json!({"stage": "won"})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/assign", b.lead_id),
            Some(json!({"user_id": null})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/priority", b.lead_id),
            Some(json!({"is_priority": true})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/archive", b.lead_id),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/restore", b.lead_id),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/move", b.lead_id),
            Some(json!({"pipeline_id": b.pipeline_id, "stage": "new"})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/accept", b.lead_id),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/deny", b.lead_id),
            Some(json!({"reason": "no"})),
        ),
        ("GET", format!("/api/v1/leads/{}/activity", b.lead_id), None),
        ("GET", format!("/api/v1/leads/{}/history", b.lead_id), None),
        ("GET", format!("/api/v1/leads/{}/notes", b.lead_id), None),
        (
            "POST",
            format!("/api/v1/leads/{}/notes", b.lead_id),
            Some(json!({"body_html": "Planted note"})),
        ),
        (
            "POST",
            "/api/v1/leads/merge".to_owned(),
            Some(json!({"primary_id": b.lead_id, "duplicate_ids": ["x"]})),
        ),
        ("DELETE", format!("/api/v1/notes/{}", b.note_id), None),
        ("GET", format!("/api/v1/tasks/{}", b.task_id), None),
        (
            "PATCH",
            format!("/api/v1/tasks/{}", b.task_id),
            Some(json!({"title": "Hijacked"})),
        ),
        (
            "POST",
            format!("/api/v1/tasks/{}/complete", b.task_id),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/tasks/{}/uncomplete", b.task_id),
            Some(json!({})),
        ),
        ("DELETE", format!("/api/v1/tasks/{}", b.task_id), None),
        ("DELETE", format!("/api/v1/leads/{}", b.lead_id), None),
        (
            "PATCH",
            format!("/api/v1/views/{}", b.view_id),
            Some(json!({"name": "Hijacked"})),
        ),
        ("DELETE", format!("/api/v1/views/{}", b.view_id), None),
        ("GET", format!("/api/v1/imports/{}", b.import_id), None),
        (
            "POST",
            format!("/api/v1/imports/{}/validate", b.import_id),
            Some(json!({"mapping": {"first_name": "first_name"}})),
        ),
        (
            "POST",
            format!("/api/v1/imports/{}/commit", b.import_id),
            Some(json!({})),
        ),
        (
            "GET",
            format!("/api/v1/imports/{}/errors.csv", b.import_id),
            None,
        ),
        ("GET", format!("/api/v1/jobs/{}", b.job_id), None),
        (
            "POST",
            format!("/api/v1/jobs/{}/retry", b.job_id),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/jobs/{}/discard", b.job_id),
            Some(json!({})),
        ),
        (
            "GET",
            format!("/api/v1/email/templates/{}", b.template_id),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/email/templates/{}", b.template_id),
            Some(json!({"subject": "Hijacked"})),
        ),
        (
            "DELETE",
            format!("/api/v1/email/templates/{}", b.template_id),
            None,
        ),
        (
            "POST",
            "/api/v1/email/preview".to_owned(),
            Some(json!({"subject": "x", "body_text": "{{lead.email}}", "lead_id": b.lead_id})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{}/emails", b.lead_id),
            Some(json!({"subject": "x", "body_text": "x"})),
        ),
        (
            "GET",
            format!("/api/v1/email/messages/{}", b.message_id),
            None,
        ),
        (
            "GET",
            format!("/api/v1/email/messages?lead_id={}", b.lead_id),
            None,
        ),
        (
            "GET",
            format!("/api/v1/email/sequences/{}", b.sequence_id),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/email/sequences/{}", b.sequence_id),
            Some(json!({"enabled": false})),
        ),
        (
            "DELETE",
            format!("/api/v1/email/sequences/{}", b.sequence_id),
            None,
        ),
        (
            "POST",
            format!("/api/v1/email/sequences/{}/enrollments", b.sequence_id),
            Some(json!({"lead_ids": [b.lead_id]})),
        ),
        (
            "POST",
            format!("/api/v1/email/enrollments/{}/stop", b.enrollment_id),
            Some(json!({})),
        ),
        (
            "GET",
            format!("/api/v1/email/enrollments?lead_id={}", b.lead_id),
            None,
        ),
        (
            "GET",
            format!("/api/v1/automations/{}", b.automation_id),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/automations/{}", b.automation_id),
            Some(json!({"enabled": false})),
        ),
        (
            "GET",
            format!("/api/v1/automations/{}/versions", b.automation_id),
            None,
        ),
        (
            "GET",
            format!("/api/v1/automations/{}/runs", b.automation_id),
            None,
        ),
        (
            "POST",
            format!("/api/v1/automations/{}/runs", b.automation_id),
            Some(json!({"lead_ids": [b.lead_id]})),
        ),
        ("GET", format!("/api/v1/automation-runs/{}", b.run_id), None),
        (
            "POST",
            format!("/api/v1/automation-runs/{}/retry", b.run_id),
            Some(json!({})),
        ),
        (
            "DELETE",
            format!("/api/v1/automations/{}", b.automation_id),
            None,
        ),
        (
            "POST",
            format!("/api/v1/me/notifications/{}/read", b.notification_id),
            Some(json!({})),
        ),
        ("GET", format!("/api/v1/leads/{}/watchers", b.lead_id), None),
        (
            "PUT",
            format!("/api/v1/leads/{}/watchers/me", b.lead_id),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/leads/{}/watchers/me", b.lead_id),
            None,
        ),
        (
            "DELETE",
            format!(
                "/api/v1/email/suppressions/suppressed@{}",
                b.owner.email.rsplit_once('@').map_or("", |(_, d)| d)
            ),
            None,
        ),
        ("GET", format!("/api/v1/webhooks/{}", b.webhook_id), None),
        (
            "PATCH",
            format!("/api/v1/webhooks/{}", b.webhook_id),
            Some(json!({"url": "https://evil.test/steal"})),
        ),
        (
            "POST",
            format!("/api/v1/webhooks/{}/rotate-secret", b.webhook_id),
            Some(json!({})),
        ),
        (
            "GET",
            format!("/api/v1/webhooks/{}/deliveries", b.webhook_id),
            None,
        ),
        (
            "GET",
            format!("/api/v1/webhook-deliveries/{}", b.delivery_id),
            None,
        ),
        (
            "POST",
            format!("/api/v1/webhook-deliveries/{}/replay", b.delivery_id),
            Some(json!({})),
        ),
        ("DELETE", format!("/api/v1/webhooks/{}", b.webhook_id), None),
        ("GET", format!("/api/v1/inbound-forms/{}", b.form_id), None),
        (
            "PATCH",
            format!("/api/v1/inbound-forms/{}", b.form_id),
            Some(json!({"enabled": false})),
        ),
        (
            "DELETE",
            format!("/api/v1/inbound-forms/{}", b.form_id),
            None,
        ),
    ]
}

/// Lists must show none of the other organization's rows.
const LISTS: &[&str] = &[
    "/api/v1/members",
    "/api/v1/invites",
    "/api/v1/api-keys",
    "/api/v1/audit-log",
    "/api/v1/pipelines",
    "/api/v1/metadata",
    "/api/v1/leads",
    "/api/v1/leads?archived=all&q=lead",
    "/api/v1/leads/handoff-queue",
    "/api/v1/tasks?status=all",
    "/api/v1/views",
    "/api/v1/imports",
    "/api/v1/leads/export?columns=id,email,first_name&archived=all",
    "/api/v1/jobs",
    "/api/v1/email/templates",
    "/api/v1/email/messages",
    "/api/v1/email/suppressions",
    "/api/v1/email/settings",
    "/api/v1/email/sequences",
    "/api/v1/email/enrollments",
    "/api/v1/automations",
    "/api/v1/me/notifications",
    "/api/v1/webhooks",
    "/api/v1/inbound-forms",
];

async fn cross_tenant_matrix(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = org_fixture(&app, "Acme Growth", "acme.test").await;
    let b = org_fixture(&app, "Bright Leads", "bright.test").await;

    for (method, path, body) in id_matrix(&b) {
        let reply = app.call(method, &path, Some(&a.owner.access), body).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path} by another org's owner: {}",
            reply.body
        );
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    let b_ids = [
        &b.member.user_id,
        &b.owner.user_id,
        &b.invite_id,
        &b.key_id,
        &b.owner.org_id,
        &b.pipeline_id,
        &b.lead_id,
        &b.note_id,
        &b.task_id,
        &b.view_id,
        &b.import_id,
        &b.job_id,
        &b.template_id,
        &b.message_id,
        &b.sequence_id,
        &b.enrollment_id,
        &b.automation_id,
        &b.run_id,
        &b.notification_id,
        &b.webhook_id,
        &b.delivery_id,
        &b.form_id,
    ];
    for list in LISTS {
        let reply = app.get(list, &a.owner.access).await;
        assert_eq!(reply.status, StatusCode::OK, "{list}");
        let text = reply.body.to_string();
        for id in b_ids {
            assert!(!text.contains(id.as_str()), "{list} leaks {id}");
        }
        assert!(!text.contains("bright.test"), "{list} leaks org B's people");
    }
    let org = app.get("/api/v1/org", &a.owner.access).await;
    assert_eq!(
        org.body["id"],
        a.owner.org_id.as_str(),
        "the organization comes from the credentials"
    );

    // B's resources are intact after A's attempts.
    let b_members = app.get("/api/v1/members", &b.owner.access).await;
    assert_eq!(b_members.body["items"].as_array().expect("items").len(), 2);
    let b_keys = app.get("/api/v1/api-keys", &b.owner.access).await;
    assert!(b_keys.body["items"][0]["revoked_at"].is_null());
    let b_invites = app.get("/api/v1/invites", &b.owner.access).await;
    assert_eq!(b_invites.body["items"].as_array().expect("items").len(), 1);
    let b_lead = app
        .get(&format!("/api/v1/leads/{}", b.lead_id), &b.owner.access)
        .await;
    assert_eq!(b_lead.body["first_name"], "Bright Leads lead");
    assert!(b_lead.body["archived_at"].is_null());
    assert_eq!(b_lead.body["tags"], json!(["secret-tag"]));
    let b_notes = app
        .get(
            &format!("/api/v1/leads/{}/notes", b.lead_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_notes.body["items"].as_array().expect("items").len(), 1);
    let b_task = app
        .get(&format!("/api/v1/tasks/{}", b.task_id), &b.owner.access)
        .await;
    assert!(b_task.body["completed_at"].is_null());
    assert_eq!(
        app.get(
            &format!("/api/v1/pipelines/{}", b.pipeline_id),
            &b.owner.access
        )
        .await
        .status,
        StatusCode::OK
    );
    // Ids of another organization inside a body: a bulk action reports them as not found, a
    // task cannot be attached to them, and A's tag filter does not see B's tags.
    let bulk = app
        .post(
            "/api/v1/leads/bulk",
            &a.owner.access,
            json!({"ids": [b.lead_id], "action": "archive"}),
        )
        .await;
    assert_eq!(bulk.body["results"][0]["status"], 404);
    let task = app
        .post(
            "/api/v1/tasks",
            &a.owner.access,
            json!({"title": "Sneaky", "lead_id": b.lead_id}),
        )
        .await;
    assert_eq!(task.status, StatusCode::UNPROCESSABLE_ENTITY);
    let tagged = app
        .get("/api/v1/leads?tag=secret-tag", &a.owner.access)
        .await;
    assert_eq!(
        tagged.body["items"].as_array().expect("items").len(),
        1,
        "only A's own lead"
    );
    assert!(!tagged.body.to_string().contains(&b.lead_id));
    assert_eq!(
        app.get("/api/v1/auth/me", &b.member.access).await.status,
        StatusCode::OK
    );
    let b_template = app
        .get(
            &format!("/api/v1/email/templates/{}", b.template_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_template.body["subject"], "Hello from bright.test");
    let b_suppressions = app.get("/api/v1/email/suppressions", &b.owner.access).await;
    assert_eq!(
        b_suppressions.body["items"][0]["email"],
        "suppressed@bright.test"
    );
    let b_messages = app.get("/api/v1/email/messages", &b.owner.access).await;
    assert_eq!(
        b_messages.body["items"].as_array().expect("items").len(),
        1,
        "A queued nothing to B's lead"
    );
    let b_enrollment = app
        .get(
            &format!("/api/v1/email/enrollments?lead_id={}", b.lead_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_enrollment.body["items"][0]["status"], "active");
    let b_automation = app
        .get(
            &format!("/api/v1/automations/{}", b.automation_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_automation.body["enabled"], true);
    let b_runs = app
        .get(
            &format!("/api/v1/automations/{}/runs", b.automation_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_runs.body["items"].as_array().expect("items").len(), 1);
    let b_sequence = app
        .get(
            &format!("/api/v1/email/sequences/{}", b.sequence_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_sequence.body["enabled"], true);
    let b_webhook = app
        .get(
            &format!("/api/v1/webhooks/{}", b.webhook_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_webhook.body["url"], "https://hooks.bright.test/in");
    assert_eq!(b_webhook.body["secret_hint"], b.webhook_hint.as_str());
    let b_form = app
        .get(
            &format!("/api/v1/inbound-forms/{}", b.form_id),
            &b.owner.access,
        )
        .await;
    assert_eq!(b_form.body["enabled"], true);
    let b_job = app
        .get(&format!("/api/v1/jobs/{}", b.job_id), &b.owner.access)
        .await;
    assert_eq!(
        b_job.body["status"], "dead",
        "B's job is neither retried nor discarded"
    );

    // A's token, refreshed, still lands in A; and A's invite token cannot join B.
    let login_b_as_a = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": a.owner.email, "password": PASSWORD, "org_id": b.owner.org_id})),
        )
        .await;
    assert_eq!(login_b_as_a.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn dumps_hold_no_plaintext_secrets(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &owner.access,
            json!({"name": "Zapier", "role": "viewer"}),
        )
        .await;
    let secret = key.body["secret"].as_str().expect("secret").to_owned();
    let invite = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "sam@acme.test", "role": "viewer"}),
        )
        .await;
    let invite_token = meridian_tests::invite_token(&invite.body);
    // A browser session, whose cookie value is the session secret.
    let browser = meridian_tests::browser();
    let login = app.web_login(&browser, "ada@acme.test", PASSWORD).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let session_secret = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("value");
    assert!(session_secret.len() >= 40);

    let smtp = app
        .call(
            "PUT",
            "/api/v1/email/settings",
            Some(&owner.access),
            Some(json!({"from_name": "Acme", "from_address": "team@acme.test",
                "smtp_host": "smtp.acme.test", "smtp_username": "mailer", "smtp_password": "smtp-pa55word-at-rest"})),
        )
        .await;
    assert_eq!(smtp.status, StatusCode::OK, "{:?}", smtp.body);

    let dump = app.dump_text().await;
    assert!(dump.contains("v1."), "the SMTP password is stored sealed");
    for (what, value) in [
        ("SMTP password", "smtp-pa55word-at-rest"),
        ("password", PASSWORD),
        ("access token", owner.access.as_str()),
        ("refresh token", owner.refresh.as_str()),
        ("API key secret", secret.as_str()),
        ("invite token", invite_token.as_str()),
        ("session id", session_secret.as_str()),
    ] {
        assert!(
            !dump.contains(value),
            "the dump contains a plaintext {what}"
        );
    }
    assert!(
        dump.contains("ada@acme.test"),
        "the dump check reads real data"
    );
    assert!(
        dump.contains("$argon2id$"),
        "passwords are stored as argon2id hashes"
    );
}

const TENANT_TABLES_SQL: &str = "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_attribute a ON a.attrelid = c.oid \
     WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attname = 'org_id' AND NOT a.attisdropped";

/// Every table with an org_id has row-level security ENABLED and FORCED with a policy, and the
/// app role can neither bypass it nor owns anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog_enforces_row_level_security() {
    let app = spawn_app(Engine::Postgres).await;
    let Admin::Postgres(admin) = &app.admin else {
        panic!("postgres admin")
    };
    let tables: Vec<(String,)> = sqlx::query_as(TENANT_TABLES_SQL)
        .fetch_all(admin)
        .await
        .expect("tables");
    assert!(tables.len() >= 7, "found tenant tables: {tables:?}");
    for (table,) in &tables {
        let (enabled, forced): (bool, bool) =
            sqlx::query_as("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = $1 AND relkind = 'r'")
                .bind(table)
                .fetch_one(admin)
                .await
                .expect("flags");
        assert!(enabled, "{table}: row-level security is not enabled");
        assert!(forced, "{table}: row-level security is not forced");
        let (policies,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM pg_policies WHERE tablename = $1")
                .bind(table)
                .fetch_one(admin)
                .await
                .expect("policies");
        assert!(policies > 0, "{table}: no policy");
        let (mentions_org,): (bool,) = sqlx::query_as(
            "SELECT bool_and(qual LIKE '%app.org_id%' AND with_check LIKE '%app.org_id%') FROM pg_policies WHERE tablename = $1",
        )
        .bind(table)
        .fetch_one(admin)
        .await
        .expect("qual");
        assert!(mentions_org, "{table}: a policy does not check the tenant");
    }
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(meridian_tests::pg::APP_ROLE)
            .fetch_one(admin)
            .await
            .expect("role");
    assert!(
        !superuser && !bypass,
        "the app role could bypass row-level security"
    );
    let (owned,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = $1",
    )
    .bind(meridian_tests::pg::APP_ROLE)
    .fetch_one(admin)
    .await
    .expect("ownership");
    assert_eq!(owned, 0, "the app role owns tables");
    let (current,): (String,) = sqlx::query_as("SELECT current_user::text")
        .fetch_one(match &app.db.pools() {
            meridian_db::Pools::Postgres(pool) => pool,
            meridian_db::Pools::Sqlite(_) => panic!("postgres"),
        })
        .await
        .expect("current user");
    assert_eq!(
        current,
        meridian_tests::pg::APP_ROLE,
        "the app connects as the unprivileged role"
    );
}

/// The one-statement credential lookups (migration 0014) run as the app role under row-level
/// security: they return the row whose hash they are given and nothing else, and the hash they
/// set does not outlive their statement on the pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_credential_functions_see_only_the_named_token() {
    let app = spawn_app(Engine::Postgres).await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    let meridian_db::Pools::Postgres(pool) = app.db.pools() else {
        panic!("postgres")
    };
    let mut conn = pool.acquire().await.expect("connection");
    let hash = meridian_app::auth::tokens::hash_secret(&a.access);
    let found: Vec<(String, String)> =
        sqlx::query_as("SELECT org_id, user_id FROM credential_access_token($1)")
            .bind(&hash)
            .fetch_all(&mut *conn)
            .await
            .expect("lookup");
    assert_eq!(found, vec![(a.org_id.clone(), a.user_id.clone())]);
    for function in [
        "credential_access_token",
        "credential_session",
        "credential_api_key",
    ] {
        let (none,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {function}($1)"
        )))
        .bind(meridian_app::auth::tokens::hash_secret("not-a-token"))
        .fetch_one(&mut *conn)
        .await
        .expect("lookup");
        assert_eq!(none, 0, "{function} found a row for an unknown hash");
    }
    assert_nothing_visible(
        &mut conn,
        &["access_tokens", "sessions", "refresh_tokens", "api_keys"],
        "the lookup's token hash outlived its statement",
    )
    .await;
    // The other organization's token is found by its own hash only, as before.
    let (org,): (String,) = sqlx::query_as("SELECT org_id FROM credential_access_token($1)")
        .bind(meridian_app::auth::tokens::hash_secret(&b.access))
        .fetch_one(&mut *conn)
        .await
        .expect("lookup");
    assert_eq!(org, b.org_id);
}

/// The tenant read functions (migration 0016) see the named organization only, and its settings
/// end with their statement: the pooled connection sees no tenant rows afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenant_functions_see_only_the_named_tenant() {
    let app = spawn_app(Engine::Postgres).await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    app.add_member(&b, "sam@bright.test", "member").await;
    let meridian_db::Pools::Postgres(pool) = app.db.pools() else {
        panic!("postgres")
    };
    let mut conn = pool.acquire().await.expect("connection");
    let listed: Vec<(String,)> =
        sqlx::query_as("SELECT user_id FROM tenant_members($1, $2, NULL, '', 100)")
            .bind(&a.org_id)
            .bind(&a.user_id)
            .fetch_all(&mut *conn)
            .await
            .expect("list");
    assert_eq!(listed, vec![(a.user_id.clone(),)]);
    assert_nothing_visible(
        &mut conn,
        &["memberships", "leads", "audit_log"],
        "the function's tenant outlived its statement",
    )
    .await;
}

/// Fails with `why` if the app role sees any row of `tables` on `conn` (no settings in force).
async fn assert_nothing_visible(conn: &mut sqlx::PgConnection, tables: &[&str], why: &str) {
    for table in tables {
        let (visible,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *conn)
                .await
                .expect("count");
        assert_eq!(visible, 0, "{table}: {why}");
    }
}

/// Row-level security holds even for a query that forgets its org_id predicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rls_hides_other_tenants_without_predicates() {
    let app = spawn_app(Engine::Postgres).await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    app.add_member(&b, "sam@bright.test", "member").await;
    let tenant = meridian_db::Tenant::for_verified_credentials(&a.org_id, None);
    let mut tx = app.db.tenant_read(&tenant).await.expect("tx");
    for table in [
        "memberships",
        "sessions",
        "access_tokens",
        "refresh_tokens",
        "audit_log",
        "invites",
        "api_keys",
    ] {
        let (foreign,): (i64,) = tx
            .fetch_one(
                meridian_db::sql(format!("SELECT COUNT(*) FROM {table} WHERE org_id <> $1"))
                    .bind(&a.org_id),
            )
            .await
            .expect("count");
        assert_eq!(foreign, 0, "{table} shows another tenant's rows");
    }
    let (visible,): (i64,) = tx
        .fetch_one(meridian_db::sql("SELECT COUNT(*) FROM memberships"))
        .await
        .expect("count");
    assert_eq!(visible, 1);
    tx.commit().await.expect("commit");
    // Without a tenant, tenant rows are invisible.
    let mut tx = app.db.global_read().await.expect("tx");
    let (none,): (i64,) = tx
        .fetch_one(meridian_db::sql("SELECT COUNT(*) FROM audit_log"))
        .await
        .expect("count");
    assert_eq!(none, 0);
    tx.commit().await.expect("commit");
    // Writing a row for another tenant is refused by the policy's WITH CHECK.
    let mut tx = app.db.tenant(&tenant).await.expect("tx");
    let refused = tx
        .execute(
            meridian_db::sql("INSERT INTO audit_log (org_id, id, actor_label, action, target_type, created_at) VALUES ($1, $2, 'x', 'x', 'x', $3)")
                .bind(&b.org_id)
                .bind(meridian_db::new_id())
                .bind(meridian_db::now()),
        )
        .await;
    assert!(refused.is_err(), "inserting into another tenant must fail");
}
