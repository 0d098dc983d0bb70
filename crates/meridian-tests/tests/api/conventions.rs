//! API conventions every endpoint follows: problem+json errors, cursor pagination, request ids,
//! security headers, body limits, operations endpoints and the OpenAPI description.

use meridian_tests::{Engine, TestApp, Tokens, both_engines, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    lists_paginate_with_cursors,
    errors_are_problem_json,
    every_response_has_request_id_and_security_headers,
    operations_endpoints_answer,
    migration_status_detects_newer_schemas,
);

/// Every member's email, following `next_cursor` through pages of `limit`; and the page count.
async fn members_page_by_page(app: &TestApp, owner: &Tokens, limit: usize) -> (Vec<String>, usize) {
    let pages = app
        .pages(&format!("/api/v1/members?limit={limit}"), &owner.access)
        .await;
    let mut seen = Vec::new();
    for page in &pages {
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit);
        seen.extend(
            items
                .iter()
                .map(|m| m["email"].as_str().expect("email").to_owned()),
        );
    }
    (seen, pages.len())
}

async fn lists_paginate_with_cursors(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    for n in 0..4 {
        app.add_member(&owner, &format!("person{n}@acme.test"), "member")
            .await;
    }
    let (seen, pages) = members_page_by_page(&app, &owner, 2).await;
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no member twice across pages");
    // Names outside ASCII, which engines and Rust lowercase differently, page like the others:
    // the cursor carries the sort key as the database computed it.
    for (n, name) in [
        "Émile Zola",
        "Zoë Kravitz",
        "Örjan Berg",
        "émile Ajar",
        "ÉLISE Roy",
    ]
    .into_iter()
    .enumerate()
    {
        app.add_named_member(&owner, &format!("accent{n}@acme.test"), name, "member")
            .await;
    }
    let (accented, _) = members_page_by_page(&app, &owner, 1).await;
    assert_eq!(accented.len(), 10, "{accented:?}");
    let mut unique_accented = accented.clone();
    unique_accented.sort();
    unique_accented.dedup();
    assert_eq!(unique_accented.len(), 10, "{accented:?}");

    for bad in [
        "/api/v1/members?limit=0",
        "/api/v1/members?limit=101",
        "/api/v1/members?cursor=%21%21",
        "/api/v1/members?limit=ten",
    ] {
        let reply = app.get(bad, &owner.access).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        assert!(reply.body["errors"][0]["field"].is_string());
    }
    let audit = app.get("/api/v1/audit-log?limit=3", &owner.access).await;
    let next = audit.body["next_cursor"]
        .as_str()
        .expect("more audit entries");
    let older = app
        .get(
            &format!("/api/v1/audit-log?limit=3&cursor={next}"),
            &owner.access,
        )
        .await;
    assert_ne!(audit.body["items"][0]["id"], older.body["items"][0]["id"]);
}

async fn errors_are_problem_json(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let client = meridian_tests::http();
    let syntax = client
        .post(app.url("/api/v1/invites"))
        .bearer_auth(&owner.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(syntax.status(), StatusCode::BAD_REQUEST);
    assert_eq!(syntax.headers()["content-type"], "application/problem+json");
    let missing = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "x@acme.test"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body["status"], 422);
    assert_eq!(missing.body["title"], "Unprocessable Entity");
    assert_eq!(missing.body["errors"][0]["field"], "role");
    assert!(missing.body["detail"].is_string());
    let wrong_type = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": 5, "role": "viewer"}),
        )
        .await;
    assert_eq!(wrong_type.body["errors"][0]["field"], "email");
    let not_json = client
        .post(app.url("/api/v1/invites"))
        .bearer_auth(&owner.access)
        .body("email=x")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let unknown = app.get("/api/v1/no-such-thing", &owner.access).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.headers["content-type"], "application/problem+json");

    let small = spawn_app_with(engine, |c| c.max_body_bytes = 1024).await;
    let small_owner = small.create_org("Acme Growth", "ada@acme.test").await;
    let big = small
        .post(
            "/api/v1/invites",
            &small_owner.access,
            json!({"email": "x".repeat(4000), "role": "viewer"}),
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(big.headers["content-type"], "application/problem+json");
}

async fn every_response_has_request_id_and_security_headers(engine: Engine) {
    let app = spawn_app(engine).await;
    for path in [
        "/health",
        "/login",
        "/api/v1/auth/me",
        "/api/docs",
        "/static/app.css",
    ] {
        let response = meridian_tests::http()
            .get(app.url(path))
            .send()
            .await
            .expect("send");
        let headers = response.headers();
        assert!(
            headers.get("x-request-id").is_some_and(|v| !v.is_empty()),
            "{path}: request id"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("default-src 'self'"),
            "{path}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(
            headers["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
        assert!(
            headers.get("strict-transport-security").is_none(),
            "{path}: no HSTS over plain HTTP"
        );
    }
    let given = meridian_tests::http()
        .get(app.url("/health"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("send");
    assert_eq!(
        given.headers()["x-request-id"],
        "trace-me-123",
        "a caller's request id is kept"
    );
    let https = spawn_app_with(engine, |c| {
        c.public_url = "https://crm.example.com".to_owned()
    })
    .await;
    let response = meridian_tests::http()
        .get(https.url("/health"))
        .send()
        .await
        .expect("send");
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .expect("hsts")
            .contains("max-age=")
    );
}

async fn operations_endpoints_answer(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let health = app.call("GET", "/health", None, None).await;
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.call("GET", "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["migrations"], "current");
    app.get("/api/v1/members", &owner.access).await;
    let metrics = app.call("GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().expect("text");
    assert!(text.contains("meridian_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/api/v1/members\""),
        "metrics are labelled by route pattern"
    );
    assert!(text.contains("meridian_db_pool_connections"));
    assert!(
        !text.contains(&owner.user_id),
        "no raw paths or ids in labels"
    );

    let spec = app.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(
        spec.body["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.1")
    );
    for path in [
        "/api/v1/auth/login",
        "/api/v1/members/{user_id}",
        "/api/v1/api-keys",
        "/api/v1/audit-log",
        "/api/v1/org",
    ] {
        assert!(
            spec.body["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI description"
        );
    }
    let docs = meridian_tests::http()
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("/api/v1/auth/refresh") && html.contains("TokenResponse"));

    let split = spawn_app_with(engine, |c| c.metrics_on_main_listener = false).await;
    assert_eq!(
        split.call("GET", "/metrics", None, None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn migration_status_detects_newer_schemas(engine: Engine) {
    let app = spawn_app(engine).await;
    let status = meridian_db::Migrator::status(&app.db)
        .await
        .expect("status");
    assert!(status.is_current(), "{status:?}");
    app.admin_exec("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, 'future', 'x', 'now')")
        .await;
    let status = meridian_db::Migrator::status(&app.db)
        .await
        .expect("status");
    assert!(status.is_newer_than_binary());
    let ready = app.call("GET", "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["migrations"], "newer_than_binary");
}
