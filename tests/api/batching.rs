//! Group commit keeps the semantics of one-by-one commits.

use crate::helpers::{settings_for, spawn_app, spawn_app_with, Backend, TestDatabase};
use crate::on_both_backends;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;
use std::time::Duration;

on_both_backends! {
    async fn each_keys_records_land_in_the_order_their_versions_were_given(app) {
        // Appends to 4 keys at once: batches mix keys, and within a key the
        // record committed as version v sits at position v.
        let keys = ["k0", "k1", "k2", "k3"];
        let app = &app;
        let appends = (0..40).map(|n| {
            let key = keys[n % keys.len()];
            async move {
                let reply = app.post(&app.admin_token, &format!("/api/storage/{key}/items"), &json!({"id": n})).await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
                (key, n, reply.body["version"].as_i64().expect("version"))
            }
        });
        let results = futures_util::future::join_all(appends).await;
        for key in keys {
            let value = app.read(&app.admin_token, key).await.body["value"].clone();
            for (_, n, version) in results.iter().filter(|(k, _, _)| *k == key) {
                assert_eq!(value[(*version - 1) as usize]["id"], json!(n), "{key}: record {n} of version {version}");
            }
        }
    }
}

#[actix_web::test]
async fn batching_off_gives_the_same_answers() {
    let db = TestDatabase::sqlite();
    let settings = coordinator::Settings {
        max_batch: 1,
        ..settings_for(&db)
    };
    let app = spawn_app_with(db, settings).await;
    app.seed("activities", &json!([])).await;
    let writes = (0..8).map(|n| app.put(&app.admin_token, "activities", &json!([{"id": n}]), Some("\"1\"")));
    let replies = futures_util::future::join_all(writes).await;
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::OK).count(), 1);
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::CONFLICT).count(), 7);
}

/// A batch whose transaction fails acknowledges none of its requests, and
/// every payload in it becomes a `write_failed` draft.
#[actix_web::test]
async fn a_failed_batch_acknowledges_nothing_and_keeps_every_payload_as_a_draft() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        unreachable!("SQLite is always available")
    };
    let url = app.db.url.clone();
    let mut control = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("a second connection");
    // Creating the key `poisoned` makes its whole transaction fail. The
    // batch has written the history of every key in it by then: only a
    // rollback of the whole transaction undoes those rows.
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON storage WHEN NEW.key = 'poisoned' \
         BEGIN SELECT RAISE(ABORT, 'injected batch failure'); END",
    )
    .execute(&mut control)
    .await
    .expect("creating the trigger");

    // Hold the database's write lock so the writer's next transaction waits:
    // everything sent meanwhile queues up for the batch after it.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut control)
        .await
        .expect("locking");
    let blocked = app.put(&app.admin_token, "first", &json!([0]), None);
    let batch: Vec<_> = ["poisoned", "a", "b", "c", "d", "e"]
        .into_iter()
        .map(|key| app.put(&app.admin_token, key, &json!([{"id": key}]), None))
        .collect();
    let batch = async {
        // Sent once the first write is surely waiting for the lock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        futures_util::future::join_all(batch).await
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        sqlx::query("ROLLBACK").execute(&mut control).await.expect("unlocking");
    };
    let (first, replies, ()) = futures_util::join!(blocked, batch, release);
    assert_eq!(first.status, StatusCode::CREATED);

    for (key, reply) in ["poisoned", "a", "b", "c", "d", "e"].iter().zip(&replies) {
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{key}: {:?}", reply.body);
        assert_eq!(reply.body["error"], "storage_unavailable");
        assert_eq!(reply.body["draftSaved"], true, "{key}");
        assert_eq!(
            app.read(&app.admin_token, key).await.status,
            StatusCode::NOT_FOUND,
            "{key} was not written"
        );
    }
    let history: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM storage_history WHERE key <> 'first'")
        .fetch_one(&mut control)
        .await
        .expect("counting history rows");
    assert_eq!(history, 0, "the failed batch left history rows behind");
    let drafts = app.my_drafts(&app.admin_token).await;
    assert_eq!(drafts.len(), 6);
    for draft in &drafts {
        assert_eq!(draft["reason"], "write_failed");
        assert_eq!(draft["payload"][0]["id"], draft["key"]);
        assert!(
            draft["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("injected batch failure")),
            "{draft}"
        );
    }
    // The service goes on: the same writes succeed now, except the poisoned one.
    assert_eq!(
        app.put(&app.admin_token, "a", &json!([{"id": "a"}]), None).await.status,
        StatusCode::CREATED
    );
}
