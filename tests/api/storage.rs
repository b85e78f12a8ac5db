use crate::helpers::activity;
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends! {
    async fn a_new_key_is_created_with_201_and_version_1(app) {
        let reply = app.put(&app.admin_token, "activities", &json!([activity("a1", "admin", "first")]), None).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.body["version"], 1);
        assert_eq!(reply.etag.as_deref(), Some("\"1\""));
        let read = app.read(&app.admin_token, "activities").await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.body["value"], json!([activity("a1", "admin", "first")]));
        assert_eq!(read.body["version"], 1);
        assert_eq!(read.body["updatedAt"], reply.body["updatedAt"]);
        assert_eq!(read.etag.as_deref(), Some("\"1\""));
    }

    async fn a_key_never_written_is_404(app) {
        let reply = app.read(&app.admin_token, "accounts").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.body["error"], "not_found");
    }

    async fn a_current_if_match_commits_the_next_version(app) {
        app.seed("activities", &json!([])).await;
        let reply = app.put(&app.admin_token, "activities", &json!([activity("a1", "admin", "x")]), Some("\"1\"")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["version"], 2);
        assert_eq!(reply.etag.as_deref(), Some("\"2\""));
    }

    async fn stale_if_match_returns_409_and_keeps_the_payload_as_a_draft(app) {
        let user = app.new_user().await;
        app.seed("activities", &json!([])).await;
        let winner = app.put(&app.admin_token, "activities", &json!([activity("w", "admin", "won")]), Some("\"1\"")).await;
        assert_eq!(winner.status, StatusCode::OK);

        let payload = json!([activity("mine", &user.username, "Kundengespräch über Preise ✓")]);
        let reply = app.put(&user.token, "activities", &payload, Some("\"1\"")).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.body["error"], "conflict");
        assert_eq!(reply.body["key"], "activities");
        assert_eq!(reply.body["ifMatch"], "\"1\"");
        assert_eq!(reply.body["currentVersion"], 2);
        assert_eq!(reply.body["currentUpdatedAt"], winner.body["updatedAt"]);
        assert_eq!(reply.body["draftSaved"], true);
        assert_eq!(reply.body["transactionId"].as_str(), reply.transaction_id.as_deref());
        let draft_id = reply.body["draftId"].as_str().expect("a draft id");

        // The stored value did not change.
        let read = app.read(&user.token, "activities").await;
        assert_eq!(read.body["version"], 2);
        assert_eq!(read.body["value"], json!([activity("w", "admin", "won")]));

        let drafts = app.my_drafts(&user.token).await;
        assert_eq!(drafts.len(), 1);
        let draft = &drafts[0];
        assert_eq!(draft["id"], draft_id);
        assert_eq!(draft["key"], "activities");
        assert_eq!(draft["reason"], "conflict");
        assert_eq!(draft["baseVersion"], 1);
        assert_eq!(draft["currentVersion"], 2);
        assert_eq!(draft["incomingCount"], 1);
        assert_eq!(draft["attempts"], 0);
        assert_eq!(draft["payload"], payload);
        assert_eq!(draft["transactionId"], reply.body["transactionId"]);
    }

    async fn eight_concurrent_writers_with_the_same_if_match_make_one_winner_and_seven_drafts(app) {
        app.seed("activities", &json!([])).await;
        let mut users = Vec::new();
        for _ in 0..8 {
            users.push(app.new_user().await);
        }
        let writes = users.iter().map(|user| {
            let payload = json!([activity(&format!("rec-{}", user.username), &user.username, "burst")]);
            app.put(&user.token, "activities", &payload, Some("\"1\""))
        });
        let replies = futures_util::future::join_all(writes).await;
        let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
        let conflicts: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).collect();
        assert_eq!(ok, 1, "{replies:?}");
        assert_eq!(conflicts.len(), 7, "{replies:?}");
        assert!(conflicts.iter().all(|r| r.body["draftSaved"] == true));

        let read = app.read(&app.admin_token, "activities").await;
        assert_eq!(read.body["version"], 2);
        let stats = app.get(&app.admin_token, "/api/admin/drafts/stats").await;
        assert_eq!(stats.body["total"], 7);
        assert_eq!(stats.body["byReason"]["conflict"], 7);
        assert_eq!(stats.body["byKey"]["activities"], 7);
        // Each loser finds exactly its own payload in its drafts.
        for (user, reply) in users.iter().zip(&replies) {
            let drafts = app.my_drafts(&user.token).await;
            if reply.status == StatusCode::CONFLICT {
                assert_eq!(drafts.len(), 1);
                assert_eq!(drafts[0]["id"], reply.body["draftId"]);
                assert_eq!(drafts[0]["payload"][0]["createdBy"], user.username.as_str());
            } else {
                assert!(drafts.is_empty());
            }
        }
    }

    async fn writes_to_one_key_queue_in_order_and_every_version_is_used_once(app) {
        app.seed("activities", &json!([])).await;
        // Each writer retries with the version it is told about until it wins.
        let writers = (0..6).map(|n| {
            let app = &app;
            async move {
                loop {
                    let read = app.read(&app.admin_token, "activities").await;
                    let mut records = read.body["value"].as_array().cloned().unwrap_or_default();
                    records.push(activity(&format!("w{n}"), "admin", "queued"));
                    let if_match = read.etag.clone().expect("an etag");
                    let reply = app.put(&app.admin_token, "activities", &json!(records), Some(&if_match)).await;
                    if reply.status == StatusCode::OK {
                        return reply.body["version"].as_i64().expect("a version");
                    }
                    assert_eq!(reply.status, StatusCode::CONFLICT);
                }
            }
        });
        let mut versions = futures_util::future::join_all(writers).await;
        versions.sort();
        assert_eq!(versions, vec![2, 3, 4, 5, 6, 7]);
        let read = app.read(&app.admin_token, "activities").await;
        assert_eq!(read.body["value"].as_array().map(Vec::len), Some(6));
    }

    async fn an_existing_key_without_a_precondition_is_428_and_unchanged(app) {
        app.seed("accounts", &json!([{"id": "acct-1"}])).await;
        let reply = app.put(&app.admin_token, "accounts", &json!([]), None).await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(reply.body["error"], "precondition_required");
        assert_eq!(app.read(&app.admin_token, "accounts").await.body["value"], json!([{"id": "acct-1"}]));
        assert!(app.my_drafts(&app.admin_token).await.is_empty());
    }

    async fn if_none_match_star_creates_only(app) {
        let create = |value| {
            let body = serde_json::to_vec(&value).expect("json");
            app.call(Method::PUT, "/api/storage/accounts", Some(&app.admin_token), &[("if-none-match", "*")], Some(body))
        };
        assert_eq!(create(json!([{"id": 1}])).await.status, StatusCode::CREATED);
        let second = create(json!([{"id": 2}])).await;
        assert_eq!(second.status, StatusCode::CONFLICT);
        assert_eq!(second.body["draftSaved"], true);
        assert_eq!(app.read(&app.admin_token, "accounts").await.body["value"], json!([{"id": 1}]));
    }

    async fn if_match_follows_rfc_9110_lists_star_and_weak_tags(app) {
        app.seed("k", &json!(0)).await;
        let put = |value: i64, if_match: &'static str| app.put(&app.admin_token, "k", &json!(value), Some(if_match));
        assert_eq!(put(1, "\"7\", \"1\", \"9\"").await.status, StatusCode::OK); // -> v2
        assert_eq!(put(2, "*").await.status, StatusCode::OK); // -> v3
        let weak = put(3, "W/\"3\"").await;
        assert_eq!(weak.status, StatusCode::CONFLICT, "a weak tag never matches");
        assert_eq!(put(4, "W/\"3\", \"3\"").await.status, StatusCode::OK); // -> v4
        assert_eq!(app.read(&app.admin_token, "k").await.body["version"], 4);
        // `*` on a key that does not exist does not match.
        let star = app.put(&app.admin_token, "missing", &json!(1), Some("*")).await;
        assert_eq!(star.status, StatusCode::CONFLICT);
        assert_eq!(app.read(&app.admin_token, "missing").await.status, StatusCode::NOT_FOUND);
    }

    async fn several_if_match_lines_are_one_list(app) {
        app.seed("k", &json!(0)).await;
        assert_eq!(app.put(&app.admin_token, "k", &json!(1), Some("\"1\"")).await.status, StatusCode::OK);
        let headers = [("if-match", "\"1\""), ("if-match", "\"2\"")];
        let reply = app.call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &headers, Some(b"2".to_vec())).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["version"], 3);
    }

    async fn the_updated_at_string_is_accepted_as_an_if_match_quoted_or_bare(app) {
        let created = app.seed("activities", &json!([])).await;
        let at = created.body["updatedAt"].as_str().expect("updatedAt").to_owned();
        let quoted = format!("\"{at}\"");
        let reply = app.put(&app.admin_token, "activities", &json!([{"id": 1}]), Some(&quoted)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let at = reply.body["updatedAt"].as_str().expect("updatedAt").to_owned();
        let reply = app.put(&app.admin_token, "activities", &json!([{"id": 2}]), Some(&at)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        // An old updatedAt is stale, and its version is the draft's base.
        let reply = app.put(&app.admin_token, "activities", &json!([{"id": 3}]), Some(&quoted)).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        let drafts = app.my_drafts(&app.admin_token).await;
        assert_eq!(drafts[0]["baseVersion"], 1);
    }

    async fn updated_at_strictly_increases_across_rapid_writes(app) {
        let mut previous = app.seed("k", &json!(0)).await.body["updatedAt"].as_str().expect("updatedAt").to_owned();
        for version in 1..=20 {
            let reply = app.put(&app.admin_token, "k", &json!(version), Some(&format!("\"{version}\""))).await;
            assert_eq!(reply.status, StatusCode::OK);
            let at = reply.body["updatedAt"].as_str().expect("updatedAt").to_owned();
            // Fixed-width RFC 3339 strings compare in time order.
            assert!(at > previous, "{at} after {previous}");
            previous = at;
        }
    }

    async fn malformed_json_and_malformed_if_match_are_400_and_store_nothing(app) {
        app.seed("k", &json!([1])).await;
        let token = Some(app.admin_token.as_str());
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8]);
        let cases: Vec<Case> = vec![
            (&[("if-match", "\"1\"")], b"[1,"),
            (&[("if-match", "\"1\"")], b"{\"a\":1} trailing"),
            (&[("if-match", "\"1\"")], b""),
            (&[("if-match", "1")], b"[2]"),
            (&[("if-match", "\"1")], b"[2]"),
            (&[("if-none-match", "\"1\"")], b"[2]"),
        ];
        for (headers, body) in cases {
            let reply = app.call(Method::PUT, "/api/storage/k", token, headers, Some(body.to_vec())).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{headers:?} {:?}", String::from_utf8_lossy(body));
            assert!(reply.body["error"] == "invalid_json" || reply.body["error"] == "invalid_precondition", "{:?}", reply.body);
        }
        let read = app.read(&app.admin_token, "k").await;
        assert_eq!((read.body["version"].clone(), read.body["value"].clone()), (json!(1), json!([1])));
        assert!(app.my_drafts(&app.admin_token).await.is_empty());
    }

    async fn invalid_keys_are_400_and_path_tricks_never_reach_storage(app) {
        for key in ["a%20b", &"k".repeat(129), "a:b", "a%2Fb", "%00", "caf%C3%A9"] {
            let reply = app.put(&app.admin_token, key, &json!(1), None).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key}");
            assert_eq!(reply.body["error"], "invalid_key");
        }
        // Dot segments are resolved by the client or refused by the server;
        // either way nothing is stored under a path-like key.
        for key in ["%2E%2E", "..%2F..%2Fetc", "."] {
            let reply = app.put(&app.admin_token, key, &json!(1), None).await;
            assert!(matches!(reply.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND), "{key}: {}", reply.status);
            assert!(reply.body["error"].is_string());
        }
        let longest = "k".repeat(128);
        assert_eq!(app.put(&app.admin_token, &longest, &json!(1), None).await.status, StatusCode::CREATED);
        let keys = app.get(&app.admin_token, "/api/storage/..").await;
        assert_ne!(keys.status, StatusCode::OK);
    }

    async fn a_client_transaction_id_is_echoed_and_kept_with_the_draft(app) {
        app.seed("k", &json!([])).await;
        let headers = [("if-match", "\"9\""), ("x-transaction-id", "client-tx-42")];
        let reply = app.call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &headers, Some(b"[1]".to_vec())).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.transaction_id.as_deref(), Some("client-tx-42"));
        assert_eq!(reply.body["transactionId"], "client-tx-42");
        assert_eq!(app.my_drafts(&app.admin_token).await[0]["transactionId"], "client-tx-42");
        // Without one, every response still gets a fresh id.
        let reply = app.read(&app.admin_token, "k").await;
        assert!(reply.transaction_id.is_some_and(|id| id.len() == 36));
    }

    async fn a_client_that_hangs_up_mid_request_still_gets_its_draft_kept(app) {
        use tokio::io::AsyncWriteExt;
        app.seed("activities", &json!([])).await;
        let body = json!([activity("gone", "admin", "sent, then the laptop lid closed")]).to_string();
        let request = format!(
            "PUT /api/storage/activities HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
             If-Match: \"7\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            app.admin_token,
            body.len()
        );
        let address = app.address.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(address).await.expect("connecting");
        socket.write_all(request.as_bytes()).await.expect("sending");
        drop(socket);
        // The write was dispatched whole; the draft appears although nobody waits for the 409.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let drafts = app.my_drafts(&app.admin_token).await;
            if let Some(draft) = drafts.first() {
                assert_eq!(draft["payload"][0]["id"], "gone");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the draft of a hung-up client was lost");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(app.read(&app.admin_token, "activities").await.body["version"], 1);
    }

    async fn unknown_routes_and_methods_answer_json_errors(app) {
        let reply = app.get(&app.admin_token, "/api/nothing-here").await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
        let reply = app.call(Method::PATCH, "/api/storage/k", Some(&app.admin_token), &[], None).await;
        assert_eq!((reply.status, reply.body["error"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")));
    }
}

mod limits {
    use crate::helpers::{settings_for, spawn_app_with, Backend, TestDatabase};
    use reqwest::{Method, StatusCode};
    use serde_json::json;

    #[actix_web::test]
    async fn a_body_over_the_limit_is_413_and_stores_nothing() {
        let db = TestDatabase::sqlite();
        let settings = coordinator::Settings {
            max_body_bytes: 1024,
            ..settings_for(&db)
        };
        let app = spawn_app_with(db, settings).await;
        assert_eq!(app.db.backend, Backend::Sqlite);
        let big = json!(["x".repeat(2000)]).to_string().into_bytes();
        let reply = app
            .call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &[], Some(big))
            .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reply.body["error"], "payload_too_large");
        assert_eq!(app.read(&app.admin_token, "k").await.status, StatusCode::NOT_FOUND);
        let small = json!(["x".repeat(900)]).to_string().into_bytes();
        let reply = app
            .call(Method::PUT, "/api/storage/k", Some(&app.admin_token), &[], Some(small))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }

    #[actix_web::test]
    async fn an_idle_key_actor_stops_and_a_new_one_reloads_the_version() {
        let db = TestDatabase::sqlite();
        let settings = coordinator::Settings {
            actor_idle_secs: 0.05,
            ..settings_for(&db)
        };
        let app = spawn_app_with(db, settings).await;
        app.seed("k", &json!([1])).await;
        for version in 1..=3 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let stale = app.put(&app.admin_token, "k", &json!([0]), Some("\"0\"")).await;
            assert_eq!(stale.status, StatusCode::CONFLICT);
            assert_eq!(stale.body["currentVersion"], version);
            let reply = app
                .put(
                    &app.admin_token,
                    "k",
                    &json!([version]),
                    Some(&format!("\"{version}\"")),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            assert_eq!(reply.body["version"], version + 1);
        }
    }
}
