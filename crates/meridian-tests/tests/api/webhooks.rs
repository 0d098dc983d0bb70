//! Webhooks: subscriptions with a secret shown once and sealed at rest, events signed per
//! Standard Webhooks (checked here by an implementation of the test's own) delivered to a receiver
//! on loopback, retries with an attempt log, 410 and repeated failures disabling the endpoint,
//! replays with the same webhook-id, the SSRF guard; inbound lead forms (JSON and browser posts,
//! UTM attribution, honeypot, Idempotency-Key, rate limit) and the settings pages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use meridian_tests::{
    Engine, PASSWORD, TestApp, Tokens, both_engines, browser, csrf_from_html, http, spawn_app,
    spawn_app_with,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    subscriptions_are_validated_and_the_secret_is_shown_once,
    events_are_signed_and_delivered_with_their_payloads,
    failures_are_retried_with_an_attempt_log_until_delivered,
    gone_disables_the_endpoint,
    repeated_failures_disable_the_endpoint_and_tell_the_admins,
    replay_sends_the_same_webhook_id_again,
    deliveries_are_paginated_newest_first,
    loopback_is_refused_at_connect_time_without_the_setting,
    inbound_forms_are_managed_and_validated,
    inbound_submissions_create_leads_with_attribution,
    inbound_submissions_are_guarded,
    settings_pages_manage_webhooks_and_forms,
    an_automation_on_form_leads_calls_a_webhook,
);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct ReceiverState {
    requests: Vec<Received>,
    /// Statuses to answer next, in order; then `otherwise`.
    script: VecDeque<u16>,
    otherwise: u16,
}

