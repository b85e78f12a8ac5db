use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `loadtest` run left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: Value,
}

/// Runs the `loadtest` binary with `args` plus `--json <tmp>`, bounded in time.
pub fn run_loadtest(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json_path: PathBuf = dir.path().join("report.json");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .env_remove("COORDINATOR_ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("the loadtest binary starts");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for loadtest") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadtest ran longer than 240 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let json = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        json,
    }
}

impl Run {
    pub fn explain(&self) -> String {
        format!(
            "exit {}\n--- stderr\n{}\n--- stdout\n{}",
            self.code, self.stderr, self.stdout
        )
    }

    /// The incidents whose text contains `what`.
    pub fn incidents_about(&self, what: &str) -> usize {
        self.json["incidents"].as_array().map_or(0, |all| {
            all.iter()
                .filter(|i| i.as_str().is_some_and(|i| i.contains(what)))
                .count()
        })
    }
}
