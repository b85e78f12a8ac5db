//! Fewer conflicts and safe retries: Prefer: merge, Idempotency-Key, draft
//! deduplication, history and restore, legacy clients.

use crate::helpers::{activity, settings_for, spawn_app_with, TestDatabase};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends! {
    async fn a_stale_put_with_prefer_merge_merges_when_the_changes_do_not_overlap(app) {
        let a = activity("a", "admin", "shared");
        app.seed("activities", &json!([a])).await;
        let theirs = json!([a, activity("t", "admin", "theirs")]);
        assert_eq!(app.put(&app.admin_token, "activities", &theirs, Some("\"1\"")).await.status, StatusCode::OK);

        let ours = json!([a, activity("o", "admin", "ours")]).to_string().into_bytes();
        let headers = [("if-match", "\"1\""), ("prefer", "merge")];
        let merged = app.call(Method::PUT, "/api/storage/activities", Some(&app.admin_token), &headers, Some(ours)).await;
        assert_eq!(merged.status, StatusCode::OK, "{:?}", merged.body);
        assert_eq!(merged.body["merged"], true);
        assert_eq!(merged.body["version"], 3);
        let value = app.read(&app.admin_token, "activities").await.body["value"].clone();
        assert_eq!(value, json!([a, activity("t", "admin", "theirs"), activity("o", "admin", "ours")]));
        assert!(app.my_drafts(&app.admin_token).await.is_empty());

        // Overlapping changes still conflict and keep a draft: this client,
        // still on version 1, also holds a record `t`, unlike the one stored.
        let overlapping = json!([a, activity("t", "admin", "a different t")]).to_string().into_bytes();
        let reply = app.call(Method::PUT, "/api/storage/activities", Some(&app.admin_token), &headers, Some(overlapping)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.body["draftSaved"], true);
        assert_eq!(app.read(&app.admin_token, "activities").await.body["version"], 3);
        let drafts = app.my_drafts(&app.admin_token).await;
        let detail = app.get(&app.admin_token, &format!("/api/drafts/{}", drafts[0]["id"].as_str().unwrap())).await;
        assert_eq!(detail.body["diff"]["conflictingIds"], json!(["t"]));
        // Without the header the contract is unchanged.
        let plain = app.put(&app.admin_token, "activities", &json!([a, activity("x", "admin", "x")]), Some("\"1\"")).await;
        assert_eq!(plain.status, StatusCode::CONFLICT);
    }

    async fn a_replayed_idempotency_key_returns_the_first_answer_and_changes_nothing(app) {
        app.seed("activities", &json!([])).await;
        let app = &app;
        let send = |body: serde_json::Value, key: &'static str| {
            let body = body.to_string().into_bytes();
            let token = app.admin_token.clone();
            async move {
                app.call(Method::PUT, "/api/storage/activities", Some(&token), &[("if-match", "\"1\""), ("idempotency-key", key)], Some(body)).await
            }
        };
        let first = send(json!([{"id": 1}]), "save-1").await;
        assert_eq!(first.status, StatusCode::OK);
        let again = send(json!([{"id": 1}]), "save-1").await;
        assert_eq!(again.status, StatusCode::OK, "a retry is answered as the first time, not as a stale write");
        assert_eq!(again.body, first.body);
        assert_eq!(again.etag, first.etag);
        assert_eq!(app.read(&app.admin_token, "activities").await.body["version"], 2, "applied once");
        assert!(app.my_drafts(&app.admin_token).await.is_empty());

        let reused = send(json!([{"id": 2}]), "save-1").await;
        assert_eq!((reused.status, reused.body["error"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("idempotency_key_reused")));

        // A request that fails validation does not use up its key.
        let broken = app.call(Method::PUT, "/api/storage/activities", Some(&app.admin_token), &[("if-match", "\"2\""), ("idempotency-key", "save-2")], Some(b"[".to_vec())).await;
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
        let fixed = app.call(Method::PUT, "/api/storage/activities", Some(&app.admin_token), &[("if-match", "\"2\""), ("idempotency-key", "save-2")], Some(b"[3]".to_vec())).await;
        assert_eq!(fixed.status, StatusCode::OK);
        // Keys are per user: another user's same key is a different key.
        let user = app.new_user().await;
        let theirs = app.call(Method::PUT, "/api/storage/activities", Some(&user.token), &[("if-match", "\"3\""), ("idempotency-key", "save-1")], Some(b"[4]".to_vec())).await;
        assert_eq!(theirs.status, StatusCode::OK);
        let bad_key = app.call(Method::PUT, "/api/storage/activities", Some(&user.token), &[("if-match", "\"4\""), ("idempotency-key", "")], Some(b"[5]".to_vec())).await;
        assert_eq!(bad_key.body["error"], "invalid_idempotency_key");
    }

    async fn one_idempotency_key_sent_to_several_keys_at_once_is_applied_once(app) {
        let app = &app;
        let sends = ["k1", "k2", "k3", "k4", "k5"].map(|key| async move {
            let path = format!("/api/storage/{key}");
            let reply = app.call(Method::PUT, &path, Some(&app.admin_token), &[("idempotency-key", "shared")], Some(b"[1]".to_vec())).await;
            (key, reply)
        });
        let replies = futures_util::future::join_all(sends).await;
        let applied: Vec<_> = replies.iter().filter(|(_, r)| r.status == StatusCode::CREATED).collect();
        assert_eq!(applied.len(), 1, "{replies:?}");
        assert_eq!(replies.iter().filter(|(_, r)| r.status == StatusCode::UNPROCESSABLE_ENTITY).count(), 4);
        let (winner, first) = applied[0];
        for (key, _) in &replies {
            let stored = app.read(&app.admin_token, key).await.status;
            assert_eq!(stored == StatusCode::OK, key == winner, "{key}");
        }
        // The winner's retry is answered as the first time.
        let retry = app.call(Method::PUT, &format!("/api/storage/{winner}"), Some(&app.admin_token), &[("idempotency-key", "shared")], Some(b"[1]".to_vec())).await;
        assert_eq!((retry.status, &retry.body), (first.status, &first.body));
    }

    async fn an_idempotent_append_is_applied_once(app) {
        let record = json!({"notes": "server assigns my id"}).to_string().into_bytes();
        let append = || app.call(Method::POST, "/api/storage/activities/items", Some(&app.admin_token), &[("idempotency-key", "append-1")], Some(record.clone()));
        let first = append().await;
        let second = append().await;
        assert_eq!(first.status, StatusCode::CREATED);
        assert_eq!(second.body, first.body);
        let value = app.read(&app.admin_token, "activities").await.body["value"].clone();
        assert_eq!(value.as_array().map(Vec::len), Some(1));
    }

    async fn the_same_stale_put_sent_five_times_leaves_one_draft(app) {
        app.seed("activities", &json!([])).await;
        assert_eq!(app.put(&app.admin_token, "activities", &json!([{"id": "w"}]), Some("\"1\"")).await.status, StatusCode::OK);
        let user = app.new_user().await;
        let mut draft_ids = Vec::new();
        for _ in 0..5 {
            let reply = app.put(&user.token, "activities", &json!([{"id": "mine"}]), Some("\"1\"")).await;
            assert_eq!(reply.status, StatusCode::CONFLICT);
            assert_eq!(reply.body["draftSaved"], true);
            draft_ids.push(reply.body["draftId"].as_str().expect("id").to_owned());
        }
        draft_ids.dedup();
        assert_eq!(draft_ids.len(), 1, "every retry names the one draft");
        assert_eq!(app.my_drafts(&user.token).await.len(), 1);
        // A different payload, or another base, is another draft.
        app.put(&user.token, "activities", &json!([{"id": "other"}]), Some("\"1\"")).await;
        app.put(&user.token, "activities", &json!([{"id": "mine"}]), Some("\"0\"")).await;
        assert_eq!(app.my_drafts(&user.token).await.len(), 3);
    }

    async fn history_lists_versions_and_an_old_version_is_restored_with_a_conditional_put(app) {
        app.seed("accounts", &json!([{"id": "acct-1", "name": "ACME"}])).await;
        let user = app.new_user().await;
        let tx = [("if-match", "\"1\""), ("x-transaction-id", "rename-acme")];
        let body = json!([{"id": "acct-1", "name": "ACME Corp"}, {"id": "acct-2"}]).to_string().into_bytes();
        assert_eq!(app.call(Method::PUT, "/api/storage/accounts", Some(&user.token), &tx, Some(body)).await.status, StatusCode::OK);

        let history = app.get(&app.admin_token, "/api/storage/accounts/history?limit=10").await;
        assert_eq!(history.status, StatusCode::OK);
        let versions = history.body["versions"].as_array().expect("versions").clone();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["version"], 2);
        assert_eq!(versions[0]["username"], user.username.as_str());
        assert_eq!(versions[0]["transactionId"], "rename-acme");
        assert_eq!(versions[0]["recordCount"], 2);
        assert_eq!(versions[1]["recordCount"], 1);
        assert!(versions[0].get("value").is_none(), "listings leave values out");
        assert_eq!(app.get(&app.admin_token, "/api/storage/accounts/history?limit=0").await.status, StatusCode::BAD_REQUEST);

        let old = app.get(&app.admin_token, "/api/storage/accounts/versions/1").await;
        assert_eq!(old.body["value"], json!([{"id": "acct-1", "name": "ACME"}]));
        assert_eq!(app.get(&app.admin_token, "/api/storage/accounts/versions/9").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&app.admin_token, "/api/storage/accounts/versions/x").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&user.token, "/api/storage/accounts/history").await.status, StatusCode::FORBIDDEN);

        let restored = app.put(&app.admin_token, "accounts", &old.body["value"], Some("\"2\"")).await;
        assert_eq!(restored.body["version"], 3, "a restore is a new version; numbers are never reused");
        let versions = app.get(&app.admin_token, "/api/storage/accounts/history").await.body["versions"].clone();
        let numbers: Vec<i64> = versions.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(numbers, vec![3, 2, 1]);
    }
}

