//! The `api` benchmark: the real app over loopback against the same SQL issued straight through
//! the database layer, on one engine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use meridian_app::auth::store as auth_store;
use meridian_app::auth::tokens::hash_secret;
use meridian_app::http::pagination::{DEFAULT_LIMIT, PageRequest};
use meridian_app::orgs::store as orgs_store;
use meridian_db::{Db, Engine, Pools, Tenant};
use meridian_tests::{PASSWORD, TestApp};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::http1::Getter;
use crate::load::{OpResult, Stats, Window, drive};

/// Which parts of the benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// GET /health: the HTTP stack alone (client and server, every middleware, no database).
    Health,
    /// GET /api/v1/auth/me, app and floor.
    Me,
    /// GET /api/v1/members, app and floor.
    Members,
    /// POST /api/v1/auth/login alone, then together with the `me` load.
    Login,
    /// Not in the default set: the `me` and `members` floors with the SQL batched into as few
    /// database round trips as possible (SQLite: one joined statement, plus the list for
    /// `members`; PostgreSQL: one call of a PL/pgSQL function created in the throwaway database),
    /// to size what batching would save. Not what the app runs today.
    WhatIf,
}

/// Settings of one run (from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub login_concurrency: usize,
    pub window: Window,
    pub members: usize,
    pub hash_concurrency: usize,
    /// Serve the benchmarked app from a pool of this size instead of the harness's.
    pub db_pool: Option<u32>,
    /// Whether the pool pings each connection it hands out (sqlx's default, and the app's).
    pub ping_on_acquire: bool,
    pub scenarios: Vec<Scenario>,
}

/// One scenario's measurements, labelled for the table.
pub struct Row {
    pub label: &'static str,
    pub stats: Stats,
}

pub struct EngineReport {
    pub engine: Engine,
    pub pool_size: u32,
    pub ping_on_acquire: bool,
    pub members: usize,
    pub rows: Vec<Row>,
}

impl EngineReport {
    pub fn get(&self, label: &str) -> Option<&Stats> {
        self.rows
            .iter()
            .find(|row| row.label == label)
            .map(|row| &row.stats)
    }
}

const ME_PATH: &str = "/api/v1/auth/me";
const MEMBERS_PATH: &str = "/api/v1/members";

pub const HEALTH: &str = "GET /health  HTTP only, no DB";
pub const ME_APP: &str = "GET /auth/me  app (HTTP)";
pub const ME_FLOOR: &str = "GET /auth/me  floor (sqlx)";
pub const MEMBERS_APP: &str = "GET /members  app (HTTP)";
pub const MEMBERS_FLOOR: &str = "GET /members  floor (sqlx)";
pub const ME_BATCHED: &str = "GET /auth/me  what-if: batched SQL";
pub const MEMBERS_BATCHED: &str = "GET /members  what-if: batched SQL";
pub const LOGIN_ALONE: &str = "POST /auth/login  alone";
pub const LOGIN_MIXED: &str = "POST /auth/login  + me load";
pub const ME_MIXED: &str = "GET /auth/me  during logins";

/// The app under test: its address and the pool it serves from.
struct Server {
    base: String,
    db: Db,
    pool_size: u32,
    ping_on_acquire: bool,
    _shutdown: Option<oneshot::Sender<()>>,
}

/// Whether a pool pings every connection it hands out (sqlx's `test_before_acquire`).
fn pings_on_acquire(db: &Db) -> bool {
    match db.pools() {
        Pools::Sqlite(pool) => pool.options().get_test_before_acquire(),
        Pools::Postgres(pool) => pool.options().get_test_before_acquire(),
    }
}

