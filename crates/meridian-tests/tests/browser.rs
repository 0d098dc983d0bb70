//! End-to-end in a real browser: headless Chromium driven through chromedriver (WebDriver) with
//! fantoccini, against the real app. Covers first-run setup, sign out and in, inviting a member
//! and accepting in a second browser, changing a role with the auto-submitting select, creating an
//! API key, the dark-mode toggle and the audit log; and saves screenshots of every main page in
//! both themes at desktop and phone widths to `test-artifacts/screenshots/`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`; without them the test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use meridian_tests::{Engine, PASSWORD, spawn_app};
use serde_json::{Value, json};
use tokio::net::TcpStream;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str = "browser tests need Chromium and chromedriver: \
     install the Debian packages with `apt-get install -y chromium chromium-driver`";
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
const ORG: &str = "Northwind Growth";
/// How long an import may take to run once committed.
const IMPORT_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_journey_sqlite() {
    journey(Engine::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_journey_postgres() {
    journey(Engine::Postgres, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_journey_sqlite() {
    crm_journey(Engine::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_journey_postgres() {
    crm_journey(Engine::Postgres, false).await;
}

/// chromedriver as a child in its own process group. Dropping it (also when the test panics)
/// kills every process of that group, so no chromedriver or Chromium outlives the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            let found = Path::new(binary).exists();
            assert!(found, "{binary} is missing; {INSTALL_HINT}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER} failed ({e}); {INSTALL_HINT}"));
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start ({status}); {INSTALL_HINT}");
            }
            assert!(Instant::now() < deadline, "chromedriver not up in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A new browser with its own fresh profile (user-data-dir), pointed at the app at `base`.
    async fn session(&self, base: &str, shots: Option<&Path>) -> Session {
        let profile = tempfile::tempdir().expect("temp dir for the Chromium profile");
        let options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", format!("--user-data-dir={}", profile.path().display()),
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            ],
        });
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let c = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session with headless Chromium");
        let (base, shots) = (base.to_owned(), shots.map(Path::to_owned));
        let session = Session {
            c,
            base,
            shots,
            _profile: profile,
        };
        session.resize(DESKTOP.0, DESKTOP.1).await;
        session
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver and the browsers it started, each by its own (positive) pid: a negative
        // pid for the group is unsafe here, as procps-ng 4.0.2 `kill -9 -PGID` signals -1.
        let pids = group_members(self.child.id());
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes in process group `group`, read from /proc.
fn group_members(group: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let ours = std::process::id();
    let member = |entry: std::fs::DirEntry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // After the command name in parentheses: state, ppid, pgrp, …
        let (_, fields) = stat.rsplit_once(')')?;
        let pgrp: u32 = fields.split_whitespace().nth(2)?.parse().ok()?;
        (pgrp == group && pid > 1 && pid != ours).then(|| pid.to_string())
    };
    entries.flatten().filter_map(member).collect()
}

/// One browser; `shots` is where screenshots go (none: skip them).
struct Session {
    c: Client,
    base: String,
    shots: Option<PathBuf>,
    _profile: tempfile::TempDir,
}

impl Session {
    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.c.goto(&url).await.expect("navigate");
    }

    /// Waits (up to 15 s) for an element matching `css`.
    async fn css(&self, css: &str) -> Element {
        self.wait_for(Locator::Css(css), css).await
    }

    async fn wait_for(&self, locator: Locator<'_>, what: &str) -> Element {
        let wait = self.c.wait().at_most(WAIT).every(POLL);
        let found = wait.for_element(locator).await;
        found.unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
    }

    /// Waits for an element with attribute `attr` whose text contains `text`.
    async fn wait_text(&self, attr: &str, text: &str) -> Element {
        let xpath = format!("//*[@{attr}][contains(., '{text}')]");
        self.wait_for(Locator::XPath(&xpath), &xpath).await
    }

    async fn text(&self, css: &str) -> String {
        self.css(css).await.text().await.expect("element text")
    }

    async fn value(&self, css: &str) -> String {
        let el = self.css(css).await;
        el.prop("value").await.expect("value").unwrap_or_default()
    }

    async fn fill(&self, css: &str, value: &str) {
        let input = self.css(css).await;
        input.clear().await.expect("clear input");
        input.send_keys(value).await.expect("type into input");
    }

    async fn click(&self, css: &str) {
        self.css(css).await.click().await.expect("click");
    }

    async fn select(&self, css: &str, value: &str) {
        let select = self.css(css).await;
        select.select_by_value(value).await.expect("option");
    }

    /// Clicks the submit button of the form posting to `action`.
    async fn submit(&self, action: &str) {
        let button = format!("form[action='{action}'] button[type=submit]");
        self.click(&button).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.expect("run script")
    }

    async fn theme(&self) -> Value {
        let script = "return document.documentElement.getAttribute('data-theme');";
        self.js(script).await
    }

    /// Saves `<name>-<theme>-<width>.png` of `path` in light and dark at desktop and phone
    /// widths, waiting for `ready` each time; then back to no theme cookie at desktop width.
    async fn shoot(&self, name: &str, path: &str, ready: &str) {
        self.shoot_at(name, path, ready, false).await;
    }

    /// As [`Session::shoot`], scrolled the way a link to `#<ready's id>` scrolls: `ready` at the
    /// top of the viewport (a same-page fragment would not reload the page for the next theme).
    async fn shoot_section(&self, name: &str, path: &str, ready: &str) {
        self.shoot_at(name, path, ready, true).await;
    }

    async fn shoot_at(&self, name: &str, path: &str, ready: &str, scroll: bool) {
        let Some(dir) = &self.shots else { return };
        for theme in ["light", "dark"] {
            let cookie = format!("document.cookie = 'theme={theme}; path=/; samesite=lax';");
            self.js(&cookie).await;
            for (width, height) in [DESKTOP, PHONE] {
                self.resize(width, height).await;
                self.goto(path).await;
                let section = self.css(ready).await;
                if scroll {
                    let script = "arguments[0].scrollIntoView({block: 'start'});";
                    let target = serde_json::to_value(&section).expect("element reference");
                    self.c.execute(script, vec![target]).await.expect("scroll");
                }
                assert_eq!(self.theme().await, json!(theme), "{path}: {theme} theme");
                let png = self.c.screenshot().await.expect("screenshot");
                let file = dir.join(format!("{name}-{theme}-{width}.png"));
                std::fs::write(&file, png).expect("write screenshot");
            }
        }
        self.forget_theme().await;
        self.resize(DESKTOP.0, DESKTOP.1).await;
    }

    async fn forget_theme(&self) {
        self.c.delete_cookie("theme").await.expect("theme");
    }

    /// Sizes the window so that the viewport is `width` × `height` (the window frame adds a
    /// height that shows only once a size applied, so this repeats until the viewport fits).
    async fn resize(&self, width: u32, height: u32) {
        let script = "return [innerWidth, innerHeight, outerHeight - innerHeight];";
        let deadline = Instant::now() + WAIT;
        let mut frame = 0;
        loop {
            let size = (width, height + frame);
            self.c
                .set_window_size(size.0, size.1)
                .await
                .expect("resize");
            let now = self.js(script).await;
            if now[0] == json!(width) && now[1] == json!(height) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "viewport {width}x{height}: {now}"
            );
            frame = now[2].as_u64().expect("window frame height") as u32;
            tokio::time::sleep(POLL).await;
        }
    }

    async fn close(self) {
        self.c.close().await.expect("end the browser session");
    }
}

