//! Logins and tokens: logout revokes, failed logins are throttled per
//! username and per address, expired tokens are refused everywhere, and
//! admin actions are logged with the admin's name and no secret.

use crate::helpers::{settings_for, spawn_app_with, TestApp, TestDatabase, ADMIN_PASSWORD, USER_PASSWORD};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

on_both_backends! {
    async fn logout_revokes_the_callers_token_and_only_that_one(app) {
        let user = app.new_user().await;
        let other_session = app.login(&user.username, USER_PASSWORD).await;
        let reply = app.call(Method::POST, "/api/logout", Some(&user.token), &[], None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);

        let refused = app.get(&user.token, "/api/drafts").await;
        assert_eq!((refused.status, refused.body["error"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")));
        let write = app.put(&user.token, "k", &json!([1]), None).await;
        assert_eq!(write.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.read(&app.admin_token, "k").await.status, StatusCode::NOT_FOUND);
        // The user's other session is untouched, and so is everyone else's.
        assert_eq!(app.get(&other_session, "/api/drafts").await.status, StatusCode::OK);
        assert_eq!(app.get(&app.admin_token, "/api/drafts").await.status, StatusCode::OK);

        // A revoked, a made-up or a missing token cannot log out.
        for token in [Some(user.token.as_str()), Some("not-a-token"), None] {
            let reply = app.call(Method::POST, "/api/logout", token, &[], None).await;
            assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::UNAUTHORIZED, json!("unauthorized")), "{token:?}");
        }
        // Logging in again works.
        let again = app.login(&user.username, USER_PASSWORD).await;
        assert_eq!(app.get(&again, "/api/drafts").await.status, StatusCode::OK);
    }
}

async fn app_with_login_limits(per_user: u32, per_address: u32, window_secs: u64) -> TestApp {
    let db = TestDatabase::sqlite();
    let settings = coordinator::Settings {
        login_max_failures_per_user: per_user,
        login_max_failures_per_address: per_address,
        login_failure_window_secs: window_secs,
        ..settings_for(&db)
    };
    spawn_app_with(db, settings).await
}

/// A login attempt with the raw response, for its `Retry-After`.
async fn attempt(app: &TestApp, username: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
    let response = app
        .client
        .post(app.url("/api/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, response.json().await.expect("a JSON body"))
}

#[actix_web::test]
async fn failed_logins_for_one_username_are_throttled_with_retry_after() {
    let app = app_with_login_limits(3, 100, 300).await;
    let victim = app.new_user().await;
    let bystander = app.new_user().await;
    for _ in 0..3 {
        let (status, _, body) = attempt(&app, &victim.username, "wrong-password").await;
        assert_eq!(
            (status, body["error"].clone()),
            (StatusCode::UNAUTHORIZED, json!("invalid_credentials"))
        );
    }
    let (status, retry_after, body) = attempt(&app, &victim.username, "wrong-password").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "too_many_attempts");
    let retry_after = retry_after.expect("a Retry-After in seconds");
    assert!((290..=300).contains(&retry_after), "{retry_after}");
    // Even the right password waits: a guesser cannot tell it was right.
    let (status, _, _) = attempt(&app, &victim.username, USER_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Unknown usernames count too, and other users are not affected.
    for _ in 0..3 {
        attempt(&app, "nobody-at-all", "guess-password").await;
    }
    assert_eq!(
        attempt(&app, "nobody-at-all", "guess-password").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        attempt(&app, &bystander.username, USER_PASSWORD).await.0,
        StatusCode::OK
    );
    // The victim's existing session still works: throttling guards logins, not tokens.
    assert_eq!(app.get(&victim.token, "/api/drafts").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn failed_logins_from_one_address_are_throttled_across_usernames() {
    let app = app_with_login_limits(100, 4, 300).await;
    let user = app.new_user().await;
    for name in ["amy", "ben", "cat", "dan"] {
        assert_eq!(
            attempt(&app, name, "sprayed-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, retry_after, body) = attempt(&app, &user.username, USER_PASSWORD).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!("too_many_attempts"))
    );
    assert!(retry_after.is_some_and(|s| s >= 1));
}

#[actix_web::test]
async fn throttling_ends_when_the_failures_leave_the_window() {
    let app = app_with_login_limits(2, 100, 1).await;
    let user = app.new_user().await;
    attempt(&app, &user.username, "wrong-password").await;
    attempt(&app, &user.username, "wrong-password").await;
    let (status, retry_after, _) = attempt(&app, &user.username, USER_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after, Some(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(attempt(&app, &user.username, USER_PASSWORD).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn a_successful_login_clears_the_usernames_failures() {
    let app = app_with_login_limits(2, 100, 300).await;
    let user = app.new_user().await;
    assert_eq!(
        attempt(&app, &user.username, "wrong-password").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(attempt(&app, &user.username, USER_PASSWORD).await.0, StatusCode::OK);
    // Without the reset this would be the second failure in the window, and the login below a 429.
    assert_eq!(
        attempt(&app, &user.username, "wrong-password").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(attempt(&app, &user.username, USER_PASSWORD).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn an_expired_token_is_refused_on_every_route_and_writes_nothing() {
    let db = TestDatabase::sqlite();
    let settings = coordinator::Settings {
        token_ttl_secs: 1,
        ..settings_for(&db)
    };
    let app = spawn_app_with(db, settings).await;
    let token = app.admin_token.clone();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let routes = [
        (Method::GET, "/api/storage/k"),
        (Method::PUT, "/api/storage/k"),
        (Method::POST, "/api/storage/k/items"),
        (Method::GET, "/api/drafts"),
        (Method::POST, "/api/drafts/submit-all"),
        (Method::POST, "/api/admin/users"),
        (Method::GET, "/api/admin/drafts"),
        (Method::POST, "/api/logout"),
    ];
    for (method, path) in routes {
        let reply = app
            .call(method.clone(), path, Some(&token), &[], Some(br#"{"id":"x"}"#.to_vec()))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.body["error"], "unauthorized");
    }
    let fresh = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.read(&fresh, "k").await.status, StatusCode::NOT_FOUND);
}

/// The real binary, for its log lines on stdout.
mod logged {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};

    struct Server {
        child: Child,
        address: String,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        fn start(database_url: &str) -> Self {
            let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
                .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url])
                .env("COORDINATOR_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env_remove("DATABASE_URL")
                .env_remove("COORDINATOR_LOG_LEVEL")
                .env_remove("COORDINATOR_LOG_FORMAT")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting the coordinator binary");
            let stdout = child.stdout.take().expect("piped stdout");
            let lines = Arc::new(Mutex::new(Vec::new()));
            let (address_tx, address_rx) = std::sync::mpsc::channel();
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(event) = serde_json::from_str::<Value>(&line) {
                        if event["event"] == "server_started" {
                            let _ = address_tx.send(event["listen"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                    sink.lock().expect("log lock").push(line);
                }
            });
            let address = address_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server_started within 30 s");
            Self {
                child,
                address: format!("http://{address}"),
                lines,
            }
        }

        fn events(&self, name: &str) -> Vec<Value> {
            self.lines
                .lock()
                .expect("log lock")
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|event| event["event"] == name)
                .collect()
        }

        fn log_text(&self) -> String {
            self.lines.lock().expect("log lock").join("\n")
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn send(
        http: &reqwest::Client,
        method: Method,
        url: String,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(http: &reqwest::Client, base: &str, username: &str, password: &str) -> String {
        let (status, body) = send(
            http,
            Method::POST,
            format!("{base}/api/login"),
            "",
            Some(json!({"username": username, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Waits for the log line of an event (lines arrive on another thread).
    async fn wait_for(server: &Server, name: &str, count: usize) -> Vec<Value> {
        for _ in 0..100 {
            let events = server.events(name);
            if events.len() >= count {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {count} {name} events in the log:\n{}", server.log_text());
    }

    #[actix_web::test]
    async fn every_admin_action_is_logged_with_the_admins_name_and_no_secret() {
        let db = TestDatabase::sqlite();
        let server = Server::start(&db.url);
        let base = server.address.clone();
        let http = reqwest::Client::new();
        let admin = login(&http, &base, "admin", ADMIN_PASSWORD).await;

        let new_user = json!({"username": "erin", "password": USER_PASSWORD, "role": "user"});
        let (status, _) = send(
            &http,
            Method::POST,
            format!("{base}/api/admin/users"),
            &admin,
            Some(new_user),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let erin = login(&http, &base, "erin", USER_PASSWORD).await;

        // Two stale writes by erin: two drafts, one for each admin action.
        let (status, _) = send(
            &http,
            Method::PUT,
            format!("{base}/api/storage/k"),
            &admin,
            Some(json!([])),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let mut drafts = Vec::new();
        for n in 0..2 {
            let response = http
                .put(format!("{base}/api/storage/k"))
                .bearer_auth(&erin)
                .header("if-match", "\"9\"")
                .json(&json!([{"id": format!("e{n}")}]))
                .send()
                .await
                .expect("a reply");
            assert_eq!(response.status(), StatusCode::CONFLICT);
            let body: Value = response.json().await.expect("JSON");
            drafts.push(body["draftId"].as_str().expect("a draft").to_owned());
        }
        let (status, _) = send(
            &http,
            Method::DELETE,
            format!("{base}/api/admin/drafts/{}", drafts[0]),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = send(
            &http,
            Method::POST,
            format!("{base}/api/admin/drafts/{}/submit", drafts[1]),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = send(&http, Method::POST, format!("{base}/api/logout"), &erin, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let created = wait_for(&server, "admin_user_created", 2).await;
        let by_api = created
            .iter()
            .find(|e| e["username"] == "erin")
            .expect("erin's creation is logged");
        assert_eq!(by_api["admin"], "admin");
        let discarded = wait_for(&server, "storage_draft_discarded", 1).await;
        assert_eq!(discarded[0]["admin"], "admin");
        assert_eq!(discarded[0]["username"], "erin");
        assert_eq!(discarded[0]["draftId"], drafts[0].as_str());
        let submitted = wait_for(&server, "admin_draft_submitted", 1).await;
        assert_eq!(submitted[0]["admin"], "admin");
        assert_eq!(submitted[0]["username"], "erin");
        assert_eq!(submitted[0]["draftId"], drafts[1].as_str());
        assert_eq!(submitted[0]["statusCode"], 200);
        let logout = wait_for(&server, "user_logout", 1).await;
        assert_eq!(logout[0]["username"], "erin");

        // Passwords and tokens never reach the log.
        let log = server.log_text();
        for secret in [ADMIN_PASSWORD, USER_PASSWORD, admin.as_str(), erin.as_str()] {
            assert!(!log.contains(secret), "a secret is in the log");
        }
    }
}
