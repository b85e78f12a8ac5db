//! Faults inside the service: a key actor that fails mid-write.

use crate::helpers::{spawn_app, Backend};
use crate::on_both_backends;
use reqwest::StatusCode;
use serde_json::json;

on_both_backends! {
    async fn a_key_actor_that_panics_mid_write_keeps_the_payload_and_recovers(app) {
        app.seed("explodes", &json!([{"id": 1}])).await;
        app.seed("calm", &json!([])).await;

        // The `fault-injection` build (tests only) panics in the middle of
        // a write holding this record.
        let payload = json!([{"id": 1}, {"id": 2, "notes": "typed before the crash", "injectFault": "panic"}]);
        let (failed, calm) = futures_util::join!(
            app.put(&app.admin_token, "explodes", &payload, Some("\"1\"")),
            // Other keys are not affected meanwhile.
            app.put(&app.admin_token, "calm", &json!([{"id": "c"}]), Some("\"1\"")),
        );

        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.body["error"], "internal_error");
        assert_eq!(failed.body["draftSaved"], true);
        assert_eq!(calm.status, StatusCode::OK);

        let drafts = app.my_drafts(&app.admin_token).await;
        assert_eq!(drafts.len(), 1);
        assert_eq!(drafts[0]["id"], failed.body["draftId"]);
        assert_eq!(drafts[0]["reason"], "write_failed");
        assert_eq!(drafts[0]["payload"], payload);

        // The actor reloads from the database and serves the key again.
        let fixed = json!([{"id": 1}, {"id": 2, "notes": "typed before the crash"}]);
        let retry = app.put(&app.admin_token, "explodes", &fixed, Some("\"1\"")).await;
        assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
        assert_eq!(retry.body["version"], 2);
    }
}

/// While the database refuses writes, payloads still are not lost: drafts
/// go to the local spool (on disk before the answer) and move into
/// `pending_storage_saves` once the database takes writes again.
#[actix_web::test]
async fn when_the_database_refuses_writes_drafts_are_spooled_and_moved_in_later() {
    use sqlx::Connection;
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        unreachable!("SQLite is always available")
    };
    app.seed("activities", &json!([])).await;
    let spool = app.db.spool.path().join("drafts.jsonl");
    let mut control = sqlx::SqliteConnection::connect(&app.db.url)
        .await
        .expect("a second connection");
    for table in ["pending_storage_saves", "storage_history"] {
        let refuse = format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        );
        sqlx::query(&refuse)
            .execute(&mut control)
            .await
            .expect("creating a trigger");
    }

    let stale = app
        .put(&app.admin_token, "activities", &json!([{"id": "stale"}]), Some("\"7\""))
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["draftSaved"], true);
    let failed = app
        .put(
            &app.admin_token,
            "activities",
            &json!([{"id": "failed"}]),
            Some("\"1\""),
        )
        .await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.body["error"], "storage_unavailable");
    assert_eq!(failed.body["draftSaved"], true);
    let spooled = std::fs::read_to_string(&spool).expect("the spool file");
    assert_eq!(spooled.lines().count(), 2, "both drafts are on disk before the answers");
    assert!(
        app.my_drafts(&app.admin_token).await.is_empty(),
        "not in the database yet"
    );

    for table in ["pending_storage_saves", "storage_history"] {
        sqlx::query(&format!("DROP TRIGGER refuse_{table}"))
            .execute(&mut control)
            .await
            .expect("dropping");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let drafts = loop {
        let drafts = app.my_drafts(&app.admin_token).await;
        if drafts.len() == 2 {
            break drafts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spooled drafts never reached the database"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let by_id = |id: &serde_json::Value| {
        drafts
            .iter()
            .find(|d| d["id"] == *id)
            .cloned()
            .expect("the answered draft id")
    };
    assert_eq!(by_id(&stale.body["draftId"])["reason"], "conflict");
    assert_eq!(by_id(&failed.body["draftId"])["reason"], "write_failed");
    assert_eq!(by_id(&failed.body["draftId"])["payload"], json!([{"id": "failed"}]));
    assert!(!spool.exists(), "the spool is emptied once moved");
    // And writes work again.
    assert_eq!(
        app.put(&app.admin_token, "activities", &json!([{"id": "ok"}]), Some("\"1\""))
            .await
            .status,
        StatusCode::OK
    );
}

/// PostgreSQL out of reach for a while (the test database refuses every
/// connection): writes answer 503 with their payload spooled, and once the
/// database is back the drafts move in and writes go through again.
#[actix_web::test]
async fn a_postgresql_outage_answers_503_keeps_every_payload_and_recovers() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    app.seed("activities", &json!([])).await;
    let (admin_url, name) = app.db.postgres_name().expect("a PostgreSQL database");
    let admin = sqlx::PgPool::connect(admin_url).await.expect("the admin connection");
    let outage = |allow: bool| {
        let admin = admin.clone();
        let name = name.to_owned();
        async move {
            sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
                .execute(&admin)
                .await
                .expect("alter");
            if !allow {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&name)
                    .execute(&admin)
                    .await
                    .expect("dropping the service's connections");
            }
        }
    };

    outage(false).await;
    let during = app
        .put(
            &app.admin_token,
            "activities",
            &json!([{"id": "during"}]),
            Some("\"1\""),
        )
        .await;
    outage(true).await;

    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", during.body);
    assert_eq!(during.body["draftSaved"], true, "{:?}", during.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let drafts = loop {
        let drafts = app.my_drafts(&app.admin_token).await;
        if !drafts.is_empty() {
            break drafts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spooled draft never reached the database"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(drafts[0]["id"], during.body["draftId"]);
    assert_eq!(drafts[0]["payload"], json!([{"id": "during"}]));
    // The key actor reloads after the outage: nothing was applied, version 1 is current.
    let after = app
        .put(&app.admin_token, "activities", &json!([{"id": "after"}]), Some("\"1\""))
        .await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
    assert_eq!(after.body["version"], 2);
    admin.close().await;
}
