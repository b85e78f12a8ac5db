//! The pilot runbook's verification queries (section 5), run verbatim
//! against the database the service wrote.

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

const PENDING_CONFLICTS: &str = "SELECT COUNT(*) AS pending_conflicts
FROM pending_storage_saves
WHERE reason = 'conflict';";

const LATEST_PENDING: &str = "SELECT id, storage_key, username, reason, created_at
FROM pending_storage_saves
ORDER BY created_at DESC
LIMIT 100;";

const KEY_RECENCY: &str = "SELECT key, updated_at
FROM storage
WHERE key IN ('activities', 'internalActivities', 'accounts')
ORDER BY updated_at DESC;";

/// Runs a query with the database's own command-line client when it is
/// installed (what an operator does), returning its rows as text lines.
fn run_with_cli(app: &TestApp, query: &str) -> Option<Vec<String>> {
    let output = match app.db.backend {
        Backend::Sqlite => std::process::Command::new("sqlite3")
            .arg(app.db.sqlite_file()?)
            .arg(query)
            .output(),
        Backend::Postgres => std::process::Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-F",
                "|",
                "-v",
                "ON_ERROR_STOP=1",
                &app.db.url,
                "-c",
                query,
            ])
            .output(),
    };
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            eprintln!(
                "note: no command-line client for {:?} ({error}); checked through sqlx only",
                app.db.backend
            );
            return None;
        }
    };
    assert!(
        output.status.success(),
        "{query}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// The same checks on whichever pool type the backend needs.
macro_rules! check_queries {
    ($pool:expr, $username:expr) => {{
        let pool = $pool;
        let count: i64 = sqlx::query(PENDING_CONFLICTS)
            .fetch_one(&pool)
            .await
            .expect("query 1")
            .get("pending_conflicts");
        assert_eq!(count, 3);
        let latest = sqlx::query(LATEST_PENDING).fetch_all(&pool).await.expect("query 2");
        assert_eq!(latest.len(), 3);
        for row in &latest {
            assert_eq!(row.get::<String, _>("storage_key"), "activities");
            assert_eq!(&row.get::<String, _>("username"), $username);
            assert_eq!(row.get::<String, _>("reason"), "conflict");
        }
        let recency = sqlx::query(KEY_RECENCY).fetch_all(&pool).await.expect("query 3");
        let keys: Vec<String> = recency.iter().map(|row| row.get("key")).collect();
        assert_eq!(
            keys,
            ["accounts", "internalActivities", "activities"],
            "most recently written first"
        );
        pool.close().await;
    }};
}

on_both_backends! {
    async fn the_runbooks_sql_queries_run_unchanged(app) {
        let user = app.new_user().await;
        app.seed("activities", &json!([])).await;
        app.seed("accounts", &json!([])).await;
        app.seed("internalActivities", &json!([])).await;
        for n in 0..3 {
            let reply = app.put(&user.token, "activities", &json!([{"id": format!("late-{n}")}]), Some("\"0\"")).await;
            assert_eq!(reply.status, StatusCode::CONFLICT);
        }
        let touched = app.put(&app.admin_token, "accounts", &json!([{"id": "acct"}]), Some("\"1\"")).await;
        assert_eq!(touched.status, StatusCode::OK);

        // Through sqlx, on either backend.
        let url = app.db.url.clone();
        match app.db.backend {
            Backend::Sqlite => check_queries!(sqlx::SqlitePool::connect(&url).await.expect("connecting"), &user.username),
            Backend::Postgres => check_queries!(sqlx::PgPool::connect(&url).await.expect("connecting"), &user.username),
        }

        // And with the database's own client, as an operator would.
        if let Some(rows) = run_with_cli(&app, PENDING_CONFLICTS) {
            assert_eq!(rows, vec!["3"]);
        }
        if let Some(rows) = run_with_cli(&app, LATEST_PENDING) {
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|row| row.contains(&format!("|activities|{}|conflict|", user.username))), "{rows:?}");
        }
        if let Some(rows) = run_with_cli(&app, KEY_RECENCY) {
            assert_eq!(rows.len(), 3);
            assert!(rows[0].starts_with("accounts|"), "{rows:?}");
        }
    }
}