mod legacy_clients {
    use super::*;

    #[actix_web::test]
    async fn allow_unconditional_lets_only_pure_additions_through() {
        let db = TestDatabase::sqlite();
        let settings = coordinator::Settings {
            allow_unconditional: true,
            ..settings_for(&db)
        };
        let app = spawn_app_with(db, settings).await;
        app.seed("activities", &json!([{"id": 1, "n": 1}])).await;
        let added = app
            .put(
                &app.admin_token,
                "activities",
                &json!([{"id": 1, "n": 1}, {"id": 2}]),
                None,
            )
            .await;
        assert_eq!(added.status, StatusCode::OK);
        let dropping = app.put(&app.admin_token, "activities", &json!([{"id": 3}]), None).await;
        assert_eq!(dropping.status, StatusCode::CONFLICT);
        assert_eq!(dropping.body["reason"], "unsafe_overwrite");
        assert_eq!(dropping.body["draftSaved"], true);
        let changing = app
            .put(
                &app.admin_token,
                "activities",
                &json!([{"id": 1, "n": 9}, {"id": 2}]),
                None,
            )
            .await;
        assert_eq!(changing.status, StatusCode::CONFLICT);
        let drafts = app.my_drafts(&app.admin_token).await;
        assert_eq!(drafts.len(), 2);
        assert!(drafts.iter().all(|d| d["reason"] == "unsafe_overwrite"));
        let read = app.read(&app.admin_token, "activities").await;
        assert_eq!(read.body["value"], json!([{"id": 1, "n": 1}, {"id": 2}]));
        let stats = app.get(&app.admin_token, "/api/admin/drafts/stats").await;
        assert_eq!(stats.body["byReason"]["unsafe_overwrite"], 2);
    }

    #[actix_web::test]
    async fn without_the_flag_an_unconditional_put_is_still_428() {
        let db = TestDatabase::sqlite();
        let settings = settings_for(&db);
        let app = spawn_app_with(db, settings).await;
        app.seed("activities", &json!([{"id": 1}])).await;
        let reply = app
            .put(&app.admin_token, "activities", &json!([{"id": 1}, {"id": 2}]), None)
            .await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_REQUIRED);
    }
}
