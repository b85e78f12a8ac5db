use crate::helpers::USER_PASSWORD;
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;

on_both_backends! {
    async fn login_returns_a_token_username_and_role(app) {
        let reply = app.try_login("admin", crate::helpers::ADMIN_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["username"], "admin");
        assert_eq!(reply.body["role"], "admin");
        let token = reply.body["token"].as_str().expect("token");
        assert!(token.len() >= 32, "at least 128 bits");
        let user = app.new_user().await;
        let reply = app.try_login(&user.username, USER_PASSWORD).await;
        assert_eq!(reply.body["role"], "user");
    }

    async fn an_unknown_user_and_a_wrong_password_get_the_same_401(app) {
        let user = app.new_user().await;
        let unknown = app.try_login("nobody", "whatever-password").await;
        let wrong = app.try_login(&user.username, "wrong-password").await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.body, json!({"error": "invalid_credentials", "message": "unknown user or wrong password"}));
        assert_eq!(unknown.body, wrong.body);
    }

    async fn every_api_route_needs_a_valid_token(app) {
        let routes = [
            (Method::GET, "/api/storage/activities"),
            (Method::PUT, "/api/storage/activities"),
            (Method::GET, "/api/drafts"),
            (Method::GET, "/api/drafts/some-id"),
            (Method::POST, "/api/drafts/some-id/submit"),
            (Method::POST, "/api/drafts/submit-all"),
            (Method::DELETE, "/api/drafts/some-id"),
            (Method::POST, "/api/admin/users"),
            (Method::GET, "/api/admin/drafts"),
            (Method::GET, "/api/admin/drafts/stats"),
            (Method::GET, "/api/admin/drafts/some-id"),
            (Method::POST, "/api/admin/drafts/some-id/submit"),
            (Method::DELETE, "/api/admin/drafts/some-id"),
        ];
        for (method, path) in routes {
            for token in [None, Some("not-a-real-token"), Some("")] {
                let reply = app.call(method.clone(), path, token, &[], Some(b"[]".to_vec())).await;
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
                assert_eq!(reply.body["error"], "unauthorized");
            }
        }
        // Nothing was written by any of those.
        assert_eq!(app.read(&app.admin_token, "activities").await.status, StatusCode::NOT_FOUND);
    }

    async fn non_admins_get_403_on_every_admin_route(app) {
        let user = app.new_user().await;
        let routes = [
            (Method::POST, "/api/admin/users"),
            (Method::GET, "/api/admin/drafts"),
            (Method::GET, "/api/admin/drafts/stats"),
            (Method::GET, "/api/admin/drafts/some-id"),
            (Method::POST, "/api/admin/drafts/some-id/submit"),
            (Method::DELETE, "/api/admin/drafts/some-id"),
        ];
        for (method, path) in routes {
            let body = json!({"username": "sneaky", "password": "password123", "role": "admin"});
            let reply = app.call(method.clone(), path, Some(&user.token), &[], Some(body.to_string().into_bytes())).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(reply.body["error"], "forbidden");
        }
        assert_eq!(app.try_login("sneaky", "password123").await.status, StatusCode::UNAUTHORIZED);
    }

    async fn another_users_draft_is_404_on_every_draft_route(app) {
        let owner = app.new_user().await;
        let other = app.new_user().await;
        app.seed("activities", &json!([])).await;
        let conflict = app.put(&owner.token, "activities", &json!([{"id": "x"}]), Some("\"7\"")).await;
        let draft_id = conflict.body["draftId"].as_str().expect("draft").to_owned();

        let get = app.get(&other.token, &format!("/api/drafts/{draft_id}")).await;
        let submit = app.post(&other.token, &format!("/api/drafts/{draft_id}/submit"), &json!({})).await;
        let delete = app.delete(&other.token, &format!("/api/drafts/{draft_id}")).await;
        for reply in [&get, &submit, &delete] {
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
            assert_eq!(reply.body["error"], "not_found");
        }
        assert!(app.my_drafts(&other.token).await.is_empty());
        let submit_all = app.post(&other.token, "/api/drafts/submit-all", &json!({})).await;
        assert_eq!(submit_all.body["results"], json!([]));
        // The owner's draft is untouched.
        let mine = app.my_drafts(&owner.token).await;
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["attempts"], 0);
    }

    async fn admins_create_users_once(app) {
        let body = json!({"username": "carol", "password": "carol-password", "role": "user"});
        assert_eq!(app.post(&app.admin_token, "/api/admin/users", &body).await.status, StatusCode::CREATED);
        let again = app.post(&app.admin_token, "/api/admin/users", &body).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.body["error"], "user_exists");
        app.login("carol", "carol-password").await;
        for bad in [
            json!({"username": "has space", "password": "long-enough", "role": "user"}),
            json!({"username": "dave", "password": "short", "role": "user"}),
            json!({"username": "dave", "password": "long-enough", "role": "root"}),
            json!({"username": "dave"}),
        ] {
            let reply = app.post(&app.admin_token, "/api/admin/users", &bad).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(reply.body["error"], "invalid_request");
        }
        assert_eq!(app.try_login("dave", "long-enough").await.status, StatusCode::UNAUTHORIZED);
    }
}

mod expiry {
    use crate::helpers::{settings_for, spawn_app_with, TestDatabase};
    use reqwest::StatusCode;

    #[actix_web::test]
    async fn tokens_expire() {
        let db = TestDatabase::sqlite();
        let settings = coordinator::Settings {
            token_ttl_secs: 1,
            ..settings_for(&db)
        };
        let app = spawn_app_with(db, settings).await;
        assert_eq!(app.get(&app.admin_token, "/api/drafts").await.status, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let reply = app.get(&app.admin_token, "/api/drafts").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
}
