//! Several coordinator instances on one PostgreSQL database: correctness
//! must not depend on any one process's memory.

use crate::helpers::{settings_for, spawn_app_with, Backend, TestApp, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// A second instance on the same database as `first`.
async fn second_instance(first: &TestApp) -> TestApp {
    let db = TestDatabase::shared(&first.db);
    let settings = settings_for(&db);
    spawn_app_with(db, settings).await
}

#[actix_web::test]
async fn sixteen_writers_across_two_instances_make_one_winner_and_fifteen_drafts() {
    let Some(a) = crate::helpers::spawn_app(Backend::Postgres).await else {
        return;
    };
    let b = second_instance(&a).await;
    a.seed("activities", &json!([])).await;
    // Both instances' actors have seen version 1 before the race.
    assert_eq!(b.read(&b.admin_token, "activities").await.body["version"], 1);
    let warm = b.put(&b.admin_token, "activities", &json!([]), Some("\"0\"")).await;
    assert_eq!(warm.status, StatusCode::CONFLICT);

    let mut users = Vec::new();
    for _ in 0..16 {
        users.push(a.new_user().await);
    }
    let writes = users.iter().enumerate().map(|(n, user)| {
        // A user logged in on one instance writes through either.
        let app = if n % 2 == 0 { &a } else { &b };
        app.put(
            &user.token,
            "activities",
            &json!([{"id": user.username.clone()}]),
            Some("\"1\""),
        )
    });
    let replies = futures_util::future::join_all(writes).await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let conflicts: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).collect();
    assert_eq!(ok, 1, "{replies:?}");
    assert_eq!(conflicts.len(), 15, "{replies:?}");
    assert!(conflicts.iter().all(|r| r.body["draftSaved"] == true));

    for app in [&a, &b] {
        assert_eq!(app.read(&app.admin_token, "activities").await.body["version"], 2);
    }
    let stats = b.get(&b.admin_token, "/api/admin/drafts/stats").await;
    assert_eq!(stats.body["byReason"]["conflict"], 16, "fifteen losers and the warm-up");

    // Each instance accepts the newest version even if its own actor last saw an older one.
    let on_b = b
        .put(&b.admin_token, "activities", &json!([{"id": "b"}]), Some("\"2\""))
        .await;
    assert_eq!(on_b.status, StatusCode::OK, "{:?}", on_b.body);
    let on_a = a
        .put(&a.admin_token, "activities", &json!([{"id": "a"}]), Some("\"3\""))
        .await;
    assert_eq!(on_a.status, StatusCode::OK, "{:?}", on_a.body);
    assert_eq!(on_a.body["version"], 4);

    // Drafts made on one instance are recovered on the other.
    let loser = users
        .iter()
        .zip(&replies)
        .find(|(_, r)| r.status == StatusCode::CONFLICT)
        .expect("a loser")
        .0;
    let drafts = a.my_drafts(&loser.token).await;
    let submit = b
        .post(
            &loser.token,
            &format!("/api/drafts/{}/submit", drafts[0]["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(submit.status, StatusCode::OK, "{:?}", submit.body);
    assert_eq!(submit.body["version"], 5);
}

#[actix_web::test]
async fn a_logout_on_one_instance_is_refused_by_another_once_its_recheck_window_passes() {
    let Some(a) = crate::helpers::spawn_app(Backend::Postgres).await else {
        return;
    };
    let db = TestDatabase::shared(&a.db);
    let recheck = Duration::from_millis(300);
    let settings = coordinator::Settings {
        session_recheck_secs: recheck.as_secs_f64(),
        ..settings_for(&db)
    };
    let b = spawn_app_with(db, settings).await;
    let user = a.new_user().await;
    assert_eq!(
        b.get(&user.token, "/api/drafts").await.status,
        StatusCode::OK,
        "B confirms the session"
    );

    let logged_out = Instant::now();
    let reply = a.call(Method::POST, "/api/logout", Some(&user.token), &[], None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        a.get(&user.token, "/api/drafts").await.status,
        StatusCode::UNAUTHORIZED,
        "at once where it happened"
    );
    // B trusts its confirmation for at most the window (not the default 5 s), then asks the database.
    loop {
        let status = b.get(&user.token, "/api/drafts").await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            logged_out.elapsed() < recheck + Duration::from_secs(2),
            "B still accepts the token {:?} after the logout",
            logged_out.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let write = b.put(&user.token, "k", &json!([1]), None).await;
    assert_eq!(write.status, StatusCode::UNAUTHORIZED, "and stays refused");
}
