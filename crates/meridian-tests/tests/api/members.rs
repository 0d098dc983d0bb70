use meridian_tests::{Engine, PASSWORD, both_engines, invite_token, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(
    invites_are_created_listed_accepted_and_revoked,
    one_pending_invite_per_email_and_domain_allowlist,
    roles_decide_who_may_manage,
    role_changes_end_the_members_credentials,
    removing_or_disabling_a_member_ends_access_at_once,
    the_last_owner_is_protected,
    admin_actions_are_audited,
    organization_settings_are_validated,
    existing_accounts_join_with_their_password,
);

async fn invites_are_created_listed_accepted_and_revoked(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let invite = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "Grace@Acme.test", "role": "manager"}),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED);
    assert_eq!(invite.body["email"], "grace@acme.test");
    assert_eq!(invite.body["role"], "manager");
    let url = invite.body["accept_url"].as_str().expect("accept_url");
    assert!(
        url.starts_with(&format!("{}/invite?token=mrd_inv_", app.base)),
        "{url}"
    );

    let listed = app.get("/api/v1/invites", &owner.access).await;
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);
    assert!(
        listed.body["items"][0].get("accept_url").is_none(),
        "the link is shown only once"
    );

    let token = invite_token(&invite.body);
    let weak = app
        .call(
            "POST",
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": token, "name": "Grace", "password": "123"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = app
        .call(
            "POST",
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": token, "name": "Grace Hopper", "password": PASSWORD})),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["role"], "manager");
    assert_eq!(accepted.body["org"]["id"], owner.org_id.as_str());
    let again = app
        .call(
            "POST",
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": token, "name": "Grace", "password": PASSWORD})),
        )
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "an invite works once");
    assert!(
        app.get("/api/v1/invites", &owner.access).await.body["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );

    let members = app.get("/api/v1/members", &owner.access).await;
    let emails: Vec<&str> = members.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        vec!["grace@acme.test", "ada@acme.test"],
        "sorted by name: Grace Hopper, Owner of ..."
    );

    let second = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "lin@acme.test", "role": "viewer"}),
        )
        .await;
    let id = second.body["id"].as_str().expect("id");
    let revoked = app
        .delete(&format!("/api/v1/invites/{id}"), &owner.access)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let use_revoked = app
        .call(
            "POST",
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": invite_token(&second.body), "name": "Lin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(use_revoked.status, StatusCode::FORBIDDEN);
    let member = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "grace@acme.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(member.status, StatusCode::CONFLICT, "already a member");
}

async fn one_pending_invite_per_email_and_domain_allowlist(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let first = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "sam@acme.test", "role": "member"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "sam@acme.test", "role": "admin"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    // An expired invite no longer blocks a new one.
    app.admin_exec(&format!(
        "UPDATE invites SET expires_at = {} WHERE email = 'sam@acme.test'",
        crate::auth::past(engine)
    ))
    .await;
    let expired_use = app
        .call(
            "POST",
            "/api/v1/auth/accept-invite",
            None,
            Some(json!({"token": invite_token(&first.body), "name": "Sam", "password": PASSWORD})),
        )
        .await;
    assert_eq!(expired_use.status, StatusCode::FORBIDDEN);
    let third = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "sam@acme.test", "role": "admin"}),
        )
        .await;
    assert_eq!(third.status, StatusCode::CREATED, "{}", third.body);

    let settings = app
        .patch(
            "/api/v1/org",
            &owner.access,
            json!({"allowed_email_domains": ["@Acme.test"]}),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(settings.body["allowed_email_domains"], json!(["acme.test"]));
    let outsider = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "eve@evil.test", "role": "member"}),
        )
        .await;
    assert_eq!(outsider.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outsider.body["errors"][0]["field"], "email");
    let bad_role = app
        .post(
            "/api/v1/invites",
            &owner.access,
            json!({"email": "kim@acme.test", "role": "wizard"}),
        )
        .await;
    assert_eq!(bad_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_role.body["errors"][0]["field"], "role");
}

