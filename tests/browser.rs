//! The web pages end to end, in a real headless Chromium driven over
//! WebDriver, against the real service started in-process on port 0.
//!
//! A user with two conflict drafts signs in, sees only hers, opens one whose
//! notes hold `<script>` and sees it as text, submits it (it disappears and
//! the record is stored), submits all (the other still conflicts and stays,
//! naming the record); an admin sees the counts, watches them change by
//! themselves, filters, discards, submits all shown, and reads the activity
//! log and the keys.
//! A screenshot of each page goes to `target/screenshots/`.
//!
//! Needs `chromedriver` and Chromium (Debian: `chromium`, `chromium-driver`).
//! Without them the browser test prints `SKIPPED: ...` and passes, unless
//! `COORDINATOR_REQUIRE_BROWSER=1`, when it fails. The API checks of the
//! activity endpoints at the end need no browser.

use coordinator::config::LogFormat;
use coordinator::{Application, Settings};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "admin-password-for-browser-tests";
const ALICE_PASSWORD: &str = "alice-password-for-browser-tests";
const BOB_PASSWORD: &str = "bob-password-for-browser-tests";
const HOSTILE_NOTES: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const REQUIRE_BROWSER: &str = "COORDINATOR_REQUIRE_BROWSER";
const WAIT: Duration = Duration::from_secs(15);

// ---- the service ---------------------------------------------------------

