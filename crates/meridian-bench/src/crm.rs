//! The `crm` benchmark: one organization with a million leads (and ten other organizations with
//! their own), then the list, filter, search, detail and stats requests a team makes all day,
//! over loopback against the real app.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use meridian_app::leads::store::{LeadFields, search_text};
use meridian_db::{Engine, Tenant, sql};
use meridian_tests::{TestApp, Tokens};
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::load::{OpResult, Stats, Window, drive};

#[derive(Debug, Clone)]
pub struct Settings {
    pub leads: u64,
    pub other_orgs: u32,
    pub other_leads: u64,
    pub members: usize,
    pub concurrency: usize,
    pub window: Window,
}

pub struct Row {
    pub label: String,
    pub target_ms: f64,
    pub percentile: f64,
    pub stats: Stats,
}

pub struct Report {
    pub engine: Engine,
    pub seed_seconds: f64,
    pub rows: Vec<Row>,
}

pub(crate) const FIRST: &[&str] = &[
    "Maria", "Jessica", "Ashley", "Sarah", "Emily", "Olivia", "Sofia", "Grace", "Hannah", "Chloe",
    "Ava", "Mia", "Zoe", "Lily", "Ella", "Nora", "Ruby", "Alice", "Clara", "Iris", "Jade", "Lucy",
    "Maya", "Nina", "Rose", "Tara", "Vera", "Wendy", "Yara", "Zara", "Amelia", "Bella",
];
pub(crate) const LAST: &[&str] = &[
    "Garcia",
    "Johnson",
    "Williams",
    "Brown",
    "Martinez",
    "Davis",
    "Rodriguez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
];
const STAGES: &[&str] = &[
    "new",
    "new",
    "contacted",
    "contacted",
    "qualified",
    "proposal",
    "won",
    "lost",
];
pub(crate) const SOURCES: &[&str] = &[
    "meta", "meta", "google", "web_form", "referral", "manual", "import",
];
pub(crate) const STATES: &[&str] = &["CA", "TX", "FL", "NY", "AZ", "WA", "IL", "GA"];

/// A cheap deterministic mix so runs are repeatable.
pub(crate) fn mix(n: u64) -> u64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

pub(crate) fn pick<'a>(list: &[&'a str], n: u64) -> &'a str {
    list[(n % list.len() as u64) as usize]
}

pub struct Seeded {
    pub pipeline_id: String,
    pub lead_ids: Vec<String>,
    pub members: Vec<String>,
}

const COLUMNS: &str = "org_id, id, number, pipeline_id, stage, first_name, last_name, email, phone, \
    state, country, source, assigned_to, is_priority, custom_fields, search_text, stage_entered_at, \
    created_at, updated_at";
const PER_ROW: usize = 19;
/// Rows per INSERT statement (SQLite allows 32,766 bound parameters).
const ROWS_PER_STATEMENT: usize = 25;
const STATEMENTS_PER_TRANSACTION: usize = 800;