/// `<workspace root>/test-artifacts/screenshots`, created.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("test-artifacts/screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir.canonicalize().expect("screenshot directory")
}

async fn journey(engine: Engine, screenshots: bool) {
    let started = Instant::now();
    let driver = Driver::start().await;
    let app = spawn_app(engine).await;
    let dir = screenshots.then(screenshot_dir);
    let owner = driver.session(&app.base, dir.as_deref()).await;

    // First-run setup.
    let token = meridian_app::orgs::service::prepare_setup(&app.db)
        .await
        .expect("prepare setup")
        .expect("a fresh install needs setup");
    let setup = format!("/setup?token={token}");
    owner.goto(&setup).await;
    owner.shoot("setup", &setup, "#org_name").await;
    owner.fill("#org_name", ORG).await;
    owner.fill("#name", "Alex Morgan").await;
    owner.fill("#email", "alex@northwind.test").await;
    owner.fill("#password", PASSWORD).await;
    owner.submit("/setup").await;
    owner.css(".hero-title").await;
    assert_eq!(owner.text(".sidebar .org-name").await, ORG);
    let hero = owner.text(".hero").await;
    assert!(hero.contains(ORG), "home mentions the organization: {hero}");
    owner.wait_text("data-toast", "Welcome to Meridian").await;

    // Sign out with the sidebar button, then back in through /login.
    owner
        .click(".sidebar-user button[aria-label='Sign out']")
        .await;
    owner.css("form[action='/login']").await;
    owner.wait_text("role", "signed out").await;
    owner.shoot("login", "/login", "#password").await;
    owner.fill("#email", "alex@northwind.test").await;
    owner.fill("#password", PASSWORD).await;
    owner.submit("/login").await;
    owner.css(".hero-title").await;
    assert!(owner.text(".who-name").await.contains("Alex Morgan"));

    // Settings → Members: invite a member and read the one-time link.
    owner.click("a.nav-item[href='/settings/members']").await;
    owner.fill("#invite-email", "sam@northwind.test").await;
    owner.select("#invite-role", "member").await;
    owner.submit("/settings/members/invite").await;
    let link = owner.value("#invite-link").await;
    assert!(link.starts_with(&app.url("/invite?token=")), "{link}");
    owner
        .wait_text("data-toast", "Invitation created for sam@")
        .await;

    // A second browser, with its own profile, accepts the invitation.
    let member = driver.session(&app.base, dir.as_deref()).await;
    let invite = link.trim_start_matches(&app.base).to_owned();
    member.goto(&invite).await;
    member.shoot("invite-accept", &invite, "#name").await;
    let card = member.text(".auth-card").await;
    assert!(card.contains(&format!("Join {ORG}")), "{card}");
    assert!(card.contains("sam@northwind.test"), "{card}");
    member.fill("#name", "Sam Rivera").await;
    member.fill("#password", PASSWORD).await;
    member.submit("/invite").await;
    member.css(".hero-title").await;
    let who = member.text(".sidebar-user").await;
    assert!(
        who.contains("Sam Rivera") && who.contains("Member"),
        "{who}"
    );
    assert_eq!(member.text(".sidebar .org-name").await, ORG);
    member.close().await;

    // Back as the owner: the role select submits its form on change.
    owner.goto("/settings/members").await;
    const ROLE: &str = "form.role-form select[data-autosubmit]";
    assert_eq!(owner.value(ROLE).await, "member");
    // JS marks the no-JS Save button hidden. (It still shows: `.btn { display: inline-flex }`
    // beats the `hidden` attribute, as app.css has no `[hidden] { display: none !important }`.)
    let save = owner.css("form.role-form [data-autosubmit-button]").await;
    assert!(save.attr("hidden").await.expect("hidden").is_some());
    owner.select(ROLE, "manager").await;
    owner.wait_text("data-toast", "Role changed").await;
    assert_eq!(
        owner.value(ROLE).await,
        "manager",
        "the table shows the new role"
    );

    // Settings → API keys: create one and see its secret once.
    owner.click("a.nav-item[href='/settings/api-keys']").await;
    owner.fill("#key-name", "CI export").await;
    owner.submit("/settings/api-keys").await;
    let secret = owner.value("#new-secret").await;
    assert!(secret.starts_with("mrd_sk_"), "secret shown: {secret}");
    let keys = owner.text("table.table tbody").await;
    assert!(keys.contains("CI export"), "the key is listed: {keys}");

    // Dark mode from the top bar, kept across a reload by the cookie.
    owner.forget_theme().await;
    owner.goto("/").await;
    assert_eq!(owner.theme().await, Value::Null, "no theme chosen yet");
    owner.click(".topbar button[data-theme-toggle]").await;
    assert_eq!(owner.theme().await, json!("dark"), "toggled at once");
    owner.c.refresh().await.expect("reload");
    owner.css(".hero-title").await;
    assert_eq!(owner.theme().await, json!("dark"), "kept after a reload");
    owner.click(".topbar button[data-theme-toggle]").await;
    assert_eq!(owner.theme().await, json!("light"), "and switches back");
    owner.forget_theme().await;

    // The audit log records the invitation, the role change and the key.
    owner.click("a.nav-item[href='/settings/audit-log']").await;
    owner.css("#action-filter").await;
    let log = owner.text("table.table tbody").await;
    for action in ["invite.created", "member.role_changed", "api_key.created"] {
        assert!(log.contains(action), "audit log lists {action}: {log}");
    }

    // Some background work for the Operations page: jobs that ran, one waiting, one dead.
    seed_jobs(&app.db).await;
    owner.click("a.nav-item[href='/settings/operations']").await;
    let failures = owner.text("table.ops-failures tbody").await;
    assert!(failures.contains("email.send"), "{failures}");

    // Screenshots of the signed-in pages.
    let pages = [
        ("home", "/", ".hero-title"),
        ("operations", "/settings/operations", ".ops-stats"),
        ("organization", "/settings/organization", ".facts"),
        ("members", "/settings/members", "form.role-form"),
        ("api-keys", "/settings/api-keys", "table.table"),
        ("audit-log", "/settings/audit-log", "table.table"),
        ("account", "/settings/account", "#new_password"),
        ("api-docs", "/api/docs", ".docs-main .op"),
    ];
    for (name, path, ready) in pages {
        owner.shoot(name, path, ready).await;
    }
    owner
        .shoot_section(
            "operations-failures",
            "/settings/operations",
            "#failures-title",
        )
        .await;
    owner.close().await;
    drop(driver);
    eprintln!("browser journey on {engine:?}: {:.1?}", started.elapsed());
}

