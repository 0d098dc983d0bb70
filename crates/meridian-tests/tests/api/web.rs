//! The browser path: sessions, CSRF, setup, and that every page renders.

use meridian_tests::{
    Engine, PASSWORD, both_engines, browser, csrf_from_html, spawn_app, spawn_app_with,
};
use reqwest::StatusCode;

both_engines!(
    first_run_setup_creates_the_owner_once,
    sessions_have_cookies_csrf_and_timeouts,
    pages_render_for_each_role,
    switching_organizations_starts_a_session_there,
);

async fn first_run_setup_creates_the_owner_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let client = browser();
    let login = client.get(app.url("/login")).send().await.expect("login");
    assert!(
        login.text().await.expect("html").contains("setup link"),
        "a fresh install points to setup"
    );
    let token = meridian_app::orgs::service::prepare_setup(&app.db)
        .await
        .expect("setup")
        .expect("token");
    let bad = client
        .get(app.url("/setup?token=wrong"))
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    let page = client
        .get(app.url(&format!("/setup?token={token}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let invalid = client
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("org_name", "A"),
            ("name", "Ada"),
            ("email", "nope"),
            ("password", "short"),
        ])
        .send()
        .await
        .expect("invalid");
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = invalid.text().await.expect("html");
    assert!(
        html.contains("org_name-error")
            && html.contains("email-error")
            && html.contains("password-error")
    );
    assert!(html.contains("value=\"Ada\""), "entered values are kept");
    let done = client
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("org_name", "Acme Growth"),
            ("name", "Ada Lovelace"),
            ("email", "ada@acme.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let cookie = done.headers()["set-cookie"].to_str().expect("cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let home = client.get(app.url("/")).send().await.expect("home");
    assert!(home.text().await.expect("html").contains("Acme Growth"));
    let again = browser()
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("org_name", "Evil"),
            ("name", "Eve"),
            ("email", "eve@evil.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("again");
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "setup works only once"
    );
}

async fn sessions_have_cookies_csrf_and_timeouts(engine: Engine) {
    let app = spawn_app(engine).await;
    app.create_org("Acme Growth", "ada@acme.test").await;
    let client = browser();
    let unauthenticated = client
        .get(app.url("/settings/members"))
        .send()
        .await
        .expect("page");
    assert_eq!(unauthenticated.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        unauthenticated.headers()["location"],
        "/login?next=%2Fsettings%2Fmembers"
    );
    let wrong = app
        .web_login(&client, "ada@acme.test", "wrong password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("html").contains("incorrect"));
    let first = client
        .post(app.url("/login"))
        .form(&[
            ("email", "ada@acme.test"),
            ("password", PASSWORD),
            ("next", "/settings/members"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], "/settings/members");
    let first_cookie = first.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let second = app.web_login(&client, "ada@acme.test", PASSWORD).await;
    let second_cookie = second.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert_ne!(
        first_cookie, second_cookie,
        "every login gets a new session id"
    );

    let page = client
        .get(app.url("/settings/organization"))
        .send()
        .await
        .expect("page");
    let csrf = csrf_from_html(&page.text().await.expect("html"));
    // A cookie-authenticated mutation without the CSRF token is refused, by form or by script.
    let forged = client
        .post(app.url("/settings/organization"))
        .form(&[("name", "Hijacked"), ("allowed_email_domains", "")])
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged_api = client
        .patch(app.url("/api/v1/org"))
        .json(&serde_json::json!({"name": "Hijacked"}))
        .send()
        .await
        .expect("forged api");
    assert_eq!(forged_api.status(), StatusCode::FORBIDDEN);
    let wrong_token = client
        .patch(app.url("/api/v1/org"))
        .header("x-csrf-token", "not-the-token")
        .json(&serde_json::json!({"name": "Hijacked"}))
        .send()
        .await
        .expect("wrong token");
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    let saved = client
        .post(app.url("/settings/organization"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "Acme Growth Co"),
            ("allowed_email_domains", "acme.test"),
        ])
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let scripted = client
        .patch(app.url("/api/v1/org"))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"name": "Acme Growth Inc"}))
        .send()
        .await
        .expect("scripted");
    assert_eq!(scripted.status(), StatusCode::OK);
    let me = client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .expect("me");
    let me: serde_json::Value = me.json().await.expect("json");
    assert_eq!(me["credential"], "session");
    assert_eq!(me["org"]["name"], "Acme Growth Inc");

    // Idle timeout: a session unused for longer than the idle limit is over.
    app.admin_exec(&format!(
        "UPDATE sessions SET last_seen_at = {}",
        crate::auth::past(engine)
    ))
    .await;
    let idle = client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .expect("me");
    assert_eq!(idle.status(), StatusCode::UNAUTHORIZED);
    // Pages treat the dead session as signed out rather than failing.
    let home = client.get(app.url("/")).send().await.expect("home");
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()["location"], "/login");
    let login_page = client
        .get(app.url("/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(login_page.status(), StatusCode::OK);
    assert!(login_page.text().await.expect("html").contains("Sign in"));
    // Absolute lifetime: even an active session ends.
    let client = browser();
    app.web_login(&client, "ada@acme.test", PASSWORD).await;
    assert_eq!(
        client
            .get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .expect("me")
            .status(),
        StatusCode::OK
    );
    app.admin_exec(&format!(
        "UPDATE sessions SET absolute_expires_at = {}",
        crate::auth::past(engine)
    ))
    .await;
    assert_eq!(
        client
            .get(app.url("/api/v1/auth/me"))
            .send()
            .await
            .expect("me")
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Logging out ends the session on the server, not just in the browser.
    let client = browser();
    let login = app.web_login(&client, "ada@acme.test", PASSWORD).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let page = client.get(app.url("/")).send().await.expect("home");
    let csrf = csrf_from_html(&page.text().await.expect("html"));
    let out = client
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let replay = meridian_tests::http()
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

async fn pages_render_for_each_role(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    app.add_member(&owner, "vie@acme.test", "viewer").await;
    for (email, allowed, forbidden) in [
        (
            "ada@acme.test",
            vec![
                "/",
                "/settings/organization",
                "/settings/members",
                "/settings/api-keys",
                "/settings/audit-log",
                "/settings/account",
            ],
            vec![],
        ),
        (
            "vie@acme.test",
            vec![
                "/",
                "/settings/organization",
                "/settings/members",
                "/settings/account",
            ],
            vec!["/settings/api-keys", "/settings/audit-log"],
        ),
    ] {
        let client = browser();
        app.web_login(&client, email, PASSWORD).await;
        for path in allowed {
            let page = client.get(app.url(path)).send().await.expect("page");
            assert_eq!(page.status(), StatusCode::OK, "{email} {path}");
            let html = page.text().await.expect("html");
            assert!(
                html.contains("Acme Growth") && html.contains("</html>"),
                "{email} {path}"
            );
        }
        for path in forbidden {
            let page = client.get(app.url(path)).send().await.expect("page");
            assert_eq!(page.status(), StatusCode::FORBIDDEN, "{email} {path}");
        }
    }

    // A refused change is explained on the members page, and nothing changes.
    let client = browser();
    app.web_login(&client, "ada@acme.test", PASSWORD).await;
    let page = client
        .get(app.url("/settings/members"))
        .send()
        .await
        .expect("page");
    let csrf = csrf_from_html(&page.text().await.expect("html"));
    let refused = client
        .post(app.url(&format!("/settings/members/{}/role", owner.user_id)))
        .form(&[("csrf_token", csrf.as_str()), ("role", "viewer")])
        .send()
        .await
        .expect("role change");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let html = refused.text().await.expect("html");
    assert!(html.contains("cannot change your own role") && html.contains("Invite a teammate"));
    let me = app.get("/api/v1/auth/me", &owner.access).await;
    assert_eq!(me.body["role"], "owner");
}

async fn switching_organizations_starts_a_session_there(engine: Engine) {
    let app = spawn_app(engine).await;
    let acme = app.create_org("Acme Growth", "ada@acme.test").await;
    let bright = app.create_org("Bright Leads", "bo@bright.test").await;
    app.add_member(&bright, "ada@acme.test", "viewer").await;
    let stranger = app.create_org("Other Co", "zed@other.test").await;

    let client = browser();
    app.web_login(&client, "ada@acme.test", PASSWORD).await;
    let home = client.get(app.url("/")).send().await.expect("home");
    let html = home.text().await.expect("html");
    assert!(
        html.contains("Switch to") && html.contains("Bright Leads"),
        "the switcher lists the other org"
    );
    let csrf = csrf_from_html(&html);
    let switched = client
        .post(app.url("/switch-org"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("org_id", bright.org_id.as_str()),
        ])
        .send()
        .await
        .expect("switch");
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    let me: serde_json::Value = client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["org"]["id"], bright.org_id.as_str());
    assert_eq!(me["role"], "viewer");

    let page = client.get(app.url("/")).send().await.expect("home");
    let csrf = csrf_from_html(&page.text().await.expect("html"));
    let foreign = client
        .post(app.url("/switch-org"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("org_id", stranger.org_id.as_str()),
        ])
        .send()
        .await
        .expect("switch");
    assert_eq!(
        foreign.status(),
        StatusCode::NOT_FOUND,
        "not a member there"
    );
    let back = client
        .post(app.url("/switch-org"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("org_id", acme.org_id.as_str()),
        ])
        .send()
        .await
        .expect("switch back");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
}