/// A webhook receiver on loopback that records requests and answers as scripted.
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start(otherwise: u16) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            otherwise,
            ..ReceiverState::default()
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move {
                let mut state = state.lock().expect("receiver state");
                state.requests.push(Received {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let code = state.script.pop_front().unwrap_or(state.otherwise);
                // A long body: only the first KiB may be kept.
                let answer = format!("answer {code} {}", "x".repeat(3000));
                (AxumStatus::from_u16(code).expect("status"), answer)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/meridian", self.addr)
    }

    fn script(&self, codes: &[u16]) {
        self.state
            .lock()
            .expect("receiver state")
            .script
            .extend(codes.iter().copied());
    }

    fn requests(&self) -> Vec<Received> {
        self.state.lock().expect("receiver state").requests.clone()
    }

    /// Waits until `n` requests came in.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} requests arrived",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The Standard Webhooks check, written from the specification rather than with the app's code:
/// HMAC-SHA256 keyed with the base64 after `whsec_`, over `id.timestamp.body`, as `v1,<base64>`.
fn signed_with(secret: &str, request: &Received) -> bool {
    let id = header(request, "webhook-id");
    let timestamp = header(request, "webhook-timestamp");
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.{}", request.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header(request, "webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// A request signed with `secret`, stamped within five minutes, with an id.
fn verify(secret: &str, request: &Received) {
    assert!(
        signed_with(secret, request),
        "signature {} does not verify",
        header(request, "webhook-signature")
    );
    let id = header(request, "webhook-id");
    let timestamp = header(request, "webhook-timestamp");
    let at: i64 = timestamp.parse().expect("unix seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - at).abs() < 300, "timestamp {at} vs now {now}");
    assert!(!id.is_empty());
    assert_eq!(header(request, "content-type"), "application/json");
}

fn body(request: &Received) -> Value {
    serde_json::from_str(&request.body).expect("JSON body")
}

fn fields(reply: &Value) -> Vec<String> {
    reply["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn private_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, |config| config.allow_private_network = true).await
}

/// Subscribes `url` to `events`; returns the id and the secret.
async fn subscribe(app: &TestApp, owner: &Tokens, url: &str, events: &[&str]) -> (String, String) {
    let created = app
        .post(
            "/api/v1/webhooks",
            &owner.access,
            json!({"url": url, "event_types": events, "description": "CRM sync"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    (
        created.body["id"].as_str().expect("id").to_owned(),
        created.body["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn new_lead(app: &TestApp, owner: &Tokens, first: &str) -> String {
    let lead = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": first, "last_name": "Diaz", "email": format!("{}@example.com", first.to_lowercase())}),
        )
        .await;
    assert_eq!(lead.status, StatusCode::CREATED, "{:?}", lead.body);
    lead.body["id"].as_str().expect("lead id").to_owned()
}

async fn deliveries(app: &TestApp, owner: &Tokens, webhook: &str) -> Vec<Value> {
    let page = app
        .get(
            &format!("/api/v1/webhooks/{webhook}/deliveries?limit=100"),
            &owner.access,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["items"].as_array().expect("items").clone()
}

/// Polls a delivery (with its attempt log) until `done` holds.
async fn delivery_until(
    app: &TestApp,
    owner: &Tokens,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let delivery = app
            .get(&format!("/api/v1/webhook-deliveries/{id}"), &owner.access)
            .await;
        assert_eq!(delivery.status, StatusCode::OK, "{:?}", delivery.body);
        if done(&delivery.body) {
            return delivery.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never got there: {:?}",
            delivery.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhook_until(
    app: &TestApp,
    owner: &Tokens,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let webhook = app
            .get(&format!("/api/v1/webhooks/{id}"), &owner.access)
            .await;
        if done(&webhook.body) {
            return webhook.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook never got there: {:?}",
            webhook.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscriptions_are_validated_and_the_secret_is_shown_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;

    for (request, field) in [
        (
            json!({"url": "not a url", "event_types": ["lead.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://example.com/x", "event_types": ["lead.created"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/x", "event_types": ["lead.created"]}),
            "url",
        ),
        (json!({"event_types": ["lead.created"]}), "url"),
        (
            json!({"url": "https://example.com/x", "event_types": ["lead.created", "lead.deleted"]}),
            "event_types[1]",
        ),
        (
            json!({"url": "https://example.com/x", "event_types": []}),
            "event_types",
        ),
    ] {
        let refused = app
            .post("/api/v1/webhooks", &owner.access, request.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}"
        );
        assert_eq!(
            fields(&refused.body),
            [field],
            "{request}: {:?}",
            refused.body
        );
    }
    let unknown = app
        .post(
            "/api/v1/webhooks",
            &owner.access,
            json!({"url": "https://example.com/x", "event_types": ["lead.deleted"]}),
        )
        .await;
    assert!(
        unknown.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("lead.created, lead.stage_changed, task.completed"),
        "{:?}",
        unknown.body
    );

    let (id, secret) = subscribe(
        &app,
        &owner,
        "https://hooks.example.com/meridian",
        &["lead.created", "task.completed"],
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        STANDARD.decode(&secret[6..]).expect("base64").len(),
        32,
        "a 256-bit key"
    );
    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), &owner.access)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body.get("secret").is_none(), "{:?}", got.body);
    let hint = got.body["secret_hint"].as_str().expect("hint");
    assert!(secret.ends_with(&hint[hint.len() - 4..]), "{hint}");
    assert_eq!(got.body["enabled"], true);
    assert_eq!(
        got.body["event_types"],
        json!(["lead.created", "task.completed"])
    );
    let listed = app.get("/api/v1/webhooks", &owner.access).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    assert!(!listed.body.to_string().contains(&secret));

    // Members neither see nor change webhooks.
    for (method, path) in [
        ("GET", "/api/v1/webhooks".to_owned()),
        ("GET", format!("/api/v1/webhooks/{id}")),
        ("DELETE", format!("/api/v1/webhooks/{id}")),
    ] {
        let refused = app.call(method, &path, Some(&member.access), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(
            refused.body["detail"]
                .to_string()
                .contains("webhooks.manage")
        );
    }

    let changed = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            &owner.access,
            json!({"event_types": ["lead.stage_changed"], "enabled": false}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["event_types"], json!(["lead.stage_changed"]));
    assert_eq!(changed.body["enabled"], false);
    assert!(
        changed.body["disabled_reason"].is_null(),
        "a person disabled it"
    );
    assert_eq!(changed.body["url"], "https://hooks.example.com/meridian");

    let rotated = app
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, secret);
    assert_ne!(rotated.body["secret_hint"], got.body["secret_hint"]);

    let dump = app.dump_text().await;
    for plaintext in [&secret, &new_secret, &secret[6..].to_owned()] {
        assert!(
            !dump.contains(plaintext.as_str()),
            "the dump holds a signing secret"
        );
    }
    assert!(
        dump.contains("hooks.example.com"),
        "the dump check reads real data"
    );

    let audit = app.get("/api/v1/audit-log", &owner.access).await;
    let text = audit.body.to_string();
    for action in [
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
    ] {
        assert!(text.contains(action), "{action} is audited");
    }
    assert!(!text.contains(&new_secret));

    let deleted = app
        .delete(&format!("/api/v1/webhooks/{id}"), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/api/v1/webhooks/{id}"), &owner.access)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn events_are_signed_and_delivered_with_their_payloads(engine: Engine) {
    let receiver = Receiver::start(200).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, secret) = subscribe(
        &app,
        &owner,
        &receiver.url(),
        &["lead.created", "lead.stage_changed", "task.completed"],
    )
    .await;
    // Another subscription, to completed tasks only.
    let (_, other_secret) = subscribe(&app, &owner, &receiver.url(), &["task.completed"]).await;
    let _worker = app.start_worker();

    let lead = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com",
                   "utm_source": "google", "custom_fields": {}}),
        )
        .await;
    let lead_id = lead.body["id"].as_str().expect("lead id").to_owned();
    let created = &receiver.wait_for(1).await[0];
    verify(&secret, created);
    let event = body(created);
    assert_eq!(event["type"], "lead.created");
    assert!(
        event["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(event["data"]["lead"]["id"], lead_id.as_str());
    assert_eq!(event["data"]["lead"]["email"], "ana@example.com");
    assert_eq!(event["data"]["lead"]["utm_source"], "google");
    assert_eq!(event["data"]["lead"]["stage"], "new");
    assert_eq!(event["data"]["lead"]["source"], "manual");

    let moved = app
        .post(
            &format!("/api/v1/leads/{lead_id}/stage"),
            &owner.access,
            json!({"stage": "contacted", "reason": "Called back"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    let stage = &receiver.wait_for(2).await[1];
    verify(&secret, stage);
    let event = body(stage);
    assert_eq!(event["type"], "lead.stage_changed");
    assert_eq!(event["data"]["from_stage"], "new");
    assert_eq!(event["data"]["to_stage"], "contacted");
    assert_eq!(event["data"]["reason"], "Called back");
    assert_eq!(event["data"]["lead"]["stage"], "contacted");

    // Bulk stage changes send one event per lead.
    let other = new_lead(&app, &owner, "Bea").await;
    receiver.wait_for(3).await;
    let bulk = app
        .post(
            "/api/v1/leads/bulk",
            &owner.access,
            json!({"ids": [lead_id, other], "action": "stage", "stage": "qualified"}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{:?}", bulk.body);
    let requests = receiver.wait_for(5).await;
    let mut moved: Vec<String> = requests[3..5]
        .iter()
        .map(|r| {
            body(r)["data"]["lead"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    moved.sort();
    let mut want = vec![lead_id.clone(), other.clone()];
    want.sort();
    assert_eq!(moved, want);

    let task = app
        .post(
            "/api/v1/tasks",
            &owner.access,
            json!({"title": "Call Ana", "lead_id": lead_id}),
        )
        .await;
    let task_id = task.body["id"].as_str().expect("task id").to_owned();
    let done = app
        .post(
            &format!("/api/v1/tasks/{task_id}/complete"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    // One for each subscription listening to task.completed.
    let requests = receiver.wait_for(7).await;
    for completed in &requests[5..7] {
        let event = body(completed);
        assert_eq!(event["type"], "task.completed");
        assert_eq!(event["data"]["task"]["id"], task_id.as_str());
        assert_eq!(event["data"]["task"]["title"], "Call Ana");
        assert_eq!(event["data"]["lead"]["id"], lead_id.as_str());
        assert!(event["data"]["task"]["completed_at"].is_string());
    }
    // Each signed with its own subscription's secret.
    let mine: Vec<bool> = requests[5..7]
        .iter()
        .map(|r| signed_with(&secret, r))
        .collect();
    let theirs: Vec<bool> = requests[5..7]
        .iter()
        .map(|r| signed_with(&other_secret, r))
        .collect();
    assert_eq!(mine.iter().filter(|m| **m).count(), 1, "{mine:?}");
    assert_eq!(
        theirs.iter().zip(&mine).filter(|(t, m)| **t != **m).count(),
        2
    );

    let log = deliveries(&app, &owner, &webhook).await;
    assert_eq!(log.len(), 6, "{log:?}");
    let first = log.last().expect("oldest");
    let first = delivery_until(&app, &owner, first["id"].as_str().expect("id"), |d| {
        d["status"] == "delivered"
    })
    .await;
    assert_eq!(first["event_type"], "lead.created");
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["last_status_code"], 200);
    assert!(first["last_latency_ms"].as_i64().is_some());
    let excerpt = first["last_response_excerpt"].as_str().expect("excerpt");
    assert!(excerpt.starts_with("answer 200"));
    assert_eq!(excerpt.len(), 1024, "the excerpt is capped at 1 KiB");
    assert_eq!(first["attempt_log"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["payload"]["data"]["lead"]["id"], lead_id.as_str());
    let hooked = app
        .get(&format!("/api/v1/webhooks/{webhook}"), &owner.access)
        .await;
    assert!(hooked.body["last_success_at"].is_string());
}

async fn failures_are_retried_with_an_attempt_log_until_delivered(engine: Engine) {
    let receiver = Receiver::start(200).await;
    receiver.script(&[500, 503]);
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, secret) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    let _worker = app.start_worker();
    new_lead(&app, &owner, "Ana").await;

    let requests = receiver.wait_for(3).await;
    let ids: Vec<&str> = requests.iter().map(|r| header(r, "webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id: {ids:?}"
    );
    assert!(
        requests.iter().all(|r| r.body == requests[0].body),
        "the same body"
    );
    for request in &requests {
        verify(&secret, request);
    }
    let log = deliveries(&app, &owner, &webhook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], ids[0]);
    let delivery = delivery_until(&app, &owner, ids[0], |d| d["status"] == "delivered").await;
    assert_eq!(delivery["attempts"], 3);
    let attempts = delivery["attempt_log"].as_array().expect("attempt log");
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(
        attempts[0]["error"], "HTTP 500 Internal Server Error",
        "{attempts:?}"
    );
    assert!(
        attempts[1]["response_excerpt"]
            .as_str()
            .is_some_and(|e| e.starts_with("answer 503") && e.len() == 1024)
    );
    assert!(attempts.iter().all(|a| a["latency_ms"].as_i64().is_some()));
    let hooked = app
        .get(&format!("/api/v1/webhooks/{webhook}"), &owner.access)
        .await;
    assert_eq!(hooked.body["enabled"], true);
    assert_eq!(hooked.body["consecutive_failures"], 0);
    assert!(
        hooked.body["failing_since"].is_null(),
        "a success clears it"
    );
}

async fn gone_disables_the_endpoint(engine: Engine) {
    let receiver = Receiver::start(410).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, _) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    let _worker = app.start_worker();
    new_lead(&app, &owner, "Ana").await;

    let disabled = webhook_until(&app, &owner, &webhook, |w| w["enabled"] == false).await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{disabled:?}"
    );
    let log = deliveries(&app, &owner, &webhook).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 1, "410 is not retried");
    let audit = app
        .get("/api/v1/audit-log?action=webhook.disabled", &owner.access)
        .await;
    assert_eq!(audit.body["items"][0]["actor"]["label"], "Meridian");
    let inbox = app.get("/api/v1/me/notifications", &owner.access).await;
    assert_eq!(
        inbox.body["items"][0]["kind"], "webhook_disabled",
        "{:?}",
        inbox.body
    );
    assert_eq!(
        inbox.body["items"][0]["link"],
        format!("/settings/webhooks/{webhook}")
    );

    // Nothing more is queued for it, and a replay waits until someone enables it.
    new_lead(&app, &owner, "Bea").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliveries(&app, &owner, &webhook).await.len(), 1);
    assert_eq!(receiver.requests().len(), 1);
    let replay = app
        .post(
            &format!(
                "/api/v1/webhook-deliveries/{}/replay",
                log[0]["id"].as_str().expect("id")
            ),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::CONFLICT, "{:?}", replay.body);
    let enabled = app
        .patch(
            &format!("/api/v1/webhooks/{webhook}"),
            &owner.access,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.body["enabled"], true);
    assert!(enabled.body["disabled_reason"].is_null());
}

async fn repeated_failures_disable_the_endpoint_and_tell_the_admins(engine: Engine) {
    let receiver = Receiver::start(500).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let admin = app.add_member(&owner, "admin@acme.test", "admin").await;
    let (webhook, _) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    for name in ["Ana", "Bea", "Cal", "Dee", "Eve"] {
        new_lead(&app, &owner, name).await;
    }
    let _worker = app.start_worker();

    let disabled = webhook_until(&app, &owner, &webhook, |w| w["enabled"] == false).await;
    let reason = disabled["disabled_reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("5 deliveries in a row failed") && reason.contains("HTTP 500"),
        "{reason}"
    );
    assert_eq!(disabled["consecutive_failures"], 5);
    assert!(disabled["failing_since"].is_string());
    for delivery in deliveries(&app, &owner, &webhook).await {
        let id = delivery["id"].as_str().expect("id");
        let done = delivery_until(&app, &owner, id, |d| d["status"] == "failed").await;
        assert_eq!(done["attempts"], 30, "every attempt of the backstop");
        assert_eq!(done["attempt_log"].as_array().map(Vec::len), Some(30));
    }
    assert_eq!(receiver.requests().len(), 150);
    let audit = app
        .get("/api/v1/audit-log?action=webhook.disabled", &owner.access)
        .await;
    let entry = &audit.body["items"][0];
    assert_eq!(entry["actor"]["label"], "Meridian");
    assert_eq!(entry["target"]["id"], webhook.as_str());
    assert_eq!(entry["after"]["reason"], reason);
    // Every owner and admin is told in the app, once.
    for person in [&owner, &admin] {
        let inbox = app.get("/api/v1/me/notifications", &person.access).await;
        let alerts: Vec<&Value> = inbox.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|n| n["kind"] == "webhook_disabled")
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0]["body"]
                .as_str()
                .is_some_and(|b| b.starts_with("5 deliveries"))
        );
    }
    // The given-up deliveries are visible as dead jobs on the Operations page too.
    let jobs = app.get("/api/v1/jobs", &owner.access).await;
    assert!(
        jobs.body.to_string().contains("webhook.deliver"),
        "{:?}",
        jobs.body
    );
}

async fn replay_sends_the_same_webhook_id_again(engine: Engine) {
    let receiver = Receiver::start(200).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, secret) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    let _worker = app.start_worker();
    new_lead(&app, &owner, "Ana").await;
    let first = receiver.wait_for(1).await[0].clone();
    let id = header(&first, "webhook-id").to_owned();
    delivery_until(&app, &owner, &id, |d| d["status"] == "delivered").await;

    let replayed = app
        .post(
            &format!("/api/v1/webhook-deliveries/{id}/replay"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(replayed.status, StatusCode::ACCEPTED, "{:?}", replayed.body);
    assert_eq!(replayed.body["id"], id.as_str());
    let again = receiver.wait_for(2).await[1].clone();
    assert_eq!(header(&again, "webhook-id"), id, "the same webhook-id");
    assert_eq!(again.body, first.body, "the same event");
    verify(&secret, &again);
    let delivery = delivery_until(&app, &owner, &id, |d| {
        d["status"] == "delivered" && d["attempts"] == 2
    })
    .await;
    assert_eq!(delivery["attempt_log"][1]["attempt"], 2);
    assert_eq!(deliveries(&app, &owner, &webhook).await.len(), 1);
    let audit = app
        .get(
            "/api/v1/audit-log?action=webhook.delivery_replayed",
            &owner.access,
        )
        .await;
    assert_eq!(audit.body["items"].as_array().map(Vec::len), Some(1));
}

async fn deliveries_are_paginated_newest_first(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, _) = subscribe(
        &app,
        &owner,
        "https://hooks.example.com/x",
        &["lead.created"],
    )
    .await;
    let mut leads = Vec::new();
    for name in ["Ana", "Bea", "Cal", "Dee", "Eve"] {
        leads.push(new_lead(&app, &owner, name).await);
    }
    let pages = app
        .pages(
            &format!("/api/v1/webhooks/{webhook}/deliveries?limit=2"),
            &owner.access,
        )
        .await;
    let mut seen = Vec::new();
    for page in &pages {
        for d in page["items"].as_array().expect("items") {
            assert_eq!(d["status"], "pending", "no worker runs");
            assert_eq!(d["webhook_id"], webhook.as_str());
            seen.push(
                d["payload"]["data"]["lead"]["id"]
                    .as_str()
                    .expect("lead")
                    .to_owned(),
            );
        }
    }
    assert_eq!(pages.len(), 3);
    leads.reverse();
    assert_eq!(seen, leads, "newest first, each once");
    let bad = app
        .get(
            &format!("/api/v1/webhooks/{webhook}/deliveries?cursor=bm9wZQ"),
            &owner.access,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&bad.body), ["cursor"]);
}

async fn loopback_is_refused_at_connect_time_without_the_setting(engine: Engine) {
    let receiver = Receiver::start(200).await;
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    // Saving is allowed (a name may resolve elsewhere later); connecting is not.
    let (webhook, _) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    let named = format!("http://localhost:{}/hooks", receiver.addr.port());
    let (by_name, _) = subscribe(&app, &owner, &named, &["lead.created"]).await;
    let _worker = app.start_worker();
    new_lead(&app, &owner, "Ana").await;

    for id in [&webhook, &by_name] {
        let log = deliveries(&app, &owner, id).await;
        let delivery = delivery_until(&app, &owner, log[0]["id"].as_str().expect("id"), |d| {
            d["status"] == "failed"
        })
        .await;
        let error = delivery["last_error"].as_str().expect("error");
        assert!(
            error.contains("internal address") && error.contains("MERIDIAN_ALLOW_PRIVATE_NETWORK"),
            "{error}"
        );
        assert_eq!(delivery["attempts"], 1, "a refusal is not retried");
        assert!(delivery["last_status_code"].is_null());
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
}

// ---- Inbound forms ------------------------------------------------------------------------

async fn create_form(app: &TestApp, owner: &Tokens, body: Value) -> Value {
    let form = app.post("/api/v1/inbound-forms", &owner.access, body).await;
    assert_eq!(form.status, StatusCode::CREATED, "{:?}", form.body);
    form.body
}

async fn leads_named(app: &TestApp, owner: &Tokens, q: &str) -> Vec<Value> {
    let list = app
        .get(&format!("/api/v1/leads?q={q}"), &owner.access)
        .await;
    list.body["items"].as_array().expect("items").clone()
}

async fn inbound_forms_are_managed_and_validated(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let partners = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [{"key": "applied", "label": "Applied"}, {"key": "signed", "label": "Signed"}],
                   "fields": [{"key": "budget", "label": "Budget", "field_type": "number", "required": true}]}),
        )
        .await;
    assert_eq!(partners.status, StatusCode::CREATED, "{:?}", partners.body);
    let partners = partners.body["id"].as_str().expect("pipeline").to_owned();

    for (request, want) in [
        (json!({}), vec!["name"]),
        (
            json!({"name": "X", "pipeline_id": "nope"}),
            vec!["pipeline_id"],
        ),
        (json!({"name": "X", "stage": "nope"}), vec!["stage"]),
        (
            json!({"name": "X", "fields": ["email", "favourite_colour"]}),
            vec!["fields[1]", "fields"],
        ),
        (
            json!({"name": "X", "redirect_url": "javascript:alert(1)"}),
            vec!["redirect_url"],
        ),
        (
            json!({"name": "X", "pipeline_id": partners}),
            vec!["fields"],
        ),
    ] {
        let refused = app
            .post("/api/v1/inbound-forms", &owner.access, request.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{request}"
        );
        assert_eq!(fields(&refused.body), want, "{request}: {:?}", refused.body);
    }
    let refused = app
        .post(
            "/api/v1/inbound-forms",
            &member.access,
            json!({"name": "Mine"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let form = create_form(&app, &owner, json!({"name": "Contact us"})).await;
    let key = form["form_key"].as_str().expect("key");
    assert!(key.starts_with("mrd_form_") && key.len() >= 30, "{key}");
    assert_eq!(
        form["fields"],
        json!(["first_name", "last_name", "email", "phone"])
    );
    assert!(
        form["endpoint_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v1/inbound/{key}")))
    );
    let snippet = form["html_snippet"].as_str().expect("snippet");
    assert!(snippet.contains(&format!(
        "action=\"{}\"",
        form["endpoint_url"].as_str().expect("url")
    )));
    assert!(snippet.contains("name=\"website\""), "the honeypot");
    assert!(snippet.contains("name=\"utm_source\""));
    assert!(snippet.contains("name=\"email\""));
    let again = app
        .post(
            "/api/v1/inbound-forms",
            &owner.access,
            json!({"name": "contact US"}),
        )
        .await;
    assert_eq!(fields(&again.body), ["name"]);

    let id = form["id"].as_str().expect("id");
    let custom = app
        .patch(
            &format!("/api/v1/inbound-forms/{id}"),
            &owner.access,
            json!({"pipeline_id": partners, "stage": "signed", "fields": ["first_name", "email", "cf.budget"],
                   "redirect_url": "https://acme.test/thanks"}),
        )
        .await;
    assert_eq!(custom.status, StatusCode::OK, "{:?}", custom.body);
    assert!(
        custom.body["html_snippet"]
            .as_str()
            .expect("snippet")
            .contains("name=\"cf.budget\" required")
    );
    assert_eq!(custom.body["stage"], "signed");
    let listed = app.get("/api/v1/inbound-forms", &owner.access).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));

    let page = http()
        .get(app.url(&format!("/forms/{key}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Contact us") && html.contains("Budget") && html.contains("name=\"website\"")
    );

    let deleted = app
        .delete(&format!("/api/v1/inbound-forms/{id}"), &owner.access)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let page = http()
        .get(app.url(&format!("/forms/{key}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let audit = app
        .get("/api/v1/audit-log", &owner.access)
        .await
        .body
        .to_string();
    for action in [
        "inbound_form.created",
        "inbound_form.updated",
        "inbound_form.deleted",
    ] {
        assert!(audit.contains(action), "{action}");
    }
}

async fn inbound_submissions_create_leads_with_attribution(engine: Engine) {
    let receiver = Receiver::start(200).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (_, secret) = subscribe(&app, &owner, &receiver.url(), &["lead.created"]).await;
    let _worker = app.start_worker();
    let form = create_form(
        &app,
        &owner,
        json!({"name": "Contact us", "stage": "contacted", "fields": ["first_name", "last_name", "email", "phone"]}),
    )
    .await;
    let endpoint = format!(
        "/api/v1/inbound/{}",
        form["form_key"].as_str().expect("key")
    );

    // JSON from a script: fields it does not collect are ignored, UTM is kept.
    let sent = http()
        .post(app.url(&endpoint))
        .json(
            &json!({"first_name": "Ana", "last_name": "Diaz", "email": "ANA@Example.com",
                      "phone": "(415) 555-0142", "utm_source": "google", "utm_campaign": "spring",
                      "assigned_to": "someone", "tags": ["vip"], "source": "api"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), StatusCode::CREATED);
    assert_eq!(sent.headers()["access-control-allow-origin"], "*");
    let reply: Value = sent.json().await.expect("json");
    let lead_id = reply["lead_id"].as_str().expect("lead id");
    let lead = app
        .get(&format!("/api/v1/leads/{lead_id}"), &owner.access)
        .await;
    assert_eq!(lead.body["source"], "web_form");
    assert_eq!(lead.body["email"], "ana@example.com", "normalized");
    assert_eq!(lead.body["phone"], "+14155550142");
    assert_eq!(lead.body["utm_source"], "google");
    assert_eq!(lead.body["utm_campaign"], "spring");
    assert_eq!(lead.body["stage"], "contacted");
    assert_eq!(lead.body["tags"], json!([]));
    assert!(lead.body["assigned_to"].is_null());
    let activity = app
        .get(&format!("/api/v1/leads/{lead_id}/activity"), &owner.access)
        .await;
    assert_eq!(
        activity.body["items"][0]["actor_label"],
        "Form \u{201c}Contact us\u{201d}"
    );
    let event = &receiver.wait_for(1).await[0];
    verify(&secret, event);
    assert_eq!(body(event)["data"]["lead"]["source"], "web_form");

    // A browser's form post gets a thank-you page.
    let page = http()
        .post(app.url(&endpoint))
        .header("accept", "text/html")
        .form(&[
            ("first_name", "Bea"),
            ("email", "bea@example.com"),
            ("utm_medium", "cpc"),
            ("website", ""),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("Thank you"));
    let bea = leads_named(&app, &owner, "bea").await;
    assert_eq!(bea.len(), 1);
    assert_eq!(bea[0]["utm_medium"], "cpc");
    assert_eq!(bea[0]["source"], "web_form");

    // Mistakes: 422 naming the field, as JSON or on the page; a duplicate email is 409 with no
    // record id for the visitor.
    let missing = app
        .call(
            "POST",
            &endpoint,
            None,
            Some(json!({"email": "cal@example.com"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&missing.body), ["first_name"]);
    let page = http()
        .post(app.url(&endpoint))
        .header("accept", "text/html")
        .form(&[("first_name", "Cal"), ("email", "not-an-email")])
        .send()
        .await
        .expect("post");
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("field-error") && html.contains("value=\"Cal\""),
        "{html}"
    );
    let duplicate = app
        .call(
            "POST",
            &endpoint,
            None,
            Some(json!({"first_name": "Ana", "email": "ana@example.com"})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert!(
        duplicate.body.get("existing_id").is_none(),
        "{:?}",
        duplicate.body
    );

    // A redirect after the form, when the form has one.
    let id = form["id"].as_str().expect("id");
    app.patch(
        &format!("/api/v1/inbound-forms/{id}"),
        &owner.access,
        json!({"redirect_url": "https://acme.test/thanks"}),
    )
    .await;
    let redirected = http()
        .post(app.url(&endpoint))
        .header("accept", "text/html")
        .form(&[("first_name", "Dee")])
        .send()
        .await
        .expect("post");
    assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
    assert_eq!(redirected.headers()["location"], "https://acme.test/thanks");

    // The hosted page carries UTM from its address into the form.
    let hosted = http()
        .get(app.url(&format!(
            "/forms/{}?utm_source=newsletter",
            form["form_key"].as_str().expect("key")
        )))
        .send()
        .await
        .expect("page");
    let html = hosted.text().await.expect("html");
    assert!(
        html.contains("name=\"utm_source\" value=\"newsletter\""),
        "{html}"
    );
}

async fn inbound_submissions_are_guarded(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let form = create_form(&app, &owner, json!({"name": "Contact us"})).await;
    let key = form["form_key"].as_str().expect("key").to_owned();
    let endpoint = format!("/api/v1/inbound/{key}");
    let post = |address: &'static str, body: Value, idempotency: Option<&'static str>| {
        let mut request = http()
            .post(app.url(&endpoint))
            .header("x-forwarded-for", address)
            .json(&body);
        if let Some(key) = idempotency {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };

    // The honeypot: a bot gets the usual answer and creates nothing.
    let bot = post(
        "203.0.113.1",
        json!({"first_name": "Bot", "website": "http://spam.example"}),
        None,
    )
    .await
    .expect("post");
    assert_eq!(bot.status(), StatusCode::CREATED);
    assert!(bot.json::<Value>().await.expect("json")["lead_id"].is_string());
    assert!(leads_named(&app, &owner, "bot").await.is_empty());

    // The same Idempotency-Key twice: one lead, the same answer.
    let first = post(
        "203.0.113.2",
        json!({"first_name": "Ana"}),
        Some("order-42"),
    )
    .await
    .expect("post");
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let again = post(
        "203.0.113.2",
        json!({"first_name": "Ana"}),
        Some("order-42"),
    )
    .await
    .expect("post");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(first["lead_id"], again["lead_id"]);
    assert_eq!(leads_named(&app, &owner, "ana").await.len(), 1);
    let bad_key = post(
        "203.0.113.2",
        json!({"first_name": "Ana"}),
        Some("has space"),
    )
    .await
    .expect("post");
    assert_eq!(bad_key.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Ten submissions per form and address in ten minutes; the eleventh waits.
    for n in 0..10 {
        let ok = post(
            "198.51.100.7",
            json!({"first_name": format!("Person{n}")}),
            None,
        )
        .await
        .expect("post");
        assert_eq!(ok.status(), StatusCode::CREATED, "submission {n}");
    }
    let limited = post("198.51.100.7", json!({"first_name": "Extra"}), None)
        .await
        .expect("post");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&wait), "{wait}");
    let elsewhere = post("198.51.100.8", json!({"first_name": "Elsewhere"}), None)
        .await
        .expect("post");
    assert_eq!(
        elsewhere.status(),
        StatusCode::CREATED,
        "another address is not limited"
    );

    // Unknown and disabled forms are not found; not-JSON-nor-form is refused.
    let unknown = app
        .call(
            "POST",
            "/api/v1/inbound/mrd_form_nope",
            None,
            Some(json!({"first_name": "X"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let text = http()
        .post(app.url(&endpoint))
        .header("x-forwarded-for", "192.0.2.9")
        .body("first_name=X")
        .send()
        .await
        .expect("post");
    assert_eq!(text.status(), StatusCode::BAD_REQUEST);
    let id = form["id"].as_str().expect("id");
    let off = app
        .patch(
            &format!("/api/v1/inbound-forms/{id}"),
            &owner.access,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.body["enabled"], false);
    let disabled = post("192.0.2.10", json!({"first_name": "Late"}), None)
        .await
        .expect("post");
    assert_eq!(disabled.status(), StatusCode::NOT_FOUND);

    // Scripts on other sites may post JSON (CORS preflight).
    let preflight = http()
        .request(reqwest::Method::OPTIONS, app.url(&endpoint))
        .header("origin", "https://acme.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("options");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    // A signed-in visitor's session cookie does not trip the CSRF guard.
    let client = browser();
    app.web_login(&client, "owner@acme.test", PASSWORD).await;
    app.patch(
        &format!("/api/v1/inbound-forms/{id}"),
        &owner.access,
        json!({"enabled": true}),
    )
    .await;
    let with_cookie = client
        .post(app.url(&endpoint))
        .header("x-forwarded-for", "192.0.2.11")
        .form(&[("first_name", "Signedin")])
        .send()
        .await
        .expect("post");
    assert_eq!(with_cookie.status(), StatusCode::CREATED);
}

async fn settings_pages_manage_webhooks_and_forms(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let client = browser();
    app.web_login(&client, "owner@acme.test", PASSWORD).await;

    let (status, html) = app.page(&client, "/settings/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Add a webhook") && html.contains("href=\"/settings/webhooks\""));
    let csrf = csrf_from_html(&html);

    let (status, _, html) = app
        .post_form(
            &client,
            "/settings/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "nope"),
                ("event_types", "lead.created"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("is not a URL"));
    let (status, _, html) = app
        .post_form(
            &client,
            "/settings/webhooks",
            &[
                ("csrf_token", &csrf),
                ("url", "https://hooks.example.com/in"),
                ("event_types", "lead.created"),
                ("event_types", "task.completed"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let marker = "id=\"new-secret\" class=\"mono\" readonly value=\"";
    let at = html.find(marker).expect("the secret, once") + marker.len();
    let secret = html[at..].split('"').next().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app.get("/api/v1/webhooks", &owner.access).await;
    let id = listed.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        listed.body["items"][0]["event_types"],
        json!(["lead.created", "task.completed"])
    );

    new_lead(&app, &owner, "Ana").await;
    let (status, html) = app.page(&client, &format!("/settings/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&secret), "not shown again");
    assert!(html.contains("lead.created") && html.contains("webhook-status-pending"));
    let (status, location, _) = app
        .post_form(
            &client,
            &format!("/settings/webhooks/{id}/disable"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("notice=disabled"));
    let (_, html) = app.page(&client, &location).await;
    assert!(html.contains("Disabled."));
    let (status, html) = app
        .page(&client, &format!("/settings/webhooks/{id}/delete"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Delete this webhook?"));
    let (status, location, _) = app
        .post_form(
            &client,
            &format!("/settings/webhooks/{id}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/settings/webhooks?notice=deleted");

    let (status, html) = app.page(&client, "/settings/inbound-forms").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Create a lead form"));
    let (status, location, _) = app
        .post_form(
            &client,
            "/settings/inbound-forms",
            &[("csrf_token", &csrf), ("name", "Contact us")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, html) = app.page(&client, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("HTML to paste") && html.contains("name=&#34;website&#34;"));
    let form_path = location.split('?').next().expect("path").to_owned();
    let (status, _, html) = app
        .post_form(
            &client,
            &form_path,
            &[
                ("csrf_token", &csrf),
                ("name", "Contact us"),
                ("fields", "email"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("must include first_name"));

    // Members do not see the pages.
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let member_client = browser();
    app.web_login(&member_client, &member.email, PASSWORD).await;
    let (status, _) = app.page(&member_client, "/settings/webhooks").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The automation trigger "inbound form received" and the action "call a webhook": a signed
/// `automation.webhook` delivery to one endpoint, whatever events it subscribes to.
async fn an_automation_on_form_leads_calls_a_webhook(engine: Engine) {
    let receiver = Receiver::start(200).await;
    let app = private_app(engine).await;
    let owner = app.create_org("Acme", "owner@acme.test").await;
    let (webhook, secret) = subscribe(&app, &owner, &receiver.url(), &["task.completed"]).await;
    let form = create_form(
        &app,
        &owner,
        json!({"name": "Contact us", "fields": ["first_name", "email"]}),
    )
    .await;
    let form_id = form["id"].as_str().expect("id");
    let bad = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "Bad", "definition": {"trigger": {"type": "inbound_received", "form_id": "nope"},
                   "actions": [{"type": "webhook", "webhook_id": "nope"}]}}),
        )
        .await;
    assert_eq!(
        fields(&bad.body),
        [
            "definition.trigger.form_id",
            "definition.actions[0].webhook_id"
        ]
    );
    let automation = app
        .post(
            "/api/v1/automations",
            &owner.access,
            json!({"name": "Form leads to the CRM", "definition": {
                "trigger": {"type": "inbound_received", "form_id": form_id},
                "actions": [{"type": "add_tag", "tag": "from-form"}, {"type": "webhook", "webhook_id": webhook}]}}),
        )
        .await;
    assert_eq!(
        automation.status,
        StatusCode::CREATED,
        "{:?}",
        automation.body
    );
    let _worker = app.start_worker();
    new_lead(&app, &owner, "Typed").await;
    let sent = http()
        .post(app.url(&format!(
            "/api/v1/inbound/{}",
            form["form_key"].as_str().expect("key")
        )))
        .json(&json!({"first_name": "Ana", "email": "ana@example.com"}))
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), StatusCode::CREATED);
    let reply: Value = sent.json().await.expect("json");
    let lead_id = reply["lead_id"].as_str().expect("lead id").to_owned();
    let requests = receiver.wait_for(1).await;
    verify(&secret, &requests[0]);
    let delivered = body(&requests[0]);
    assert_eq!(delivered["type"], "automation.webhook");
    assert_eq!(delivered["data"]["lead"]["id"], lead_id.as_str());
    assert_eq!(
        delivered["data"]["automation"]["name"],
        "Automation “Form leads to the CRM”"
    );
    let lead = app
        .get(&format!("/api/v1/leads/{lead_id}"), &owner.access)
        .await;
    assert_eq!(lead.body["tags"], json!(["from-form"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "the lead typed in by a person did not trigger it"
    );
}
