//! Lead import (upload, mapping, dry run, commit, resume after a crash) and export, over HTTP on
//! both engines.

use std::time::Duration;

use meridian_app::http::ctx::{Ctx, OrgRef};
use meridian_app::imports::service;
use meridian_tests::{Engine, Reply, TestApp, Tokens, both_engines, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

both_engines!(
    import_flow_end_to_end,
    xlsx_upload_reads_the_first_sheet,
    duplicates_are_skipped_updated_or_created,
    saved_mapping_is_suggested_for_the_same_headers,
    malformed_files_are_refused_clearly,
    resume_after_a_crash_imports_every_row_once,
    a_chunk_that_races_another_writer_is_decided_again,
    export_csv_and_xlsx_neutralize_formulas,
    members_cannot_import_or_export,
    web_wizard_works_without_javascript,
    search_finds_leads_by_common_and_rare_words,
);

const BOUNDARY: &str = "meridian-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart/form-data body: text fields in order, then the file (when given).
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Uploads a file for import as `who`.
pub async fn upload(
    app: &TestApp,
    who: &Tokens,
    pipeline_id: &str,
    file_name: &str,
    bytes: &[u8],
) -> Reply {
    let (content_type, body) = multipart(&[("pipeline_id", pipeline_id)], Some((file_name, bytes)));
    let response = meridian_tests::http()
        .post(app.url("/api/v1/imports"))
        .bearer_auth(&who.access)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    Reply::from(response).await
}

/// The id of the organization's pipeline called `name`.
pub async fn pipeline_id(app: &TestApp, who: &Tokens, name: &str) -> String {
    let reply = app.get("/api/v1/pipelines", &who.access).await;
    reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["id"].as_str())
        .unwrap_or_else(|| panic!("no pipeline {name}"))
        .to_owned()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

async fn validate(app: &TestApp, who: &Tokens, id: &str, mapping: Value, on_dup: &str) -> Reply {
    app.post(
        &format!("/api/v1/imports/{id}/validate"),
        &who.access,
        json!({"mapping": mapping, "on_duplicate": on_dup}),
    )
    .await
}

/// Polls an import until it leaves `running`.
async fn finished(app: &TestApp, who: &Tokens, id: &str) -> Value {
    for _ in 0..300 {
        let reply = app.get(&format!("/api/v1/imports/{id}"), &who.access).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        if reply.body["status"] != "running" {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

/// Uploads and validates with the suggested mapping: the import's id and its dry-run report.
async fn checked(
    app: &TestApp,
    who: &Tokens,
    pipeline: &str,
    name: &str,
    bytes: &[u8],
    on_dup: &str,
) -> (String, Reply) {
    let uploaded = upload(app, who, pipeline, name, bytes).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let id = str_of(&uploaded.body, "id").to_owned();
    let report = validate(
        app,
        who,
        &id,
        uploaded.body["suggested_mapping"].clone(),
        on_dup,
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    (id, report)
}

/// Starts the commit of a checked import in this process, as the organization's operator, for
/// tests that run it chunk by chunk with `service::run`.
async fn started(app: &TestApp, owner: &Tokens, org_name: &str, id: &str) -> service::Run {
    let ctx = Ctx::operator(
        OrgRef {
            id: owner.org_id.clone(),
            name: org_name.to_owned(),
        },
        "test",
    );
    service::start(&app.db, &ctx, id).await.expect("start")
}

/// Uploads, validates with the suggested mapping, commits and waits.
async fn import_file(
    app: &TestApp,
    who: &Tokens,
    pipeline: &str,
    name: &str,
    bytes: &[u8],
    on_dup: &str,
) -> (Value, Value) {
    let (id, report) = checked(app, who, pipeline, name, bytes, on_dup).await;
    let commit = app
        .post(
            &format!("/api/v1/imports/{id}/commit"),
            &who.access,
            json!({}),
        )
        .await;
    assert_eq!(commit.status, StatusCode::ACCEPTED, "{}", commit.body);
    (report.body, finished(app, who, &id).await)
}

async fn lead_by_email(app: &TestApp, who: &Tokens, email: &str) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/leads?q={email}&archived=all"),
            &who.access,
        )
        .await;
    reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|l| l["email"] == email)
        .cloned()
        .unwrap_or_else(|| panic!("no lead {email}: {}", reply.body))
}

async fn get_text(
    app: &TestApp,
    who: &Tokens,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = meridian_tests::http()
        .get(app.url(path))
        .bearer_auth(&who.access)
        .send()
        .await
        .expect("get");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

const PEOPLE: &str = "First Name,Last Name,E-mail,Mobile,State,Budget,Notes\n\
Ada,Lovelace, ADA@Example.com ,(415) 555-0123,california,\"5,000\",first\n\
Grace,Hopper,grace@example.com,415 555 0124,NY,,\n\
,,,,,,\n\
Bad,Row,not-an-email,12,Atlantis,lots,broken\n\
Alan,Turing,alan@example.com,+1 212 555 0188,,,\n";

async fn import_flow_end_to_end(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;

    let uploaded = upload(&app, &owner, &leads, "people.csv", PEOPLE.as_bytes()).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let body = &uploaded.body;
    let id = str_of(body, "id").to_owned();
    assert_eq!(body["status"], "uploaded");
    assert_eq!(body["rows_total"], 4);
    assert_eq!(body["empty_rows"], 1);
    assert_eq!(body["columns"][2], "E-mail");
    assert_eq!(body["preview_rows"][0]["row"], 2);
    assert_eq!(
        body["preview_rows"][2]["row"], 5,
        "the empty row 4 is skipped"
    );
    assert_eq!(body["preview_rows"][0]["cells"][0], "Ada");
    assert_eq!(body["mapping_source"], "auto");
    assert_eq!(
        body["suggested_mapping"],
        json!({
            "First Name": "first_name", "Last Name": "last_name", "E-mail": "email",
            "Mobile": "phone", "State": "state", "Budget": "custom_fields.budget", "Notes": null
        })
    );
    assert!(
        body["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .any(|t| t["value"] == "custom_fields.company")
    );

    // A mapping naming a column the file lacks, or one field twice, is refused before any row.
    let bad = validate(
        &app,
        &owner,
        &id,
        json!({"Nope": "email", "E-mail": "email", "Mobile": "email", "First Name": "first_name"}),
        "skip",
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["mapping.Nope", "mapping"]);

    let report = validate(&app, &owner, &id, body["suggested_mapping"].clone(), "skip").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let r = &report.body;
    assert_eq!(
        (
            &r["would_create"],
            &r["would_update"],
            &r["would_skip"],
            &r["failed"],
            &r["empty_rows"]
        ),
        (&json!(3), &json!(0), &json!(0), &json!(1), &json!(1))
    );
    let problems: Vec<(i64, &str, &str)> = r["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap_or(0),
                e["column"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            (5, "Budget", "lots"),
            (5, "E-mail", "not-an-email"),
            (5, "Mobile", "12"),
            (5, "State", "Atlantis")
        ]
    );
    assert!(
        r["errors"][1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("email is not an email address"),
        "{r}"
    );
    // Nothing was written by the dry run.
    let none = app.get("/api/v1/leads", &owner.access).await;
    assert_eq!(none.body["items"], json!([]));

    let commit = app
        .post(
            &format!("/api/v1/imports/{id}/commit"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(commit.status, StatusCode::ACCEPTED, "{}", commit.body);
    let again = app
        .post(
            &format!("/api/v1/imports/{id}/commit"),
            &owner.access,
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a commit runs once");
    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["counts"],
        json!({"created": 3, "updated": 0, "skipped": 0, "failed": 1}),
        "the commit agrees with the dry run"
    );
    assert_eq!(done["progress"]["percent"], 100);

    let ada = lead_by_email(&app, &owner, "ada@example.com").await;
    assert_eq!(ada["phone"], "+14155550123");
    assert_eq!(ada["state"], "CA");
    assert_eq!(ada["source"], "import");
    assert_eq!(ada["custom_fields"]["budget"], json!(5000.0));
    assert_eq!(ada["created_by"], owner.user_id.as_str());
    assert_eq!(ada["stage"], "new");
    let grace = lead_by_email(&app, &owner, "grace@example.com").await;
    assert_eq!(grace["phone"], "+14155550124");
    let activity = app
        .get(
            &format!("/api/v1/leads/{}/activity", str_of(&ada, "id")),
            &owner.access,
        )
        .await;
    let events = activity.body["items"].as_array().expect("items");
    assert_eq!(events.len(), 1, "{}", activity.body);
    assert_eq!(events[0]["kind"], "imported");
    assert_eq!(events[0]["data"], json!({"import_id": id, "row": 2}));

    let (status, headers, csv) =
        get_text(&app, &owner, &format!("/api/v1/imports/{id}/errors.csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/csv")
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap_or("")
            .starts_with("attachment; filename=\"import-errors-")
    );
    let csv = String::from_utf8(csv).expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert_eq!(lines[0], "row,column,value,message");
    assert!(
        lines[2].starts_with("5,E-mail,not-an-email,email is not an email address"),
        "{csv}"
    );

    let list = app.get("/api/v1/imports?limit=1", &owner.access).await;
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert_eq!(list.body["items"][0]["report"]["would_create"], 3);
    assert!(list.body["next_cursor"].is_null());
    let not_found = app
        .get(
            "/api/v1/imports/01900000-0000-7000-8000-000000000000",
            &owner.access,
        )
        .await;
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
}

async fn xlsx_upload_reads_the_first_sheet(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let header: Vec<String> = ["First name", "Email", "Phone", "Company"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let rows = vec![
        vec![
            "Ada".to_owned(),
            "ada@example.com".to_owned(),
            "+1 415 555 0123".to_owned(),
            "Analytical Engines".to_owned(),
        ],
        vec![String::new(), String::new(), String::new(), String::new()],
        vec![
            "Grace".to_owned(),
            "grace@example.com".to_owned(),
            String::new(),
            "Navy".to_owned(),
        ],
    ];
    let bytes = meridian_app::leads::export::xlsx_bytes("People", &header, &rows).expect("xlsx");
    let uploaded = upload(&app, &owner, &leads, "people.xlsx", &bytes).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["format"], "xlsx");
    assert_eq!(uploaded.body["columns"], json!(header));
    assert_eq!(uploaded.body["rows_total"], 2);
    assert_eq!(
        uploaded.body["preview_rows"][0]["cells"][2], "+1 415 555 0123",
        "a neutralized cell reads back as written"
    );
    assert_eq!(uploaded.body["preview_rows"][1]["row"], 4);
    assert_eq!(
        uploaded.body["suggested_mapping"]["Company"],
        "custom_fields.company"
    );
    let id = str_of(&uploaded.body, "id").to_owned();
    let report = validate(
        &app,
        &owner,
        &id,
        uploaded.body["suggested_mapping"].clone(),
        "skip",
    )
    .await;
    assert_eq!(report.body["would_create"], 2, "{}", report.body);
    app.post(
        &format!("/api/v1/imports/{id}/commit"),
        &owner.access,
        json!({}),
    )
    .await;
    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["counts"]["created"], 2, "{done}");
    let ada = lead_by_email(&app, &owner, "ada@example.com").await;
    assert_eq!(ada["phone"], "+14155550123");
    assert_eq!(ada["custom_fields"]["company"], "Analytical Engines");
}

/// Three organizations with the same existing leads, one per duplicate rule.
async fn duplicates_are_skipped_updated_or_created(engine: Engine) {
    let app = spawn_app(engine).await;
    let file = "first_name,last_name,email,phone\n\
                Ann,New,A@dup.test,\n\
                Bee,,,+1 415 555 0101\n\
                Cee,Again,c@dup.test,\n\
                Dee,,d@dup.test,\n\
                Dee2,,d@dup.test,\n";
    for (n, (mode, expected)) in [
        (
            "skip",
            json!({"created": 2, "updated": 0, "skipped": 3, "failed": 0}),
        ),
        (
            "update",
            json!({"created": 2, "updated": 3, "skipped": 0, "failed": 0}),
        ),
        (
            "create",
            json!({"created": 3, "updated": 0, "skipped": 0, "failed": 2}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let owner = app
            .create_org(&format!("Org {mode}"), &format!("owner{n}@dup{n}.test"))
            .await;
        let leads = pipeline_id(&app, &owner, "Leads").await;
        let ann = app
            .post(
                "/api/v1/leads",
                &owner.access,
                json!({"first_name": "Ann", "last_name": "Old", "email": "a@dup.test", "phone": "+14155550101"}),
            )
            .await;
        assert_eq!(ann.status, StatusCode::CREATED, "{}", ann.body);
        let ann_id = str_of(&ann.body, "id").to_owned();
        let cee = app
            .post(
                "/api/v1/leads",
                &owner.access,
                json!({"first_name": "Cee", "email": "c@dup.test"}),
            )
            .await;
        app.post(
            &format!("/api/v1/leads/{}/archive", str_of(&cee.body, "id")),
            &owner.access,
            json!({}),
        )
        .await;

        let (report, done) =
            import_file(&app, &owner, &leads, "dups.csv", file.as_bytes(), mode).await;
        assert_eq!(done["counts"], expected, "{mode}: {done}");
        assert_eq!(
            (
                &report["would_create"],
                &report["would_update"],
                &report["would_skip"],
                &report["failed"]
            ),
            (
                &expected["created"],
                &expected["updated"],
                &expected["skipped"],
                &expected["failed"]
            ),
            "{mode}: the dry run agrees with the commit"
        );
        let ann = app
            .get(&format!("/api/v1/leads/{ann_id}"), &owner.access)
            .await;
        let all = app
            .get("/api/v1/leads?archived=all&limit=100", &owner.access)
            .await;
        let count = all.body["items"].as_array().expect("items").len();
        match mode {
            "skip" => {
                assert_eq!(
                    (&ann.body["first_name"], &ann.body["last_name"]),
                    (&json!("Ann"), &json!("Old"))
                );
                assert_eq!(count, 4);
            }
            "update" => {
                // Row 2 updated Ann by email, row 3 by phone; her email and phone stay.
                assert_eq!(ann.body["first_name"], "Bee");
                assert_eq!(ann.body["last_name"], "New");
                assert_eq!(ann.body["email"], "a@dup.test");
                let activity = app
                    .get(&format!("/api/v1/leads/{ann_id}/activity"), &owner.access)
                    .await;
                let edits: Vec<&Value> = activity.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .filter(|e| e["kind"] == "info_edited")
                    .collect();
                assert_eq!(edits.len(), 2, "{}", activity.body);
                assert_eq!(edits[0]["data"]["row"], 3);
                assert_eq!(
                    edits[0]["data"]["changes"]["first_name"],
                    json!({"from": "Ann", "to": "Bee"})
                );
                let dee = lead_by_email(&app, &owner, "d@dup.test").await;
                assert_eq!(
                    dee["first_name"], "Dee2",
                    "an earlier row's lead is updated"
                );
                assert_eq!(count, 4);
            }
            _ => {
                let errors = app.get("/api/v1/imports?limit=1", &owner.access).await;
                let id = str_of(&errors.body["items"][0], "id").to_owned();
                let (_, _, csv) =
                    get_text(&app, &owner, &format!("/api/v1/imports/{id}/errors.csv")).await;
                let csv = String::from_utf8(csv).expect("utf-8");
                assert!(
                    csv.contains("2,email,A@dup.test,email is already used by an active lead"),
                    "{csv}"
                );
                assert!(csv.contains("6,email,d@dup.test,"), "{csv}");
                // Bee only shares a phone number: a new lead.
                assert_eq!(count, 5);
            }
        }
    }
}

async fn saved_mapping_is_suggested_for_the_same_headers(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let file = b"Given,Family,Mail,Employer\nAda,Lovelace,ada@example.com,Engines\n";
    let first = upload(&app, &owner, &leads, "a.csv", file).await;
    assert_eq!(first.body["mapping_source"], "auto");
    assert_eq!(first.body["suggested_mapping"]["Given"], Value::Null);
    let chosen = json!({
        "Given": "first_name", "Family": "last_name", "Mail": "email",
        "Employer": "custom_fields.company"
    });
    let id = str_of(&first.body, "id").to_owned();
    let checked = validate(&app, &owner, &id, chosen.clone(), "skip").await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);

    let second = upload(&app, &owner, &leads, "b.csv", file).await;
    assert_eq!(second.body["mapping_source"], "saved");
    assert_eq!(second.body["suggested_mapping"], chosen);
    let other_headers = upload(&app, &owner, &leads, "c.csv", b"Given,Mail\nAda,a@b.test\n").await;
    assert_eq!(other_headers.body["mapping_source"], "auto");
    let other = app
        .post(
            "/api/v1/pipelines",
            &owner.access,
            json!({"name": "Partners", "stages": [{"key": "new", "label": "New"}]}),
        )
        .await;
    let elsewhere = upload(&app, &owner, str_of(&other.body, "id"), "d.csv", file).await;
    assert_eq!(
        elsewhere.body["mapping_source"], "auto",
        "mappings are saved per pipeline"
    );
}

/// A stored ZIP archive (no compression), enough for a hand-made XLSX.
fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFF_u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                let mask = (crc & 1).wrapping_neg();
                crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
        !crc
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, text) in files {
        let offset = out.len() as u32;
        let data = text.as_bytes();
        let crc = crc32(data);
        let len = data.len() as u32;
        let header = |sig: u32, central_dir: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central_dir {
                h.extend(20_u16.to_le_bytes());
            }
            h.extend(20_u16.to_le_bytes());
            h.extend([0u8; 2]);
            h.extend([0u8; 2]);
            h.extend([0u8; 4]);
            h.extend(crc.to_le_bytes());
            h.extend(len.to_le_bytes());
            h.extend(len.to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend([0u8; 2]);
            if central_dir {
                h.extend([0u8; 8]);
                h.extend([0u8; 2]);
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        let local = header(0x0403_4b50, false);
        let entry = header(0x0201_4b50, true);
        out.extend(local);
        out.extend(data);
        central.extend(entry);
    }
    let cd_offset = out.len() as u32;
    let cd_len = central.len() as u32;
    out.extend(central);
    out.extend(0x0605_4b50_u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

fn workbook_without_sheets() -> Vec<u8> {
    zip(&[
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets/></workbook>"#,
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>"#,
        ),
    ])
}

async fn malformed_files_are_refused_clearly(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let wide = (0..10_000)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n"
        + &"x,".repeat(9_999)
        + "x\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "latin1.csv",
            b"name,email\nAda,a@b.test\nRen\xe9,r@b.test\n".to_vec(),
            "line 3",
        ),
        ("utf16.csv", b"\xff\xfen\x00a\x00".to_vec(), "UTF-16"),
        (
            "colons.csv",
            b"first:last:email\nAda:Lovelace:a@b.test\n".to_vec(),
            "\u{201c}:\u{201d}",
        ),
        ("wide.csv", wide.into_bytes(), "10000 columns"),
        (
            "dupes.csv",
            b"Email,Name,email\na,b,c\n".to_vec(),
            "\u{201c}email\u{201d}",
        ),
        (
            "holes.csv",
            b"Email,,Name\na,b,c\n".to_vec(),
            "column B (2)",
        ),
        ("empty.csv", Vec::new(), "The file is empty"),
        ("blank.csv", b"\n\n  \n".to_vec(), "The file is empty"),
        ("header.csv", b"name,email\n".to_vec(), "no data rows"),
        (
            "blank-rows.csv",
            b"name,email\n,\n\n".to_vec(),
            "every other row is empty",
        ),
        ("nosheets.xlsx", workbook_without_sheets(), "no sheets"),
        (
            "broken.xlsx",
            b"PK\x03\x04 not really".to_vec(),
            "not an XLSX workbook",
        ),
        ("old.xls", b"\xd0\xcf\x11\xe0rest".to_vec(), ".xls"),
    ];
    for (name, bytes, expected) in cases {
        let reply = upload(&app, &owner, &leads, name, &bytes).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {}",
            reply.body
        );
        assert_eq!(reply.body["errors"][0]["field"], "file", "{name}");
        let message = reply.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains(expected), "{name}: {message}");
    }
    let missing = meridian_tests::http()
        .post(app.url("/api/v1/imports"))
        .bearer_auth(&owner.access)
        .header(
            "content-type",
            multipart(&[("pipeline_id", &leads)], None).0,
        )
        .body(multipart(&[("pipeline_id", &leads)], None).1)
        .send()
        .await
        .expect("send");
    let missing = Reply::from(missing).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.body["errors"][0]["field"], "file");
    // A declared size over the limit is refused before the body is read.
    let status_line = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let request = format!(
            "POST /api/v1/imports HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
            app.addr,
            owner.access,
            meridian_app::imports::MAX_UPLOAD_BYTES + 1
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buffer = vec![0u8; 4096];
        let n = stream.read(&mut buffer).await.expect("read");
        String::from_utf8_lossy(&buffer[..n]).to_string()
    };
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    assert!(
        status_line.contains("application/problem+json"),
        "{status_line}"
    );
    let not_multipart = app.post("/api/v1/imports", &owner.access, json!({})).await;
    assert_eq!(not_multipart.status, StatusCode::BAD_REQUEST);
    let wrong_pipeline = upload(&app, &owner, "nope", "a.csv", b"name\nAda\n").await;
    assert_eq!(wrong_pipeline.body["errors"][0]["field"], "pipeline_id");
    // Refused uploads leave nothing behind.
    let list = app.get("/api/v1/imports", &owner.access).await;
    assert_eq!(list.body["items"], json!([]));

    // Rows that cannot be imported whatever the mapping are reported, not fatal.
    let ragged = upload(
        &app,
        &owner,
        &leads,
        "ragged.csv",
        b"first_name,email\nAda,a@b.test\nBo,b@b.test,extra\nCy\n",
    )
    .await;
    assert_eq!(ragged.status, StatusCode::CREATED, "{}", ragged.body);
    let id = str_of(&ragged.body, "id").to_owned();
    let report = validate(
        &app,
        &owner,
        &id,
        ragged.body["suggested_mapping"].clone(),
        "skip",
    )
    .await;
    assert_eq!(report.body["would_create"], 2, "{}", report.body);
    assert_eq!(report.body["errors"][0]["row"], 3);
    assert!(
        report.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("column C (3), which has no header"),
        "{}",
        report.body
    );
}

async fn resume_after_a_crash_imports_every_row_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let chunk_rows = meridian_app::imports::parse::chunk_rows(app.db.engine());
    let rows = chunk_rows * 2 + 500;
    // The last 100 rows are people already in the file: 50 repeat an e-mail of the first chunk
    // (committed before the run that writes them starts), 50 a phone number of the second
    // (decided while the second is written, so found in its plan, not in the database; the
    // phone is not unique, so nothing but the plan could stop a second lead).
    let repeats = 100;
    let phone = |person: usize| format!("+1415{}", 2_000_000 + person);
    let mut file = String::from("first_name,email,phone\n");
    for i in 0..rows {
        let (email, phone) = match i.checked_sub(rows - repeats) {
            Some(k) if k % 2 == 0 => (k, phone(i)),
            Some(k) => (i, phone(chunk_rows + k)),
            None => (i, phone(i)),
        };
        file.push_str(&format!("Person {i},person{email}@crash.test,{phone}\n"));
    }
    let created = rows - repeats;
    let (id, report) = checked(&app, &owner, &leads, "big.csv", file.as_bytes(), "skip").await;
    assert_eq!(report.body["would_create"], created, "{}", report.body);
    assert_eq!(report.body["would_skip"], repeats, "{}", report.body);

    // Commit in this process and stop after the first chunk, as a process that dies would.
    let first = started(&app, &owner, "Acme Growth", &id).await;
    let end = service::run(&app.db, &first, Some(1), &|_| {})
        .await
        .expect("first chunk");
    assert_eq!(end, service::RunEnd::Paused);
    let midway = app
        .get(&format!("/api/v1/imports/{id}"), &owner.access)
        .await;
    assert_eq!(midway.body["status"], "running");
    assert_eq!(midway.body["progress"]["rows_done"], chunk_rows);

    if engine == Engine::Postgres {
        // The runner died after the chunk committed but before its search words did (they are
        // written on a second connection while the next chunk is applied), and meanwhile edits
        // wrote the words of some of its leads: half the words are missing and the chunk still
        // says so. The next runner writes the missing ones first, keeping the others.
        app.admin_exec(&format!(
            "UPDATE lead_search_postings \
             SET numbers = numbers - ARRAY(SELECT generate_series(1, {1}))::int[] \
             WHERE org_id = '{0}'",
            owner.org_id,
            chunk_rows / 2
        ))
        .await;
        app.admin_exec(&format!(
            "UPDATE import_chunks SET search_pending_from = 1, search_pending_to = {} \
             WHERE import_id = '{id}' AND seq = 0",
            chunk_rows
        ))
        .await;
    }

    // A fresh runner leaves a live import alone...
    let none = service::resume_stale(&app.db, service::STALE_AFTER)
        .await
        .expect("resume");
    assert!(none.is_empty(), "the heartbeat is fresh");
    // ...and takes over one whose heartbeat stopped.
    app.admin_exec(&format!(
        "UPDATE imports SET heartbeat_at = {} WHERE id = '{id}'",
        crate::auth::past(engine)
    ))
    .await;
    let resumed = service::resume_stale(&app.db, service::STALE_AFTER)
        .await
        .expect("resume");
    assert_eq!(resumed.len(), 1);
    for run in resumed {
        run.await.expect("resumed run");
    }
    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["counts"],
        json!({"created": created, "updated": 0, "skipped": repeats, "failed": 0})
    );
    assert_eq!(done["progress"]["rows_done"], rows);

    // The first runner waking up finds its lease taken and writes nothing.
    let late = service::run(&app.db, &first, None, &|_| {})
        .await
        .expect("late run");
    assert_eq!(late, service::RunEnd::Lost);

    let stats = app
        .get(
            &format!("/api/v1/leads/stats?pipeline_id={leads}"),
            &owner.access,
        )
        .await;
    assert_eq!(stats.body["total"], created, "{}", stats.body);
    let tenant = meridian_db::Tenant::for_verified_credentials(&owner.org_id, None);
    let mut tx = app.db.tenant_read(&tenant).await.expect("tx");
    let (leads_total, distinct, numbers): (i64, i64, i64) = tx
        .fetch_one(meridian_db::sql(
            "SELECT COUNT(*), COUNT(DISTINCT email), COUNT(DISTINCT number) FROM leads",
        ))
        .await
        .expect("counts");
    let (imported,): (i64,) = tx
        .fetch_one(meridian_db::sql(
            "SELECT COUNT(*) FROM lead_activity WHERE kind = 'imported'",
        ))
        .await
        .expect("activity");
    let (chunks,): (i64,) = tx
        .fetch_one(meridian_db::sql("SELECT COUNT(*) FROM import_chunks"))
        .await
        .expect("chunks");
    // Every lead can be found: its search words were written, whichever connection wrote them.
    let (searchable,): (i64,) = tx
        .fetch_one(meridian_db::sql(match engine {
            Engine::Postgres => {
                "SELECT COUNT(DISTINCT n) FROM lead_search_postings, unnest(numbers) AS n"
            }
            Engine::Sqlite => "SELECT COUNT(*) FROM leads_fts",
        }))
        .await
        .expect("search words");
    tx.commit().await.expect("commit");
    let created = created as i64;
    assert_eq!(searchable, created, "every imported lead is searchable");
    assert_eq!(
        (leads_total, distinct, numbers),
        (created, created, created)
    );
    assert_eq!(imported, created, "one imported event per lead");
    assert_eq!(chunks, 0, "the stored file is deleted once imported");
}

/// A chunk decided ahead of its transaction (see `service::run`) can meet a lead that another
/// writer created after its duplicate lookup. Here that writer holds its transaction open while
/// the run starts, with a lead using an e-mail of the first chunk: on SQLite the chunk's
/// transaction waits for the write lock, on PostgreSQL its insert waits on the unique index. The
/// insert then fails, the chunk is read and decided again inside its transaction (the row is
/// skipped as a duplicate), the next chunk's early plan is dropped, and the import completes
/// with every other row once.
async fn a_chunk_that_races_another_writer_is_decided_again(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let chunk_rows = meridian_app::imports::parse::chunk_rows(app.db.engine());
    let rows = chunk_rows + 100;
    let mut file = String::from("first_name,email\n");
    for i in 0..rows {
        file.push_str(&format!("Person {i},person{i}@race.test\n"));
    }
    let (id, report) = checked(&app, &owner, &leads, "race.csv", file.as_bytes(), "skip").await;
    assert_eq!(report.body["would_create"], rows, "{}", report.body);
    let run = started(&app, &owner, "Acme Growth", &id).await;

    let tenant = meridian_db::Tenant::for_verified_credentials(&owner.org_id, None);
    let mut other = app.db.tenant(&tenant).await.expect("the other writer");
    let now = meridian_db::now();
    other
        .execute(
            meridian_db::sql(
                "INSERT INTO leads (org_id, id, number, pipeline_id, stage, first_name, last_name, \
                 email, source, stage_entered_at, created_at, updated_at) \
                 VALUES ($1, $2, 1000000, $3, 'new', 'Early', 'Bird', 'person7@race.test', \
                 'manual', $4, $4, $4)",
            )
            .bind(owner.org_id.as_str())
            .bind(meridian_db::new_id())
            .bind(leads.as_str())
            .bind(now),
        )
        .await
        .expect("the racing lead");
    let runner = {
        let db = app.db.clone();
        tokio::spawn(async move { service::run(&db, &run, None, &|_| {}).await })
    };
    // The run looks the first chunk up (a read, which does not wait) and then waits to write it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !runner.is_finished(),
        "the chunk waits for the other writer"
    );
    other.commit().await.expect("the other writer commits");
    let end = runner.await.expect("run task").expect("run");
    assert_eq!(end, service::RunEnd::Completed);

    let done = finished(&app, &owner, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["counts"],
        json!({"created": rows - 1, "updated": 0, "skipped": 1, "failed": 0})
    );
    let mut tx = app.db.tenant_read(&tenant).await.expect("read");
    let (total, emails): (i64, i64) = tx
        .fetch_one(meridian_db::sql(
            "SELECT COUNT(*), COUNT(DISTINCT email) FROM leads",
        ))
        .await
        .expect("counts");
    tx.commit().await.expect("end read");
    assert_eq!((total, emails), (rows as i64, rows as i64));
}

