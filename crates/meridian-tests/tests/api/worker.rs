//! The worker's housekeeping and the demo seed, on both engines.

use meridian_tests::{Engine, PASSWORD, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    housekeeping_purges_only_dead_credentials,
    demo_seed_creates_every_role_and_is_repeatable,
    housekeeping_purges_old_history_only,
);

async fn housekeeping_purges_only_dead_credentials(engine: Engine) {
    let app = spawn_app(engine).await;
    let a = app.create_org("Acme Growth", "ada@acme.test").await;
    let b = app.create_org("Bright Leads", "bo@bright.test").await;
    let stale = app.login("ada@acme.test", PASSWORD).await;
    app.admin_exec(&format!(
        "UPDATE access_tokens SET expires_at = {past} WHERE user_id = '{}'",
        stale.user_id,
        past = crate::auth::past(engine)
    ))
    .await;
    app.admin_exec(&format!(
        "UPDATE refresh_tokens SET expires_at = {past} WHERE org_id = '{}'",
        b.org_id,
        past = crate::auth::past(engine)
    ))
    .await;
    // A throttling row from long ago.
    app.call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "ada@acme.test", "password": "nope nope"})),
    )
    .await;
    app.admin_exec(&format!(
        "UPDATE login_throttle SET window_started_at = {}",
        crate::auth::past(engine)
    ))
    .await;

    let purged = meridian_app::housekeeping::purge_once(&app.db, &app.state.config)
        .await
        .expect("purge");
    // Ada's two expired access tokens (two sign-ins), B's refresh token, and the two throttling
    // counters (account+address, address) of the failed attempt.
    assert_eq!(purged, 5, "purged rows");
    assert_eq!(
        app.get("/api/v1/auth/me", &a.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refreshed = app.refresh(&a.refresh).await;
    assert_eq!(
        refreshed.status,
        StatusCode::OK,
        "A's live refresh token survives"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &b.access).await.status,
        StatusCode::OK,
        "B's live access token survives"
    );
    let again = meridian_app::housekeeping::purge_once(&app.db, &app.state.config)
        .await
        .expect("purge");
    assert_eq!(again, 0);
}

async fn demo_seed_creates_every_role_and_is_repeatable(engine: Engine) {
    let app = spawn_app(engine).await;
    let first = meridian_app::demo::seed_demo(&app.state)
        .await
        .expect("seed");
    let roles: Vec<&str> = first.iter().map(|c| c.role.as_str()).collect();
    assert_eq!(
        roles,
        vec![
            "owner",
            "admin",
            "manager",
            "case_manager",
            "intake",
            "member",
            "viewer"
        ]
    );
    let second = meridian_app::demo::seed_demo(&app.state)
        .await
        .expect("seed again");
    assert_ne!(
        first[0].password, second[0].password,
        "re-seeding issues fresh passwords"
    );
    let owner = app.login(second[0].email, &second[0].password).await;
    let members = app.get("/api/v1/members", &owner.access).await;
    assert_eq!(
        members.body["items"].as_array().expect("items").len(),
        7,
        "no duplicates after re-seeding"
    );
    let viewer = app.login(second[6].email, &second[6].password).await;
    let me = app.get("/api/v1/auth/me", &viewer.access).await;
    assert_eq!(me.body["role"], "viewer");
    assert_eq!(me.body["org"]["name"], "Northwind Growth Partners");

    // The demo organization has work in it, seeded once.
    let stats = app.get("/api/v1/leads/stats", &owner.access).await;
    let total = stats.body["total"].as_i64().expect("total");
    assert!(total >= 30, "{}", stats.body);
    assert!(stats.body["pending_tasks"].as_i64().expect("tasks") > 0);
    let case_manager = app.login(second[3].email, &second[3].password).await;
    let queue = app
        .get("/api/v1/leads/handoff-queue", &case_manager.access)
        .await;
    assert!(!queue.body["items"].as_array().expect("items").is_empty());
    meridian_app::demo::seed_demo(&app.state)
        .await
        .expect("seed a third time");
    let again = app.get("/api/v1/leads/stats", &owner.access).await;
    assert_eq!(again.body["total"], total, "records are seeded once");
}

async fn housekeeping_purges_old_history_only(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let sam = app.add_member(&owner, "sam@acme.test", "member").await;
    let webhook = app
        .post(
            "/api/v1/webhooks",
            &owner.access,
            json!({"url": "https://hooks.example.com/in", "event_types": ["lead.created"]}),
        )
        .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{:?}", webhook.body);
    let automation = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "Tag", "definition": {"trigger": {"type": "lead_created"},
                   "actions": [{"type": "add_tag", "tag": "new"}]}}),
        )
        .await;
    assert_eq!(automation.status, StatusCode::CREATED);
    for name in ["Old", "New"] {
        let lead = app
            .post(
                "/api/v1/leads",
                &owner.access,
                json!({"first_name": name, "assigned_to": sam.user_id}),
            )
            .await;
        assert_eq!(lead.status, StatusCode::CREATED);
    }
    // Age one of each: finished and read, and more than the retention ago.
    let old = "'2000-01-01T00:00:00Z'";
    for statement in [
        format!(
            "UPDATE webhook_deliveries SET status = 'delivered', created_at = {old} WHERE payload LIKE '%\"Old\"%'"
        ),
        format!(
            "UPDATE automation_runs SET status = 'succeeded', created_at = {old} WHERE id = (SELECT MIN(id) FROM automation_runs)"
        ),
        format!(
            "UPDATE notifications SET read_at = {old}, created_at = {old} WHERE title LIKE '%Old%'"
        ),
    ] {
        app.admin_exec(&statement).await;
    }
    let purged = meridian_app::housekeeping::purge_history(&app.db)
        .await
        .expect("purge");
    assert_eq!(purged, 3, "one old delivery, run and read notification");
    let inbox = app.get("/api/v1/me/notifications", &sam.access).await;
    assert_eq!(inbox.body["items"].as_array().map(Vec::len), Some(1));
    let webhook_id = webhook.body["id"].as_str().expect("id");
    let deliveries = app
        .get(
            &format!("/api/v1/webhooks/{webhook_id}/deliveries"),
            &owner.access,
        )
        .await;
    assert_eq!(deliveries.body["items"].as_array().map(Vec::len), Some(1));
    let automation_id = automation.body["id"].as_str().expect("id");
    let runs = app
        .get(
            &format!("/api/v1/automations/{automation_id}/runs"),
            &owner.access,
        )
        .await;
    assert_eq!(runs.body["items"].as_array().map(Vec::len), Some(1));
    let again = meridian_app::housekeeping::purge_history(&app.db)
        .await
        .expect("purge");
    assert_eq!(again, 0);
}