/// Jobs of the (only) organization: three that succeeded, one waiting and one that failed for
/// good, written through the queue's store as a worker would.
async fn seed_jobs(db: &meridian_db::Db) {
    use meridian_db::jobs::{self as store, Backoff, Failure, NewJob};

    let mut tx = db.global_read().await.expect("tx");
    let (org_id,): (String,) = tx
        .fetch_one(meridian_db::sql(
            "SELECT id FROM organizations ORDER BY id LIMIT 1",
        ))
        .await
        .expect("the organization");
    tx.commit().await.expect("commit");
    let tenant = meridian_db::Tenant::for_verified_credentials(org_id, None);
    let enqueue = |kind: &'static str| {
        let tenant = tenant.clone();
        async move {
            let mut tx = db.tenant(&tenant).await.expect("tx");
            meridian_app::jobs::enqueue_for_tenant(&mut tx, NewJob::new(kind, "{}"))
                .await
                .expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    for kind in [
        "email.send",
        "webhook.deliver",
        "webhook.deliver",
        "email.send",
    ] {
        enqueue(kind).await;
    }
    let claimed = store::claim(db, "browser-test", 10).await.expect("claim");
    for (n, job) in claimed.iter().enumerate() {
        if n == 0 {
            store::fail(
                db,
                job,
                "browser-test",
                "SMTP said 550 5.1.1 <ann.lee@example.com>: mailbox unavailable",
                Failure::Permanent,
                &Backoff::default(),
            )
            .await
            .expect("fail");
        } else {
            store::complete(db, job, "browser-test")
                .await
                .expect("complete");
        }
    }
    enqueue("automation.run").await;
}

/// Writes a template in the editor (its live preview follows the typing), picks it on the case's
/// Emails tab (the form fills in), previews it for the case, sends it, and waits for the worker to
/// deliver it; returns the template's and the message's ids.
async fn email_the_case(owner: &Session, lead_id: &str) -> (String, String) {
    owner.goto("/email/templates").await;
    owner.css(".empty").await;
    owner.click(".empty a[href='/email/templates/new']").await;
    owner.fill("#tpl-name", "Welcome pack").await;
    owner.select("#tpl-category", "transactional").await;
    owner
        .fill(
            "#tpl-subject",
            "Welcome to {{org.name}}, {{lead.first_name}}",
        )
        .await;
    owner
        .fill(
            "#tpl-html",
            "<h2 style=\"color:#0f766e\">Hi {{lead.first_name}},</h2>\n\
             <p>Thank you for reaching out. {{sender.name}} will call you this week to walk you \
             through the next steps.</p>\n<p>Warm regards,<br>{{org.name}}</p>",
        )
        .await;
    owner
        .wait_text(
            "data-preview-subject",
            "Welcome to Northwind Growth Partners",
        )
        .await;
    owner.css(".email-frame:not([hidden])").await;
    owner.click("button[name=intent][value=save]").await;
    owner.wait_text("data-toast", "Template created").await;
    let link = owner
        .css("table a.lead-link[href^='/email/templates/']")
        .await;
    let href = link.attr("href").await.expect("href").expect("a link");
    let template_id = href.trim_start_matches("/email/templates/").to_owned();

    // On the case's page, choosing the template fills the form with its text.
    owner.goto(&format!("/leads/{lead_id}?tab=emails")).await;
    owner.select("#compose-template", &template_id).await;
    let filled = "return document.querySelector('#compose-subject').value;";
    let deadline = Instant::now() + WAIT;
    while owner.js(filled).await == json!("") {
        assert!(
            Instant::now() < deadline,
            "the template never filled the form"
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        owner.js(filled).await,
        json!("Welcome to {{org.name}}, {{lead.first_name}}")
    );
    owner.wait_text("data-preview-subject", "Valentina").await;

    // Preview (a server round trip), then send.
    owner.click("button[name=intent][value=preview]").await;
    // The form posts to the lead's action route, which answers with the page and the preview.
    let deadline = Instant::now() + WAIT;
    while !owner
        .c
        .current_url()
        .await
        .expect("url")
        .path()
        .ends_with("/action")
    {
        assert!(Instant::now() < deadline, "the preview did not come back");
        tokio::time::sleep(POLL).await;
    }
    owner
        .wait_text(
            "data-preview-subject",
            "Welcome to Northwind Growth Partners",
        )
        .await;
    let subject = owner.text("[data-preview-subject]").await;
    assert!(subject.ends_with(", Valentina"), "{subject}");
    owner.click("button[name=intent][value=send]").await;
    owner
        .wait_text("data-toast", "Email queued to valentina.okafor@example.com")
        .await;
    let row = owner.text("table.email-log tbody").await;
    assert!(row.contains("Queued") || row.contains("Sent"), "{row}");
    let link = owner.css("table.email-log a.lead-link").await;
    let href = link.attr("href").await.expect("href").expect("a link");
    let message_id = href.trim_start_matches("/email/outbox/").to_owned();

    // The outbox shows it sent once the worker delivered it.
    let deadline = Instant::now() + WAIT;
    loop {
        owner.goto("/email/outbox").await;
        let status = owner.text("table.email-log tbody .badge").await;
        if status == "Sent" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the email was not sent: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = owner.text("table.email-log tbody").await;
    assert!(row.contains("valentina.okafor@example.com"), "{row}");
    (template_id, message_id)
}

/// The gallery's follow-up automation, used (it is created turned off, and opens in the editor),
/// then turned on with the list's switch, which flips in place. Also checks that the editor shows
/// the fields of the chosen trigger as it is chosen. Returns the automation's id.
async fn use_gallery_automation(owner: &Session) -> String {
    owner.goto("/automations/new").await;
    let from = owner.css("#auto-from").await;
    assert!(
        !from.is_displayed().await.expect("displayed"),
        "no stage fields for a new lead"
    );
    let update = owner.css("[data-toggle-refresh]").await;
    assert!(
        !update.is_displayed().await.expect("displayed"),
        "no Update buttons with a script"
    );
    owner.select("#auto-trigger", "stage_changed").await;
    assert!(
        from.is_displayed().await.expect("displayed"),
        "stage fields once chosen"
    );

    owner.goto("/automations").await;
    owner.css(".auto-gallery").await;
    owner
        .submit("/automations/gallery/follow_up_after_contacted")
        .await;
    owner
        .wait_text("data-toast", "Created from the gallery")
        .await;
    let url = owner.c.current_url().await.expect("url");
    let id = url.path().trim_start_matches("/automations/").to_owned();
    let enabled = owner.css("input[name=enabled]").await;
    assert!(
        !enabled.is_selected().await.expect("checked"),
        "created off"
    );
    let summary = owner.text("#step-0").await;
    assert!(summary.contains("Create a task"), "{summary}");

    owner.goto("/automations").await;
    let switch = format!("form[action='/automations/{id}/toggle'] [role=switch]");
    let row = owner.text(&format!("tr[data-automation='{id}']")).await;
    assert!(row.contains("moves to Contacted"), "{row}");
    assert_eq!(
        owner
            .css(&switch)
            .await
            .attr("aria-checked")
            .await
            .expect("attr")
            .as_deref(),
        Some("false")
    );
    owner.click(&switch).await;
    owner.css(&format!("{switch}[aria-checked='true']")).await;
    let url = owner.c.current_url().await.expect("url");
    assert_eq!(url.path(), "/automations", "switched in place");
    owner.c.refresh().await.expect("reload");
    owner.css(&format!("{switch}[aria-checked='true']")).await;
    id
}

/// Waits for the automation's run (started by the drag to Contacted) to succeed in its history,
/// then opens it: the task step succeeded. Returns the run's id.
async fn automation_ran(owner: &Session, automation: &str) -> String {
    let history = format!("/automations/{automation}/runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        owner.goto(&history).await;
        owner.css(".views-row").await;
        let done = owner
            .js("return !!document.querySelector('table.auto-runs .badge-success');")
            .await;
        if done == json!(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the automation's run did not succeed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = owner.text("table.auto-runs tbody").await;
    assert!(row.contains("Valentina Okafor"), "{row}");
    owner
        .click("table.auto-runs tbody a[href^='/automation-runs/']")
        .await;
    let steps = owner.text("table.auto-step-log tbody").await;
    assert!(
        steps.contains("Create a task") && steps.contains("Succeeded"),
        "{steps}"
    );
    let event = owner.text("#event-title + .facts").await;
    assert!(event.contains("Contacted"), "{event}");
    let url = owner.c.current_url().await.expect("url");
    url.path()
        .trim_start_matches("/automation-runs/")
        .to_owned()
}

/// Two more automations (turned off) for the screenshots: one with a step of most kinds, one with
/// an if/else branch (edited as JSON). Returns their ids.
async fn more_automations(
    app: &meridian_tests::TestApp,
    token: &str,
    pipeline_id: &str,
    template_id: &str,
) -> (String, String) {
    let steps = json!({"name": "New case intake", "enabled": false, "definition": {
        "trigger": {"type": "lead_created", "pipeline_id": pipeline_id},
        "conditions": {"match": "all", "rules": [
            {"field": "email", "op": "is_not_empty"},
            {"field": "state", "op": "in", "value": ["Arizona", "Nevada"]}]},
        "actions": [
            {"type": "send_email", "template_id": template_id},
            {"type": "assign", "assignee": {"to": "round_robin", "role": "intake"}},
            {"type": "wait", "minutes": 2880},
            {"type": "create_task", "title": "Call to check in", "task_type": "call",
             "due_in_minutes": 1440, "assignee": {"to": "owner"}},
            {"type": "notify", "audience": {"to": "role", "role": "manager"},
             "message": "A new case from Arizona or Nevada is waiting."}]}});
    let branched = json!({"name": "Sort by state", "enabled": false, "definition": {
        "trigger": {"type": "stage_changed", "to": "contacted"},
        "actions": [{"type": "branch",
            "conditions": {"rules": [{"field": "state", "op": "equals", "value": "Arizona"}]},
            "then": [{"type": "add_tag", "tag": "arizona"}],
            "else": [{"type": "add_tag", "tag": "elsewhere"}]}]}});
    let mut ids = Vec::new();
    for body in [steps, branched] {
        let created = app.post("/api/v1/automations", token, body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["id"].as_str().expect("id").to_owned());
    }
    (ids[0].clone(), ids[1].clone())
}

/// A run that fails (its email template was deleted after the automation was made), started by
/// hand on the case through the API; returns the run's id once it has failed.
async fn failed_automation_run(
    app: &meridian_tests::TestApp,
    token: &str,
    lead_id: &str,
) -> String {
    let template = app
        .post(
            "/api/v1/email/templates",
            token,
            json!({"name": "Check-in", "subject": "Checking in", "body_text": "Hi"}),
        )
        .await;
    let template_id = template.body["id"].as_str().expect("template id");
    let automation = app
        .post(
            "/api/v1/automations",
            token,
            json!({"name": "Check in by email", "definition": {"trigger": {"type": "manual"},
                   "actions": [{"type": "add_tag", "tag": "checked-in"},
                               {"type": "send_email", "template_id": template_id}]}}),
        )
        .await;
    let automation_id = automation.body["id"].as_str().expect("automation id");
    let deleted = app
        .delete(&format!("/api/v1/email/templates/{template_id}"), token)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let started = app
        .post(
            &format!("/api/v1/automations/{automation_id}/runs"),
            token,
            json!({"lead_ids": [lead_id]}),
        )
        .await;
    let run_id = started.body["results"][0]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = app
            .get(&format!("/api/v1/automation-runs/{run_id}"), token)
            .await;
        if run.body["status"] == "failed" {
            return run_id;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not fail: {}",
            run.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new automation through the form with a step left unfinished: refused next to the step, with
/// a screenshot of the refusal (desktop, light).
async fn automation_errors(owner: &Session) {
    owner.goto("/automations/new").await;
    owner.fill("#auto-name", "Unfinished").await;
    owner.select("#new-action", "send_email").await;
    owner.click("button[value='add_action']").await;
    owner.css("#step-0").await;
    owner.click("button[value='add_condition']").await;
    owner.css("#r0-field").await;
    owner.select("#r0-field", "email").await;
    owner.select("#r0-op", "contains").await;
    owner.click(".auto-savebar .btn-primary").await;
    let error = owner.text("#a0-template-error").await;
    assert_eq!(error, "Choose a template.");
    assert_eq!(
        owner.value("#auto-name").await,
        "Unfinished",
        "what was typed is kept"
    );
    if let Some(dir) = &owner.shots {
        let step = serde_json::to_value(owner.css("#step-0").await).expect("element reference");
        let script = "arguments[0].scrollIntoView({block: 'center'});";
        owner.c.execute(script, vec![step]).await.expect("scroll");
        let png = owner.c.screenshot().await.expect("screenshot");
        std::fs::write(dir.join("automation-errors-light-1280.png"), png).expect("write");
    }
}

/// Signs a browser in through the login form.
async fn sign_in(session: &Session, email: &str, password: &str) {
    session.goto("/login").await;
    session.fill("#email", email).await;
    session.fill("#password", password).await;
    session.submit("/login").await;
    session.css(".hero-title").await;
}

/// Drags a kanban card onto a column the way a mouse would, with HTML5 drag events (WebDriver's
/// pointer actions do not start native drag and drop in Chromium).
async fn drag_card(session: &Session, lead_id: &str, stage: &str) {
    let script = format!(
        "const card = document.querySelector('[data-lead=\"{lead_id}\"]');\
         const column = document.querySelector('[data-column=\"{stage}\"] [data-cards]');\
         const data = new DataTransfer();\
         const fire = (el, type) => el.dispatchEvent(new DragEvent(type, {{bubbles: true, cancelable: true, dataTransfer: data}}));\
         fire(card, 'dragstart'); fire(column, 'dragover'); fire(column, 'drop'); fire(card, 'dragend');\
         return true;"
    );
    session.js(&script).await;
}

/// A spreadsheet of four cases, the third of which has an invalid email address.
const IMPORT_CSV: &str = "First Name,Last Name,Email,Phone,State\n\
Imogen,Thackeray,imogen.thackeray@example.org,(602) 555-0141,Arizona\n\
Bartholomew,Thackeray,not-an-email,(602) 555-0142,Arizona\n\
Rupert,Thackeray,rupert.thackeray@example.org,(602) 555-0143,Nevada\n\
Cordelia,Thackeray,cordelia.thackeray@example.org,(602) 555-0144,Texas\n";

/// The texts of the cells of each row of the table matched by `rows` (a `tr` selector).
async fn table_rows(session: &Session, rows: &str) -> Value {
    let script = format!(
        "return [...document.querySelectorAll(\"{rows}\")]\
         .map(tr => [...tr.cells].map(td => td.innerText.trim()));"
    );
    session.js(&script).await
}

/// The owner imports a CSV with one bad row through the wizard: upload, the suggested mapping,
/// the dry run's report naming the bad row, the commit, its progress page until it is done, the
/// problems file, and the imported cases in the list.
async fn import_leads(owner: &Session, pipeline_id: &str, cases_href: &str) {
    let files = tempfile::tempdir().expect("temp dir for the CSV");
    let csv = files.path().join("thackeray-family.csv");
    std::fs::write(&csv, IMPORT_CSV).expect("write the CSV");

    // Upload: the file and the pipeline.
    owner.goto("/leads/import").await;
    owner
        .shoot("import-upload", "/leads/import", "#import-file")
        .await;
    owner.select("#import-pipeline", pipeline_id).await;
    let path = csv.to_str().expect("a UTF-8 temp path");
    let file = owner.css("#import-file").await;
    file.send_keys(path).await.expect("choose the file");
    owner.submit("/leads/import").await;

    // Map: the suggestion maps every column; the preview shows the rows.
    owner.css("select[name=col_0]").await;
    let title = owner.text(".card-title").await;
    assert!(
        title.contains("Map the columns of thackeray-family.csv") && title.contains("4 rows"),
        "{title}"
    );
    let url = owner.c.current_url().await.expect("url");
    let import_id = url.path().trim_start_matches("/leads/import/").to_owned();
    assert!(
        !import_id.is_empty() && !import_id.contains('/'),
        "on the import's page: {url}"
    );
    let detail = format!("/leads/import/{import_id}");
    let suggested = owner
        .js("return [...document.querySelectorAll('select[name^=col_]')].map(s => s.value);")
        .await;
    assert_eq!(
        suggested,
        json!(["first_name", "last_name", "email", "phone", "state"]),
        "the suggested mapping"
    );
    assert_eq!(
        owner.value("input[name=on_duplicate]:checked").await,
        "skip"
    );
    owner
        .shoot("import-mapping", &detail, "select[name=col_0]")
        .await;
    owner.submit(&format!("{detail}/validate")).await;

    // The dry run's report: three to create, one row with a problem, named.
    owner.css("#report").await;
    let stats = owner
        .js("return [...document.querySelectorAll('#report .stat')]\
             .map(s => [s.querySelector('.stat-label').innerText.trim(), s.querySelector('.stat-value').innerText.trim()]);")
        .await;
    assert_eq!(
        stats,
        json!([
            ["Will be created", "3"],
            ["Will be updated", "0"],
            ["Will be skipped", "0"],
            ["Rows with problems", "1"]
        ]),
        "the report's counts"
    );
    let problems = table_rows(owner, "section[aria-labelledby='problems-title'] tbody tr").await;
    let row = &problems[0];
    assert_eq!(
        problems.as_array().map(Vec::len),
        Some(1),
        "one problem: {problems}"
    );
    assert_eq!(
        (&row[0], &row[1], &row[2]),
        (&json!("3"), &json!("Email"), &json!("not-an-email")),
        "the problem names the row, the column and the value: {problems}"
    );
    let message = row[3].as_str().unwrap_or_default();
    assert!(message.contains("not an email address"), "{problems}");
    let errors_csv = format!("/api/v1/imports/{import_id}/errors.csv");
    owner.css(&format!("#report a[href='{errors_csv}']")).await;
    let commit = format!("{detail}/commit");
    let button = owner
        .text(&format!("form[action='{commit}'] button[type=submit]"))
        .await;
    assert_eq!(button, "Import 3 cases");
    owner
        .shoot_section("import-report", &detail, "#report")
        .await;
    owner.submit(&commit).await;

    // The progress page updates itself until the import is done.
    let done = "[data-import-progress]:not([data-status='running'])";
    let wait = owner.c.wait().at_most(IMPORT_WAIT).every(POLL);
    let found = wait.for_element(Locator::Css(done)).await;
    found.unwrap_or_else(|e| panic!("the import did not finish in {IMPORT_WAIT:?}: {e}"));
    assert_eq!(owner.text("[data-field='status']").await, "Completed");
    assert_eq!(owner.text("[data-field='rows']").await, "4 of 4 rows");
    let mut counts = Vec::new();
    for field in ["created", "updated", "skipped", "failed"] {
        counts.push(owner.text(&format!("[data-field='{field}']")).await);
    }
    assert_eq!(
        counts,
        ["3", "0", "0", "1"],
        "created, updated, skipped, failed"
    );
    let link = owner.css("[data-errors-link]").await;
    assert_eq!(
        link.attr("href").await.expect("href").as_deref(),
        Some(errors_csv.as_str())
    );
    assert!(
        link.is_displayed().await.expect("displayed"),
        "the problems file is offered"
    );
    let problems = table_rows(owner, "section[aria-labelledby='problems-title'] tbody tr").await;
    assert_eq!(problems.as_array().map(Vec::len), Some(1), "{problems}");
    assert_eq!(problems[0][0], "3", "{problems}");
    owner.shoot("import-done", &detail, done).await;

    // The problems file, fetched with the browser's session.
    let script = "const done = arguments[arguments.length - 1];\
         fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t])))\
         .catch(e => done([0, String(e)]));";
    let reply = owner
        .c
        .execute_async(script, vec![json!(errors_csv)])
        .await
        .expect("fetch errors.csv");
    assert_eq!(reply[0], 200, "{reply}");
    let text = reply[1].as_str().unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one problem: {text}");
    assert_eq!(lines[0], "row,column,value,message");
    assert!(lines[1].starts_with("3,Email,not-an-email,"), "{text}");

    // The imported cases are in the list, newest first; a search finds the three good rows only.
    owner.goto(cases_href).await;
    let newest = owner.text("table.lead-table tbody").await;
    assert!(newest.contains("Imogen Thackeray"), "{newest}");
    owner.fill("#q", "Thackeray").await;
    owner.submit("/leads").await;
    // The attribute (not the typed property) holds the search once the results page loaded.
    owner.css("#q[value='Thackeray']").await;
    let names = owner
        .js(
            "return [...document.querySelectorAll('table.lead-table a.lead-link')]\
             .map(a => a.innerText.trim()).sort();",
        )
        .await;
    assert_eq!(
        names,
        json!(["Cordelia Thackeray", "Imogen Thackeray", "Rupert Thackeray"]),
        "the three good rows, not the bad one"
    );
}

/// The CRM a team works in: the demo organization's cases, a new case created through the form,
/// a note in the editor, a task completed, a card dragged across the board (and a refusal), an
/// intake specialist handing a case off and a case manager accepting it; screenshots of each page.
async fn crm_journey(engine: Engine, screenshots: bool) {
    let started = Instant::now();
    let driver = Driver::start().await;
    let app = spawn_app(engine).await;
    let dir = screenshots.then(screenshot_dir);
    let people = meridian_app::demo::seed_demo(&app.state)
        .await
        .expect("demo data");
    let person = |role: &str| {
        people
            .iter()
            .find(|p| p.role.as_str() == role)
            .map(|p| (p.email, p.password.clone()))
            .expect("demo person")
    };
    let (owner_email, owner_password) = person("owner");
    let owner = driver.session(&app.base, dir.as_deref()).await;
    sign_in(&owner, owner_email, &owner_password).await;
    let cases_link = owner.css("a.nav-item[href^='/leads?pipeline_id=']").await;
    let cases_href = cases_link
        .attr("href")
        .await
        .expect("href")
        .expect("a link");
    let pipeline_id = cases_href
        .trim_start_matches("/leads?pipeline_id=")
        .to_owned();

    // A new case through the form.
    owner.goto(&cases_href).await;
    owner.css("table.lead-table").await;
    owner
        .click(&format!("a[href='/leads/new?pipeline_id={pipeline_id}']"))
        .await;
    owner.fill("#lf-first_name", "Valentina").await;
    owner.fill("#lf-last_name", "Okafor").await;
    owner
        .fill("#lf-email", "valentina.okafor@example.com")
        .await;
    owner.fill("#lf-phone", "(602) 555-0199").await;
    owner.fill("#lf-state", "Arizona").await;
    owner.submit("/leads/new").await;
    owner.wait_text("data-toast", "Created").await;
    let url = owner.c.current_url().await.expect("url");
    let lead_id = url.path().trim_start_matches("/leads/").to_owned();
    assert_eq!(owner.text(".lead-name").await, "Valentina Okafor");
    assert!(owner.text(".lead-meta").await.contains("+16025550199"));

    // A note through the rich-text editor.
    owner
        .click(&format!("a[href='/leads/{lead_id}?tab=notes']"))
        .await;
    let editor = owner.css(".editor").await;
    editor.click().await.expect("focus the editor");
    editor
        .send_keys("Prefers evening calls")
        .await
        .expect("type a note");
    owner.click("[data-cmd='bold']").await;
    owner.submit(&format!("/leads/{lead_id}/notes")).await;
    owner.wait_text("data-toast", "Note added").await;
    assert!(
        owner
            .text(".note-body")
            .await
            .contains("Prefers evening calls")
    );

    // A task, completed from its checkbox.
    owner
        .click(&format!("a[href='/leads/{lead_id}?tab=tasks']"))
        .await;
    owner.fill("#task-title", "Send the application pack").await;
    owner.submit(&format!("/leads/{lead_id}/tasks")).await;
    owner.wait_text("data-toast", "Task added").await;
    owner.click(".task .task-check").await;
    owner.css(".task.task-done").await;

    // Email: a template written in the editor, sent to the new case from its page, delivered.
    let worker = app.start_worker();
    let (template_id, message_id) = email_the_case(&owner, &lead_id).await;

    // An automation from the gallery, turned on from the list: the drag below runs it.
    let follow_up = use_gallery_automation(&owner).await;

    // The board: drag the new case from New to Contacted.
    let board = format!("/leads/board?pipeline_id={pipeline_id}");
    owner.goto(&board).await;
    owner.css(&format!("[data-lead='{lead_id}']")).await;
    drag_card(&owner, &lead_id, "contacted").await;
    owner
        .wait_text("data-board-toast", "Moved to Contacted")
        .await;
    owner
        .css(&format!(
            "[data-column='contacted'] [data-lead='{lead_id}']"
        ))
        .await;
    owner.c.refresh().await.expect("reload");
    owner
        .css(&format!(
            "[data-column='contacted'] [data-lead='{lead_id}']"
        ))
        .await;
    let follow_up_run = automation_ran(&owner, &follow_up).await;

    // A viewer may look but not move: the drop is refused with the reason and the card goes back.
    let (viewer_email, viewer_password) = person("viewer");
    let viewer = driver.session(&app.base, None).await;
    sign_in(&viewer, viewer_email, &viewer_password).await;
    viewer.goto(&board).await;
    viewer.css(&format!("[data-lead='{lead_id}']")).await;
    drag_card(&viewer, &lead_id, "qualified").await;
    viewer
        .wait_text("data-board-toast", "does not allow leads.write")
        .await;
    viewer
        .css(&format!(
            "[data-column='contacted'] [data-lead='{lead_id}']"
        ))
        .await;
    viewer.close().await;

    // An intake specialist does not see case managers' stages, and hands the case off.
    let (intake_email, intake_password) = person("intake");
    let intake = driver.session(&app.base, None).await;
    sign_in(&intake, intake_email, &intake_password).await;
    intake.goto(&board).await;
    intake.css(&format!("[data-lead='{lead_id}']")).await;
    let columns = intake
        .js("return [...document.querySelectorAll('[data-column]')].map(c => c.dataset.column);")
        .await;
    assert!(
        !columns.to_string().contains("pending_match"),
        "case manager stages are hidden: {columns}"
    );
    // Hand it off from the lead page instead.
    intake.goto(&format!("/leads/{lead_id}")).await;
    intake.select("#stage-select", "pending_handoff").await;
    intake.click("#stage-select ~ button[type=submit]").await;
    intake.wait_text("data-toast", "Handed off").await;
    intake.goto(&format!("/leads/{lead_id}")).await;
    intake
        .wait_text("class", "does not exist or you cannot see it")
        .await;
    intake.close().await;

    // The case manager accepts it from the handoff queue.
    let (cm_email, cm_password) = person("case_manager");
    let cm = driver.session(&app.base, None).await;
    sign_in(&cm, cm_email, &cm_password).await;
    cm.goto(&format!("/leads?pipeline_id={pipeline_id}&queue=handoff"))
        .await;
    cm.css(&format!("a.lead-link[href='/leads/{lead_id}']"))
        .await
        .click()
        .await
        .expect("open");
    cm.click("button[data-accept]").await;
    cm.wait_text("data-toast", "Handoff accepted").await;
    assert!(cm.text(".lead-meta").await.contains("Pending match"));
    cm.close().await;

    import_leads(&owner, &pipeline_id, &cases_href).await;
    let token = app.login(owner_email, &owner_password).await;
    let (intake_automation, branched) =
        more_automations(&app, &token.access, &pipeline_id, &template_id).await;
    automation_errors(&owner).await;
    let failed_run = failed_automation_run(&app, &token.access, &lead_id).await;

    let pages = [
        ("dashboard", "/".to_owned(), ".stats"),
        ("cases", cases_href.clone(), "table.lead-table"),
        ("cases-board", board.clone(), ".kcol"),
        ("case-overview", format!("/leads/{lead_id}"), ".lead-name"),
        (
            "case-notes",
            format!("/leads/{lead_id}?tab=notes"),
            ".note-body",
        ),
        (
            "case-activity",
            format!("/leads/{lead_id}?tab=activity"),
            ".timeline",
        ),
        (
            "case-new",
            format!("/leads/new?pipeline_id={pipeline_id}"),
            "#lf-first_name",
        ),
        ("tasks", "/tasks".to_owned(), ".content"),
        ("pipelines", "/settings/pipelines".to_owned(), ".content"),
        (
            "email-templates",
            "/email/templates".to_owned(),
            "table.table",
        ),
        (
            "email-template",
            format!("/email/templates/{template_id}"),
            ".email-frame:not([hidden])",
        ),
        (
            "case-emails",
            format!("/leads/{lead_id}?tab=emails"),
            ".email-compose",
        ),
        ("outbox", "/email/outbox".to_owned(), "table.email-log"),
        (
            "outbox-message",
            format!("/email/outbox/{message_id}"),
            ".email-frame:not([hidden])",
        ),
        (
            "email-suppressions",
            "/email/suppressions".to_owned(),
            "#sup-email",
        ),
        ("email-settings", "/settings/email".to_owned(), "#from_name"),
        ("automations", "/automations".to_owned(), "table.auto-table"),
        (
            "automation-editor",
            format!("/automations/{follow_up}"),
            "#auto-name",
        ),
        (
            "automation-json",
            format!("/automations/{branched}"),
            "#auto-json",
        ),
        (
            "automation-runs",
            format!("/automations/{follow_up}/runs"),
            "table.auto-runs",
        ),
        (
            "automation-run",
            format!("/automation-runs/{follow_up_run}"),
            "table.auto-step-log",
        ),
        (
            "automation-run-failed",
            format!("/automation-runs/{failed_run}"),
            ".auto-retry",
        ),
    ];
    for (name, path, ready) in pages {
        owner.shoot(name, &path, ready).await;
    }
    owner
        .shoot_section(
            "case-emails-sent",
            &format!("/leads/{lead_id}?tab=emails"),
            "#emails-title",
        )
        .await;
    owner
        .shoot_section(
            "automation-editor-steps",
            &format!("/automations/{intake_automation}"),
            "#actions",
        )
        .await;
    worker.stop().await;
    owner.close().await;
    drop(driver);
    eprintln!("CRM journey on {engine:?}: {:.1?}", started.elapsed());
}