struct TestApp {
    base: String,
    http: reqwest::Client,
    admin_token: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("coordinator.db").display());
        let mut app = Self::spawn_on(&url).await;
        app._dir = Some(dir);
        app
    }

    async fn spawn_on(database_url: &str) -> Self {
        // The activity page reads what the tracing layer records: install it
        // as `main` does. Logs stay quiet; the recorder has its own filter.
        let _ = coordinator::telemetry::init(LogFormat::Json, "off");
        let settings = Settings {
            admin_password: Some(ADMIN_PASSWORD.into()),
            workers: Some(2),
            ..Settings::for_database(database_url)
        };
        let app = Application::build(settings).await.expect("building the application");
        let base = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        let http = reqwest::Client::new();
        let mut test_app = Self {
            base,
            http,
            admin_token: String::new(),
            _dir: None,
        };
        test_app.admin_token = test_app.login("admin", ADMIN_PASSWORD).await;
        test_app
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let reply = self
            .http
            .post(self.url("/api/login"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("POST /api/login");
        assert_eq!(reply.status(), StatusCode::OK, "login as {username}");
        let body: Value = reply.json().await.expect("a JSON login answer");
        body["token"].as_str().expect("a token").to_owned()
    }

    async fn create_user(&self, username: &str, password: &str) -> String {
        let reply = self
            .http
            .post(self.url("/api/admin/users"))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("POST /api/admin/users");
        assert_eq!(reply.status(), StatusCode::CREATED, "creating {username}");
        self.login(username, password).await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let reply = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, token: &str, key: &str, value: Value, if_match: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .put(self.url(&format!("/api/storage/{key}")))
            .bearer_auth(token)
            .json(&value);
        if let Some(version) = if_match {
            request = request.header("If-Match", format!("\"{version}\""));
        }
        let reply = request.send().await.expect("PUT /api/storage");
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    /// A stale write: answered 409, its payload kept as a draft whose id is returned.
    async fn conflict_draft(&self, token: &str, key: &str, value: Value, stale_version: &str) -> String {
        let (status, body) = self.put(token, key, value, Some(stale_version)).await;
        assert_eq!(status, StatusCode::CONFLICT, "a stale write to {key}: {body}");
        assert_eq!(body["draftSaved"], true, "{body}");
        body["draftId"].as_str().expect("a draft id").to_owned()
    }

    async fn draft_total(&self) -> i64 {
        let (status, stats) = self.get(&self.admin_token, "/api/admin/drafts/stats").await;
        assert_eq!(status, StatusCode::OK);
        stats["total"].as_i64().expect("a total")
    }
}

fn record(id: &str, notes: &str) -> Value {
    json!({ "id": id, "type": "customerCall", "notes": notes })
}

// ---- the browser ---------------------------------------------------------

/// Chromedriver (in a process group of its own, so Chromium goes with it)
/// and a WebDriver session on a fresh profile.
struct Browser {
    driver: Child,
    client: Option<Client>,
    profile: tempfile::TempDir,
    shots: PathBuf,
}

struct Tools {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let fallbacks = [PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/chromium")];
    names.iter().find_map(|name| {
        dirs.iter()
            .chain(fallbacks.iter())
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The tools, or `None` after a loud note (a failure when the browser is required).
fn browser_tools() -> Option<Tools> {
    let chromedriver = find_program("COORDINATOR_CHROMEDRIVER", &["chromedriver"]);
    let chromium = find_program(
        "COORDINATOR_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"],
    );
    match (chromedriver, chromium) {
        (Some(chromedriver), Some(chromium)) => Some(Tools { chromedriver, chromium }),
        (driver, browser) => {
            let missing: Vec<&str> = [(driver.is_none(), "chromedriver"), (browser.is_none(), "chromium")]
                .into_iter()
                .filter_map(|(missing, name)| missing.then_some(name))
                .collect();
            let message = format!(
                "SKIPPED: the browser test needs {} (Debian packages: chromium chromium-driver)",
                missing.join(" and ")
            );
            if std::env::var(REQUIRE_BROWSER).is_ok_and(|v| v == "1") {
                panic!("{message}, and {REQUIRE_BROWSER}=1 requires it");
            }
            loud(&message);
            None
        }
    }
}

/// Straight to stderr, past the test harness's capture: a skip must be seen.
fn loud(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!!!!\n{message}\n!!!!!!!!!!\n");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .port()
}

impl Browser {
    async fn start(tools: &Tools) -> Self {
        let port = free_port();
        let mut command = Command::new(&tools.chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("starting chromedriver");
        let profile = tempfile::tempdir().expect("a Chromium profile directory");
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("screenshots");
        std::fs::create_dir_all(&shots).expect("creating target/screenshots");
        let mut browser = Self {
            driver,
            client: None,
            profile,
            shots,
        };

        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("chromedriver exited at start ({status}); was port {port} taken?");
            }
            let answer = http.get(format!("{webdriver}/status")).send().await;
            if let Ok(answer) = answer {
                let status: Value = answer.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not answer within {WAIT:?}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }

        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        args.push("--lang=en-US".into());
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": tools.chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("opening a WebDriver session in Chromium");
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    async fn goto(&self, url: &str) {
        self.client().goto(url).await.expect("navigating");
    }

    async fn find(&self, css: &str) -> Element {
        self.client()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    async fn count(&self, css: &str) -> usize {
        self.client().find_all(Locator::Css(css)).await.expect("find_all").len()
    }

    /// The text of `css`, found afresh on each try: the pages re-render
    /// their tables while they refresh, which makes older elements stale.
    async fn text(&self, css: &str) -> String {
        eventually(&format!("the text of {css}"), WAIT, || async {
            self.client().find(Locator::Css(css)).await.ok()?.text().await.ok()
        })
        .await
    }

    async fn click(&self, css: &str) {
        for _ in 0..5 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(error) if error.is_stale_element_reference() => continue,
                Err(error) => panic!("clicking {css}: {error}"),
            }
        }
        panic!("{css} kept going stale");
    }

    async fn fill(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clearing an input");
        input.send_keys(value).await.expect("typing");
    }

    /// Waits until the page's script has loaded its data.
    async fn ready(&self, page: &str) {
        self.find(&format!("body[data-page=\"{page}\"][data-ready=\"true\"]"))
            .await;
    }

    /// Waits until `css` matches exactly `n` elements.
    async fn wait_count(&self, css: &str, n: usize) {
        eventually(&format!("{n} × {css}"), WAIT, || async {
            (self.count(css).await == n).then_some(())
        })
        .await;
    }

    async fn wait_text(&self, css: &str, expected: &str) {
        eventually(&format!("{css} to read {expected:?}"), WAIT, || async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            (element.text().await.ok()?.trim() == expected).then_some(())
        })
        .await;
    }

    async fn screenshot(&self, name: &str) {
        // Let fades and the last fetch settle so the picture shows the page at rest.
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let png = self.client().screenshot().await.expect("taking a screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing a screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    async fn sign_in(&self, app: &TestApp, username: &str, password: &str, lands_on: &str) {
        self.goto(&app.url("/")).await;
        self.fill("#login-username", username).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        self.ready(lands_on).await;
    }

    async fn no_alert_is_open(&self) {
        match self.client().get_alert_text().await {
            Err(error) if error.is_no_such_alert() => {}
            other => panic!("a dialog opened: {other:?}"),
        }
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromedriver and the Chromium it started share a process group of
        // their own, whose id is chromedriver's pid: end them all at once.
        #[cfg(unix)]
        if let Ok(group) = libc::pid_t::try_from(self.driver.id()) {
            if group > 1 {
                // SAFETY: kill(2) takes plain integers; a negative id names
                // exactly the group we created for chromedriver.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Polls `probe` until it gives `Some`, or fails the test after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the test ------------------------------------------------------------

#[actix_web::test]
async fn a_user_recovers_drafts_and_an_admin_watches_them_in_a_real_browser() {
    let Some(tools) = browser_tools() else {
        return;
    };
    let app = TestApp::spawn().await;

    // The pages carry their own policy, not the API's `default-src 'none'`.
    for path in ["/", "/drafts", "/admin/drafts", "/admin/activity"] {
        let reply = app.http.get(app.url(path)).send().await.expect("GET a page");
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        let csp = reply.headers().get("content-security-policy").expect("a CSP header");
        assert_eq!(csp.to_str().unwrap(), PAGE_CSP, "{path}");
    }

    // Alice and Bob both start from version 1; Bob saves first, so Alice's
    // two saves become drafts: one adds a record (it will merge), one edits
    // the record Bob edited (it will still conflict).
    let alice = app.create_user("alice", ALICE_PASSWORD).await;
    let bob = app.create_user("bob", BOB_PASSWORD).await;
    let (status, _) = app
        .put(&alice, "activities", json!([record("a1", "first call")]), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .put(&bob, "activities", json!([record("a1", "bob's edit")]), Some("1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let hostile = app
        .conflict_draft(
            &alice,
            "activities",
            json!([record("a1", "first call"), record("x1", HOSTILE_NOTES)]),
            "1",
        )
        .await;
    let diverging = app
        .conflict_draft(&alice, "activities", json!([record("a1", "alice's edit")]), "1")
        .await;
    let bobs = app
        .conflict_draft(
            &bob,
            "activities",
            json!([record("a1", "bob's edit"), record("b2", "bob again")]),
            "1",
        )
        .await;

    let browser = Browser::start(&tools).await;

    // ---- Alice: My drafts ----
    browser.goto(&app.url("/")).await;
    browser.find("#login-form").await;
    browser.fill("#login-username", "alice").await;
    browser.screenshot("01-login").await;
    browser.fill("#login-password", ALICE_PASSWORD).await;
    browser.click("#login-submit").await;
    browser.ready("drafts").await;

    // Hers only: Bob's draft is not listed.
    browser.wait_count("#drafts-table tr.draft", 2).await;
    assert_eq!(browser.count(&format!("tr.draft[data-id=\"{bobs}\"]")).await, 0);
    let hostile_row = format!("tr.draft[data-id=\"{hostile}\"]");
    assert_eq!(browser.text(&format!("{hostile_row} td.key")).await, "activities");
    assert_eq!(browser.text(&format!("{hostile_row} td.records")).await, "2");
    browser.screenshot("02-my-drafts").await;

    // Open the draft: its hostile notes are text, not markup.
    browser.click(&format!("{hostile_row} button.toggle")).await;
    let detail = format!("tr.detail[data-for=\"{hostile}\"]");
    browser.find(&format!("{detail} li.record")).await;
    let shown = browser.text(&format!("{detail} ol.records")).await;
    assert!(shown.contains(HOSTILE_NOTES), "the notes are shown as text: {shown}");
    assert_eq!(
        browser.count(&format!("{detail} script, {detail} img")).await,
        0,
        "no element was injected"
    );
    let scripts = browser
        .client()
        .execute("return document.scripts.length", vec![])
        .await
        .expect("counting scripts");
    assert_eq!(scripts, json!(1), "only the page's own script");
    browser.no_alert_is_open().await;
    // Against the current value (where a1 is Bob's), a submit adds x1 only.
    let added = browser.text(&format!("{detail} .diff .added")).await;
    assert!(
        added.starts_with("ADDS (1)") && added.contains("x1"),
        "x1 is listed as added: {added}"
    );
    assert!(browser
        .text(&format!("{detail} .diff .changed"))
        .await
        .starts_with("CHANGES (0)"));
    assert!(browser
        .text(&format!("{detail} .diff .removed"))
        .await
        .starts_with("REMOVES (0)"));
    assert_eq!(browser.count(&format!("{detail} .diff .conflicting")).await, 0);
    browser.screenshot("03-my-drafts-detail").await;

    // Submit it: the row disappears and the record is stored.
    browser.click(&format!("{hostile_row} button.submit")).await;
    browser.wait_count(&hostile_row, 0).await;
    assert!(browser
        .text("#drafts-status")
        .await
        .starts_with("Saved the draft for activities"));
    let (status, stored) = app.get(&alice, "/api/storage/activities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["version"], 3, "{stored}");
    assert_eq!(
        stored["value"],
        json!([record("a1", "bob's edit"), record("x1", HOSTILE_NOTES)]),
        "Bob's edit kept, Alice's record added"
    );

    // Submit all: the other draft still conflicts on a1, so it stays and says so.
    let diverging_row = format!("tr.draft[data-id=\"{diverging}\"]");
    browser.click("#drafts-submit-all").await;
    browser.find(&format!("{diverging_row} .conflicting-ids")).await;
    let ids = browser.text(&format!("{diverging_row} .conflicting-ids")).await;
    assert!(ids.contains("a1"), "the conflicting record is named: {ids}");
    browser.wait_text(&format!("{diverging_row} td.attempts"), "1").await;
    assert!(browser.text("#drafts-status").await.contains("1 still conflicting"));
    assert_eq!(browser.count("#drafts-table tr.draft").await, 1);
    browser.screenshot("04-my-drafts-after-submit").await;

    browser
        .client()
        .set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    browser.screenshot("05-my-drafts-phone").await;
    browser
        .client()
        .set_window_size(1280, 900)
        .await
        .expect("back to a laptop window");

    // The admin pages are not hers.
    browser.goto(&app.url("/admin/drafts")).await;
    browser.find("body[data-page=\"forbidden\"]").await;

    // ---- The admin: Storage Drafts ----
    browser.click("#logout").await;
    browser.find("body[data-page=\"login\"]").await;
    let kept = browser
        .client()
        .execute("return sessionStorage.length", vec![])
        .await
        .expect("reading sessionStorage");
    assert_eq!(kept, json!(0), "the page forgot the token");
    browser.sign_in(&app, "admin", ADMIN_PASSWORD, "admin-drafts").await;
    // Left: Alice's diverging draft and Bob's.
    browser.wait_text("#stat-total", "2").await;
    browser
        .wait_text("#stats-reason tr[data-reason=\"conflict\"] td.num", "2")
        .await;
    browser
        .wait_text("#stats-key tr[data-key=\"activities\"] td.num", "2")
        .await;
    browser.wait_count("#admin-drafts-table tr.draft", 2).await;
    // The admin sees why Alice's remaining draft will not save.
    browser.click(&format!("{diverging_row} button.toggle")).await;
    let conflicting = browser
        .text(&format!("tr.detail[data-for=\"{diverging}\"] .diff .conflicting"))
        .await;
    assert!(conflicting.contains("a1"), "{conflicting}");
    browser.screenshot("06-admin-storage-drafts").await;
    browser.click(&format!("{diverging_row} button.toggle")).await;

    // A new conflict elsewhere shows up by itself (auto-refresh).
    let (status, _) = app.put(&bob, "accounts", json!([record("acc1", "Acme")]), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .put(
            &app.admin_token,
            "accounts",
            json!([record("acc1", "Acme Ltd")]),
            Some("1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let accounts_draft = app
        .conflict_draft(&bob, "accounts", json!([record("acc1", "ACME")]), "1")
        .await;
    browser.wait_text("#stat-total", "3").await;
    browser
        .wait_text("#stats-key tr[data-key=\"accounts\"] td.num", "1")
        .await;

    // Filter by user.
    browser.fill("#filter-user", "bob").await;
    browser.click("#admin-filter button[type=submit]").await;
    browser.wait_count("#admin-drafts-table tr.draft", 2).await;
    assert_eq!(browser.count(&format!("tr.draft[data-id=\"{diverging}\"]")).await, 0);
    browser.click("#filter-clear").await;
    browser.wait_count("#admin-drafts-table tr.draft", 3).await;

    // Discard takes two clicks; then the counts drop.
    let accounts_row = format!("tr.draft[data-id=\"{accounts_draft}\"]");
    browser.click(&format!("{accounts_row} button.discard")).await;
    browser
        .wait_text(&format!("{accounts_row} button.discard"), "Really discard?")
        .await;
    browser.click(&format!("{accounts_row} button.discard")).await;
    browser.wait_count(&accounts_row, 0).await;
    browser.wait_text("#stat-total", "2").await;
    assert_eq!(app.draft_total().await, 2);

    // Submit all shown, as the admin: Bob's draft merges, Alice's still conflicts.
    browser.click("#admin-submit-shown").await;
    browser.wait_text("#stat-total", "1").await;
    browser.wait_count(&format!("tr.draft[data-id=\"{bobs}\"]"), 0).await;
    browser.find(&format!("{diverging_row} .conflicting-ids")).await;
    assert_eq!(
        browser.text("#admin-status").await,
        "2 submitted: 1 saved, 1 still conflicting."
    );
    browser.screenshot("07-admin-storage-drafts-after").await;

    // ---- The admin: activity log ----
    browser.click("nav a[data-page=\"activity\"]").await;
    browser.ready("activity").await;
    for event in [
        "storage_write",
        "storage_conflict",
        "storage_pending_draft_saved",
        "storage_draft_recovered",
        "storage_draft_conflict",
        "storage_draft_discarded",
    ] {
        browser.find(&format!("#events-table tr[data-event=\"{event}\"]")).await;
    }
    browser
        .find(&format!(
            "#events-table tr[data-event=\"storage_draft_discarded\"][data-draft=\"{accounts_draft}\"]"
        ))
        .await;
    assert_events_newest_first(&browser).await;
    browser
        .wait_text("#keys-table tr[data-key=\"activities\"] td.version", "4")
        .await;
    browser
        .wait_text("#keys-table tr[data-key=\"accounts\"] td.version", "2")
        .await;
    // Live: a new write appears without reloading.
    let (status, _) = app
        .put(&alice, "internalActivities", json!([record("i1", "enablement")]), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    browser.find("#keys-table tr[data-key=\"internalActivities\"]").await;
    browser
        .find("#events-table tr[data-event=\"storage_write\"][data-key=\"internalActivities\"]")
        .await;
    assert_events_newest_first(&browser).await;
    // A taller window, so the picture shows the keys below the events too.
    browser
        .client()
        .set_window_size(1280, 1500)
        .await
        .expect("a taller window");
    browser.screenshot("08-admin-activity").await;

    browser.no_alert_is_open().await;
    browser.close().await;
}

/// Other tests of this binary write at the same time, so the activity log
/// holds their events too: check the order, not which event is on top.
async fn assert_events_newest_first(browser: &Browser) {
    let seqs = browser
        .client()
        .execute(
            "return Array.from(document.querySelectorAll('#events-table tr[data-seq]'), r => Number(r.dataset.seq))",
            vec![],
        )
        .await
        .expect("reading the event order");
    let seqs: Vec<u64> = serde_json::from_value(seqs).expect("numbers");
    assert!(!seqs.is_empty());
    assert!(seqs.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {seqs:?}");
}

// ---- the activity endpoints, no browser needed ---------------------------

/// `backend` names the keys: the tests of this binary share one activity log.
async fn activity_endpoints_serve_admins(app: &TestApp, backend: &str) {
    let (alpha, beta) = (format!("alpha-{backend}"), format!("beta-{backend}"));
    let carol = app.create_user("carol", ALICE_PASSWORD).await;
    let (status, _) = app.put(&carol, &alpha, json!([record("r1", "one")]), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.put(&carol, &beta, json!({ "not": "an array" }), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .put(
            &carol,
            &alpha,
            json!([record("r1", "one"), record("r2", "two")]),
            Some("1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Keys: the most recently written first, with version, writer and count.
    let (status, body) = app.get(&app.admin_token, "/api/admin/keys").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = body["keys"].as_array().expect("a keys array");
    let names: Vec<&str> = keys.iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(names, [alpha.as_str(), beta.as_str()]);
    assert_eq!(keys[0]["version"], 2);
    assert_eq!(keys[0]["updatedBy"], "carol");
    assert_eq!(keys[0]["recordCount"], 2);
    assert!(keys[0]["updatedAt"].as_str().is_some_and(|at| at.ends_with('Z')));
    assert!(keys[0]["transactionId"].as_str().is_some_and(|tx| !tx.is_empty()));
    assert_eq!(keys[1]["version"], 1);
    assert_eq!(keys[1]["recordCount"], Value::Null, "not an array: no count");
    let (_, body) = app.get(&app.admin_token, "/api/admin/keys?limit=1").await;
    assert_eq!(body["keys"].as_array().map(Vec::len), Some(1));

    // Events: newest first, with the runbook's fields.
    let (status, body) = app.get(&app.admin_token, "/api/admin/events?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = body["events"].as_array().expect("an events array");
    let alpha_writes: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "storage_write" && e["key"] == alpha.as_str())
        .collect();
    assert_eq!(alpha_writes.len(), 2, "both writes to alpha: {events:?}");
    assert_eq!(alpha_writes[0]["version"], 2, "newest first");
    assert_eq!(alpha_writes[1]["version"], 1);
    assert_eq!(alpha_writes[0]["username"], "carol");
    assert!(alpha_writes[0]["transactionId"].is_string());
    assert!(alpha_writes[0]["seq"].as_u64() > alpha_writes[1]["seq"].as_u64());
    let (_, body) = app.get(&app.admin_token, "/api/admin/events?limit=1").await;
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1));

    // Admins only, and a bad limit is a JSON error.
    for path in ["/api/admin/keys", "/api/admin/events"] {
        let (status, body) = app.get(&carol, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["error"], "forbidden");
        let (status, body) = app.get("not-a-token", path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized");
        for bad in ["0", "-3", "ten", "999999"] {
            let (status, body) = app.get(&app.admin_token, &format!("{path}?limit={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?limit={bad}");
            assert_eq!(body["error"], "invalid_request");
        }
    }
}

#[actix_web::test]
async fn the_activity_endpoints_serve_admins_on_sqlite() {
    let app = TestApp::spawn().await;
    activity_endpoints_serve_admins(&app, "sqlite").await;
}

/// The keys query on PostgreSQL, on a database made for this test on the
/// server `COORDINATOR_TEST_POSTGRES_URL` names (by default the local one, as
/// the API tests use); skipped loudly when none answers, unless
/// `COORDINATOR_REQUIRE_POSTGRES=1`.
#[actix_web::test]
async fn the_activity_endpoints_serve_admins_on_postgres() {
    let required = std::env::var("COORDINATOR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let server = std::env::var("COORDINATOR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&server)
        .await
    {
        Ok(admin) => admin,
        Err(error) if !required => {
            loud(&format!(
                "SKIPPED: the activity endpoints on PostgreSQL: no server answers at {server}: {error}"
            ));
            return;
        }
        Err(error) => panic!("PostgreSQL is required (COORDINATOR_REQUIRE_POSTGRES=1): {error}"),
    };
    let name = format!("coordinator_pages_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("creating a test database");
    let app = TestApp::spawn_on(&url_with_database(&server, &name)).await;
    activity_endpoints_serve_admins(&app, "postgres").await;
    drop(app);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
}

/// `postgres://user@host:port/db?opts` with `db` replaced.
fn url_with_database(server: &str, database: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}
