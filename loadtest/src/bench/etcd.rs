//! Design E's server: a single etcd node on loopback, with its data in a
//! temporary directory, stopped (and its data removed) when dropped. Its WAL
//! is flushed before a write is acknowledged, as the coordinator's is.

use super::designs::ChildGuard;
use anyhow::{bail, Context};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Debian package that ships the `etcd` server.
const PACKAGE: &str = "etcd-server";

pub struct Etcd {
    pub url: String,
    process: ChildGuard,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// `etcd` from `PATH`, installed with apt-get when it is missing.
    pub fn find_or_install() -> anyhow::Result<PathBuf> {
        if let Some(found) = on_path("etcd") {
            return Ok(found);
        }
        eprintln!("loadtest: etcd is not installed; installing the Debian package {PACKAGE}");
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get install {PACKAGE} failed ({status}); install etcd yourself or leave out --with-etcd");
        }
        on_path("etcd").context("installed etcd-server but found no etcd on PATH")
    }

    pub fn start(binary: &Path) -> anyhow::Result<Self> {
        let data = tempfile::Builder::new().prefix("loadtest-etcd-").tempdir()?;
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let child = Command::new(binary)
            .args(["--name", "bench", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("bench={peer}")])
            .args(["--log-outputs", "stderr", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(data.path().join("etcd.log"))?))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            url: client,
            process: ChildGuard::new(child),
            _data: data,
        })
    }

    /// Waits until the node answers `/health` with `"health":"true"`.
    pub async fn wait_ready(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        for _ in 0..200 {
            if let Ok(response) = http.get(format!("{}/health", self.url)).send().await {
                if response.text().await.is_ok_and(|body| body.contains("\"true\"")) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "etcd (pid {}) did not become healthy within 10 s at {}",
            self.process.pid(),
            self.url
        )
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
}

/// A port nothing listens on right now (the kernel's pick for port 0).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