/// Writes `count` leads straight into the database in multi-row inserts, the same rows a busy
/// organization would have (names, emails, phones, stages, owners, sources, custom fields).
pub async fn seed_leads(
    app: &TestApp,
    owner: &Tokens,
    count: u64,
    members: &[String],
    salt: u64,
) -> anyhow::Result<Seeded> {
    let tenant = Tenant::for_verified_credentials(&owner.org_id, None);
    let mut tx = app.db.tenant(&tenant).await?;
    let pipelines = meridian_app::pipelines::store::list(&mut tx).await?;
    let pipeline_id = pipelines.first().context("a pipeline")?.id.clone();
    let first_number = meridian_app::leads::store::reserve_numbers(&mut tx, count as i64).await?;
    tx.commit().await?;
    let start = time::OffsetDateTime::now_utc() - time::Duration::days(730);
    let seed_started = Instant::now();
    let mut lead_ids = Vec::with_capacity(count as usize);
    let mut n = 0u64;
    while n < count {
        let mut tx = app.db.tenant(&tenant).await?;
        let batch_first = first_number + n as i64;
        for _ in 0..STATEMENTS_PER_TRANSACTION {
            if n >= count {
                break;
            }
            let rows = (count - n).min(ROWS_PER_STATEMENT as u64) as usize;
            let mut text = format!("INSERT INTO leads ({COLUMNS}) VALUES ");
            for r in 0..rows {
                if r > 0 {
                    text.push_str(", ");
                }
                let base = r * PER_ROW;
                let params: Vec<String> = (1..=PER_ROW).map(|i| format!("${}", base + i)).collect();
                text.push('(');
                text.push_str(&params.join(", "));
                text.push(')');
            }
            let mut q = sql(text);
            for _ in 0..rows {
                let i = n + salt * 10_000_000;
                let h = mix(i);
                let first = pick(FIRST, h);
                let last = pick(LAST, h >> 8);
                let email = format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i
                );
                let phone = format!("+1{}{:07}", 200 + (h >> 16) % 700, i % 10_000_000);
                let created =
                    start + time::Duration::seconds((n * 63_072_000 / count.max(1)) as i64);
                let fields = LeadFields {
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    email: Some(email),
                    phone: Some(phone),
                    source: pick(SOURCES, h >> 24).to_owned(),
                    custom_fields: format!(
                        "{{\"budget\":{},\"company\":\"{last} Labs\"}}",
                        1000 * ((h >> 32) % 50)
                    ),
                    ..LeadFields::default()
                };
                let id = meridian_db::new_id();
                q = q
                    .bind(owner.org_id.clone())
                    .bind(id.clone())
                    .bind(first_number + n as i64)
                    .bind(pipeline_id.clone())
                    .bind(pick(STAGES, h >> 40))
                    .bind(fields.first_name.clone())
                    .bind(fields.last_name.clone())
                    .bind(fields.email.clone())
                    .bind(fields.phone.clone())
                    .bind(pick(STATES, h >> 44))
                    .bind("US")
                    .bind(fields.source.clone())
                    .bind(if members.is_empty() || h.is_multiple_of(5) {
                        None
                    } else {
                        Some(members[(h >> 48) as usize % members.len()].clone())
                    })
                    .bind(h.is_multiple_of(50))
                    .bind(fields.custom_fields.clone())
                    .bind(search_text(&fields, &[]))
                    .bind(created)
                    .bind(created)
                    .bind(created);
                if lead_ids.len() < 100_000 {
                    lead_ids.push(id);
                }
                n += 1;
            }
            tx.execute(q).await?;
        }
        meridian_app::leads::store::index_for_search(
            &mut tx,
            batch_first,
            first_number + n as i64 - 1,
        )
        .await?;
        tx.commit().await?;
        if n.is_multiple_of(100_000) {
            eprintln!(
                "    {n} rows, {:.1} s",
                seed_started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Seeded {
        pipeline_id,
        lead_ids,
        members: members.to_vec(),
    })
}

/// `count` other organizations with `leads` leads each, in the same database as the measured one.
pub async fn seed_other_orgs(app: &TestApp, count: u32, leads: u64) -> anyhow::Result<()> {
    for o in 0..count {
        let other = app
            .create_org(&format!("Other Org {o}"), &format!("owner{o}@other.test"))
            .await;
        seed_leads(
            app,
            &other,
            leads,
            std::slice::from_ref(&other.user_id),
            u64::from(o) + 1,
        )
        .await?;
    }
    Ok(())
}

async fn analyze(app: &TestApp) -> anyhow::Result<()> {
    let statement = match app.engine {
        Engine::Sqlite => "ANALYZE",
        Engine::Postgres => "VACUUM ANALYZE",
    };
    app.admin_exec(statement).await;
    Ok(())
}

fn get_op(
    client: reqwest::Client,
    base: String,
    token: &str,
    paths: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = OpResult> + Send>>
+ Send
+ Sync
+ 'static {
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).ok();
    move |worker, n| {
        let client = client.clone();
        let path =
            paths[(mix(worker as u64 * 1_000_003 + n) % paths.len() as u64) as usize].clone();
        let url = format!("{base}{path}");
        let auth = auth.clone();
        Box::pin(async move {
            let mut request = client.get(&url);
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "{status} {path}: {}",
                    String::from_utf8_lossy(&body)
                ))
            }
        })
    }
}

