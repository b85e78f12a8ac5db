//! Tests of the real `coordinator` binary: crash safety under SIGKILL, the
//! first-start admin password, the `user add` command and the JSON log.

use crate::helpers::{Backend, TestDatabase, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `coordinator serve`, its log lines collected as they come.
struct ServerProcess {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    fn start(database_url: &str, admin_password: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
            .env_remove("COORDINATOR_ADMIN_PASSWORD")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(password) = admin_password {
            command.env("COORDINATOR_ADMIN_PASSWORD", password);
        }
        let mut child = command.spawn().expect("starting the coordinator binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["event"] == "server_started" {
                        let _ = address_tx.send(event["listen"].as_str().unwrap_or_default().to_owned());
                    }
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs server_started within 30 s");
        Self {
            child,
            address: format!("http://{address}"),
            log,
        }
    }

    fn log_events(&self) -> Vec<Value> {
        let lines = self.log.lock().expect("log lock").clone();
        lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a non-JSON log line: {line}")))
            .collect()
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the child");
    }

    /// Sends SIGTERM and waits for the process to exit on its own.
    fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn login(base: &str, username: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let reply: Value = http
            .post(format!("{base}/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login JSON");
        let token = reply["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {reply}"))
            .to_owned();
        Self {
            http,
            base: base.to_owned(),
            token,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value, Option<String>) {
        self.try_get(path).await.expect("GET")
    }

    /// `None` when the connection broke (the server was killed mid-request).
    async fn try_get(&self, path: &str) -> Option<(StatusCode, Value, Option<String>)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Some((response.status(), response.json().await.ok()?, etag))
    }

    /// `None` when the connection broke (the server was killed mid-request).
    async fn put(&self, key: &str, value: &Value, if_match: Option<&str>) -> Option<(StatusCode, Value)> {
        let mut request = self
            .http
            .put(format!("{}/api/storage/{key}", self.base))
            .bearer_auth(&self.token)
            .json(value);
        if let Some(if_match) = if_match {
            request = request.header("if-match", if_match);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        Some((status, response.json().await.ok()?))
    }
}

/// What the writers were told: every acknowledged version with the value
/// sent, and every draft promised by a 409.
#[derive(Default)]
struct Acknowledged {
    versions: BTreeMap<i64, Value>,
    drafts: Vec<String>,
}

impl Acknowledged {
    /// Each acknowledged version holds exactly the value its writer sent (so
    /// no version number was issued twice), and every promised draft exists.
    async fn are_all_kept(&self, client: &Client) {
        for (version, value) in &self.versions {
            let (status, stored) = client.get_history_value(*version).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&stored, value, "version {version} was reused or lost");
        }
        let (_, drafts, _) = client.get("/api/drafts").await;
        let draft_ids: Vec<&str> = drafts["drafts"]
            .as_array()
            .expect("drafts")
            .iter()
            .filter_map(|d| d["id"].as_str())
            .collect();
        for draft in &self.drafts {
            assert!(draft_ids.contains(&draft.as_str()), "draft {draft} lost");
        }
    }
}

/// Writers append their own records to `activities` (GET, append, PUT with
/// If-Match) until `stop` is set; the server may die under them.
async fn burst(
    client: Arc<Client>,
    writer: usize,
    acknowledged: Arc<Mutex<Acknowledged>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let Some((StatusCode::OK, current, etag)) = client.try_get("/api/storage/activities").await else {
            return;
        };
        let mut records = current["value"].as_array().cloned().unwrap_or_default();
        records.push(json!({"id": format!("w{writer}-{n}-{}", uuid::Uuid::new_v4()), "notes": "crash burst ✓"}));
        let value = Value::Array(records);
        let Some((status, body)) = client.put("activities", &value, etag.as_deref()).await else {
            return;
        };
        let mut acknowledged = acknowledged.lock().expect("lock");
        match status {
            StatusCode::OK => {
                let version = body["version"].as_i64().expect("version");
                assert!(
                    acknowledged.versions.insert(version, value).is_none(),
                    "version {version} acknowledged twice"
                );
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["draftSaved"], true);
                acknowledged
                    .drafts
                    .push(body["draftId"].as_str().expect("draftId").to_owned());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

async fn sigkill_during_a_burst_loses_no_acknowledged_write(backend: Backend) {
    let Some(db) = TestDatabase::for_backend(backend).await else {
        return;
    };
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    {
        let server = ServerProcess::start(&db.url, Some(ADMIN_PASSWORD));
        let admin = Client::login(&server.address, "admin", ADMIN_PASSWORD).await;
        assert_eq!(
            admin.put("activities", &json!([]), None).await.map(|r| r.0),
            Some(StatusCode::CREATED)
        );
        acknowledged.lock().expect("lock").versions.insert(1, json!([]));
        server.kill();
    }
    // Kill points: after this many more acknowledged writes, with writers in flight.
    for kill_after in [5, 20, 40] {
        let server = ServerProcess::start(&db.url, None);
        let client = Arc::new(Client::login(&server.address, "admin", ADMIN_PASSWORD).await);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let before = acknowledged.lock().expect("lock").versions.len();
        let writers: Vec<_> = (0..6)
            .map(|writer| actix_web::rt::spawn(burst(client.clone(), writer, acknowledged.clone(), stop.clone())))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while acknowledged.lock().expect("lock").versions.len() < before + kill_after {
            assert!(Instant::now() < deadline, "the burst made no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("a writer task");
        }
    }

    // After the last restart: everything acknowledged is there.
    let server = ServerProcess::start(&db.url, None);
    let client = Client::login(&server.address, "admin", ADMIN_PASSWORD).await;
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    let (newest_acked, newest_value) = acknowledged.versions.last_key_value().expect("acknowledged writes");
    let (status, current, _) = client.get("/api/storage/activities").await;
    assert_eq!(status, StatusCode::OK);
    let version = current["version"].as_i64().expect("version");
    // A write can commit and then lose its answer to the kill: the stored
    // version may be ahead of the newest acknowledged one, never behind.
    assert!(
        version >= *newest_acked,
        "stored v{version} < acknowledged v{newest_acked}"
    );
    let stored_ids: Vec<&Value> = current["value"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| &r["id"])
        .collect();
    for record in newest_value.as_array().expect("records") {
        assert!(
            stored_ids.contains(&&record["id"]),
            "acknowledged record {} disappeared",
            record["id"]
        );
    }
    acknowledged.are_all_kept(&client).await;
    // The next write gets the next number.
    let next = client
        .put("activities", &current["value"], Some(&format!("\"{version}\"")))
        .await;
    assert_eq!(
        next.map(|(s, b)| (s, b["version"].clone())),
        Some((StatusCode::OK, json!(version + 1)))
    );
    eprintln!(
        "crash test ({backend:?}): 3 kill points, {} acknowledged versions and {} drafts checked",
        acknowledged.versions.len(),
        acknowledged.drafts.len()
    );
}

impl Client {
    /// A committed version's value, read from history through the database.
    async fn get_history_value(&self, version: i64) -> (StatusCode, Value) {
        let (status, body, _) = self.get(&format!("/api/storage/activities/versions/{version}")).await;
        (status, body["value"].clone())
    }
}

#[actix_web::test]
async fn sigkill_during_a_burst_loses_no_acknowledged_write_on_sqlite() {
    sigkill_during_a_burst_loses_no_acknowledged_write(Backend::Sqlite).await;
}

#[actix_web::test]
async fn sigkill_during_a_burst_loses_no_acknowledged_write_on_postgres() {
    sigkill_during_a_burst_loses_no_acknowledged_write(Backend::Postgres).await;
}

/// SIGTERM in the middle of a burst: the process answers what it accepted,
/// exits 0 within the grace period, and every acknowledged write is there.
async fn sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_write(backend: Backend) {
    let Some(db) = TestDatabase::for_backend(backend).await else {
        return;
    };
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let server = ServerProcess::start(&db.url, Some(ADMIN_PASSWORD));
    let client = Arc::new(Client::login(&server.address, "admin", ADMIN_PASSWORD).await);
    assert_eq!(
        client.put("activities", &json!([]), None).await.map(|r| r.0),
        Some(StatusCode::CREATED)
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|writer| actix_web::rt::spawn(burst(client.clone(), writer, acknowledged.clone(), stop.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").versions.len() < 15 {
        assert!(Instant::now() < deadline, "the burst made no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = server.terminate(Duration::from_secs(15));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("a writer task");
    }
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    let server = ServerProcess::start(&db.url, None);
    let client = Client::login(&server.address, "admin", ADMIN_PASSWORD).await;
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    acknowledged.are_all_kept(&client).await;
}

#[actix_web::test]
async fn sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_write_on_sqlite() {
    sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_write(Backend::Sqlite).await;
}

#[actix_web::test]
async fn sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_write_on_postgres() {
    sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_write(Backend::Postgres).await;
}

#[actix_web::test]
async fn the_first_start_writes_a_generated_admin_password_beside_the_database() {
    let db = TestDatabase::sqlite();
    let db_file = db.sqlite_file().expect("a SQLite file");
    let server = ServerProcess::start(&db.url, None);
    let password_file = db_file.with_file_name("admin-password");
    let password = std::fs::read_to_string(&password_file).expect("the password file exists");
    let password = password.trim();
    assert!(password.len() >= 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    Client::login(&server.address, "admin", password).await;
    let events = server.log_events();
    let created = events
        .iter()
        .find(|e| e["event"] == "admin_user_created")
        .expect("admin_user_created logged");
    assert_eq!(created["passwordFile"], password_file.display().to_string());
    let whole_log = server.log.lock().expect("log").join("\n");
    assert!(!whole_log.contains(password), "the password must never be logged");
}

#[actix_web::test]
async fn user_add_reads_the_password_from_stdin() {
    let db = TestDatabase::sqlite();
    let run = |name: &str, admin: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
        command
            .args(["user", "add", name, "--database-url", &db.url])
            .env_remove("COORDINATOR_ADMIN_PASSWORD");
        if admin {
            command.arg("--admin");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("user add");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"erin-password\n")
            .expect("writing the password");
        child.wait().expect("user add finishes")
    };
    assert!(run("erin", true).success());
    assert!(!run("erin", false).success(), "a second add of the same name fails");
    let server = ServerProcess::start(&db.url, Some(ADMIN_PASSWORD));
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/api/login", server.address))
        .json(&json!({"username": "erin", "password": "erin-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    assert_eq!(reply["role"], "admin");
}

#[actix_web::test]
async fn the_log_is_one_json_object_per_line_with_the_runbooks_fields() {
    let db = TestDatabase::sqlite();
    let server = ServerProcess::start(&db.url, Some(ADMIN_PASSWORD));
    let admin = Client::login(&server.address, "admin", ADMIN_PASSWORD).await;
    admin.put("activities", &json!([{"id": 1}]), None).await;
    let (status, conflict) = admin
        .put("activities", &json!([{"id": 1}, {"id": 2}]), Some("\"5\""))
        .await
        .expect("answer");
    assert_eq!(status, StatusCode::CONFLICT);
    let transaction_id = conflict["transactionId"].as_str().expect("transactionId").to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let events = server.log_events();
    for event in &events {
        for field in ["timestamp", "level", "event"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
    }
    let of_request = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name && e["transactionId"] == transaction_id.as_str())
            .unwrap_or_else(|| panic!("no {name} event for the conflicting request"))
            .clone()
    };
    let request = of_request("storage_request");
    assert_eq!(
        (request["key"].clone(), request["username"].clone()),
        (json!("activities"), json!("admin"))
    );
    assert_eq!(
        (request["conditional"].clone(), request["ifMatch"].clone()),
        (json!(true), json!("\"5\""))
    );
    assert_eq!(request["incomingCount"], 2);
    let conflict_event = of_request("storage_conflict");
    assert_eq!(conflict_event["statusCode"], 409);
    assert_eq!(conflict_event["currentCount"], 1);
    assert_eq!(conflict_event["incomingCount"], 2);
    assert!(conflict_event["currentUpdatedAt"].is_string());
    let saved = of_request("storage_pending_draft_saved");
    assert_eq!(saved["draftId"], conflict["draftId"]);
    let http = of_request("http_request");
    assert_eq!(
        (http["statusCode"].clone(), http["method"].clone()),
        (json!(409), json!("PUT"))
    );
    assert!(http["durationMs"].is_number());
    let write = events
        .iter()
        .find(|e| e["event"] == "storage_write")
        .expect("a storage_write event");
    assert_eq!(write["version"], 1);

    let whole_log = server.log.lock().expect("log").join("\n");
    assert!(!whole_log.contains(ADMIN_PASSWORD), "no password in the log");
    assert!(!whole_log.contains(&admin.token), "no token in the log");
}
