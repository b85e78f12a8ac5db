//! For operators: `/healthz`, `/readyz` and `/metrics`, without a login.

use crate::helpers::{settings_for, spawn_app_with, Backend, TestApp, TestDatabase};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// GET without a token: status and JSON body.
async fn probe(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.client.get(app.url(path)).send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

/// Runs SQL on the test's database directly, as an operator with psql or sqlite3 would.
async fn execute(app: &TestApp, sql: &str) {
    match app.db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.expect("opening SQLite");
            sqlx::query(sql).execute(&pool).await.expect("running SQL");
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url)
                .await
                .expect("connecting to PostgreSQL");
            sqlx::query(sql).execute(&pool).await.expect("running SQL");
            pool.close().await;
        }
    }
}

/// Scrapes `/metrics` (with `token` if given) into `series -> value`.
async fn scrape(app: &TestApp, token: Option<&str>) -> BTreeMap<String, f64> {
    let mut request = app.client.get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.expect("a text body");
    let mut series = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line:?}"));
        assert!(series.insert(name.to_owned(), value).is_none(), "{name} twice");
    }
    series
}

fn get(series: &BTreeMap<String, f64>, name: &str) -> f64 {
    series.get(name).copied().unwrap_or(0.0)
}

/// How much a counter grew between two scrapes. The counters are per
/// process and other tests run beside this one, so a test checks growth of
/// at least what it caused itself.
fn growth(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, name: &str) -> f64 {
    get(after, name) - get(before, name)
}

on_both_backends! {
    async fn healthz_and_readyz_answer_without_a_token(app) {
        assert_eq!(probe(&app, "/healthz").await, (StatusCode::OK, json!({"status": "ok"})));
        assert_eq!(probe(&app, "/readyz").await, (StatusCode::OK, json!({"status": "ready"})));
        // A bad token does not matter on the probes.
        let response = app.client.get(app.url("/readyz")).bearer_auth("garbage").send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        let reply = app.call(Method::POST, "/healthz", None, &[], None).await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")));
    }

    async fn readyz_is_503_while_a_migration_is_missing(app) {
        execute(&app, "UPDATE _sqlx_migrations SET success = FALSE WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)").await;
        let (status, body) = probe(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "migrations_pending");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("coordinator migrate")), "{body}");
        // Alive all the same.
        assert_eq!(probe(&app, "/healthz").await.0, StatusCode::OK);
        execute(&app, "UPDATE _sqlx_migrations SET success = TRUE").await;
        assert_eq!(probe(&app, "/readyz").await.0, StatusCode::OK);
    }

    async fn metrics_count_requests_writes_conflicts_and_drafts(app) {
        let _ = coordinator::telemetry::init(coordinator::config::LogFormat::Json, "off");
        let user = app.new_user().await;
        let before = scrape(&app, None).await;

        app.seed("metrics-probe-key", &json!([])).await;
        let won = app.put(&app.admin_token, "metrics-probe-key", &json!([{"id": "a"}]), Some("\"1\"")).await;
        assert_eq!(won.status, StatusCode::OK);
        let stale = app.put(&user.token, "metrics-probe-key", &json!([{"id": "b"}]), Some("\"1\"")).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        let unconditional = app.put(&user.token, "metrics-probe-key", &json!([]), None).await;
        assert_eq!(unconditional.status, StatusCode::PRECONDITION_REQUIRED);

        let during = scrape(&app, None).await;
        // Read from this app's database and registry at scrape time: exact.
        assert_eq!(get(&during, "coordinator_pending_drafts{reason=\"conflict\"}"), 1.0);
        assert!(get(&during, "coordinator_live_key_actors") >= 1.0);

        let draft_id = stale.body["draftId"].as_str().expect("a draft id");
        let submitted = app.post(&user.token, &format!("/api/drafts/{draft_id}/submit"), &json!({})).await;
        assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
        let after = scrape(&app, None).await;

        let route = "route=\"/api/storage/{key}\"";
        assert!(growth(&before, &after, &format!("coordinator_http_requests_total{{{route},method=\"PUT\",status=\"201\"}}")) >= 1.0);
        assert!(growth(&before, &after, &format!("coordinator_http_requests_total{{{route},method=\"PUT\",status=\"200\"}}")) >= 1.0);
        assert!(growth(&before, &after, &format!("coordinator_http_requests_total{{{route},method=\"PUT\",status=\"409\"}}")) >= 1.0);
        assert!(growth(&before, &after, &format!("coordinator_http_requests_total{{{route},method=\"PUT\",status=\"428\"}}")) >= 1.0);
        assert!(growth(&before, &after, "coordinator_http_requests_total{route=\"/api/drafts/{id}/submit\",method=\"POST\",status=\"200\"}") >= 1.0);
        assert!(growth(&before, &after, &format!("coordinator_http_request_duration_seconds_count{{{route}}}")) >= 4.0);
        assert!(growth(&before, &after, &format!("coordinator_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}")) >= 4.0);
        assert!(growth(&before, &after, "coordinator_storage_writes_total") >= 3.0, "seed, write and submit");
        assert!(growth(&before, &after, "coordinator_storage_conflicts_total{reason=\"conflict\"}") >= 1.0);
        assert!(growth(&before, &after, "coordinator_drafts_saved_total{reason=\"conflict\"}") >= 1.0);
        assert!(growth(&before, &after, "coordinator_drafts_recovered_total{reason=\"conflict\"}") >= 1.0);
        assert_eq!(get(&after, "coordinator_pending_drafts{reason=\"conflict\"}"), 0.0);
        // The batch writer's transactions are this app's own: at least one,
        // at most one per commit or draft it persisted (seed, write, draft, submit).
        let batches: f64 = after.iter().filter(|(name, _)| name.starts_with("coordinator_write_batches_total{")).map(|(_, n)| n).sum();
        assert!((1.0..=4.0).contains(&batches), "{batches} batches");
        // Labels are route patterns: no key, id or raw path ever becomes a series.
        assert!(after.keys().all(|series| !series.contains("metrics-probe-key") && !series.contains(draft_id)));
    }
}