/// The harness's app, or, when the pool is to differ from the harness's, a second app on the
/// same database serving from a pool of its own.
async fn server(app: &TestApp, size: Option<u32>, ping: bool) -> anyhow::Result<Server> {
    if size.is_none() && ping == pings_on_acquire(&app.db) {
        return Ok(Server {
            base: app.base.clone(),
            db: app.db.clone(),
            pool_size: app.db.size(),
            ping_on_acquire: ping,
            _shutdown: None,
        });
    }
    let size = size.unwrap_or_else(|| app.db.size());
    let db = app
        .db
        .sibling(size, ping)
        .await
        .context("connecting the benchmark pool")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = app.state.config.clone();
    config.public_url = base.clone();
    let state = meridian_app::build_state(db.clone(), config).await?;
    let router = meridian_app::router(state);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = meridian_app::serve(listener, router, async move {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Server {
        base,
        pool_size: db.size(),
        ping_on_acquire: pings_on_acquire(&db),
        db,
        _shutdown: Some(tx),
    })
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Sends one request and reads the whole body; anything but 200 is an error.
async fn send(request: reqwest::RequestBuilder) -> OpResult {
    let response = request.send().await.map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("{status}: {text}"));
    }
    Ok(())
}

/// What `GET /auth/me` runs against the database for an access token (`auth::service`'s
/// `authenticate_access_token`): one statement, outside any transaction, reading the token with its
/// principal (PostgreSQL: through `credential_access_token`, which sets the token hash itself).
async fn me_floor(db: &Db, token: &str) -> Result<Tenant, String> {
    let hash = hash_secret(token);
    let row = auth_store::find_access_token(db, &hash)
        .await
        .map_err(|e| e.to_string())?
        .filter(|row| row.expires_at > meridian_db::now())
        .ok_or("access token not found")?;
    if row.principal.role.is_empty() {
        return Err("empty role".to_owned());
    }
    Ok(Tenant::for_verified_credentials(
        &row.org_id,
        Some(row.user_id),
    ))
}

/// What `GET /members` runs: authentication as above, then the first page of members in one
/// statement (`orgs::service::list_members`; on PostgreSQL the `tenant_members` function).
async fn members_floor(db: &Db, token: &str, expected: usize) -> OpResult {
    let tenant = me_floor(db, token).await?;
    let page = PageRequest {
        limit: DEFAULT_LIMIT,
        after: None,
    };
    let rows = orgs_store::list_members(db, &tenant, &page)
        .await
        .map_err(|e| e.to_string())?;
    if rows.len() != expected.min(page.fetch_limit() as usize) {
        return Err(format!(
            "{} members listed, expected {expected}",
            rows.len()
        ));
    }
    Ok(())
}

/// `me`'s reads as one statement on SQLite: the token, membership, user and organization joined,
/// run without an explicit transaction (one statement is one snapshot).
const SQLITE_PRINCIPAL_BY_TOKEN: &str = "SELECT t.org_id, t.user_id, t.expires_at, m.role, m.disabled, \
     u.email, u.name, o.name AS org_name FROM access_tokens t \
     JOIN memberships m ON m.org_id = t.org_id AND m.user_id = t.user_id \
     JOIN users u ON u.id = m.user_id JOIN organizations o ON o.id = m.org_id \
     WHERE t.token_hash = $1";

/// The first page of members, as `orgs::store::list_members` reads it without a cursor.
const SQLITE_FIRST_MEMBERS: &str = "SELECT m.user_id, u.email, u.name, m.role, m.disabled, m.created_at, \
     lower(u.name) AS name_key FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
     ORDER BY lower(u.name), m.user_id LIMIT $2";

type PrincipalByToken = (
    String,
    String,
    time::OffsetDateTime,
    String,
    bool,
    String,
    String,
    String,
);