async fn roles_decide_who_may_manage(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let admin = app.add_member(&owner, "adm@acme.test", "admin").await;
    let manager = app.add_member(&owner, "man@acme.test", "manager").await;
    let member = app.add_member(&owner, "mem@acme.test", "member").await;
    let viewer = app.add_member(&owner, "vie@acme.test", "viewer").await;

    for who in [&manager, &member, &viewer] {
        assert_eq!(
            app.get("/api/v1/members", &who.access).await.status,
            StatusCode::OK,
            "everyone sees the team"
        );
        assert_eq!(
            app.get("/api/v1/org", &who.access).await.status,
            StatusCode::OK
        );
        let invite = app
            .post(
                "/api/v1/invites",
                &who.access,
                json!({"email": "x@acme.test", "role": "viewer"}),
            )
            .await;
        assert_eq!(invite.status, StatusCode::FORBIDDEN);
        assert_eq!(invite.headers["content-type"], "application/problem+json");
        assert_eq!(
            app.get("/api/v1/invites", &who.access).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get("/api/v1/api-keys", &who.access).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get("/api/v1/audit-log", &who.access).await.status,
            StatusCode::FORBIDDEN
        );
        let rename = app
            .patch("/api/v1/org", &who.access, json!({"name": "Mine"}))
            .await;
        assert_eq!(rename.status, StatusCode::FORBIDDEN);
        let promote = app
            .patch(
                &format!("/api/v1/members/{}", viewer.user_id),
                &who.access,
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(promote.status, StatusCode::FORBIDDEN);
    }
    // Admins manage, but not owners, and never grant a role above their own.
    let make_owner = app
        .post(
            "/api/v1/invites",
            &admin.access,
            json!({"email": "o2@acme.test", "role": "owner"}),
        )
        .await;
    assert_eq!(make_owner.status, StatusCode::UNPROCESSABLE_ENTITY);
    let promote_owner = app
        .patch(
            &format!("/api/v1/members/{}", member.user_id),
            &admin.access,
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promote_owner.status, StatusCode::UNPROCESSABLE_ENTITY);
    let remove_owner = app
        .delete(&format!("/api/v1/members/{}", owner.user_id), &admin.access)
        .await;
    assert_eq!(remove_owner.status, StatusCode::FORBIDDEN);
    let own_role = app
        .patch(
            &format!("/api/v1/members/{}", admin.user_id),
            &admin.access,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(own_role.status, StatusCode::FORBIDDEN);
    let promote = app
        .patch(
            &format!("/api/v1/members/{}", member.user_id),
            &admin.access,
            json!({"role": "manager"}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::OK);
    assert_eq!(promote.body["role"], "manager");
    let unknown = app
        .patch(
            "/api/v1/members/00000000-0000-0000-0000-000000000000",
            &admin.access,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn role_changes_end_the_members_credentials(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let member = app.add_member(&owner, "mem@acme.test", "member").await;
    let changed = app
        .patch(
            &format!("/api/v1/members/{}", member.user_id),
            &owner.access,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/auth/me", &member.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app.login("mem@acme.test", PASSWORD).await;
    let me = app.get("/api/v1/auth/me", &again.access).await;
    assert_eq!(
        me.body["role"], "admin",
        "the new role applies to the new sign-in"
    );
}

async fn removing_or_disabling_a_member_ends_access_at_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let member = app.add_member(&owner, "mem@acme.test", "member").await;
    let other = app.add_member(&owner, "oth@acme.test", "member").await;
    assert_eq!(
        app.get("/api/v1/auth/me", &member.access).await.status,
        StatusCode::OK
    );

    let disabled = app
        .patch(
            &format!("/api/v1/members/{}", member.user_id),
            &owner.access,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(
        app.get("/api/v1/auth/me", &member.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = app
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "mem@acme.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::UNAUTHORIZED,
        "a disabled member cannot sign in"
    );

    let removed = app
        .delete(&format!("/api/v1/members/{}", other.user_id), &owner.access)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/auth/me", &other.access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refresh = app.refresh(&other.refresh).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let gone = app
        .delete(&format!("/api/v1/members/{}", other.user_id), &owner.access)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn the_last_owner_is_protected(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let second = app.add_member(&owner, "own2@acme.test", "owner").await;
    // Two owners: one may demote the other.
    let demote = app
        .patch(
            &format!("/api/v1/members/{}", second.user_id),
            &owner.access,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::OK);
    let second = app.login("own2@acme.test", PASSWORD).await;
    // Now `owner` is the last owner: the admin cannot touch them, and they cannot leave.
    let leave = app
        .delete(&format!("/api/v1/members/{}", owner.user_id), &owner.access)
        .await;
    assert_eq!(leave.status, StatusCode::CONFLICT);
    assert!(
        leave.body["detail"]
            .as_str()
            .expect("detail")
            .contains("owner")
    );
    let by_admin = app
        .patch(
            &format!("/api/v1/members/{}", owner.user_id),
            &second.access,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::FORBIDDEN);
}

async fn admin_actions_are_audited(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let member = app.add_member(&owner, "mem@acme.test", "member").await;
    app.patch(
        &format!("/api/v1/members/{}", member.user_id),
        &owner.access,
        json!({"role": "viewer"}),
    )
    .await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &owner.access,
            json!({"name": "Zapier", "role": "viewer"}),
        )
        .await;
    let key_id = key.body["id"].as_str().expect("id");
    app.delete(&format!("/api/v1/api-keys/{key_id}"), &owner.access)
        .await;
    app.patch(
        "/api/v1/org",
        &owner.access,
        json!({"name": "Acme Growth Co"}),
    )
    .await;
    app.delete(
        &format!("/api/v1/members/{}", member.user_id),
        &owner.access,
    )
    .await;

    let log = app.get("/api/v1/audit-log", &owner.access).await;
    assert_eq!(log.status, StatusCode::OK);
    let items = log.body["items"].as_array().expect("items");
    let actions: Vec<&str> = items.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "member.removed",
            "organization.updated",
            "api_key.revoked",
            "api_key.created",
            "member.role_changed",
            "member.joined",
            "invite.created",
            "organization.created",
        ]
    );
    let role_change = &items[4];
    assert_eq!(role_change["before"]["role"], "member");
    assert_eq!(role_change["after"]["role"], "viewer");
    assert_eq!(role_change["actor"]["user_id"], owner.user_id.as_str());
    assert_eq!(role_change["target"]["label"], "mem@acme.test");
    assert!(
        role_change["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(role_change["client_ip"], "127.0.0.1");
    let renamed = &items[1];
    assert_eq!(renamed["before"]["name"], "Acme Growth");
    assert_eq!(renamed["after"]["name"], "Acme Growth Co");
    let filtered = app
        .get("/api/v1/audit-log?action=api_key.created", &owner.access)
        .await;
    assert_eq!(filtered.body["items"].as_array().expect("items").len(), 1);
}

async fn organization_settings_are_validated(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let org = app.get("/api/v1/org", &owner.access).await;
    assert_eq!(org.body["name"], "Acme Growth");
    assert_eq!(org.body["allowed_email_domains"], json!([]));
    let bad = app
        .patch(
            "/api/v1/org",
            &owner.access,
            json!({"name": " ", "allowed_email_domains": ["ok.test", "not a domain"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["name", "allowed_email_domains[1]"]);
    let unchanged = app.get("/api/v1/org", &owner.access).await;
    assert_eq!(
        unchanged.body["name"], "Acme Growth",
        "a refused update changes nothing"
    );
}

async fn existing_accounts_join_with_their_password(engine: Engine) {
    let app = spawn_app(engine).await;
    let acme = app.create_org("Acme Growth", "ada@acme.test").await;
    let bright = app.create_org("Bright Leads", "bo@bright.test").await;
    let invite = app
        .post(
            "/api/v1/invites",
            &bright.access,
            json!({"email": "ada@acme.test", "role": "viewer"}),
        )
        .await;
    let token = invite_token(&invite.body);
    let attempt = |password: &'static str| {
        let body = json!({"token": token, "name": "ignored", "password": password});
        app.call("POST", "/api/v1/auth/accept-invite", None, Some(body))
    };
    for _ in 0..5 {
        let wrong = attempt("not my password").await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(wrong.body["errors"][0]["field"], "password");
    }
    // Guessing an account's password through an invitation is throttled like a login.
    assert_eq!(
        attempt(PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.admin_exec("DELETE FROM login_throttle").await;
    let joined = attempt(PASSWORD).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    assert_eq!(
        joined.body["user"]["id"],
        acme.user_id.as_str(),
        "the same account, now in two organizations"
    );
    assert_eq!(
        joined.body["user"]["name"], "Owner of Acme Growth",
        "an existing account keeps its name"
    );
    assert_eq!(joined.body["org"]["id"], bright.org_id.as_str());
}
