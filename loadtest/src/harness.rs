//! What a run drives: the servers (spawned, or named with `--target`), the
//! admin session and the virtual users' sessions.

use crate::client::{Api, PhaseMetrics, Session};
use crate::server::{locate_coordinator, SpawnedServer};
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Where the servers are and how to log in; shared by `pilot` and `burst`.
#[derive(Args, Debug, Clone)]
pub struct TargetOptions {
    /// A running server to drive, e.g. `http://127.0.0.1:8080` (repeatable:
    /// users are spread over the instances). Without it a coordinator is
    /// started on a fresh temporary SQLite database and a free port.
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,

    /// Admin user for `--target` runs.
    #[arg(long, default_value = "admin")]
    pub admin_user: String,

    /// Admin password for `--target` runs.
    #[arg(long, env = "COORDINATOR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// The server's JSON log, for the log cross-checks of a `--target` run
    /// (repeatable: one per instance).
    #[arg(long = "server-log", value_name = "FILE")]
    pub server_logs: Vec<PathBuf>,

    /// The coordinator binary to start (default: the one built beside this tool).
    #[arg(long, value_name = "PATH")]
    pub coordinator_bin: Option<PathBuf>,

    /// Allow targets outside the loopback range (never load-test a server you do not own).
    #[arg(long)]
    pub allow_remote: bool,

    /// Virtual users are `<prefix>-001`, `<prefix>-002`, ...; created when missing.
    #[arg(long, default_value = "loadtest")]
    pub user_prefix: String,

    /// The virtual users' password (8+ characters).
    #[arg(
        long,
        env = "LOADTEST_USER_PASSWORD",
        default_value = "loadtest-password",
        hide_env_values = true
    )]
    pub user_password: String,

    /// Copy the spawned server's log here before it is removed.
    #[arg(long, value_name = "FILE")]
    pub save_server_log: Option<PathBuf>,
}

pub struct Harness {
    pub api: Api,
    pub admin: Session,
    server: Option<SpawnedServer>,
    server_logs: Vec<PathBuf>,
    options: TargetOptions,
}

impl Harness {
    /// Starts (or reaches) the servers and logs the admin in.
    pub async fn start(
        options: &TargetOptions,
        run_id: &str,
        pool: usize,
        metrics: Arc<PhaseMetrics>,
    ) -> anyhow::Result<Self> {
        let (server, targets, admin_password, server_logs) = if options.targets.is_empty() {
            let binary = locate_coordinator(options.coordinator_bin.as_deref())?;
            let server = tokio::task::spawn_blocking(move || SpawnedServer::start(&binary)).await??;
            let (url, password, log) = (
                server.url.clone(),
                server.admin_password.clone(),
                server.log_path.clone(),
            );
            (Some(server), vec![url], password, vec![log])
        } else {
            for target in &options.targets {
                ensure_local(target, options.allow_remote)?;
            }
            let password = options
                .admin_password
                .clone()
                .context("a --target run needs --admin-password or COORDINATOR_ADMIN_PASSWORD")?;
            (None, options.targets.clone(), password, options.server_logs.clone())
        };
        let api = Api::new(targets, run_id, pool)?;
        let admin = api
            .login(0, &options.admin_user, &admin_password, metrics)
            .await
            .context("logging in as the admin")?;
        Ok(Self {
            api,
            admin,
            server,
            server_logs,
            options: options.clone(),
        })
    }

    /// `spawned coordinator <binary>` or the target list, for reports.
    pub fn describe(&self) -> String {
        match &self.server {
            Some(server) => format!(
                "coordinator started by the tool ({}) at {}, fresh SQLite database",
                relative_to_cwd(&server.binary).display(),
                server.url
            ),
            None => format!("running server(s): {}", self.api.targets().join(", ")),
        }
    }

    pub fn spawned(&self) -> bool {
        self.server.is_some()
    }

    /// Creates (when missing) and logs in `count` virtual users.
    pub async fn users(&self, count: usize, metrics: Arc<PhaseMetrics>) -> anyhow::Result<Vec<Session>> {
        if self.options.user_password.len() < 8 {
            bail!("--user-password must have 8 or more characters");
        }
        let mut sessions = Vec::with_capacity(count);
        // Password hashing is deliberately slow on the server: a few at a time.
        for chunk_start in (0..count).step_by(8) {
            let mut logins = JoinSet::new();
            for index in chunk_start..(chunk_start + 8).min(count) {
                let admin = self.admin.clone();
                let api = self.api.clone();
                let name = format!("{}-{:03}", self.options.user_prefix, index + 1);
                let password = self.options.user_password.clone();
                let metrics = metrics.clone();
                logins.spawn(async move {
                    admin.create_user(&name, &password).await?;
                    let session = api
                        .login(index, &name, &password, metrics)
                        .await
                        .with_context(|| format!("logging in as {name} (an existing user with another password?)"))?;
                    anyhow::Ok((index, session))
                });
            }
            while let Some(joined) = logins.join_next().await {
                sessions.push(joined??);
            }
        }
        sessions.sort_by_key(|(index, _)| *index);
        Ok(sessions.into_iter().map(|(_, session)| session).collect())
    }

    /// The server logs (all instances, one after the other), or why the log
    /// checks are skipped.
    pub fn read_server_log(&self) -> Result<String, String> {
        if self.server_logs.is_empty() {
            return Err("no server log: a --target run without --server-log".into());
        }
        let mut all = String::new();
        for path in &self.server_logs {
            let text = std::fs::read_to_string(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
            all.push_str(&text);
            if !all.ends_with('\n') {
                all.push('\n');
            }
        }
        Ok(all)
    }

    /// Stops a spawned server (its log stays readable until `self` is dropped).
    pub fn stop(&mut self) {
        if let Some(server) = &mut self.server {
            server.stop();
            if let Some(copy) = &self.options.save_server_log {
                if let Err(error) = std::fs::copy(&server.log_path, copy) {
                    eprintln!("loadtest: could not copy the server log to {}: {error}", copy.display());
                }
            }
        }
    }
}

/// `path` relative to the working directory when it lies below it: reports
/// name `target/release/coordinator`, not where the checkout happens to be.
fn relative_to_cwd(path: &std::path::Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(PathBuf::from))
        .unwrap_or_else(|| path.to_owned())
}

/// Refuses a target outside 127.0.0.0/8 and ::1 unless `allow_remote`.
pub fn ensure_local(target: &str, allow_remote: bool) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(target).with_context(|| format!("--target {target} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--target {target}: only http and https");
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !local && !allow_remote {
        bail!("--target {target} is not on this machine; pass --allow-remote to drive it anyway");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_allowed_by_default() {
        assert!(ensure_local("http://127.0.0.1:8080", false).is_ok());
        assert!(ensure_local("http://localhost:1", false).is_ok());
        assert!(ensure_local("http://[::1]:1", false).is_ok());
        assert!(ensure_local("http://10.0.0.1:80", false).is_err());
        assert!(ensure_local("http://10.0.0.1:80", true).is_ok());
        assert!(ensure_local("ftp://127.0.0.1", false).is_err());
    }
}