#[actix_web::test]
async fn a_metrics_token_closes_metrics_but_not_the_probes() {
    let db = TestDatabase::sqlite();
    let settings = coordinator::Settings {
        metrics_token: Some("scrape-secret-for-tests".into()),
        ..settings_for(&db)
    };
    let app = spawn_app_with(db, settings).await;
    let admin_token = app.admin_token.clone();
    for token in [None, Some("wrong-secret"), Some(admin_token.as_str())] {
        let reply = app.call(Method::GET, "/metrics", token, &[], None).await;
        assert_eq!(
            (reply.status, reply.body["error"].clone()),
            (StatusCode::UNAUTHORIZED, json!("unauthorized")),
            "{token:?}"
        );
    }
    let series = scrape(&app, Some("scrape-secret-for-tests")).await;
    assert!(series.contains_key("coordinator_live_key_actors"));
    assert_eq!(probe(&app, "/healthz").await.0, StatusCode::OK);
    assert_eq!(probe(&app, "/readyz").await.0, StatusCode::OK);
}

#[actix_web::test]
async fn readyz_is_503_while_postgresql_refuses_connections() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let name = db.url.rsplit('/').next().expect("a database name").to_owned();
    let settings = settings_for(&db);
    let app = spawn_app_with(db, settings).await;
    assert_eq!(probe(&app, "/readyz").await.0, StatusCode::OK);

    // The server the tests create their databases on, as the helpers find it.
    let admin_url = std::env::var("COORDINATOR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("connecting as admin");
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .expect("closing");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&admin)
    .await
    .expect("ending the sessions");
    let (status, body) = probe(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "database_unavailable");
    assert_eq!(probe(&app, "/healthz").await.0, StatusCode::OK);

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .expect("reopening");
    admin.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while probe(&app, "/readyz").await.0 != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "readyz stays 503 after the database is back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