pub async fn run_engine(engine: Engine, settings: &Settings) -> anyhow::Result<Report> {
    let app = meridian_tests::spawn_app(engine).await;
    let seed_started = Instant::now();
    let owner = app.create_org("Bench Leads", "owner@bench.test").await;
    let mut members = vec![owner.user_id.clone()];
    for m in 1..settings.members {
        let member = app
            .add_member(&owner, &format!("member{m}@bench.test"), "member")
            .await;
        members.push(member.user_id);
    }
    eprintln!(
        "  seeding {} leads in the benchmark organization…",
        settings.leads
    );
    let seeded = seed_leads(&app, &owner, settings.leads, &members, 0).await?;
    seed_other_orgs(&app, settings.other_orgs, settings.other_leads).await?;
    analyze(&app).await?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    eprintln!("  seeded in {seed_seconds:.0} s");

    let client = reqwest::Client::builder().build()?;
    let p = &seeded.pipeline_id;
    let sample = |n: usize, f: &dyn Fn(u64) -> String| -> Arc<Vec<String>> {
        Arc::new((0..n as u64).map(f).collect())
    };
    let lead_ids = Arc::new(seeded.lead_ids.clone());
    let members = seeded.members.clone();
    let scenarios: Vec<(&str, f64, f64, Arc<Vec<String>>)> = vec![
        (
            "list: first page, newest first",
            50.0,
            95.0,
            sample(1, &|_| format!("/api/v1/leads?pipeline_id={p}")),
        ),
        (
            "list: page 5 (keyset cursor)",
            50.0,
            95.0,
            sample(1, &|_| {
                format!("/api/v1/leads?pipeline_id={p}&limit=50&sort=-number")
            }),
        ),
        (
            "filter: stage",
            50.0,
            95.0,
            sample(16, &|i| {
                format!("/api/v1/leads?pipeline_id={p}&stage={}", pick(STAGES, i))
            }),
        ),
        (
            "filter: assignee + stage",
            50.0,
            95.0,
            sample(64, &|i| {
                format!(
                    "/api/v1/leads?pipeline_id={p}&assigned_to={}&stage={}",
                    members[(i as usize) % members.len()],
                    pick(STAGES, i >> 3)
                )
            }),
        ),
        (
            "filter: source + priority",
            50.0,
            95.0,
            sample(16, &|i| {
                format!(
                    "/api/v1/leads?pipeline_id={p}&source={}&priority=true",
                    pick(SOURCES, i)
                )
            }),
        ),
        (
            "filter: custom field (budget)",
            50.0,
            95.0,
            sample(16, &|i| {
                format!(
                    "/api/v1/leads?pipeline_id={p}&cf.budget={}",
                    1000 * (i % 50)
                )
            }),
        ),
        (
            "sort: last name",
            50.0,
            95.0,
            sample(1, &|_| {
                format!("/api/v1/leads?pipeline_id={p}&sort=last_name")
            }),
        ),
        (
            "search: name",
            50.0,
            95.0,
            sample(256, &|i| {
                format!(
                    "/api/v1/leads?q={}+{}",
                    pick(FIRST, mix(i)),
                    pick(LAST, mix(i) >> 8).chars().take(4).collect::<String>()
                )
            }),
        ),
        (
            "search: email",
            50.0,
            95.0,
            sample(256, &|i| {
                let index = i * 7919 % settings.leads.max(1);
                let h = mix(index);
                format!(
                    "/api/v1/leads?q={}.{}{index}",
                    pick(FIRST, h).to_lowercase(),
                    pick(LAST, h >> 8).to_lowercase()
                )
            }),
        ),
        (
            "search: phone (last 7 digits)",
            50.0,
            95.0,
            sample(256, &|i| {
                format!(
                    "/api/v1/leads?q={:07}",
                    (i * 7919) % settings.leads.max(1) % 10_000_000
                )
            }),
        ),
        (
            "lead detail",
            20.0,
            95.0,
            Arc::new(
                lead_ids
                    .iter()
                    .take(50_000)
                    .map(|id| format!("/api/v1/leads/{id}"))
                    .collect(),
            ),
        ),
        (
            "stats",
            200.0,
            95.0,
            sample(1, &|_| format!("/api/v1/leads/stats?pipeline_id={p}")),
        ),
    ];
    let mut rows = Vec::new();
    let one_at_a_time = ["stats"];
    for (label, target_ms, percentile, paths) in scenarios {
        let paths = if label.starts_with("list: page 5") {
            Arc::new(vec![
                page_five(&client, &app.base, &owner.access, &paths[0]).await?,
            ])
        } else {
            paths
        };
        let op = get_op(
            client.clone(),
            app.base.clone(),
            &owner.access,
            Arc::clone(&paths),
        );
        let stats = drive(settings.concurrency, settings.window, op).await;
        eprintln!(
            "  {label}: {:.0} req/s, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms{}",
            stats.rate(),
            stats.percentile_ms(50.0),
            stats.percentile_ms(95.0),
            stats.max_ms(),
            stats
                .first_error
                .as_ref()
                .map(|e| format!(", first error: {e}"))
                .unwrap_or_default()
        );
        rows.push(Row {
            label: label.to_owned(),
            target_ms,
            percentile,
            stats,
        });
        if one_at_a_time.contains(&label) {
            let op = get_op(client.clone(), app.base.clone(), &owner.access, paths);
            let stats = drive(1, settings.window, op).await;
            eprintln!(
                "  {label} (one at a time): p50 {:.1} ms, p95 {:.1} ms",
                stats.percentile_ms(50.0),
                stats.percentile_ms(95.0)
            );
            rows.push(Row {
                label: format!("{label} (one request at a time)"),
                target_ms,
                percentile,
                stats,
            });
        }
    }
    Ok(Report {
        engine,
        seed_seconds,
        rows,
    })
}

