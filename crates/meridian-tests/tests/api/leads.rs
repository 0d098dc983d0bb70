//! The CRM core over HTTP: pipelines, leads (normalization, uniqueness, lifecycle, lists),
//! handoff between roles, notes, tasks, bulk actions and merge.

use meridian_tests::{Engine, TestApp, Tokens, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    pipelines_and_metadata,
    leads_are_normalized_and_unique,
    lead_lifecycle_is_recorded_in_activity,
    lists_filter_search_sort_and_paginate,
    handoff_between_intake_and_case_managers,
    notes_are_sanitized_and_searchable,
    tasks_follow_their_leads,
    bulk_actions_and_merge,
    saved_views_are_personal_or_shared,
    stage_counters_follow_every_write,
    search_follows_edits_notes_and_deletes,
);

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items")
}

fn error_fields(v: &Value) -> Vec<&str> {
    v["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|f| f["field"].as_str().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default()
}

async fn lead(app: &TestApp, who: &Tokens, body: Value) -> Value {
    let reply = app.post("/api/v1/leads", &who.access, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn pipeline_named(app: &TestApp, who: &Tokens, name: &str) -> Value {
    let reply = app.get("/api/v1/pipelines", &who.access).await;
    items(&reply.body)
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no pipeline {name} in {}", reply.body))
}

async fn pipelines_and_metadata(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;

    let leads = pipeline_named(&app, &owner, "Leads").await;
    let stages: Vec<&str> = leads["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["key"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        stages,
        ["new", "contacted", "qualified", "proposal", "won", "lost"]
    );
    assert_eq!(leads["plural_label"], "Leads");

    let meta = app.get("/api/v1/metadata", &member.access).await;
    assert_eq!(meta.status, StatusCode::OK);
    for (list, value) in [
        ("sources", "web_form"),
        ("roles", "case_manager"),
        ("task_types", "follow_up"),
        ("activity_types", "handoff_denied"),
        ("field_types", "multi_select"),
    ] {
        assert!(
            meta.body[list]
                .as_array()
                .expect(list)
                .iter()
                .any(|c| c["value"] == value),
            "{list} lacks {value}"
        );
    }

    // Validation names every bad part.
    let bad = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [
                {"key": "New Stage", "label": "New"},
                {"key": "review", "label": "Review", "color": "red"},
                {"key": "handoff", "label": "Handoff", "return_stage": "missing"}
            ], "fields": [{"key": "tier", "label": "Tier", "field_type": "select"}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(
        error_fields(&bad.body),
        [
            "stages[0].key",
            "stages[1].color",
            "stages[2].return_stage",
            "stages[2].owner_role",
            "stages[2].return_stage",
            "fields[0].options"
        ]
    );
    let forbidden = app
        .post(
            "/api/v1/pipelines",
            &member.access,
            json!({"name": "Partners", "stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let created = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [
                {"key": "new", "label": "New", "color": "#3B82F6"},
                {"key": "signed", "label": "Signed", "category": "won"}
            ], "fields": [{"key": "tier", "label": "Tier", "field_type": "select", "options": ["Gold", "Silver"]}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["singular_label"], "Partner");
    assert_eq!(created.body["stages"][0]["color"], "#3b82f6");
    let partners = str_of(&created.body, "id").to_owned();
    let duplicate = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    assert_eq!(error_fields(&duplicate.body), ["name"]);

    // A stage or pipeline holding records cannot disappear.
    lead(
        &app,
        &member,
        json!({"first_name": "Ada", "pipeline_id": partners, "stage": "signed"}),
    )
    .await;
    let remove_stage = app
        .patch(
            &format!("/api/v1/pipelines/{partners}"),
            &owner.access,
            json!({"stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    assert_eq!(
        remove_stage.status,
        StatusCode::CONFLICT,
        "{}",
        remove_stage.body
    );
    assert!(str_of(&remove_stage.body, "detail").contains("1 record(s) in \"signed\""));
    let renamed = app
        .patch(
            &format!("/api/v1/pipelines/{partners}"),
            &owner.access,
            json!({"plural_label": "Agencies", "stages": [
                {"key": "new", "label": "Fresh"}, {"key": "signed", "label": "Signed", "category": "won"}
            ]}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["stages"][0]["label"], "Fresh");
    assert_eq!(renamed.body["plural_label"], "Agencies");
    let delete = app
        .delete(&format!("/api/v1/pipelines/{partners}"), &owner.access)
        .await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    assert!(str_of(&delete.body, "detail").contains("1 record(s)"));

    let empty = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Scratch", "stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    let scratch = str_of(&empty.body, "id");
    assert_eq!(
        app.delete(&format!("/api/v1/pipelines/{scratch}"), &owner.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/v1/pipelines/{scratch}"), &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let audit = app.get("/api/v1/audit-log", &owner.access).await;
    let actions: Vec<&str> = items(&audit.body)
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert!(actions.contains(&"pipeline.created") && actions.contains(&"pipeline.deleted"));
}

async fn leads_are_normalized_and_unique(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;

    let ada = lead(
        &app,
        &owner,
        json!({
            "first_name": "  Ada ", "last_name": "Lovelace", "email": " Ada@Example.COM ",
            "phone": "(415) 555-0123", "state": "california", "country": "United States",
            "date_of_birth": "1990-12-10", "utm_source": "facebook", "tags": ["VIP", " vip ", "East"],
            "custom_fields": {"budget": 12000, "company": "Analytical Engines"}
        }),
    )
    .await;
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["phone"], "+14155550123");
    assert_eq!(
        (&ada["state"], &ada["country"]),
        (&json!("CA"), &json!("US"))
    );
    assert_eq!(ada["tags"], json!(["east", "vip"]));
    assert_eq!(ada["number"], 1);
    assert_eq!(ada["display_number"], "00001");
    assert_eq!(ada["stage"], "new");
    assert_eq!(ada["source"], "manual");
    assert_eq!(ada["custom_fields"]["budget"], 12000);

    let bad = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"email": "not-an-email", "phone": "123", "state": "Atlantis",
                   "date_of_birth": "31/12/1990", "source": "fax", "custom_fields": {"budget": "lots", "nope": 1}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_fields(&bad.body),
        [
            "first_name",
            "email",
            "phone",
            "state",
            "date_of_birth",
            "source",
            "custom_fields.nope",
            "custom_fields.budget"
        ]
    );
    let unknown_field = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "Bo", "favourite_color": "red"}),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Email is unique among active leads; archiving frees it, restoring checks again.
    let dup = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "Imposter", "email": "ADA@example.com"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.body["existing_id"], ada["id"]);
    let ada_id = str_of(&ada, "id");
    let archived = app
        .post(
            &format!("/api/v1/leads/{ada_id}/archive"),
            &owner.access,
            json!({}),
        )
        .await;
    assert!(archived.body["archived_at"].is_string());
    let second = lead(
        &app,
        &owner,
        json!({"first_name": "Ada", "last_name": "Byron", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(second["number"], 2);
    let restore = app
        .post(
            &format!("/api/v1/leads/{ada_id}/restore"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(restore.status, StatusCode::CONFLICT);
    assert_eq!(restore.body["existing_id"], second["id"]);
    // The update path refuses a colliding email too, and nothing else changes.
    let third = lead(
        &app,
        &owner,
        json!({"first_name": "Grace", "email": "grace@example.com"}),
    )
    .await;
    let third_id = str_of(&third, "id");
    let collide = app
        .patch(
            &format!("/api/v1/leads/{third_id}"),
            &owner.access,
            json!({"email": "ada@example.com", "last_name": "Hopper"}),
        )
        .await;
    assert_eq!(collide.status, StatusCode::CONFLICT);
    let unchanged = app
        .get(&format!("/api/v1/leads/{third_id}"), &owner.access)
        .await;
    assert_eq!(unchanged.body["last_name"], "");
    assert_eq!(unchanged.body["email"], "grace@example.com");
}

async fn lead_lifecycle_is_recorded_in_activity(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let viewer = app.add_member(&owner, "viewer@acme.test", "viewer").await;
    let created = lead(
        &app,
        &member,
        json!({"first_name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let id = str_of(&created, "id");
    let url = |action: &str| format!("/api/v1/leads/{id}{action}");

    let edited = app
        .patch(
            &url(""),
            &member.access,
            json!({"last_name": "Lovelace", "email": null, "custom_fields": {"budget": 500}}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert!(edited.body["email"].is_null());
    let no_stage_here = app
        .patch(&url(""), &member.access, json!({"stage": "won"}))
        .await;
    assert_eq!(error_fields(&no_stage_here.body), ["stage"]);

    let staged = app
        .post(
            &url("/stage"),
            &member.access,
            json!({"stage": "contacted", "reason": "Called back"}),
        )
        .await;
    assert_eq!(staged.body["stage"], "contacted");
    let unknown_stage = app
        .post(&url("/stage"), &member.access, json!({"stage": "limbo"}))
        .await;
    assert_eq!(error_fields(&unknown_stage.body), ["stage"]);
    let assigned = app
        .post(
            &url("/assign"),
            &member.access,
            json!({"user_id": owner.user_id}),
        )
        .await;
    assert_eq!(assigned.body["assigned_to"], owner.user_id.as_str());
    assert_eq!(assigned.body["assignee_name"], "Owner of Acme Growth");
    let stranger = app
        .post(
            &url("/assign"),
            &member.access,
            json!({"user_id": "nobody"}),
        )
        .await;
    assert_eq!(error_fields(&stranger.body), ["assigned_to"]);
    app.post(&url("/assign"), &member.access, json!({"user_id": null}))
        .await;
    let priority = app
        .post(
            &url("/priority"),
            &member.access,
            json!({"is_priority": true}),
        )
        .await;
    assert_eq!(priority.body["is_priority"], true);
    app.post(&url("/archive"), &member.access, json!({})).await;
    let restored = app.post(&url("/restore"), &member.access, json!({})).await;
    assert_eq!(
        restored.body["stage"], "contacted",
        "restore returns to the stage it had"
    );
    assert!(restored.body["archived_at"].is_null());

    // Viewers read but never write.
    assert_eq!(
        app.get(&url(""), &viewer.access).await.status,
        StatusCode::OK
    );
    for (path, body) in [
        ("", json!({"first_name": "X"})),
        ("/stage", json!({"stage": "won"})),
    ] {
        let reply = app
            .call(
                if path.is_empty() { "PATCH" } else { "POST" },
                &url(path),
                Some(&viewer.access),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "viewer {path}");
    }

    let activity = app.get(&url("/activity"), &member.access).await;
    let kinds: Vec<&str> = items(&activity.body)
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "restored",
            "archived",
            "priority_changed",
            "unassigned",
            "assigned",
            "stage_changed",
            "info_edited",
            "lead_created"
        ]
    );
    let edit = &items(&activity.body)[6]["data"]["changes"];
    assert_eq!(
        edit["email"],
        json!({"from": "ada@example.com", "to": null})
    );
    assert_eq!(edit["last_name"], json!({"from": "", "to": "Lovelace"}));
    assert_eq!(
        edit["custom_fields.budget"],
        json!({"from": null, "to": 500})
    );
    assert!(str_of(&items(&activity.body)[0], "actor_label").contains("<member@acme.test>"));

    let history = app.get(&url("/history"), &member.access).await;
    let first = &items(&history.body)[0];
    assert_eq!(first["kind"], "stage_changed");
    assert_eq!(
        first["data"],
        json!({"from": "new", "to": "contacted", "reason": "Called back"})
    );
    let paged = app
        .get(&format!("{}?limit=3", url("/activity")), &member.access)
        .await;
    assert_eq!(items(&paged.body).len(), 3);
    let cursor = str_of(&paged.body, "next_cursor");
    let rest = app
        .get(
            &format!("{}?limit=10&cursor={cursor}", url("/activity")),
            &member.access,
        )
        .await;
    assert_eq!(items(&rest.body).len(), 5);

    // Moving to another pipeline keeps the fields it defines and records the rest.
    let other = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [{"key": "intro", "label": "Intro"}], "fields": []}),
        )
        .await;
    let moved = app
        .post(
            &url("/move"),
            &member.access,
            json!({"pipeline_id": other.body["id"], "stage": "intro"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(
        (&moved.body["stage"], &moved.body["custom_fields"]),
        (&json!("intro"), &json!({}))
    );
    let history = app.get(&url("/history"), &member.access).await;
    assert_eq!(
        items(&history.body)[0]["data"]["dropped_fields"],
        json!({"budget": 500})
    );

    // Deleting is for managers and above.
    assert_eq!(
        app.delete(&url(""), &member.access).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&url(""), &owner.access).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&url(""), &owner.access).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn lists_filter_search_sort_and_paginate(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let people = [
        ("Ada", "Lovelace", "web_form", "contacted", true, 5000),
        ("Grace", "Hopper", "meta", "new", false, 12000),
        ("Alan", "Turing", "meta", "qualified", false, 800),
        ("Katherine", "Johnson", "referral", "new", true, 5000),
        ("Edsger", "Dijkstra", "google", "won", false, 0),
        ("Barbara", "Liskov", "manual", "new", false, 300),
        ("Donald", "Knuth", "meta", "lost", false, 42),
    ];
    let mut ids = Vec::new();
    for (i, (first, last, source, stage, priority, budget)) in people.iter().enumerate() {
        let created = lead(
            &app,
            &owner,
            json!({
                "first_name": first, "last_name": last, "source": source, "stage": stage,
                "email": format!("{}@example.com", first.to_lowercase()),
                "phone": format!("+1415555{:04}", 100 + i),
                "assigned_to": if i % 2 == 0 { Some(member.user_id.clone()) } else { None },
                "is_priority": priority, "tags": if i < 3 { vec!["spring"] } else { vec![] },
                "custom_fields": {"budget": budget, "company": format!("{last} Labs")},
            }),
        )
        .await;
        ids.push(str_of(&created, "id").to_owned());
    }
    let pipeline = pipeline_named(&app, &owner, "Leads").await;
    let pid = str_of(&pipeline, "id");
    let names = |reply: &Value| -> Vec<String> {
        items(reply)
            .iter()
            .map(|l| l["first_name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("stage=new".into(), vec!["Barbara", "Katherine", "Grace"]),
        (
            "stage=new,won&sort=first_name".into(),
            vec!["Barbara", "Edsger", "Grace", "Katherine"],
        ),
        (
            "source=meta&sort=last_name".into(),
            vec!["Grace", "Donald", "Alan"],
        ),
        (
            "assigned_to=unassigned&sort=number".into(),
            vec!["Grace", "Katherine", "Barbara"],
        ),
        ("priority=true&sort=number".into(), vec!["Ada", "Katherine"]),
        (
            "tag=SPRING&sort=number".into(),
            vec!["Ada", "Grace", "Alan"],
        ),
        ("q=hopp".into(), vec!["Grace"]),
        ("q=katherine%40example".into(), vec!["Katherine"]),
        ("q=555+0102".into(), vec!["Alan"]),
        ("q=5550102".into(), vec!["Alan"]),
        ("q=ada+love".into(), vec!["Ada"]),
        (
            format!("pipeline_id={pid}&cf.budget=5000&sort=number"),
            vec!["Ada", "Katherine"],
        ),
        (
            format!("pipeline_id={pid}&cf.company=turing+labs"),
            vec!["Alan"],
        ),
    ];
    for (query, expected) in &cases {
        let reply = app
            .get(&format!("/api/v1/leads?{query}"), &owner.access)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        assert_eq!(names(&reply.body), *expected, "{query}");
    }
    let mine = app
        .get("/api/v1/leads?assigned_to=me&sort=number", &member.access)
        .await;
    assert_eq!(names(&mine.body), ["Ada", "Alan", "Edsger", "Donald"]);

    // Archived leads leave the default list.
    app.post(
        &format!("/api/v1/leads/{}/archive", ids[6]),
        &owner.access,
        json!({}),
    )
    .await;
    let active = app.get("/api/v1/leads?source=meta", &owner.access).await;
    assert_eq!(items(&active.body).len(), 2);
    let archived = app.get("/api/v1/leads?archived=true", &owner.access).await;
    assert_eq!(names(&archived.body), ["Donald"]);
    let all = app
        .get("/api/v1/leads?archived=all&source=meta", &owner.access)
        .await;
    assert_eq!(items(&all.body).len(), 3);

    // Every sortable column pages through everything exactly once, both ways.
    for sort in [
        "last_name",
        "-last_name",
        "email",
        "-created_at",
        "updated_at",
        "stage",
        "-number",
        "phone",
    ] {
        let seen: Vec<String> = app
            .pages(&format!("/api/v1/leads?sort={sort}&limit=2"), &owner.access)
            .await
            .iter()
            .flat_map(names)
            .collect();
        assert_eq!(seen.len(), 6, "{sort}: {seen:?}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 6, "{sort} repeats: {seen:?}");
    }
    let by_last = app.get("/api/v1/leads?sort=last_name", &owner.access).await;
    assert_eq!(
        names(&by_last.body),
        ["Edsger", "Grace", "Katherine", "Barbara", "Ada", "Alan"]
    );

    let bad = app
        .get(
            "/api/v1/leads?sort=password&priority=maybe&cf.budget=1&cursor=zzz",
            &owner.access,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_fields(&bad.body),
        ["sort", "priority", "cf.budget", "cursor"]
    );

    let stats = app.get("/api/v1/leads/stats", &owner.access).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["total"], 6);
    assert_eq!(stats.body["new_this_week"], 6);
    let by_stage: Vec<(String, i64)> = stats.body["by_stage"]
        .as_array()
        .expect("by_stage")
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap_or("").to_owned(),
                s["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        by_stage,
        [
            ("new".into(), 3),
            ("contacted".into(), 1),
            ("qualified".into(), 1),
            ("won".into(), 1)
        ]
    );
}

async fn handoff_between_intake_and_case_managers(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app
        .create_org_from("Bright Futures", "owner@bright.test", "surrogacy")
        .await;
    let intake = app.add_member(&owner, "intake@bright.test", "intake").await;
    let case_manager = app
        .add_member(&owner, "cm@bright.test", "case_manager")
        .await;
    let manager = app
        .add_member(&owner, "manager@bright.test", "manager")
        .await;
    let cases = pipeline_named(&app, &owner, "Cases").await;
    assert_eq!(cases["singular_label"], "Case");

    let case = lead(
        &app,
        &intake,
        json!({"first_name": "Maria", "pipeline_id": cases["id"]}),
    )
    .await;
    let id = str_of(&case, "id");
    let url = |action: &str| format!("/api/v1/leads/{id}{action}");
    let to = |stage: &str| json!({"stage": stage});
    for stage in [
        "contacted",
        "qualified",
        "applied",
        "under_review",
        "approved",
    ] {
        let reply = app.post(&url("/stage"), &intake.access, to(stage)).await;
        assert_eq!(reply.status, StatusCode::OK, "{stage}: {}", reply.body);
    }
    let skip = app
        .post(&url("/stage"), &intake.access, to("pending_match"))
        .await;
    assert_eq!(skip.status, StatusCode::FORBIDDEN);
    assert!(
        str_of(&skip.body, "detail").contains("Case manager"),
        "{}",
        skip.body
    );

    let submitted = app
        .post(&url("/stage"), &intake.access, to("pending_handoff"))
        .await;
    assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.body);
    // Handed off: intake no longer sees or touches it.
    assert_eq!(
        app.get(&url(""), &intake.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&url("/stage"), &intake.access, to("approved"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let intake_list = app.get("/api/v1/leads", &intake.access).await;
    assert!(items(&intake_list.body).is_empty());
    assert!(
        items(
            &app.get("/api/v1/leads/handoff-queue", &intake.access)
                .await
                .body
        )
        .is_empty()
    );
    assert_eq!(
        app.post(&url("/accept"), &intake.access, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let queue = app
        .get("/api/v1/leads/handoff-queue", &case_manager.access)
        .await;
    assert_eq!(items(&queue.body).len(), 1);
    let no_reason = app
        .post(&url("/deny"), &case_manager.access, json!({"reason": " "}))
        .await;
    assert_eq!(error_fields(&no_reason.body), ["reason"]);
    let denied = app
        .post(
            &url("/deny"),
            &case_manager.access,
            json!({"reason": "Missing medical records"}),
        )
        .await;
    assert_eq!(denied.body["stage"], "under_review");
    // Back with intake, reason in the history.
    let history = app.get(&url("/history"), &intake.access).await;
    assert_eq!(items(&history.body)[0]["kind"], "handoff_denied");
    assert_eq!(
        items(&history.body)[0]["data"]["reason"],
        "Missing medical records"
    );
    let not_handoff = app
        .post(&url("/accept"), &case_manager.access, json!({}))
        .await;
    assert_eq!(not_handoff.status, StatusCode::FORBIDDEN);

    app.post(&url("/stage"), &intake.access, to("approved"))
        .await;
    app.post(&url("/stage"), &intake.access, to("pending_handoff"))
        .await;
    let accepted = app
        .post(&url("/accept"), &case_manager.access, json!({}))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["stage"], "pending_match");
    assert_eq!(accepted.body["assigned_to"], case_manager.user_id.as_str());
    assert!(
        items(
            &app.get("/api/v1/leads/handoff-queue", &case_manager.access)
                .await
                .body
        )
        .is_empty()
    );
    assert_eq!(
        app.get(&url(""), &intake.access).await.status,
        StatusCode::NOT_FOUND
    );
    let cm_list = app.get("/api/v1/leads", &case_manager.access).await;
    assert_eq!(items(&cm_list.body).len(), 1);
    // Managers see and move everything.
    let moved = app
        .post(&url("/stage"), &manager.access, to("matched"))
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    let history = app.get(&url("/history"), &manager.access).await;
    let kinds: Vec<&str> = items(&history.body)
        .iter()
        .map(|h| h["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds[..3],
        ["stage_changed", "handoff_accepted", "stage_changed"]
    );
    // Intake cannot create a case straight into a case manager's stage.
    let sneaky = app
        .post(
            "/api/v1/leads",
            &intake.access,
            json!({"first_name": "Lu", "pipeline_id": cases["id"], "stage": "matched"}),
        )
        .await;
    assert_eq!(sneaky.status, StatusCode::FORBIDDEN);
}

async fn notes_are_sanitized_and_searchable(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let other = app.add_member(&owner, "other@acme.test", "member").await;
    let ada = lead(&app, &member, json!({"first_name": "Ada"})).await;
    let id = str_of(&ada, "id");
    let notes_url = format!("/api/v1/leads/{id}/notes");

    let corpus = [
        "<script>alert(1)</script>Hello there",
        "<img src=x onerror=alert(1)>Picture this",
        "<a href=\"javascript:alert(1)\">Click here</a>",
        "<p onmouseover=\"alert(1)\">Hover me</p>",
        "<svg><script>alert(1)</script></svg>Vector text",
        "<iframe src=\"https://evil.example\"></iframe>Framed words",
        "<a href=\"https://ok.example\" target=\"_blank\">Fine link</a>",
        "<p style=\"background:url(javascript:alert(1))\">Styled</p>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>Mutation test",
    ];
    for html in corpus {
        let reply = app
            .post(&notes_url, &member.access, json!({"body_html": html}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{html}: {}", reply.body);
        let stored = str_of(&reply.body, "body_html").to_lowercase();
        for needle in [
            "<script",
            "onerror",
            "javascript:",
            "onmouseover",
            "<iframe",
            "style=",
            "<svg",
            "<img",
        ] {
            assert!(!stored.contains(needle), "{html} kept {needle}: {stored}");
        }
    }
    let list = app.get(&notes_url, &member.access).await;
    let link = items(&list.body)
        .iter()
        .find(|n| str_of(n, "body_html").contains("ok.example"))
        .expect("link note");
    assert_eq!(
        link["body_html"],
        "<a href=\"https://ok.example\" rel=\"noopener noreferrer\">Fine link</a>"
    );
    let short = app
        .post(&notes_url, &member.access, json!({"body_html": "<p>x</p>"}))
        .await;
    assert_eq!(error_fields(&short.body), ["body_html"]);

    // Note text is searchable with the lead, and deleting the note removes it from search.
    let note = app
        .post(
            &notes_url,
            &member.access,
            json!({"body_html": "<p>Prefers <strong>evening</strong> calls</p>"}),
        )
        .await;
    let found = app.get("/api/v1/leads?q=evening", &member.access).await;
    assert_eq!(items(&found.body).len(), 1);
    let note_id = str_of(&note.body, "id");
    assert_eq!(
        app.delete(&format!("/api/v1/notes/{note_id}"), &other.access)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/api/v1/notes/{note_id}"), &member.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(
        items(
            &app.get("/api/v1/leads?q=evening", &member.access)
                .await
                .body
        )
        .is_empty()
    );
    let activity = app
        .get(
            &format!("/api/v1/leads/{id}/activity?limit=2"),
            &member.access,
        )
        .await;
    assert_eq!(items(&activity.body)[0]["kind"], "note_deleted");
    assert_eq!(items(&activity.body)[1]["kind"], "note_added");
    assert_eq!(
        items(&activity.body)[1]["data"]["excerpt"],
        "Prefers evening calls"
    );
    // A manager may delete anyone's note.
    let any = &items(&list.body)[0];
    assert_eq!(
        app.delete(
            &format!("/api/v1/notes/{}", str_of(any, "id")),
            &owner.access
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

async fn tasks_follow_their_leads(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let ada = lead(
        &app,
        &member,
        json!({"first_name": "Ada", "last_name": "Lovelace"}),
    )
    .await;
    let lead_id = str_of(&ada, "id");

    let bad = app
        .post(
            "/api/v1/tasks",
            &member.access,
            json!({"type": "fax", "due_at": "tomorrow", "lead_id": lead_id}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app
        .post(
            "/api/v1/tasks",
            &member.access,
            json!({"type": "fax", "lead_id": "nope", "assignee_id": "nobody"}),
        )
        .await;
    assert_eq!(error_fields(&bad.body), ["lead_id"]);
    let bad = app
        .post(
            "/api/v1/tasks",
            &member.access,
            json!({"type": "fax", "assignee_id": "nobody"}),
        )
        .await;
    assert_eq!(error_fields(&bad.body), ["title", "type", "assignee_id"]);

    let call = app
        .post(
            "/api/v1/tasks",
            &member.access,
            json!({"title": "Call Ada", "type": "call", "due_at": "2020-01-01T09:00:00Z", "lead_id": lead_id}),
        )
        .await;
    assert_eq!(call.status, StatusCode::CREATED, "{}", call.body);
    assert_eq!(call.body["assignee_id"], member.user_id.as_str());
    assert_eq!(call.body["lead_number"], 1);
    assert_eq!(call.body["lead_name"], "Ada Lovelace");
    let later = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": "Send the proposal", "type": "email", "due_at": "2099-01-01T09:00:00Z", "assignee_id": member.user_id}),
        )
        .await;
    let undated = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": "Tidy the pipeline", "assignee_id": null}),
        )
        .await;
    assert!(undated.body["assignee_id"].is_null());
    assert_eq!(undated.body["type"], "follow_up");

    let titles = |reply: &Value| -> Vec<String> {
        items(reply)
            .iter()
            .map(|t| t["title"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let all = app.get("/api/v1/tasks", &owner.access).await;
    assert_eq!(
        titles(&all.body),
        ["Call Ada", "Send the proposal", "Tidy the pipeline"]
    );
    for (query, expected) in [
        ("assignee=me", vec!["Call Ada", "Send the proposal"]),
        ("assignee=unassigned", vec!["Tidy the pipeline"]),
        (&format!("lead_id={lead_id}") as &str, vec!["Call Ada"]),
        ("q=PROPOSAL", vec!["Send the proposal"]),
        ("due_before=2021-01-01T00:00:00Z", vec!["Call Ada"]),
        ("due_after=2021-01-01T00:00:00Z", vec!["Send the proposal"]),
    ] {
        let reply = app
            .get(&format!("/api/v1/tasks?{query}"), &member.access)
            .await;
        assert_eq!(titles(&reply.body), expected, "{query}");
    }
    let first = app.get("/api/v1/tasks?limit=2", &owner.access).await;
    let next = app
        .get(
            &format!(
                "/api/v1/tasks?limit=2&cursor={}",
                str_of(&first.body, "next_cursor")
            ),
            &owner.access,
        )
        .await;
    assert_eq!(titles(&next.body), ["Tidy the pipeline"]);

    let call_id = str_of(&call.body, "id");
    let done = app
        .post(
            &format!("/api/v1/tasks/{call_id}/complete"),
            &member.access,
            json!({}),
        )
        .await;
    assert!(done.body["completed_at"].is_string());
    assert_eq!(
        titles(
            &app.get("/api/v1/tasks?status=done", &member.access)
                .await
                .body
        ),
        ["Call Ada"]
    );
    let stats = app.get("/api/v1/leads/stats", &member.access).await;
    assert_eq!(
        (&stats.body["pending_tasks"], &stats.body["overdue_tasks"]),
        (&json!(2), &json!(0))
    );
    app.post(
        &format!("/api/v1/tasks/{call_id}/uncomplete"),
        &member.access,
        json!({}),
    )
    .await;
    let stats = app.get("/api/v1/leads/stats", &member.access).await;
    assert_eq!(
        (&stats.body["pending_tasks"], &stats.body["overdue_tasks"]),
        (&json!(3), &json!(1))
    );
    let activity = app
        .get(&format!("/api/v1/leads/{lead_id}/activity"), &member.access)
        .await;
    let kinds: Vec<&str> = items(&activity.body)
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["task_completed", "task_created", "lead_created"]);

    let patched = app
        .patch(
            &format!("/api/v1/tasks/{call_id}"),
            &member.access,
            json!({"due_at": null, "title": "Call Ada again"}),
        )
        .await;
    assert!(patched.body["due_at"].is_null());
    assert_eq!(patched.body["title"], "Call Ada again");
    let later_id = str_of(&later.body, "id");
    let other = app.add_member(&owner, "other@acme.test", "member").await;
    assert_eq!(
        app.delete(&format!("/api/v1/tasks/{later_id}"), &other.access)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/api/v1/tasks/{later_id}"), &member.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Deleting the lead deletes its tasks.
    app.delete(&format!("/api/v1/leads/{lead_id}"), &owner.access)
        .await;
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{call_id}"), &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn bulk_actions_and_merge(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let stranger = app.create_org("Bright Leads", "owner@bright.test").await;
    let foreign = lead(&app, &stranger, json!({"first_name": "Zed"})).await;
    let a = lead(
        &app,
        &member,
        json!({"first_name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let b = lead(&app, &member, json!({"first_name": "Ada", "last_name": "L.", "phone": "+14155550100", "tags": ["imported"]})).await;
    let c = lead(&app, &member, json!({"first_name": "Grace"})).await;
    let ids = [str_of(&a, "id"), str_of(&b, "id"), str_of(&c, "id")];

    let bulk = app
        .post(
            "/api/v1/leads/bulk",
            &member.access,
            json!({"ids": [ids[0], ids[1], foreign["id"], ids[2]], "action": "stage", "stage": "contacted"}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.body);
    assert_eq!(
        (&bulk.body["succeeded"], &bulk.body["failed"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(bulk.body["results"][2]["status"], 404);
    let stranger_lead = app
        .get(
            &format!("/api/v1/leads/{}", str_of(&foreign, "id")),
            &stranger.access,
        )
        .await;
    assert_eq!(
        stranger_lead.body["stage"], "new",
        "the other org's lead is untouched"
    );
    let tagged = app
        .post(
            "/api/v1/leads/bulk",
            &member.access,
            json!({"ids": ids, "action": "tag", "tags": ["Spring"]}),
        )
        .await;
    assert_eq!(tagged.body["succeeded"], 3);
    let missing = app
        .post(
            "/api/v1/leads/bulk",
            &member.access,
            json!({"ids": ids, "action": "stage"}),
        )
        .await;
    assert_eq!(error_fields(&missing.body), ["stage"]);
    let bad_stage = app
        .post(
            "/api/v1/leads/bulk",
            &member.access,
            json!({"ids": [ids[0]], "action": "stage", "stage": "limbo"}),
        )
        .await;
    assert_eq!(bad_stage.body["results"][0]["status"], 422);

    // Merge: B into A. Notes, tasks and activity move; A gains B's phone and tags.
    app.post(
        &format!("/api/v1/leads/{}/notes", ids[1]),
        &member.access,
        json!({"body_html": "Met at the fair"}),
    )
    .await;
    app.post(
        "/api/v1/tasks",
        &member.access,
        json!({"title": "Call back", "lead_id": ids[1]}),
    )
    .await;
    let forbidden = app
        .post(
            "/api/v1/leads/merge",
            &member.access,
            json!({"primary_id": ids[0], "duplicate_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let merged = app
        .post(
            "/api/v1/leads/merge",
            &owner.access,
            json!({"primary_id": ids[0], "duplicate_ids": [ids[1], ids[0]]}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body["phone"], "+14155550100");
    assert_eq!(merged.body["email"], "ada@example.com");
    assert_eq!(merged.body["last_name"], "L.");
    assert_eq!(merged.body["tags"], json!(["imported", "spring"]));
    assert_eq!(
        app.get(&format!("/api/v1/leads/{}", ids[1]), &owner.access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let notes = app
        .get(&format!("/api/v1/leads/{}/notes", ids[0]), &owner.access)
        .await;
    assert_eq!(items(&notes.body).len(), 1);
    let tasks = app
        .get(&format!("/api/v1/tasks?lead_id={}", ids[0]), &owner.access)
        .await;
    assert_eq!(items(&tasks.body).len(), 1);
    let activity = app
        .get(&format!("/api/v1/leads/{}/activity", ids[0]), &owner.access)
        .await;
    assert_eq!(items(&activity.body)[0]["kind"], "merged");
    assert!(
        items(&activity.body)
            .iter()
            .filter(|a| a["kind"] == "lead_created")
            .count()
            == 2
    );
    let into_foreign = app
        .post(
            "/api/v1/leads/merge",
            &owner.access,
            json!({"primary_id": ids[0], "duplicate_ids": [foreign["id"]]}),
        )
        .await;
    assert_eq!(error_fields(&into_foreign.body), ["duplicate_ids"]);
}

async fn saved_views_are_personal_or_shared(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let manager = app.add_member(&owner, "manager@acme.test", "manager").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let other = app.add_member(&owner, "other@acme.test", "member").await;
    let pipeline = pipeline_named(&app, &owner, "Leads").await;

    let mine = app
        .post(
            "/api/v1/views",
            &member.access,
            json!({"name": "My hot leads", "pipeline_id": pipeline["id"],
                   "filters": {"assigned_to": "me", "priority": "true", "cf.budget": "5000"},
                   "sort": "-created_at", "columns": ["number", "name", "custom_fields.budget"]}),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    assert_eq!(mine.body["filters"]["assigned_to"], "me");
    let share = app
        .post(
            "/api/v1/views",
            &member.access,
            json!({"name": "Team", "shared": true}),
        )
        .await;
    assert_eq!(error_fields(&share.body), ["shared"]);
    let bad = app
        .post(
            "/api/v1/views",
            &member.access,
            json!({"name": "", "filters": {"priority": "maybe", "limit": "5"}, "sort": "salary", "columns": ["ssn"]}),
        )
        .await;
    assert_eq!(
        error_fields(&bad.body),
        [
            "name",
            "filters.limit",
            "filters.priority",
            "sort",
            "columns[0]"
        ]
    );
    let team = app
        .post(
            "/api/v1/views",
            &manager.access,
            json!({"name": "New this week", "shared": true, "filters": {"stage": "new"}}),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED);

    let names = |reply: &Value| -> Vec<String> {
        items(reply)
            .iter()
            .map(|v| v["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        names(&app.get("/api/v1/views", &member.access).await.body),
        ["My hot leads", "New this week"]
    );
    assert_eq!(
        names(&app.get("/api/v1/views", &other.access).await.body),
        ["New this week"]
    );

    let mine_id = str_of(&mine.body, "id");
    let team_id = str_of(&team.body, "id");
    // Someone else's personal view does not exist for you; a shared one is read-only to members.
    assert_eq!(
        app.patch(
            &format!("/api/v1/views/{mine_id}"),
            &other.access,
            json!({"name": "Mine now"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/views/{team_id}"), &member.access)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let renamed = app
        .patch(
            &format!("/api/v1/views/{team_id}"),
            &owner.access,
            json!({"name": "Fresh leads"}),
        )
        .await;
    assert_eq!(renamed.body["name"], "Fresh leads");
    assert_eq!(renamed.body["filters"], json!({"stage": "new"}));
    assert_eq!(
        app.delete(&format!("/api/v1/views/{mine_id}"), &member.access)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        names(&app.get("/api/v1/views", &member.access).await.body),
        ["Fresh leads"]
    );
}

/// Per-stage counts as the dashboard reads them (the counters) and as a filtered list counts
/// them (a `created_after` filter that matches everything takes the counting path).
async fn stage_counts(app: &TestApp, who: &Tokens) -> (Vec<(String, String, i64)>, Value) {
    let of = |body: &Value| -> Vec<(String, String, i64)> {
        let mut rows: Vec<(String, String, i64)> = body["by_stage"]
            .as_array()
            .expect("by_stage")
            .iter()
            .map(|s| {
                (
                    str_of(s, "pipeline_id").to_owned(),
                    str_of(s, "stage").to_owned(),
                    s["count"].as_i64().expect("count"),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let fast = app.get("/api/v1/leads/stats", &who.access).await;
    assert_eq!(fast.status, StatusCode::OK, "{}", fast.body);
    let counted = app
        .get(
            "/api/v1/leads/stats?created_after=2000-01-01T00:00:00Z",
            &who.access,
        )
        .await;
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.body);
    assert_eq!(
        of(&fast.body),
        of(&counted.body),
        "counters and counting disagree"
    );
    assert_eq!(fast.body["total"], counted.body["total"]);
    (of(&fast.body), fast.body)
}

async fn stage_counters_follow_every_write(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app
        .create_org_from("Bright Futures", "owner@bright.test", "surrogacy")
        .await;
    let intake = app.add_member(&owner, "intake@bright.test", "intake").await;
    let stranger = app.create_org("Acme Growth", "owner@acme.test").await;
    lead(&app, &stranger, json!({"first_name": "Zed"})).await;
    let cases = pipeline_named(&app, &owner, "Cases").await;
    let parents = pipeline_named(&app, &owner, "Intended Parents").await;
    let cases_id = str_of(&cases, "id").to_owned();
    let parents_id = str_of(&parents, "id").to_owned();
    let mut ids = Vec::new();
    for name in ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald"] {
        let created = lead(
            &app,
            &owner,
            json!({"first_name": name, "pipeline_id": cases_id, "email": format!("{name}@example.com")}),
        )
        .await;
        ids.push(str_of(&created, "id").to_owned());
    }
    let (counts, _) = stage_counts(&app, &owner).await;
    assert_eq!(counts, [(cases_id.clone(), "new".to_owned(), 6)]);

    let url = |id: &str, action: &str| format!("/api/v1/leads/{id}/{action}");
    let stage = app
        .post(
            &url(&ids[0], "stage"),
            &owner.access,
            json!({"stage": "contacted"}),
        )
        .await;
    assert_eq!(stage.status, StatusCode::OK, "{}", stage.body);
    app.post(&url(&ids[1], "archive"), &owner.access, json!({}))
        .await;
    app.post(&url(&ids[2], "archive"), &owner.access, json!({}))
        .await;
    let restored = app
        .post(&url(&ids[2], "restore"), &owner.access, json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let moved = app
        .post(
            &url(&ids[3], "move"),
            &owner.access,
            json!({"pipeline_id": parents_id, "stage": "new"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let bulk = app
        .post(
            "/api/v1/leads/bulk",
            &owner.access,
            json!({"ids": [ids[4], ids[5]], "action": "stage", "stage": "pending_handoff"}),
        )
        .await;
    assert_eq!(bulk.body["succeeded"], 2, "{}", bulk.body);
    let (counts, stats) = stage_counts(&app, &owner).await;
    let mut expected = vec![
        (cases_id.clone(), "contacted".to_owned(), 1),
        (cases_id.clone(), "new".to_owned(), 1),
        (cases_id.clone(), "pending_handoff".to_owned(), 2),
        (parents_id.clone(), "new".to_owned(), 1),
    ];
    expected.sort();
    assert_eq!(counts, expected);
    assert_eq!(stats["total"], 5);

    // An intake specialist does not see the case manager's stages, in counts either.
    let (seen_by_intake, _) = stage_counts(&app, &intake).await;
    assert!(
        seen_by_intake
            .iter()
            .all(|(_, s, _)| s != "pending_handoff"),
        "{seen_by_intake:?}"
    );

    let merged = app
        .post(
            "/api/v1/leads/merge",
            &owner.access,
            json!({"primary_id": ids[0], "duplicate_ids": [ids[2]]}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    let deleted = app
        .delete(&format!("/api/v1/leads/{}", ids[4]), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let (counts, stats) = stage_counts(&app, &owner).await;
    let mut expected = vec![
        (cases_id.clone(), "contacted".to_owned(), 1),
        (cases_id.clone(), "pending_handoff".to_owned(), 1),
        (parents_id.clone(), "new".to_owned(), 1),
    ];
    expected.sort();
    assert_eq!(counts, expected);
    assert_eq!(stats["total"], 3);

    // Restoring the archived lead brings it back to its stage's count.
    app.post(&url(&ids[1], "restore"), &owner.access, json!({}))
        .await;
    let (counts, _) = stage_counts(&app, &owner).await;
    assert!(
        counts.contains(&(cases_id.clone(), "new".to_owned(), 1)),
        "{counts:?}"
    );

    // The other organization's counts are its own.
    let (theirs, _) = stage_counts(&app, &stranger).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].2, 1);
}

/// Migration 0018 rebuilds PostgreSQL's posting lists from every lead's `search_text` (names,
/// e-mail, phone and note words) into a table the app role can use, under row-level security.
/// The lists are emptied first, so only the migration can make the leads findable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_search_postings_are_rebuilt_by_migration_0018() {
    let app = spawn_app(Engine::Postgres).await;
    let acme = app.create_org("Acme Growth", "owner@acme.test").await;
    let bright = app.create_org("Bright Leads", "owner@bright.test").await;
    let ada = lead(
        &app,
        &acme,
        json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@analytical.test",
               "phone": "+14155550123"}),
    )
    .await;
    let note = app
        .post(
            &format!("/api/v1/leads/{}/notes", str_of(&ada, "id")),
            &acme.access,
            json!({"body_html": "<p>Asked about the quantum engine</p>"}),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.body);
    lead(
        &app,
        &bright,
        json!({"first_name": "Ada", "last_name": "Byron", "email": "ada@byron.test"}),
    )
    .await;
    let found = |who: &Tokens, query: &str| {
        let (app, access, url) = (&app, who.access.clone(), format!("/api/v1/leads?q={query}"));
        async move {
            let reply = app.get(&url, &access).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.body);
            items(&reply.body)
                .iter()
                .map(|l| str_of(l, "last_name").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found(&acme, "quantum").await, ["Lovelace"]);

    app.admin_exec("TRUNCATE lead_search_postings").await;
    app.admin_exec("DELETE FROM schema_migrations WHERE version = 18")
        .await;
    assert!(found(&acme, "ada").await.is_empty());
    let database = app.pg.as_ref().expect("postgres database");
    let owner = meridian_db::Db::connect(&meridian_db::ConnectOptions {
        url: database.owner_url.clone(),
        max_connections: 1,
    })
    .await
    .expect("owner connection");
    let applied = meridian_db::Migrator::run(&owner, Some(meridian_tests::pg::APP_ROLE))
        .await
        .expect("migrate");
    owner.close().await;
    assert_eq!(applied, [18]);

    for (query, expected) in [
        ("ada+love", "Lovelace"),
        ("quantum", "Lovelace"),
        ("analytical", "Lovelace"),
        ("5550123", "Lovelace"),
    ] {
        assert_eq!(found(&acme, query).await, [expected], "{query}");
    }
    assert_eq!(found(&bright, "ada").await, ["Byron"]);
    assert!(found(&bright, "quantum").await.is_empty());
}

/// Search keeps up with every write to a lead: an edit moves it to its new words, a note's words
/// come and go with the note, and a deleted lead leaves nothing behind. The leads straddle a
/// boundary of PostgreSQL's posting-list buckets (1,024 numbers, migration 0018).
async fn search_follows_edits_notes_and_deletes(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    app.admin_exec(&format!(
        "INSERT INTO org_counters (org_id, name, value) VALUES ('{}', 'lead_number', 1022) \
         ON CONFLICT (org_id, name) DO UPDATE SET value = 1022",
        owner.org_id
    ))
    .await;
    let mut ids = Vec::new();
    for (first, last) in [
        ("Ada", "Lovelace"),
        ("Ada", "Byron"),
        ("Grace", "Hopper"),
        ("Alan", "Turing"),
    ] {
        let created = lead(
            &app,
            &owner,
            json!({"first_name": first, "last_name": last}),
        )
        .await;
        ids.push(str_of(&created, "id").to_owned());
    }
    let found = |query: &str| {
        let (app, access, url) = (
            &app,
            owner.access.clone(),
            format!("/api/v1/leads?q={query}"),
        );
        async move {
            let reply = app.get(&url, &access).await;
            assert_eq!(reply.status, StatusCode::OK, "{url}: {}", reply.body);
            let mut names: Vec<String> = items(&reply.body)
                .iter()
                .map(|l| str_of(l, "last_name").to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(found("ada").await, ["Byron", "Lovelace"]);
    assert_eq!(found("ada+by").await, ["Byron"]);

    let renamed = app
        .patch(
            &format!("/api/v1/leads/{}", ids[0]),
            &owner.access,
            json!({"last_name": "King"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert!(found("lovelace").await.is_empty());
    assert_eq!(found("ada+kin").await, ["King"]);
    assert_eq!(found("ada").await, ["Byron", "King"]);

    let note = app
        .post(
            &format!("/api/v1/leads/{}/notes", ids[2]),
            &owner.access,
            json!({"body_html": "<p>Wants the compiler workshop</p>"}),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.body);
    assert_eq!(found("compiler+grace").await, ["Hopper"]);
    let removed = app
        .delete(
            &format!("/api/v1/notes/{}", str_of(&note.body, "id")),
            &owner.access,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    assert!(found("compiler").await.is_empty());

    let deleted = app
        .delete(&format!("/api/v1/leads/{}", ids[3]), &owner.access)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    assert!(found("turing").await.is_empty());
    assert!(found("alan").await.is_empty());

    if engine == Engine::Postgres {
        // The lists hold exactly the remaining leads' words: no empty rows, nothing of the old
        // name or the deleted lead, and "ada" in both buckets.
        let tenant = meridian_db::Tenant::for_verified_credentials(&owner.org_id, None);
        let mut tx = app.db.tenant_read(&tenant).await.expect("tx");
        let rows: Vec<(String, i32, String)> = tx
            .fetch_all(meridian_db::sql(
                "SELECT term, bucket, array_to_string(numbers, ',') FROM lead_search_postings \
                 WHERE term IN ('ada', 'lovelace', 'king', 'turing', 'alan', 'compiler') \
                    OR numbers = '{}' ORDER BY term, bucket",
            ))
            .await
            .expect("postings");
        tx.commit().await.expect("commit");
        let expected: Vec<(String, i32, String)> = vec![
            ("ada".into(), 0, "1023".into()),
            ("ada".into(), 1, "1024".into()),
            ("king".into(), 0, "1023".into()),
        ];
        assert_eq!(rows, expected);
    }
}