/// PostgreSQL functions that do what `me` and `members` do (the same row-level security settings
/// and reads, as the unprivileged app role) in one call, so one round trip each with plans cached
/// by the session. Created in the throwaway benchmark database only, by the superuser.
const PG_BATCH_FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION bench_principal(h text)
RETURNS TABLE (org_id text, user_id text, role text, disabled boolean, email text, name text, org_name text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE t_org text; t_user text;
BEGIN
    PERFORM set_config('app.token_hash', h, true);
    SELECT a.org_id, a.user_id INTO t_org, t_user FROM access_tokens a
        WHERE a.token_hash = h AND a.expires_at > now();
    PERFORM set_config('app.token_hash', '', true);
    IF t_org IS NULL THEN RETURN; END IF;
    PERFORM set_config('app.org_id', t_org, true), set_config('app.user_id', t_user, true);
    RETURN QUERY SELECT m.org_id, m.user_id, m.role, m.disabled, u.email, u.name, o.name
        FROM memberships m JOIN users u ON u.id = m.user_id JOIN organizations o ON o.id = m.org_id
        WHERE m.org_id = t_org AND m.user_id = t_user;
END $fn$;

CREATE OR REPLACE FUNCTION bench_members(h text, lim integer)
RETURNS TABLE (user_id text, email text, name text, role text, disabled boolean, created_at timestamptz,
               name_key text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE p record;
BEGIN
    SELECT * INTO p FROM bench_principal(h);
    IF p IS NULL OR p.disabled THEN RETURN; END IF;
    RETURN QUERY SELECT m.user_id, u.email, u.name, m.role, m.disabled, m.created_at, lower(u.name)
        FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.org_id = p.org_id
        ORDER BY lower(u.name), m.user_id LIMIT lim;
END $fn$;
"#;

/// Creates the what-if functions (PostgreSQL only).
async fn create_batch_functions(app: &TestApp) -> anyhow::Result<()> {
    if let meridian_tests::Admin::Postgres(admin) = &app.admin {
        sqlx::raw_sql(PG_BATCH_FUNCTIONS)
            .execute(admin)
            .await
            .context("creating the what-if functions")?;
    }
    Ok(())
}

type PgPrincipal = (String, String, String, bool, String, String, String);

/// `me` (and with `members`, the member list) in as few round trips as the engine allows, on a
/// connection acquired from the app's pool (so a pool that pings on acquire still pings).
async fn batched_floor(db: &Db, token: &str, members: Option<usize>) -> OpResult {
    let hash = hash_secret(token);
    let listed = match db.pools() {
        Pools::Sqlite(pool) => {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            let (org_id, _user_id, expires_at, role, disabled, ..): PrincipalByToken =
                sqlx::query_as(SQLITE_PRINCIPAL_BY_TOKEN)
                    .bind(&hash)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("access token not found")?;
            if expires_at <= meridian_db::now() || disabled || role.is_empty() {
                return Err("credential refused".to_owned());
            }
            match members {
                None => 0,
                Some(_) => sqlx::query_as::<_, orgs_store::MemberRow>(SQLITE_FIRST_MEMBERS)
                    .bind(&org_id)
                    .bind(DEFAULT_LIMIT + 1)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?
                    .len(),
            }
        }
        Pools::Postgres(pool) => {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            match members {
                None => {
                    let (_, _, role, disabled, ..): PgPrincipal =
                        sqlx::query_as("SELECT * FROM bench_principal($1)")
                            .bind(&hash)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or("principal not found")?;
                    if disabled || role.is_empty() {
                        return Err("credential refused".to_owned());
                    }
                    0
                }
                Some(_) => sqlx::query_as::<_, orgs_store::MemberRow>(
                    "SELECT * FROM bench_members($1, $2)",
                )
                .bind(&hash)
                .bind(i32::try_from(DEFAULT_LIMIT + 1).unwrap_or(i32::MAX))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| e.to_string())?
                .len(),
            }
        }
    };
    match members {
        Some(expected) if listed != expected.min(DEFAULT_LIMIT as usize) => {
            Err(format!("{listed} members listed, expected {expected}"))
        }
        _ => Ok(()),
    }
}

fn say(engine: Engine, what: &str) {
    eprintln!("[{}] {what}", engine.as_str());
}

/// Runs every selected scenario on one engine.
pub async fn run_engine(engine: Engine, settings: &Settings) -> anyhow::Result<EngineReport> {
    say(engine, "starting the app on a fresh database");
    let hash_concurrency = settings.hash_concurrency;
    let app = meridian_tests::spawn_app_with(engine, |config| {
        config.password_hash_concurrency = hash_concurrency;
        // One token serves every scenario; long runs must not outlive it.
        config.access_token_lifetime = Duration::from_secs(24 * 3600);
    })
    .await;
    say(
        engine,
        &format!("creating an organization with {} members", settings.members),
    );
    let owner = app.create_org("Bench Org", "owner@bench.example").await;
    let mut accounts = vec![owner.email.clone()];
    for i in 1..settings.members {
        let member = app
            .add_member(&owner, &format!("member{i:03}@bench.example"), "member")
            .await;
        accounts.push(member.email);
    }
    let server = server(&app, settings.db_pool, settings.ping_on_acquire).await?;
    let token: Arc<str> = owner.access.clone().into();
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
    // Setup and logins only: the measured GETs have connections of their own (`Getter`).
    let client = client(settings.login_concurrency)?;
    let login_url: Arc<str> = format!("{}/api/v1/auth/login", server.base).into();

    // The endpoints answer what the floor assumes before anything is timed.
    let me: serde_json::Value = client
        .get(format!("{}{ME_PATH}", server.base))
        .header(AUTHORIZATION, auth.clone())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if me["user"]["email"] != owner.email.as_str() {
        bail!("GET /auth/me answered {me}");
    }
    let members: serde_json::Value = client
        .get(format!("{}{MEMBERS_PATH}", server.base))
        .header(AUTHORIZATION, auth.clone())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let listed = members["items"].as_array().map_or(0, Vec::len);
    if listed != settings.members.min(DEFAULT_LIMIT as usize) {
        bail!(
            "GET /members listed {listed} members, expected {}",
            settings.members
        );
    }
    me_floor(&server.db, &token)
        .await
        .map_err(|e| anyhow::anyhow!("floor: {e}"))?;

    let window = settings.window;
    let conc = settings.concurrency;
    let mut rows = Vec::new();
    let bearer = format!("Bearer {token}");
    let me_getter = Getter::new(&server.base, ME_PATH, Some(&bearer), conc)?;
    let me_app = move |worker: usize, _: u64| Arc::clone(&me_getter).get(worker);

    if settings.scenarios.contains(&Scenario::Health) {
        say(engine, &format!("{HEALTH}: {conc} in flight"));
        let getter = Getter::new(&server.base, "/health", None, conc)?;
        let stats = drive(conc, window, move |worker, _| {
            Arc::clone(&getter).get(worker)
        })
        .await;
        rows.push(Row {
            label: HEALTH,
            stats,
        });
        settle().await;
    }

    if settings.scenarios.contains(&Scenario::Me) {
        say(
            engine,
            &format!("{ME_APP} and {ME_FLOOR}, in turns: {conc} in flight"),
        );
        let (db, token) = (server.db.clone(), Arc::clone(&token));
        let floor = move |_: usize, _: u64| {
            let (db, token) = (db.clone(), Arc::clone(&token));
            async move { me_floor(&db, &token).await.map(|_| ()) }
        };
        let (app, floor) = app_and_floor(conc, window, me_app.clone(), floor).await;
        rows.push(Row {
            label: ME_APP,
            stats: app,
        });
        rows.push(Row {
            label: ME_FLOOR,
            stats: floor,
        });
        settle().await;
    }

    if settings.scenarios.contains(&Scenario::Members) {
        say(
            engine,
            &format!("{MEMBERS_APP} and {MEMBERS_FLOOR}, in turns: {conc} in flight"),
        );
        let getter = Getter::new(&server.base, MEMBERS_PATH, Some(&bearer), conc)?;
        let app = move |worker: usize, _: u64| Arc::clone(&getter).get(worker);
        let (db, token, expected) = (server.db.clone(), Arc::clone(&token), settings.members);
        let floor = move |_: usize, _: u64| {
            let (db, token) = (db.clone(), Arc::clone(&token));
            async move { members_floor(&db, &token, expected).await }
        };
        let (app, floor) = app_and_floor(conc, window, app, floor).await;
        rows.push(Row {
            label: MEMBERS_APP,
            stats: app,
        });
        rows.push(Row {
            label: MEMBERS_FLOOR,
            stats: floor,
        });
        settle().await;
    }

    if settings.scenarios.contains(&Scenario::WhatIf) {
        create_batch_functions(&app).await?;
        for (label, members) in [
            (ME_BATCHED, None),
            (MEMBERS_BATCHED, Some(settings.members)),
        ] {
            say(engine, &format!("{label}: {conc} in flight"));
            let (db, token) = (server.db.clone(), Arc::clone(&token));
            let stats = drive(conc, window, move |_, _| {
                let (db, token) = (db.clone(), Arc::clone(&token));
                async move { batched_floor(&db, &token, members).await }
            })
            .await;
            rows.push(Row { label, stats });
            settle().await;
        }
    }

    if settings.scenarios.contains(&Scenario::Login) {
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            accounts
                .iter()
                .map(|email| {
                    serde_json::to_vec(&serde_json::json!({"email": email, "password": PASSWORD}))
                })
                .collect::<Result<_, _>>()?,
        );
        let login_conc = settings.login_concurrency;
        let login = {
            let (client, url) = (client.clone(), Arc::clone(&login_url));
            move |worker: usize, n: u64| {
                let (client, url, bodies) = (client.clone(), Arc::clone(&url), Arc::clone(&bodies));
                async move {
                    let index = (worker + n as usize * login_conc) % bodies.len();
                    let body = bodies[index].clone();
                    send(
                        client
                            .post(&*url)
                            .header(CONTENT_TYPE, "application/json")
                            .body(body),
                    )
                    .await
                }
            }
        };
        say(engine, &format!("{LOGIN_ALONE}: {login_conc} in flight"));
        rows.push(Row {
            label: LOGIN_ALONE,
            stats: drive(login_conc, window, login.clone()).await,
        });
        settle().await;
        say(
            engine,
            &format!("{LOGIN_MIXED}: {login_conc} logins and {conc} `me` requests in flight"),
        );
        let (logins, me) = tokio::join!(
            drive(login_conc, window, login),
            drive(conc, window, me_app)
        );
        rows.push(Row {
            label: LOGIN_MIXED,
            stats: logins,
        });
        rows.push(Row {
            label: ME_MIXED,
            stats: me,
        });
    }

    let report = EngineReport {
        engine,
        pool_size: server.pool_size,
        ping_on_acquire: server.ping_on_acquire,
        members: settings.members,
        rows,
    };
    drop(server);
    drop(app);
    // Let the server tasks see the shutdown before the next engine starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(report)
}