async fn export_csv_and_xlsx_neutralize_formulas(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    // More leads than one export page, made by an import.
    let mut file = String::from("first_name,last_name,email,budget\n");
    for i in 0..1_050 {
        file.push_str(&format!("Lead {i},Bulk,lead{i}@export.test,{i}\n"));
    }
    let (_, done) = import_file(&app, &owner, &leads, "many.csv", file.as_bytes(), "skip").await;
    assert_eq!(done["counts"]["created"], 1_050, "{done}");
    let evil = app
        .post(
            "/api/v1/leads",
            &owner.access,
            json!({"first_name": "=HYPERLINK(\"http://evil.test\",\"x\")", "last_name": "@SUM(A1)",
                   "email": "evil@export.test", "phone": "+1 415 555 0199", "custom_fields": {"company": "-2+3"}}),
        )
        .await;
    assert_eq!(evil.status, StatusCode::CREATED, "{}", evil.body);

    let (status, headers, body) = get_text(
        &app,
        &owner,
        &format!("/api/v1/leads/export?format=csv&pipeline_id={leads}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap_or("");
    assert!(
        disposition.starts_with("attachment; filename=\"leads-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let text = String::from_utf8(body).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 1_051, "every lead, not one page");
    assert_eq!(
        lines[0],
        "Number,First name,Last name,Email,Phone,Stage,Source,Assigned,Created,Company,Budget"
    );
    let evil_line = lines
        .iter()
        .find(|l| l.contains("evil@export.test"))
        .expect("evil row");
    assert!(
        evil_line.contains("\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"x\"\")\",'@SUM(A1),evil@export.test,'+14155550199,New,manual,"),
        "{evil_line}"
    );
    assert!(evil_line.ends_with(",'-2+3,"), "{evil_line}");
    assert!(
        text.contains(",Lead 7,Bulk,lead7@export.test,,New,import,,"),
        "{text:.400}"
    );

    // Filters and chosen columns apply.
    let (_, _, body) = get_text(
        &app,
        &owner,
        "/api/v1/leads/export?q=evil&columns=email,first_name,custom_fields.company,tags",
    )
    .await;
    let text = String::from_utf8(body).expect("utf-8");
    assert_eq!(
        text,
        "Email,First name,Company,Tags\nevil@export.test,\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"x\"\")\",'-2+3,\n"
    );
    let bad = app
        .get("/api/v1/leads/export?columns=email,password", &owner.access)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "columns");
    assert!(
        bad.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("password")
    );
    let bad_format = app
        .get("/api/v1/leads/export?format=pdf", &owner.access)
        .await;
    assert_eq!(bad_format.body["errors"][0]["field"], "format");

    let (status, headers, body) = get_text(
        &app,
        &owner,
        &format!("/api/v1/leads/export?format=xlsx&pipeline_id={leads}&sort=number"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let sheet = meridian_app::imports::parse::first_sheet(&body).expect("xlsx");
    let cell =
        |row: usize, col: usize| -> String { sheet.rows[row][col].clone().unwrap_or_else(|e| e) };
    assert_eq!(sheet.rows.len(), 1 + 1_051);
    assert_eq!(cell(0, 1), "First name");
    assert_eq!(cell(0, 10), "Budget");
    assert_eq!(cell(1, 1), "Lead 0");
    assert_eq!(cell(1, 10), "0");
    let last = sheet.rows.len() - 1;
    assert_eq!(cell(last, 1), "'=HYPERLINK(\"http://evil.test\",\"x\")");
    assert_eq!(cell(last, 2), "'@SUM(A1)");
    assert_eq!(cell(last, 4), "'+14155550199");
    // Re-importing an export reads the neutralized cells back as they were.
    let other = app.create_org("Bright Leads", "owner@bright.test").await;
    let other_leads = pipeline_id(&app, &other, "Leads").await;
    let uploaded = upload(&app, &other, &other_leads, "export.xlsx", &body).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["rows_total"], 1_051);
    assert_eq!(
        uploaded.body["suggested_mapping"]["Budget"],
        "custom_fields.budget"
    );
}

async fn members_cannot_import_or_export(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let member = app.add_member(&owner, "member@acme.test", "member").await;
    let manager = app.add_member(&owner, "manager@acme.test", "manager").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let uploaded = upload(&app, &owner, &leads, "a.csv", PEOPLE.as_bytes()).await;
    let id = str_of(&uploaded.body, "id").to_owned();
    for who in [&member] {
        let reply = upload(&app, who, &leads, "a.csv", PEOPLE.as_bytes()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        for path in [
            "/api/v1/imports".to_owned(),
            format!("/api/v1/imports/{id}"),
            format!("/api/v1/imports/{id}/errors.csv"),
            "/api/v1/leads/export".to_owned(),
        ] {
            let reply = app.get(&path, &who.access).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path}: {}",
                reply.body
            );
        }
        let reply = validate(&app, who, &id, json!({"First Name": "first_name"}), "skip").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let reply = app
            .post(
                &format!("/api/v1/imports/{id}/commit"),
                &who.access,
                json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let allowed = upload(&app, &manager, &leads, "a.csv", PEOPLE.as_bytes()).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "managers import");
    assert_eq!(
        app.get("/api/v1/leads/export", &manager.access)
            .await
            .status,
        StatusCode::OK
    );
}

async fn web_wizard_works_without_javascript(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let browser = meridian_tests::browser();
    app.web_login(&browser, "owner@acme.test", meridian_tests::PASSWORD)
        .await;
    let page = browser
        .get(app.url(&format!("/leads/import?pipeline_id={leads}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("enctype=\"multipart/form-data\""), "{html}");
    assert!(html.contains("No imports yet"));
    let csrf = meridian_tests::csrf_from_html(&html);

    // Without the form's token the upload is refused before the file is read.
    let (content_type, body) = multipart(
        &[("pipeline_id", &leads)],
        Some(("p.csv", PEOPLE.as_bytes())),
    );
    let forged = browser
        .post(app.url("/leads/import"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let (content_type, body) = multipart(
        &[("csrf_token", &csrf), ("pipeline_id", &leads)],
        Some(("people.csv", PEOPLE.as_bytes())),
    );
    let posted = browser
        .post(app.url("/leads/import"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let location = posted.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(location.starts_with("/leads/import/"), "{location}");
    let id = location.trim_start_matches("/leads/import/").to_owned();

    let mapping = browser
        .get(app.url(&location))
        .send()
        .await
        .expect("mapping");
    let html = mapping.text().await.expect("html");
    assert!(html.contains("name=\"col_0\""), "{html}");
    assert!(html.contains("<option value=\"email\" selected>"), "{html}");
    assert!(html.contains("Lovelace"), "the preview shows the rows");

    // An invalid mapping re-renders the form with the problem.
    let refused = browser
        .post(app.url(&format!("/leads/import/{id}/validate")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("on_duplicate", "skip"),
            ("col_2", "email"),
        ])
        .send()
        .await
        .expect("validate");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .expect("html")
            .contains("map a column to first_name")
    );

    let form: Vec<(String, String)> = [
        ("csrf_token", csrf.as_str()),
        ("on_duplicate", "skip"),
        ("col_0", "first_name"),
        ("col_1", "last_name"),
        ("col_2", "email"),
        ("col_3", "phone"),
        ("col_4", "state"),
        ("col_5", ""),
        ("col_6", ""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let checked = browser
        .post(app.url(&format!("/leads/import/{id}/validate")))
        .form(&form)
        .send()
        .await
        .expect("validate");
    assert_eq!(checked.status(), StatusCode::SEE_OTHER);
    let report = browser
        .get(app.url(&location))
        .send()
        .await
        .expect("report");
    let html = report.text().await.expect("html");
    assert!(html.contains("Check results"), "{html}");
    assert!(html.contains("Import 3 leads"), "{html}");
    assert!(html.contains(&format!("/api/v1/imports/{id}/errors.csv")));

    let committed = browser
        .post(app.url(&format!("/leads/import/{id}/commit")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("commit");
    assert_eq!(committed.status(), StatusCode::SEE_OTHER);
    finished(&app, &owner, &id).await;
    let progress = browser
        .get(app.url(&location))
        .send()
        .await
        .expect("progress");
    let html = progress.text().await.expect("html");
    assert!(html.contains("data-import-progress"), "{html}");
    assert!(html.contains("Completed"), "{html}");
    let list = browser
        .get(app.url("/leads/import"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("html");
    assert!(list.contains("people.csv"));
}

/// Searches on an organization where some words are shared by more than a thousand leads, so
/// PostgreSQL intersects the words' ranges when every word is common and starts from the rare
/// word otherwise (`leads::query::search_condition`); SQLite answers from FTS5.
async fn search_finds_leads_by_common_and_rare_words(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "owner@acme.test").await;
    let leads = pipeline_id(&app, &owner, "Leads").await;
    let mut csv = String::from("First Name,Last Name,E-mail\n");
    for i in 0..1100 {
        csv.push_str(&format!("Marigold,Ashdown,m.ashdown{i}@example.com\n"));
        csv.push_str(&format!("Marigold,Bexley,m.bexley{i}@example.com\n"));
    }
    csv.push_str("Zinnia,Ashdown,zinnia@example.com\n");
    let (_, done) = import_file(&app, &owner, &leads, "many.csv", csv.as_bytes(), "skip").await;
    assert_eq!(done["counts"]["created"], 2201, "{done}");

    let everything = |query: &'static str| {
        let (app, access) = (&app, owner.access.clone());
        async move {
            app.pages(&format!("/api/v1/leads?q={query}&limit=100"), &access)
                .await
                .iter()
                .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
                .map(|lead| lead["email"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        }
    };
    // Two common words: 1,100 leads share both, and the rare Zinnia shares one.
    let both = everything("marigold+ashd").await;
    assert_eq!(both.len(), 1100);
    assert!(both.iter().all(|e| e.starts_with("m.ashdown")), "{both:?}");
    // Three common words: the short one ("m" starts every lead's first name and e-mail) is
    // checked in the search text, not intersected.
    assert_eq!(everything("marigold+ashdown+m").await, both);
    assert!(
        everything("marigold+ashdown+b").await.is_empty(),
        "no Ashdown has a word in b"
    );
    // A rare word with a common one, in either order.
    assert_eq!(everything("ashdown+zinn").await, ["zinnia@example.com"]);
    assert_eq!(everything("zinnia+ashdown").await, ["zinnia@example.com"]);
    assert_eq!(
        everything("marigold+bexley+1099").await,
        ["m.bexley1099@example.com"]
    );
    // A rare word that no lead has together with the common one finds nothing.
    assert!(everything("zinnia+bexley").await.is_empty());

    // PostgreSQL reads a search's page from its newest matches first and falls back to all of
    // them when too few pass the other filters: only the oldest match is archived, and both
    // orders and both filters still list exactly what they should.
    let oldest = app
        .get(
            "/api/v1/leads?q=marigold+ashd&sort=number&limit=1",
            &owner.access,
        )
        .await;
    let oldest = oldest.body["items"][0].clone();
    assert_eq!(oldest["email"], "m.ashdown0@example.com", "{oldest}");
    let archived = app
        .post(
            &format!(
                "/api/v1/leads/{}/archive",
                oldest["id"].as_str().expect("id")
            ),
            &owner.access,
            json!({}),
        )
        .await;
    assert!(archived.status.is_success(), "{}", archived.body);
    assert_eq!(
        everything("marigold+ashd&archived=true").await,
        ["m.ashdown0@example.com"]
    );
    let newest_first = everything("marigold+ashd").await;
    assert_eq!(newest_first.len(), 1099);
    let mut oldest_first = everything("marigold+ashd&sort=number").await;
    oldest_first.reverse();
    assert_eq!(oldest_first, newest_first);
    assert_eq!(
        newest_first.last().map(String::as_str),
        Some("m.ashdown1@example.com")
    );
}
