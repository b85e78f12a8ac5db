//! The coordinator killed with SIGKILL several times while `loadtest burst`
//! drives it, and restarted on the same database and port each time. The
//! burst's own reconciliation must then find every acknowledged record
//! stored exactly once and every 409 held by its draft: an answer the
//! process gave before dying is an answer it keeps.

use crate::helpers::run_loadtest;
use loadtest::server::locate_coordinator;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "crash-test-admin-password";

/// A coordinator on a fixed port and database, so it can come back where it was.
struct Coordinator {
    binary: PathBuf,
    port: u16,
    database_url: String,
    spool_dir: PathBuf,
}

impl Coordinator {
    fn start(&self) -> Child {
        let child = Command::new(&self.binary)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url])
            .arg("--spool-dir")
            .arg(&self.spool_dir)
            .env("COORDINATOR_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the coordinator starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the coordinator did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigkill_at_three_points_of_a_loadtest_burst_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let coordinator = Coordinator {
        binary: locate_coordinator(None).expect("the coordinator binary"),
        port: free_port(),
        database_url: format!("sqlite://{}", dir.path().join("coordinator.db").display()),
        spool_dir: dir.path().join("spool"),
    };
    let url = format!("http://127.0.0.1:{}", coordinator.port);
    let first = coordinator.start();

    // The kill points fall inside the burst's 8 s, after its users have logged in.
    let killer = std::thread::spawn(move || {
        let mut server = first;
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2000));
            kill(server);
            server = coordinator.start();
        }
        server
    });
    let run = run_loadtest(&[
        "burst",
        "--target",
        &url,
        "--admin-password",
        ADMIN_PASSWORD,
        "--users",
        "8",
        "--keys",
        "2",
        "--duration",
        "8",
        "--seed",
        "17",
    ]);
    kill(killer.join().expect("the killer thread"));

    assert_eq!(run.code, 0, "{}", run.explain());
    assert_ne!(run.json["decision"], "FAIL", "{}", run.explain());
    let findings = &run.json["findings"];
    let count = |field: &str| findings[field].as_u64().unwrap_or(0);
    assert!(findings["acknowledged"].as_u64() > Some(0), "{findings}");
    // The kills did land in the middle of the burst's traffic.
    let interrupted = count("noAnswer") + count("notSent");
    assert!(interrupted > 0, "no request was cut off by a kill: {findings}");
    eprintln!("crash under loadtest burst: 3 kill points, {findings}");
    // Stored once: every acknowledged record, plus each write whose answer a
    // kill cut off but which had committed (the no-answer ones not missing).
    assert_eq!(
        count("storedOnce"),
        count("acknowledged") + count("noAnswer") - count("unknownMissing"),
        "{findings}"
    );
    for incidents in ["disappeared", "duplicates", "lostConflicts", "refusedButStored"] {
        assert_eq!(findings[incidents], serde_json::json!([]), "{incidents}: {findings}");
    }
}