/// A short pause between scenarios so one's tail (closing connections, a WAL checkpoint) does
/// not land in the next one's warm-up.
/// Slices an endpoint's window is cut into for [`app_and_floor`].
const SLICES: u32 = 6;
/// Unrecorded ramp-up of every slice after the first (connections are warm by then).
const SLICE_WARMUP: Duration = Duration::from_millis(200);

/// Measures an endpoint and its floor in turns, slice by slice (app, floor, floor, app, app,
/// floor), so both are measured on the same machine. On this 2-core VM the same binary's
/// throughput moves by up to a third between runs minutes apart; measured one whole window
/// after the other, such a swing between the two windows moved the app/floor ratio by as much.
async fn app_and_floor<A, AppFut, F, FloorFut>(
    concurrency: usize,
    window: Window,
    app: A,
    floor: F,
) -> (Stats, Stats)
where
    A: Fn(usize, u64) -> AppFut + Clone + Send + Sync + 'static,
    AppFut: Future<Output = OpResult> + Send + 'static,
    F: Fn(usize, u64) -> FloorFut + Clone + Send + Sync + 'static,
    FloorFut: Future<Output = OpResult> + Send + 'static,
{
    let (mut apps, mut floors) = (Vec::new(), Vec::new());
    for slice in 0..SLICES {
        let slice_window = Window {
            warmup: if slice == 0 {
                window.warmup
            } else {
                SLICE_WARMUP
            },
            duration: window.duration / SLICES,
        };
        if slice % 2 == 0 {
            apps.push(drive(concurrency, slice_window, app.clone()).await);
            floors.push(drive(concurrency, slice_window, floor.clone()).await);
        } else {
            floors.push(drive(concurrency, slice_window, floor.clone()).await);
            apps.push(drive(concurrency, slice_window, app.clone()).await);
        }
    }
    (Stats::merge(apps), Stats::merge(floors))
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
