use meridian_tests::{Engine, PASSWORD, both_engines, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    login_returns_tokens_and_me_describes_the_caller,
    wrong_passwords_and_unknown_accounts_are_refused_alike,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_token_family,
    expired_access_tokens_are_refused,
    throttling_blocks_the_attacker_not_the_owner,
    password_change_ends_other_sessions_and_tokens,
    weak_hashes_are_upgraded_at_login,
    open_signup_registers_and_invite_policy_refuses,
    login_picks_the_requested_organization,
);

async fn login_returns_tokens_and_me_describes_the_caller(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let reply = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": " ADA@acme.test ", "password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = &reply.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("mrd_at_"))
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("mrd_rt_"))
    );
    assert_eq!(body["user"]["email"], "ada@acme.test");
    assert_eq!(body["org"]["name"], "Acme Growth");
    assert_eq!(body["role"], "owner");

    let me = app.get("/api/v1/auth/me", &owner.access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["id"], owner.user_id.as_str());
    assert_eq!(me.body["org"]["id"], owner.org_id.as_str());
    assert_eq!(me.body["role"], "owner");
    assert_eq!(me.body["credential"], "access_token");
    let permissions = me.body["permissions"].as_array().expect("permissions");
    assert!(permissions.contains(&json!("members.manage")));

    let garbage = app.get("/api/v1/auth/me", "mrd_at_not-a-real-token").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(garbage.headers["content-type"], "application/problem+json");
    let anonymous = app.call("GET", "/api/v1/auth/me", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

async fn wrong_passwords_and_unknown_accounts_are_refused_alike(engine: Engine) {
    let app = spawn_app(engine).await;
    app.create_org("Acme Growth", "ada@acme.test").await;
    let wrong = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@acme.test", "password": "not the password"})),
        )
        .await;
    let unknown = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@acme.test", "password": "not the password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "no account enumeration"
    );
    let invalid = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "not-an-email", "password": "x"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["errors"][0]["field"], "email");
}

async fn refresh_rotates_and_reuse_revokes_the_family(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let first = app.refresh(&owner.refresh).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let rotated_access = first.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let rotated_refresh = first.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(rotated_refresh, owner.refresh);
    assert_eq!(
        app.get("/api/v1/auth/me", &rotated_access).await.status,
        StatusCode::OK
    );

    // The old refresh token is presented again: someone holds a copy. The whole family dies.
    let replay = app.refresh(&owner.refresh).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    let after = app.refresh(&rotated_refresh).await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the rotated refresh token is revoked too"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &rotated_access).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &owner.access).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Another sign-in (another family) is unaffected.
    let other = app.login("ada@acme.test", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/auth/me", &other.access).await.status,
        StatusCode::OK
    );
}

