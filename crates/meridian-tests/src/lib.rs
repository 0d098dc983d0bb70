//! The test harness: every integration test starts the real app on port 0 against a fresh
//! database (a SQLite file, or a fresh database on the throwaway PostgreSQL cluster) and drives it
//! over HTTP.

pub mod pg;
pub mod smtp;

use std::net::SocketAddr;

use meridian_app::{AppConfig, AppState};
pub use meridian_db::Engine;
use meridian_db::{ConnectOptions, Db, Migrator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Generates a `sqlite` and a `postgres` test for each named `async fn(Engine)`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Engine::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Engine::Postgres).await
                }
            }
        )*
    };
}

/// A superuser view of the test database, for arranging state (expiring a session) and for
/// checks that must see past row-level security (dumps).
pub enum Admin {
    Sqlite(Db),
    Postgres(sqlx::PgPool),
}

pub struct TestApp {
    pub engine: Engine,
    pub base: String,
    pub addr: SocketAddr,
    pub state: AppState,
    pub db: Db,
    pub admin: Admin,
    /// PostgreSQL URLs of the test database (owner, app), for catalog checks.
    pub pg: Option<pg::TestDatabase>,
    /// Where the default transport writes `.eml` files.
    pub mail_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// A job runner with every feature's handlers (what `serve` runs in-process), on short intervals
/// so tests take milliseconds. Stopped gracefully by [`Worker::stop`], or aborted when dropped.
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<meridian_app::jobs::runner::RunnerReport>>,
}

impl Worker {
    pub async fn stop(mut self) -> meridian_app::jobs::runner::RunnerReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self.handle.take().expect("a running worker");
        tokio::time::timeout(std::time::Duration::from_secs(15), handle)
            .await
            .expect("the worker stopped in time")
            .expect("the worker did not panic")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Runner settings for tests: quick polls and backoff in milliseconds.
pub fn fast_runner() -> meridian_app::jobs::RunnerConfig {
    use std::time::Duration;
    meridian_app::jobs::RunnerConfig {
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        job_timeout: Duration::from_secs(10),
        rescue_after: Duration::from_secs(20),
        heartbeat_interval: Duration::from_millis(100),
        rescue_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(500),
        backoff: meridian_app::jobs::Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, |_| {}).await
}

/// Opens a fresh, migrated database on `engine` (its pool connects as the unprivileged app role
/// on PostgreSQL).
pub async fn fresh_db(
    engine: Engine,
) -> (
    Db,
    Admin,
    Option<pg::TestDatabase>,
    Option<tempfile::TempDir>,
) {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("meridian.db").display());
            let db = Db::connect(&ConnectOptions {
                url,
                max_connections: 8,
            })
            .await
            .expect("sqlite");
            Migrator::run(&db, None).await.expect("migrate sqlite");
            (db.clone(), Admin::Sqlite(db), None, Some(dir))
        }
        Engine::Postgres => {
            let database = pg::cluster()
                .fresh_database()
                .await
                .expect("fresh postgres database");
            let owner = Db::connect(&ConnectOptions {
                url: database.owner_url.clone(),
                max_connections: 1,
            })
            .await
            .expect("owner connection");
            Migrator::run(&owner, Some(pg::APP_ROLE))
                .await
                .expect("migrate postgres");
            owner.close().await;
            let db = Db::connect(&ConnectOptions {
                url: database.app_url.clone(),
                max_connections: 8,
            })
            .await
            .expect("app connection");
            let admin = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&database.admin_url)
                .await
                .expect("admin connection");
            (db, Admin::Postgres(admin), Some(database), None)
        }
    }
}