/// The URL of the fifth page of a list, following `next_cursor` like a client scrolling.
async fn page_five(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    first: &str,
) -> anyhow::Result<String> {
    let mut path = first.to_owned();
    for _ in 0..4 {
        let body: serde_json::Value = client
            .get(format!("{base}{path}"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await?
            .json()
            .await?;
        let cursor = body["next_cursor"].as_str().context("a next page")?;
        path = format!("{first}&cursor={cursor}");
    }
    Ok(path)
}

pub fn text(report: &Report, settings: &Settings) -> String {
    let mut out = format!(
        "\n{} — {} leads in the organization, {} other organizations with {} each; {} in flight (seeding took {:.0} s)\n",
        report.engine.as_str(),
        settings.leads,
        settings.other_orgs,
        settings.other_leads,
        settings.concurrency,
        report.seed_seconds
    );
    out.push_str("| scenario | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | target |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for row in &report.rows {
        let s = &row.stats;
        let measured = s.percentile_ms(row.percentile);
        let verdict = if measured < row.target_ms {
            "met"
        } else {
            "MISSED"
        };
        let name = format!("p{}", row.percentile);
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {name} < {} ms: **{verdict}** |\n",
            row.label,
            s.ok,
            s.rate(),
            s.percentile_ms(50.0),
            s.percentile_ms(95.0),
            s.percentile_ms(99.0),
            s.max_ms(),
            s.errors,
            row.target_ms
        ));
    }
    out
}
