//! Starting the coordinator for a run that names no `--target`: the binary
//! from the same build (or built on the spot), a fresh SQLite database in a
//! temporary directory (or a database named by URL, for tests that start
//! several instances on one PostgreSQL database), a free port on 127.0.0.1,
//! stdout captured as the server log. Stopped (SIGTERM, then kill) when the
//! run ends or the value is dropped.

use anyhow::{bail, Context};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to print `server_started`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SpawnedServer {
    child: Child,
    pub url: String,
    pub admin_password: String,
    pub log_path: PathBuf,
    pub binary: PathBuf,
    /// Holds the database and the log; removed on drop.
    dir: tempfile::TempDir,
}

/// How to start a server beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// A database by URL (for tests that start several instances on one
    /// PostgreSQL database); a fresh SQLite database in the temporary
    /// directory when `None`.
    pub database_url: Option<String>,
    /// Random when `None`.
    pub admin_password: Option<String>,
    /// More `serve` flags, such as `--max-batch 1`.
    pub extra_args: Vec<String>,
}

impl SpawnedServer {
    /// On a fresh SQLite database, with a random admin password.
    pub fn start(binary: &Path) -> anyhow::Result<Self> {
        Self::start_with(binary, &ServerOptions::default())
    }

    /// As `options` say. The draft spool lives in the temporary directory
    /// either way.
    pub fn start_with(binary: &Path, options: &ServerOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("loadtest-coordinator-")
            .tempdir()
            .context("creating a temporary directory for the server")?;
        let log_path = dir.path().join("coordinator.log");
        let log = File::create(&log_path).context("creating the server log")?;
        let errors = File::create(dir.path().join("coordinator.stderr")).context("creating the stderr file")?;
        let admin_password = options
            .admin_password
            .clone()
            .unwrap_or_else(|| format!("lt-{}", uuid::Uuid::new_v4().simple()));
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("pilot.db").display()));
        let spool = dir.path().join("spool");
        // The log level is ours unless the caller names one (for debug runs).
        let names_log_level = options.extra_args.iter().any(|arg| arg.starts_with("--log-level"));
        let log_level: &[&str] = if names_log_level { &[] } else { &["--log-level", "info"] };
        let child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(log_level)
            .args(["--database-url", &database_url])
            .arg("--spool-dir")
            .arg(&spool)
            .args(&options.extra_args)
            .env("COORDINATOR_ADMIN_PASSWORD", &admin_password)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(errors))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self {
            child,
            url: String::new(),
            admin_password,
            log_path,
            binary: binary.to_owned(),
            dir,
        };
        server.url = format!("http://{}", server.wait_for_address()?);
        Ok(server)
    }

    /// Polls the log for `server_started` and returns its `listen` address.
    fn wait_for_address(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let stderr = std::fs::read_to_string(self.dir.path().join("coordinator.stderr")).unwrap_or_default();
                bail!("the coordinator exited with {status} before listening: {stderr}");
            }
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if let Some(listen) = listen_address(&log) {
                return Ok(listen);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("the coordinator did not report `server_started` within {START_TIMEOUT:?}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory that holds the database, the log and the spool.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn read_log(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(&self.log_path).context("reading the server log")
    }

    /// SIGTERM, a grace period for the graceful shutdown, then kill.
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, five seconds to exit, then kill; reaps the child.
pub fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The `listen` field of the first `server_started` line.
pub fn listen_address(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["event"] == "server_started")
        .and_then(|line| line["listen"].as_str().map(str::to_owned))
}

/// A program this repository builds that a run starts.
#[derive(Debug, Clone, Copy)]
pub enum Program {
    Coordinator,
    /// `examples/bare_handler.rs`: HTTP with nothing behind it, the benchmark's ceiling.
    BareHandler,
}

impl Program {
    fn path_in(self, profile_dir: &Path) -> PathBuf {
        let name = |stem: &str| format!("{stem}{}", std::env::consts::EXE_SUFFIX);
        match self {
            Self::Coordinator => profile_dir.join(name("coordinator")),
            Self::BareHandler => profile_dir.join("examples").join(name("bare_handler")),
        }
    }

    fn cargo_target(self) -> [&'static str; 2] {
        match self {
            Self::Coordinator => ["--bin", "coordinator"],
            Self::BareHandler => ["--example", "bare_handler"],
        }
    }
}

/// The coordinator binary to start: `explicit`, else the one beside this
/// executable (same target profile directory), else built with cargo.
pub fn locate_coordinator(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    locate(Program::Coordinator, explicit)
}

/// `program`'s binary: `explicit`, else the one of this executable's build
/// profile, else built with cargo.
pub fn locate(program: Program, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("{} is not a file", path.display());
        }
        return Ok(path.to_owned());
    }
    let profile_dir = profile_dir()?;
    let candidate = program.path_in(&profile_dir);
    if candidate.is_file() {
        return Ok(candidate);
    }
    build(program, &profile_dir)?;
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "built {program:?} but found no binary at {}; name one explicitly",
        candidate.display()
    )
}

/// `target/<profile>` of the running executable (tests run from `deps/`).
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut dir = exe.parent().context("this executable has no directory")?.to_owned();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// `cargo build [--release] --bin coordinator` (or `--example ...`),
/// matching this executable's profile.
fn build(program: Program, profile_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .args(program.cargo_target())
        .arg("--manifest-path")
        .arg(&manifest);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => {
            command.arg("--release");
        }
        Some("debug") | None => {}
        Some(other) => {
            command.args(["--profile", other]);
        }
    }
    // Build into the target directory this executable came from.
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    eprintln!("loadtest: no {program:?} binary beside this one; building it: {command:?}");
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("building {program:?} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_comes_from_server_started() {
        let log = "{\"event\":\"log\"}\nnot json\n{\"event\":\"server_started\",\"listen\":\"127.0.0.1:4711\"}\n";
        assert_eq!(listen_address(log).as_deref(), Some("127.0.0.1:4711"));
        assert_eq!(listen_address("{\"event\":\"x\"}"), None);
    }
}
