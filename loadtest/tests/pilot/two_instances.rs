//! Two coordinator instances on one fresh PostgreSQL database, the pilot
//! spread over both: correctness must not depend on one process's memory.

use crate::helpers::run_loadtest;
use loadtest::server::{locate_coordinator, ServerOptions, SpawnedServer};
use std::io::Write;
use std::time::Duration;

/// `1` (CI sets it) makes an unreachable PostgreSQL a failure, not a skip.
const REQUIRE_POSTGRES: &str = "COORDINATOR_REQUIRE_POSTGRES";
/// The server the test creates its database on (and drops it from).
const POSTGRES_ADMIN_URL: &str = "COORDINATOR_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const ADMIN_PASSWORD: &str = "two-instances-admin-password";

/// A database that exists for this test only: dropped (even mid-connection)
/// when this value goes, pass or panic.
struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    /// `None` (after a loud SKIPPED line) when PostgreSQL is unreachable and
    /// not required.
    fn create() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_ADMIN_URL).unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.into());
        let required = std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v == "1");
        let name = format!("loadtest_{}", uuid::Uuid::new_v4().simple());
        let created = runtime().block_on(async {
            let admin = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(3))
                .connect(&admin_url)
                .await?;
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
            admin.close().await;
            Ok::<_, sqlx::Error>(())
        });
        match created {
            Ok(()) => {}
            Err(error) if required => {
                panic!("{REQUIRE_POSTGRES}=1 but PostgreSQL at {admin_url} is unusable: {error}")
            }
            Err(error) => {
                // Straight to the process's stderr: `eprintln!` in a passing
                // test is captured and never shown, and a skip must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: two coordinator instances on one PostgreSQL database: no usable server at \
                     {admin_url} ({error}); set {REQUIRE_POSTGRES}=1 to require it"
                );
                return None;
            }
        }
        let (base, _) = admin_url.rsplit_once('/').expect("a PostgreSQL URL names a database");
        let url = format!("{base}/{name}");
        Some(Self { admin_url, name, url })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let dropped = runtime().block_on(async {
            let admin = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&self.admin_url)
                .await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&admin)
                .await?;
            admin.close().await;
            Ok::<_, sqlx::Error>(())
        });
        if let Err(error) = dropped {
            eprintln!("warning: could not drop the test database {}: {error}", self.name);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

#[test]
fn a_quick_pilot_over_two_instances_on_one_postgres_database_passes_with_zero_incidents() {
    let Some(database) = FreshDatabase::create() else {
        return;
    };
    let binary = locate_coordinator(None).expect("the coordinator binary");
    // One after the other: the first migrates and creates the admin, the
    // second finds both done.
    let options = ServerOptions {
        database_url: Some(database.url.clone()),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        extra_args: Vec::new(),
    };
    let a = SpawnedServer::start_with(&binary, &options).expect("instance A starts");
    let b = SpawnedServer::start_with(&binary, &options).expect("instance B starts");
    assert_ne!(a.url, b.url);
    let (log_a, log_b) = (
        a.log_path.to_string_lossy().into_owned(),
        b.log_path.to_string_lossy().into_owned(),
    );
    let run = run_loadtest(&[
        "pilot",
        "--quick",
        "--seed",
        "4",
        "--target",
        &a.url,
        "--target",
        &b.url,
        "--server-log",
        &log_a,
        "--server-log",
        &log_b,
        "--admin-password",
        ADMIN_PASSWORD,
    ]);
    let logs = format!(
        "{}\n--- instance A log\n{}\n--- instance B log\n{}",
        run.explain(),
        a.read_log().unwrap_or_default(),
        b.read_log().unwrap_or_default()
    );
    assert_eq!(run.code, 0, "{logs}");
    assert_eq!(run.json["decision"], "PASS", "{logs}");
    assert_eq!(run.json["incidents"], serde_json::json!([]), "{logs}");
    assert_eq!(run.json["template"]["missingDataIncidents"], 0);

    // Both instances served the run: each log has this run's writes.
    let run_id = run.json["runId"].as_str().expect("a run id");
    for (name, server) in [("A", &a), ("B", &b)] {
        let log = server.read_log().expect("the instance's log");
        let writes = log
            .lines()
            .filter(|l| l.contains("\"storage_write\"") && l.contains(run_id))
            .count();
        assert!(writes > 0, "instance {name} wrote nothing of run {run_id}");
    }
    // Every record reconciled, every 409 and acknowledgement in one of the logs.
    let final_findings = &run.json["finalReconciliation"];
    assert_eq!(
        final_findings["writes"], final_findings["storedOnce"],
        "{final_findings}"
    );
    let checks = run.json["logChecks"].as_object().expect("the log checks ran");
    for (phase, check) in checks {
        assert_eq!(check["conflictsSeen"], check["conflictEvents"], "{phase}: {check}");
        assert_eq!(check["acknowledged"], check["writeEvents"], "{phase}: {check}");
        assert_eq!(check["draftsAnswered"], check["draftSavedEvents"], "{phase}: {check}");
    }
    assert_eq!(
        run.json["recovery"]["keptWithError"], 1,
        "the stale account edit stays a draft"
    );
    drop((a, b));
    drop(database);
}
