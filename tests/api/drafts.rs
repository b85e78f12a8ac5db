use crate::helpers::{activity, TestApp, User};
use crate::on_both_backends;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Seeds `activities` with `base` (version 1), lets `winner` commit
/// `theirs` on it, then has `loser` write `ours` on version 1 too:
/// returns the loser's draft id.
async fn collide(app: &TestApp, base: Value, theirs: Value, loser: &User, ours: Value) -> String {
    app.seed("activities", &base).await;
    let won = app.put(&app.admin_token, "activities", &theirs, Some("\"1\"")).await;
    assert_eq!(won.status, StatusCode::OK);
    let lost = app.put(&loser.token, "activities", &ours, Some("\"1\"")).await;
    assert_eq!(lost.status, StatusCode::CONFLICT);
    lost.body["draftId"].as_str().expect("a draft id").to_owned()
}

on_both_backends! {
    async fn submitting_a_draft_merges_two_users_appending_different_records(app) {
        let user = app.new_user().await;
        let shared = activity("shared", "admin", "existing");
        let theirs = activity("theirs", "admin", "admin's call");
        let ours = activity("ours", &user.username, "user's POC");
        let draft_id = collide(&app, json!([shared]), json!([shared, theirs]), &user, json!([shared, ours])).await;

        let reply = app.post(&user.token, &format!("/api/drafts/{draft_id}/submit"), &json!({})).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["status"], "saved");
        assert_eq!(reply.body["draftId"], draft_id.as_str());
        assert_eq!(reply.body["version"], 3);

        let read = app.read(&user.token, "activities").await;
        assert_eq!(read.body["value"], json!([shared, theirs, ours]));
        assert!(app.my_drafts(&user.token).await.is_empty(), "a saved draft disappears");
    }

    async fn a_draft_whose_record_both_sides_edited_still_conflicts_and_stays(app) {
        let user = app.new_user().await;
        let draft_id = collide(
            &app,
            json!([activity("a", "admin", "original")]),
            json!([activity("a", "admin", "edited by admin")]),
            &user,
            json!([activity("a", "admin", "edited by user")]),
        )
        .await;

        for attempt in 1..=2 {
            let reply = app.post(&user.token, &format!("/api/drafts/{draft_id}/submit"), &json!({})).await;
            assert_eq!(reply.status, StatusCode::CONFLICT);
            assert_eq!(reply.body["status"], "conflict");
            assert_eq!(reply.body["error"], "merge_conflict");
            assert_eq!(reply.body["conflictingIds"], json!(["a"]));
            let drafts = app.my_drafts(&user.token).await;
            assert_eq!(drafts.len(), 1);
            assert_eq!(drafts[0]["attempts"], attempt);
            assert!(drafts[0]["lastError"].as_str().is_some_and(|e| e.contains("\"a\"")));
        }
        // Nobody's committed change was overwritten.
        let read = app.read(&user.token, "activities").await;
        assert_eq!(read.body["value"], json!([activity("a", "admin", "edited by admin")]));
        assert_eq!(read.body["version"], 2);
    }

    async fn the_draft_detail_previews_what_a_submit_would_do(app) {
        let user = app.new_user().await;
        let draft_id = collide(
            &app,
            json!([activity("a", "admin", "1")]),
            json!([activity("a", "admin", "1"), activity("t", "admin", "theirs")]),
            &user,
            json!([activity("a", "admin", "changed"), activity("o", &user.username, "ours")]),
        )
        .await;
        let reply = app.get(&user.token, &format!("/api/drafts/{draft_id}")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["draft"]["id"], draft_id.as_str());
        assert_eq!(reply.body["currentVersion"], 2);
        let diff = &reply.body["diff"];
        assert_eq!(diff["mergeable"], true);
        assert_eq!(diff["added"], json!(["o"]));
        assert_eq!(diff["changed"], json!(["a"]));
        assert_eq!(diff["removed"], json!([]));
        assert_eq!(diff["conflictingIds"], json!([]));
    }

    async fn submit_all_saves_what_merges_and_keeps_what_conflicts_oldest_first(app) {
        let user = app.new_user().await;
        app.seed("activities", &json!([activity("a", "admin", "1")])).await;
        app.seed("internalActivities", &json!([])).await;
        // Draft 1 (older): an append on internalActivities, mergeable.
        assert_eq!(app.put(&app.admin_token, "internalActivities", &json!([{"id": "i-admin"}]), Some("\"1\"")).await.status, StatusCode::OK);
        let first = app.put(&user.token, "internalActivities", &json!([{"id": "i-user"}]), Some("\"1\"")).await;
        assert_eq!(first.status, StatusCode::CONFLICT);
        // Draft 2: an edit of a record the admin edited too, not mergeable.
        assert_eq!(app.put(&app.admin_token, "activities", &json!([activity("a", "admin", "admin")]), Some("\"1\"")).await.status, StatusCode::OK);
        let second = app.put(&user.token, "activities", &json!([activity("a", "admin", "user")]), Some("\"1\"")).await;
        assert_eq!(second.status, StatusCode::CONFLICT);

        let reply = app.post(&user.token, "/api/drafts/submit-all", &json!({})).await;
        assert_eq!(reply.status, StatusCode::OK);
        let results = reply.body["results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["draftId"], first.body["draftId"]);
        assert_eq!(results[0]["status"], "saved");
        assert_eq!(results[0]["version"], 3);
        assert_eq!(results[1]["draftId"], second.body["draftId"]);
        assert_eq!(results[1]["status"], "conflict");
        assert_eq!(results[1]["conflictingIds"], json!(["a"]));

        let remaining = app.my_drafts(&user.token).await;
        assert_eq!(remaining.len(), 1);
        assert_eq!(remaining[0]["id"], second.body["draftId"]);
        let internal = app.read(&user.token, "internalActivities").await;
        assert_eq!(internal.body["value"], json!([{"id": "i-admin"}, {"id": "i-user"}]));
    }

    async fn a_draft_naming_a_version_from_the_future_never_removes_a_later_record(app) {
        let alice = app.new_user().await;
        app.seed("activities", &json!([{"id": "a"}])).await;
        // Alice names version 2 before it exists: stale, kept with no base.
        let early = app.put(&alice.token, "activities", &json!([{"id": "a"}, {"id": "x"}]), Some("\"2\"")).await;
        assert_eq!(early.status, StatusCode::CONFLICT);
        let draft_id = early.body["draftId"].as_str().expect("draft").to_owned();
        assert!(app.my_drafts(&alice.token).await[0]["baseVersion"].is_null());
        // Then the real version 2 is written by someone else.
        let real = app.put(&app.admin_token, "activities", &json!([{"id": "a"}, {"id": "b"}]), Some("\"1\"")).await;
        assert_eq!(real.body["version"], 2);
        let detail = app.get(&alice.token, &format!("/api/drafts/{draft_id}")).await;
        assert_eq!(detail.body["diff"]["removed"], json!([]));
        let submit = app.post(&alice.token, &format!("/api/drafts/{draft_id}/submit"), &json!({})).await;
        assert_eq!(submit.status, StatusCode::OK, "{:?}", submit.body);
        let value = app.read(&alice.token, "activities").await.body["value"].clone();
        assert_eq!(value, json!([{"id": "a"}, {"id": "b"}, {"id": "x"}]), "b survives, x is added");
    }

    async fn a_discarded_draft_is_gone_and_cannot_be_submitted(app) {
        let user = app.new_user().await;
        let draft_id = collide(&app, json!([]), json!([{"id": 1}]), &user, json!([{"id": 2}])).await;
        let path = format!("/api/drafts/{draft_id}");
        assert_eq!(app.delete(&user.token, &path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&user.token, &path).await.status, StatusCode::NOT_FOUND);
        let submit = app.post(&user.token, &format!("{path}/submit"), &json!({})).await;
        assert_eq!(submit.status, StatusCode::NOT_FOUND);
        assert!(app.my_drafts(&user.token).await.is_empty());
    }

    async fn a_draft_can_be_submitted_only_once(app) {
        let user = app.new_user().await;
        let draft_id = collide(&app, json!([]), json!([{"id": 1}]), &user, json!([{"id": 2}])).await;
        let path = format!("/api/drafts/{draft_id}/submit");
        let (a, b) = futures_util::join!(app.post(&user.token, &path, &json!({})), app.post(&user.token, &path, &json!({})));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::NOT_FOUND]);
        let read = app.read(&user.token, "activities").await;
        assert_eq!(read.body["value"], json!([{"id": 1}, {"id": 2}]));
        assert_eq!(read.body["version"], 3);
    }

    async fn admins_list_filter_count_submit_and_discard_everyones_drafts(app) {
        let alice = app.new_user().await;
        let bob = app.new_user().await;
        app.seed("activities", &json!([])).await;
        app.seed("accounts", &json!([])).await;
        for (user, key) in [(&alice, "activities"), (&bob, "activities"), (&bob, "accounts")] {
            let reply = app.put(&user.token, key, &json!([{"id": user.username.clone()}]), Some("\"0\"")).await;
            assert_eq!(reply.status, StatusCode::CONFLICT);
        }
        let all = app.get(&app.admin_token, "/api/admin/drafts").await;
        assert_eq!(all.body["drafts"].as_array().map(Vec::len), Some(3));
        let bobs = app.get(&app.admin_token, &format!("/api/admin/drafts?username={}", bob.username)).await;
        let bobs = bobs.body["drafts"].as_array().expect("drafts").clone();
        assert_eq!(bobs.len(), 2);
        assert!(bobs.iter().all(|d| d["username"] == bob.username.as_str()));
        let on_accounts = app.get(&app.admin_token, "/api/admin/drafts?key=accounts&reason=conflict").await;
        assert_eq!(on_accounts.body["drafts"].as_array().map(Vec::len), Some(1));
        let limited = app.get(&app.admin_token, "/api/admin/drafts?limit=1").await;
        assert_eq!(limited.body["drafts"].as_array().map(Vec::len), Some(1));
        assert_eq!(app.get(&app.admin_token, "/api/admin/drafts?reason=bogus").await.status, StatusCode::BAD_REQUEST);

        let stats = app.get(&app.admin_token, "/api/admin/drafts/stats").await;
        assert_eq!(stats.body, json!({"total": 3, "byReason": {"conflict": 3}, "byKey": {"accounts": 1, "activities": 2}}));

        // The admin recovers Alice's draft and discards one of Bob's.
        let alices = app.my_drafts(&alice.token).await;
        let submit = app.post(&app.admin_token, &format!("/api/admin/drafts/{}/submit", alices[0]["id"].as_str().unwrap()), &json!({})).await;
        assert_eq!(submit.status, StatusCode::OK, "{:?}", submit.body);
        let bob_draft = bobs[0]["id"].as_str().expect("id");
        assert_eq!(app.delete(&app.admin_token, &format!("/api/admin/drafts/{bob_draft}")).await.status, StatusCode::NO_CONTENT);
        let stats = app.get(&app.admin_token, "/api/admin/drafts/stats").await;
        assert_eq!(stats.body["total"], 1);
        let read = app.read(&alice.token, "activities").await;
        assert_eq!(read.body["value"], json!([{"id": alice.username.clone()}]));
    }
}
