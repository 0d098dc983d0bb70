use meridian_tests::{Engine, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    api_keys_are_shown_once_used_as_bearer_and_revoked,
    api_keys_expire_and_respect_roles
);

async fn api_keys_are_shown_once_used_as_bearer_and_revoked(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let created = app
        .post(
            "/api/v1/api-keys",
            &owner.access,
            json!({"name": "Zapier export", "role": "manager"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    let prefix = created.body["prefix"].as_str().expect("prefix");
    assert!(secret.starts_with("mrd_sk_"));
    assert!(secret.starts_with(prefix) && prefix.len() < secret.len());

    let listed = app.get("/api/v1/api-keys", &owner.access).await;
    let item = &listed.body["items"][0];
    assert_eq!(item["name"], "Zapier export");
    assert!(item.get("secret").is_none(), "never listed again");
    assert!(!listed.body.to_string().contains(&secret));

    let me = app.get("/api/v1/auth/me", &secret).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["credential"], "api_key");
    assert_eq!(me.body["role"], "manager");
    assert_eq!(me.body["user"], json!(null));
    assert_eq!(me.body["api_key"]["name"], "Zapier export");
    assert_eq!(
        app.get("/api/v1/members", &secret).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/api-keys", &secret).await.status,
        StatusCode::FORBIDDEN,
        "a manager key cannot manage keys"
    );
    let used = app.get("/api/v1/api-keys", &owner.access).await;
    assert!(used.body["items"][0]["last_used_at"].is_string());

    let id = created.body["id"].as_str().expect("id");
    let revoked = app
        .delete(&format!("/api/v1/api-keys/{id}"), &owner.access)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let listed = app.get("/api/v1/api-keys", &owner.access).await;
    assert!(
        listed.body["items"][0]["revoked_at"].is_string(),
        "revoked keys stay visible"
    );
    let forged = format!("{}x", &secret[..secret.len() - 1]);
    assert_eq!(
        app.get("/api/v1/auth/me", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn api_keys_expire_and_respect_roles(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let admin = app.add_member(&owner, "adm@acme.test", "admin").await;
    let above = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            json!({"name": "Root", "role": "owner"}),
        )
        .await;
    assert_eq!(above.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(above.body["errors"][0]["field"], "role");
    let past = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            json!({"name": "Old", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(past.body["errors"][0]["field"], "expires_at");
    let bad_date = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            json!({"name": "Bad", "role": "viewer", "expires_at": "tomorrow"}),
        )
        .await;
    assert_eq!(bad_date.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_date.body["errors"][0]["field"], "expires_at");
    let soon = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            json!({"name": "Soon", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(soon.status, StatusCode::CREATED);
    let secret = soon.body["secret"].as_str().expect("secret");
    assert_eq!(
        app.get("/api/v1/auth/me", secret).await.status,
        StatusCode::OK
    );
    app.admin_exec(&format!(
        "UPDATE api_keys SET expires_at = {} WHERE name = 'Soon'",
        crate::auth::past(engine)
    ))
    .await;
    assert_eq!(
        app.get("/api/v1/auth/me", secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let blank = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            json!({"name": "  ", "role": "viewer"}),
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(blank.body["errors"][0]["field"], "name");
}