async fn logout_revokes_the_token_family(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let reply = app
        .call("POST", "/api/v1/auth/logout", Some(&owner.access), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &owner.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = app.refresh(&owner.refresh).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
}

async fn expired_access_tokens_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    assert_eq!(
        app.get("/api/v1/auth/me", &owner.access).await.status,
        StatusCode::OK
    );
    app.admin_exec(&format!(
        "UPDATE access_tokens SET expires_at = {} WHERE user_id = '{}'",
        past(engine),
        owner.user_id
    ))
    .await;
    assert_eq!(
        app.get("/api/v1/auth/me", &owner.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The refresh token still works and yields a fresh access token.
    let refreshed = app.refresh(&owner.refresh).await;
    assert_eq!(refreshed.status, StatusCode::OK);
}

/// An SQL literal for a time in the past, in each engine's storage format.
pub fn past(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "'2000-01-01T00:00:00.000000Z'",
        Engine::Postgres => "'2000-01-01T00:00:00Z'::timestamptz",
    }
}

async fn throttling_blocks_the_attacker_not_the_owner(engine: Engine) {
    let app = spawn_app(engine).await;
    app.create_org("Acme Growth", "ada@acme.test").await;
    let attempt = |ip: &'static str, password: &'static str| {
        let url = app.url("/api/v1/auth/login");
        async move {
            meridian_tests::http()
                .post(url)
                .header("x-forwarded-for", ip)
                .json(&json!({"email": "ada@acme.test", "password": password}))
                .send()
                .await
                .expect("request")
        }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt("203.0.113.9", "guess-guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = attempt("203.0.113.9", "guess-guess").await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=61).contains(&retry_after), "retry after {retry_after}");
    // Even the right password is refused from the attacking address while it is blocked...
    assert_eq!(
        attempt("203.0.113.9", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the owner, signing in from their own address, is not locked out.
    assert_eq!(
        attempt("198.51.100.7", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn password_change_ends_other_sessions_and_tokens(engine: Engine) {
    let app = spawn_app(engine).await;
    let first = app.create_org("Acme Growth", "ada@acme.test").await;
    let second = app.login("ada@acme.test", PASSWORD).await;
    let weak = app
        .post(
            "/api/v1/auth/password",
            &second.access,
            json!({"current_password": PASSWORD, "new_password": "password123"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["errors"][0]["field"], "new_password");
    let wrong = app
        .post(
            "/api/v1/auth/password",
            &second.access,
            json!({"current_password": "nope nope", "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    let changed = app
        .post(
            "/api/v1/auth/password",
            &second.access,
            json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &first.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = app.refresh(&first.refresh).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let old = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@acme.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    app.login("ada@acme.test", "a brand new passphrase").await;
}

async fn weak_hashes_are_upgraded_at_login(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    // argon2id with 8 MiB and one pass: below today's parameters.
    let stored = argon2_hash_with(PASSWORD, 8192, 1).expect("weak hash");
    app.admin_exec(&format!(
        "UPDATE users SET password_hash = '{stored}' WHERE id = '{}'",
        owner.user_id
    ))
    .await;
    app.login("ada@acme.test", PASSWORD).await;
    let mut tx = app.db.global_read().await.expect("tx");
    let (hash,): (String,) = tx
        .fetch_one(
            meridian_db::sql("SELECT password_hash FROM users WHERE id = $1").bind(&owner.user_id),
        )
        .await
        .expect("hash");
    tx.commit().await.expect("commit");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "re-hashed: {hash}"
    );
}

fn argon2_hash_with(password: &str, m: u32, t: u32) -> Option<String> {
    use argon2::PasswordHasher as _;
    let params = argon2::Params::new(m, t, 1, None).ok()?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hasher
        .hash_password(password.as_bytes())
        .ok()
        .map(|h| h.to_string())
}

async fn open_signup_registers_and_invite_policy_refuses(engine: Engine) {
    let closed = spawn_app(engine).await;
    let body = json!({"org_name": "Bright Leads", "name": "Bo", "email": "bo@bright.test", "password": PASSWORD});
    let refused = closed
        .call("POST", "/api/v1/auth/register", None, Some(body.clone()))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let open = spawn_app_with(engine, |c| c.signup = meridian_app::SignupPolicy::Open).await;
    let created = open
        .call("POST", "/api/v1/auth/register", None, Some(body.clone()))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["org"]["name"], "Bright Leads");
    let again = open
        .call("POST", "/api/v1/auth/register", None, Some(body))
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body["errors"][0]["field"], "email");
    let invalid = open
        .call(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(json!({"org_name": "", "name": "", "email": "x", "password": "short"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["org_name", "name", "email", "password"]);
}

async fn login_picks_the_requested_organization(engine: Engine) {
    let app = spawn_app(engine).await;
    let first = app.create_org("Acme Growth", "ada@acme.test").await;
    let second_owner = app.create_org("Bright Leads", "bo@bright.test").await;
    let joined = app
        .add_member(&second_owner, "ada@acme.test", "manager")
        .await;
    assert_eq!(joined.user_id, first.user_id, "the existing account joined");
    let default = app.login("ada@acme.test", PASSWORD).await;
    assert_eq!(default.org_id, first.org_id, "oldest membership by default");
    let chosen = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@acme.test", "password": PASSWORD, "org_id": second_owner.org_id})),
        )
        .await;
    assert_eq!(chosen.status, StatusCode::OK);
    assert_eq!(chosen.body["org"]["id"], second_owner.org_id.as_str());
    assert_eq!(chosen.body["role"], "manager");
    let foreign = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "bo@bright.test", "password": PASSWORD, "org_id": first.org_id})),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
}