/// Set `MERIDIAN_TEST_LOG=debug` (any filter) to see the app's logs in test output.
fn init_test_logging() {
    if let Ok(filter) = std::env::var("MERIDIAN_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

pub async fn spawn_app_with(engine: Engine, configure: impl FnOnce(&mut AppConfig)) -> TestApp {
    init_test_logging();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let (db, admin, pg, dir) = fresh_db(engine).await;
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let mut config = AppConfig {
        public_url: base.clone(),
        email: meridian_app::config::EmailConfig {
            transport: meridian_app::config::ServerTransport::Files(mail_dir.path().to_path_buf()),
            ..meridian_app::config::EmailConfig::default()
        },
        // Tests simulate clients at different addresses with X-Forwarded-For.
        trust_proxy_headers: true,
        password_hash_concurrency: 2,
        ..AppConfig::default()
    };
    configure(&mut config);
    let state = meridian_app::build_state(db.clone(), config)
        .await
        .expect("state");
    let router = meridian_app::router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let closing = state.clone();
    tokio::spawn(async move {
        let _ = meridian_app::serve(listener, router, async move {
            let _ = rx.await;
            closing.close_streams();
        })
        .await;
    });
    TestApp {
        engine,
        base,
        addr,
        state,
        db,
        admin,
        pg,
        mail_dir,
        shutdown: Some(tx),
        _dir: dir,
    }
}

impl TestApp {
    /// The URL another process (a `meridian worker`) uses to reach this app's database: the
    /// SQLite file, or the PostgreSQL database as the unprivileged app role.
    pub fn database_url(&self) -> String {
        match (&self.pg, &self._dir) {
            (Some(pg), _) => pg.app_url.clone(),
            (None, Some(dir)) => format!("sqlite://{}", dir.path().join("meridian.db").display()),
            (None, None) => unreachable!("a SQLite test database lives in a temporary directory"),
        }
    }

    /// A browser signed in as `email` (with the shared test password).
    pub async fn signed_in(&self, email: &str) -> reqwest::Client {
        let client = browser();
        let login = self.web_login(&client, email, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::SEE_OTHER, "{email} signs in");
        client
    }

    /// POSTs `body` to `path` as `who`, expects 201, and returns the new resource's id.
    pub async fn created(&self, who: &Tokens, path: &str, body: Value) -> String {
        let reply = self.post(path, &who.access, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.body);
        reply.body["id"].as_str().expect("id").to_owned()
    }

    /// Starts a job runner with every feature's handlers on this app's database and settings.
    pub fn start_worker(&self) -> Worker {
        let registry = meridian_app::jobs::registry(&self.state.config);
        let runner = meridian_app::jobs::Runner::new(self.db.clone(), registry, fast_runner());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(runner.run(async move {
            let _ = stopped.await;
        }));
        Worker {
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

/// A signed-in API client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub org_id: String,
    pub email: String,
    pub password: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client that keeps cookies, like a browser, and does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a JSON request with an optional bearer token.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = http().request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    /// Every page of a cursor-paginated list, following `next_cursor` from `path` (which may
    /// carry its own query): the body of each page, in order. Fails on any status but 200.
    pub async fn pages(&self, path: &str, token: &str) -> Vec<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut pages = Vec::new();
        let mut url = path.to_owned();
        loop {
            let page = self.get(&url, token).await;
            assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.body);
            let next = page.body["next_cursor"].as_str().map(str::to_owned);
            pages.push(page.body);
            match next {
                Some(cursor) => url = format!("{path}{separator}cursor={cursor}"),
                None => return pages,
            }
        }
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, Some(token), None).await
    }

    /// Fetches a page with `client` (a browser-like client holding a session cookie): the status
    /// and the HTML.
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> (StatusCode, String) {
        let response = client.get(self.url(path)).send().await.expect("page");
        let status = response.status();
        (status, response.text().await.expect("html"))
    }

    /// Posts a form with `client`: the status, the redirect target (empty when none) and the body.
    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let response = client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("post");
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, location, response.text().await.expect("body"))
    }

    /// Signs `client` in through the web login form (its cookie store keeps the session).
    pub async fn web_login(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        client
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .expect("login form")
    }

    /// Presents a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        let body = json!({"refresh_token": refresh_token});
        self.call("POST", "/api/v1/auth/refresh", None, Some(body))
            .await
    }

    /// Creates an organization with its owner through the service, then signs the owner in.
    pub async fn create_org(&self, org_name: &str, email: &str) -> Tokens {
        self.create_org_from(org_name, email, "marketing").await
    }

    /// Like [`TestApp::create_org`], starting from an organization template (`surrogacy`).
    pub async fn create_org_from(&self, org_name: &str, email: &str, template: &str) -> Tokens {
        meridian_app::orgs::service::create_organization(
            &self.db,
            &self.state.hasher,
            meridian_app::orgs::service::NewOrganization {
                org_name: org_name.to_owned(),
                name: format!("Owner of {org_name}"),
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
                template: template.to_owned(),
            },
            None,
            &Default::default(),
        )
        .await
        .expect("create organization");
        self.login(email, PASSWORD).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        let reply = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login failed: {}", reply.body);
        tokens_from(&reply.body, email, password)
    }

    /// Invites `email` with `role` as `inviter` and accepts the invite; returns the new member's tokens.
    pub async fn add_member(&self, inviter: &Tokens, email: &str, role: &str) -> Tokens {
        self.add_named_member(inviter, email, &format!("Member {email}"), role)
            .await
    }

    /// Like [`TestApp::add_member`], with the name the member signs up with.
    pub async fn add_named_member(
        &self,
        inviter: &Tokens,
        email: &str,
        name: &str,
        role: &str,
    ) -> Tokens {
        let invite = self
            .post(
                "/api/v1/invites",
                &inviter.access,
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(
            invite.status,
            StatusCode::CREATED,
            "invite failed: {}",
            invite.body
        );
        let token = invite_token(&invite.body);
        let accepted = self
            .call(
                "POST",
                "/api/v1/auth/accept-invite",
                None,
                Some(json!({"token": token, "name": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(
            accepted.status,
            StatusCode::OK,
            "accept failed: {}",
            accepted.body
        );
        tokens_from(&accepted.body, email, PASSWORD)
    }

    /// Runs a statement as the superuser (past row-level security).
    pub async fn admin_exec(&self, statement: &str) {
        match &self.admin {
            Admin::Sqlite(db) => {
                let mut tx = db.global().await.expect("tx");
                tx.execute(meridian_db::sql(statement))
                    .await
                    .expect("admin statement");
                tx.commit().await.expect("commit");
            }
            Admin::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                    .execute(pool)
                    .await
                    .expect("admin statement");
            }
        }
    }

    /// Every row of every table as text, as a database dump would hold it.
    pub async fn dump_text(&self) -> String {
        match &self.admin {
            Admin::Sqlite(_) => {
                // The file itself, including the WAL, is what a backup copies.
                let dir = self._dir.as_ref().expect("sqlite dir");
                let mut text = String::new();
                for entry in std::fs::read_dir(dir.path()).expect("dir") {
                    let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
                text
            }
            Admin::Postgres(pool) => {
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(pool)
                .await
                .expect("tables");
                let mut text = String::new();
                for (table,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM {table} t"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("rows");
                    for (row,) in rows {
                        text.push_str(&row);
                        text.push('\n');
                    }
                }
                text
            }
        }
    }
}

pub fn tokens_from(body: &Value, email: &str, password: &str) -> Tokens {
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
        user_id: body["user"]["id"].as_str().expect("user.id").to_owned(),
        org_id: body["org"]["id"].as_str().expect("org.id").to_owned(),
        email: email.to_owned(),
        password: password.to_owned(),
    }
}

/// The token inside an invite's `accept_url`.
pub fn invite_token(invite: &Value) -> String {
    let url = invite["accept_url"].as_str().expect("accept_url");
    url.split("token=").nth(1).expect("token in url").to_owned()
}

/// Reads a form page's CSRF token (the hidden `csrf_token` field).
pub fn csrf_from_html(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .expect("csrf value")
        .to_owned()
}
