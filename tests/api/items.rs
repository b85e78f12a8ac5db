//! Record-level writes: append, patch, remove.

use crate::helpers::activity;
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

on_both_backends! {
    async fn fifty_users_appending_at_once_all_succeed_and_every_record_is_there_once(app) {
        let mut users = Vec::new();
        for _ in 0..50 {
            users.push(app.new_user().await);
        }
        let appends = users.iter().map(|user| {
            let record = activity(&format!("rec-{}", user.username), &user.username, "appended ✓");
            app.post(&user.token, "/api/storage/activities/items", &record)
        });
        let replies = futures_util::future::join_all(appends).await;
        assert!(replies.iter().all(|r| r.status == StatusCode::CREATED), "{replies:?}");
        let mut versions: Vec<i64> = replies.iter().map(|r| r.body["version"].as_i64().expect("version")).collect();
        versions.sort();
        assert_eq!(versions, (1..=50).collect::<Vec<_>>(), "each append is its own version");

        let value = app.read(&app.admin_token, "activities").await.body["value"].clone();
        let ids: Vec<&str> = value.as_array().expect("records").iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), 50);
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 50, "no record twice");
        for user in &users {
            assert!(unique.contains(format!("rec-{}", user.username).as_str()));
        }
        assert!(app.my_drafts(&app.admin_token).await.is_empty());
    }

    async fn items_are_appended_patched_and_removed_one_version_each(app) {
        app.seed("activities", &json!([activity("a", "admin", "first")])).await;
        let appended = app.post(&app.admin_token, "/api/storage/activities/items", &json!({"type": "poc", "notes": "no id"})).await;
        assert_eq!(appended.status, StatusCode::CREATED);
        assert_eq!(appended.body["version"], 2);
        assert_eq!(appended.etag.as_deref(), Some("\"2\""));
        let new_id = appended.body["id"].as_str().expect("an assigned id").to_owned();
        assert_eq!(new_id.len(), 36);

        let duplicate = app.post(&app.admin_token, "/api/storage/activities/items", &json!({"id": "a"})).await;
        assert_eq!((duplicate.status, duplicate.body["error"].clone()), (StatusCode::CONFLICT, json!("duplicate_id")));

        let app = &app;
        let patch = |id: &str, fields: Value, if_match: Option<&'static str>| {
            let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
            let path = format!("/api/storage/activities/items/{id}");
            let token = app.admin_token.clone();
            async move { app.call(Method::PATCH, &path, Some(&token), &headers, Some(fields.to_string().into_bytes())).await }
        };
        let patched = patch("a", json!({"notes": "edited", "durationMinutes": 45}), None).await;
        assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
        assert_eq!(patched.body["version"], 3);
        let patched = patch(&new_id, json!({"notes": "edited too"}), Some("\"3\"")).await;
        assert_eq!(patched.body["version"], 4);
        assert_eq!(patch("missing", json!({"notes": "x"}), None).await.body["error"], "record_not_found");
        assert_eq!(patch("a", json!({"id": "b"}), None).await.status, StatusCode::BAD_REQUEST);

        let removed = app.call(Method::DELETE, "/api/storage/activities/items/a", Some(&app.admin_token), &[], None).await;
        assert_eq!(removed.status, StatusCode::OK);
        assert_eq!(removed.body["version"], 5);
        let gone = app.call(Method::DELETE, "/api/storage/activities/items/a", Some(&app.admin_token), &[], None).await;
        assert_eq!((gone.status, gone.body["error"].clone()), (StatusCode::NOT_FOUND, json!("record_not_found")));

        let read = app.read(&app.admin_token, "activities").await;
        assert_eq!(read.body["version"], 5);
        assert_eq!(read.body["value"], json!([{"type": "poc", "notes": "edited too", "id": new_id}]));
        let history = app.get(&app.admin_token, "/api/storage/activities/history").await;
        let versions: Vec<i64> = history.body["versions"].as_array().expect("versions").iter().map(|v| v["version"].as_i64().unwrap()).collect();
        assert_eq!(versions, vec![5, 4, 3, 2, 1]);
    }

    async fn a_stale_conditional_patch_keeps_the_patched_record_as_a_draft(app) {
        app.seed("activities", &json!([activity("a", "admin", "original"), activity("b", "admin", "b")])).await;
        assert_eq!(app.post(&app.admin_token, "/api/storage/activities/items", &json!({"id": "c"})).await.status, StatusCode::CREATED);
        let body = json!({"notes": "patched on v1"}).to_string().into_bytes();
        let stale = app.call(Method::PATCH, "/api/storage/activities/items/a", Some(&app.admin_token), &[("if-match", "\"1\"")], Some(body)).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_eq!(stale.body["draftSaved"], true);
        let draft = &app.my_drafts(&app.admin_token).await[0];
        assert_eq!(draft["baseVersion"], 1);
        assert_eq!(draft["payload"][0]["notes"], "patched on v1");
        // Submitting it applies the patch on top of the append it missed.
        let submit = app.post(&app.admin_token, &format!("/api/drafts/{}/submit", draft["id"].as_str().unwrap()), &json!({})).await;
        assert_eq!(submit.status, StatusCode::OK, "{:?}", submit.body);
        let value = app.read(&app.admin_token, "activities").await.body["value"].clone();
        assert_eq!(value[0]["notes"], "patched on v1");
        assert_eq!(value.as_array().map(Vec::len), Some(3));
    }

    async fn a_stale_patch_draft_never_brings_back_records_deleted_since(app) {
        app.seed("activities", &json!([{"id": "a"}])).await;
        let v2 = json!([{"id": "a"}, {"id": "x"}, {"id": "z"}]);
        assert_eq!(app.put(&app.admin_token, "activities", &v2, Some("\"1\"")).await.status, StatusCode::OK);
        // x did not exist in version 1: the draft is made from version 2.
        let headers = [("if-match", "\"1\"")];
        let body = json!({"n": 1}).to_string().into_bytes();
        let stale = app.call(Method::PATCH, "/api/storage/activities/items/x", Some(&app.admin_token), &headers, Some(body)).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        let draft = app.my_drafts(&app.admin_token).await[0].clone();
        assert_eq!(draft["baseVersion"], 2, "the version the payload was made from");
        // Others delete z and x afterwards.
        for id in ["z", "x"] {
            let path = format!("/api/storage/activities/items/{id}");
            assert_eq!(app.call(Method::DELETE, &path, Some(&app.admin_token), &[], None).await.status, StatusCode::OK);
        }
        let submit = app.post(&app.admin_token, &format!("/api/drafts/{}/submit", draft["id"].as_str().unwrap()), &json!({})).await;
        // The patched x was deleted by someone else: a conflict, and z stays deleted.
        assert_eq!(submit.status, StatusCode::CONFLICT, "{:?}", submit.body);
        assert_eq!(submit.body["conflictingIds"], json!(["x"]));
        assert_eq!(app.read(&app.admin_token, "activities").await.body["value"], json!([{"id": "a"}]));
    }

    async fn an_item_write_on_a_value_that_is_not_an_array_is_refused(app) {
        app.seed("settings", &json!({"theme": "dark"})).await;
        let reply = app.post(&app.admin_token, "/api/storage/settings/items", &json!({"id": 1})).await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::CONFLICT, json!("not_an_array")));
        let bad_id = app.post(&app.admin_token, "/api/storage/settings/items", &json!({"id": {"nested": 1}})).await;
        assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
        let not_object = app.post(&app.admin_token, "/api/storage/settings/items", &json!([1])).await;
        assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.read(&app.admin_token, "settings").await.body["version"], 1);
    }
}
