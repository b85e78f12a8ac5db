//! The designs `loadtest bench` compares, each as a running process and the
//! one conditional write it is asked to do, again and again:
//!
//! - S, S1: the coordinator (batching on; `--max-batch 1`): `PUT` with
//!   `If-Match` naming the version this key was last seen at. 200 and 409 are
//!   both durable answers (a 409 stored the payload as a draft first).
//! - B0: `examples/bare_handler.rs`, HTTP and JSON parsing with nothing
//!   behind them.
//! - E: etcd, one `/v3/kv/txn` per write: compare the key's `mod_revision`,
//!   put on a match, read the key otherwise (to learn the new revision).

use super::etcd::Etcd;
use crate::server::{locate, stop_child, Program, ServerOptions, SpawnedServer};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::ValueEnum;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ValueEnum)]
pub enum Design {
    /// The coordinator, durable, batching on.
    S,
    /// The coordinator with `--max-batch 1`: one commit per write.
    S1,
    /// A bare actix-web handler: the ceiling of HTTP on this machine.
    B0,
    /// etcd, a compare-and-swap per write.
    E,
}

impl fmt::Display for Design {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::S => "S",
            Self::S1 => "S1",
            Self::B0 => "B0",
            Self::E => "E",
        })
    }
}

/// What one write came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Stored as the key's new value.
    Saved,
    /// Refused as stale (for the coordinator: after its draft was stored).
    Conflict,
    /// Anything else: an error status or no answer.
    Failed,
}

/// The version each key was last seen at, shared by every connection of a
/// run (as users who all just read the key). Lock-free: a stale entry only
/// costs a conflict, which is an answer like any other.
pub struct SeenVersions(Vec<AtomicI64>);

impl SeenVersions {
    pub fn new(keys: usize) -> Self {
        Self((0..keys).map(|_| AtomicI64::new(0)).collect())
    }

    fn get(&self, key: usize) -> i64 {
        self.0[key].load(Ordering::Relaxed)
    }

    fn saw(&self, key: usize, version: i64) {
        self.0[key].fetch_max(version, Ordering::Relaxed);
    }
}

/// A design, running, and how to talk to it.
pub struct Target {
    pub design: Design,
    http: reqwest::Client,
    base: String,
    process: Process,
}

enum Process {
    Coordinator {
        server: SpawnedServer,
        authorization: String,
    },
    // Held only to stop the process when the target is dropped.
    Bare {
        _process: ChildGuard,
    },
    Etcd {
        _process: Etcd,
    },
}

impl Target {
    /// Starts `design`; `extra_args` are more `serve` flags for S and S1.
    pub async fn start(
        design: Design,
        etcd_binary: Option<&Path>,
        connections: usize,
        mut extra_args: Vec<String>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let (base, process) = match design {
            Design::S | Design::S1 => {
                let binary = locate(Program::Coordinator, None)?;
                if design == Design::S1 {
                    extra_args.extend(["--max-batch".to_owned(), "1".to_owned()]);
                }
                let options = ServerOptions {
                    extra_args,
                    ..ServerOptions::default()
                };
                let server =
                    tokio::task::spawn_blocking(move || SpawnedServer::start_with(&binary, &options)).await??;
                let token = login(&http, &server.url, &server.admin_password).await?;
                (
                    server.url.clone(),
                    Process::Coordinator {
                        server,
                        authorization: format!("Bearer {token}"),
                    },
                )
            }
            Design::B0 => {
                let binary = locate(Program::BareHandler, None)?;
                let (guard, listen) = tokio::task::spawn_blocking(move || ChildGuard::start_bare(&binary)).await??;
                (format!("http://{listen}"), Process::Bare { _process: guard })
            }
            Design::E => {
                let binary = etcd_binary.context("design E needs etcd: pass --with-etcd")?.to_owned();
                let etcd = tokio::task::spawn_blocking(move || Etcd::start(&binary)).await??;
                etcd.wait_ready(&http).await?;
                (etcd.url.clone(), Process::Etcd { _process: etcd })
            }
        };
        Ok(Self {
            design,
            http,
            base,
            process,
        })
    }

    /// The coordinator behind S or S1.
    pub fn coordinator(&self) -> Option<&SpawnedServer> {
        match &self.process {
            Process::Coordinator { server, .. } => Some(server),
            _ => None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Creates `names` where the design keeps state (the coordinator needs a
    /// key to exist before `If-Match` can name a version of it).
    pub async fn create_keys(&self, names: &[String], seen: &SeenVersions, payload: &str) -> anyhow::Result<()> {
        let Process::Coordinator { authorization, .. } = &self.process else {
            return Ok(());
        };
        for (index, name) in names.iter().enumerate() {
            let response = self
                .http
                .put(format!("{}/api/storage/{name}", self.base))
                .header(AUTHORIZATION, authorization)
                .header(CONTENT_TYPE, "application/json")
                .header(IF_NONE_MATCH, "*")
                .body(payload.to_owned())
                .send()
                .await?;
            match (response.status(), etag_version(&response)) {
                (StatusCode::CREATED | StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT, Some(version)) => {
                    seen.saw(index, version)
                }
                (status, _) => bail!("creating key {name}: {status} {}", response.text().await?),
            }
        }
        Ok(())
    }

    /// One conditional write of `payload` to key `index` (named `name`).
    pub async fn write(&self, name: &str, index: usize, seen: &SeenVersions, payload: String) -> Answer {
        let result = match &self.process {
            Process::Coordinator { authorization, .. } => {
                self.put_if_match(name, index, seen, payload, authorization).await
            }
            Process::Bare { .. } => self.put_bare(name, payload).await,
            Process::Etcd { .. } => self.compare_and_swap(name, index, seen, payload).await,
        };
        result.unwrap_or(Answer::Failed)
    }

    async fn put_if_match(
        &self,
        name: &str,
        index: usize,
        seen: &SeenVersions,
        payload: String,
        authorization: &str,
    ) -> anyhow::Result<Answer> {
        let response = self
            .http
            .put(format!("{}/api/storage/{name}", self.base))
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/json")
            .header(IF_MATCH, format!("\"{}\"", seen.get(index)))
            .body(payload)
            .send()
            .await?;
        if let Some(version) = etag_version(&response) {
            seen.saw(index, version);
        }
        let answer = match response.status() {
            StatusCode::OK => Answer::Saved,
            StatusCode::CONFLICT => Answer::Conflict,
            _ => Answer::Failed,
        };
        // Read the body so the connection goes back to the pool.
        response.bytes().await?;
        Ok(answer)
    }

    async fn put_bare(&self, name: &str, payload: String) -> anyhow::Result<Answer> {
        let response = self
            .http
            .put(format!("{}/api/storage/{name}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(payload)
            .send()
            .await?;
        let answer = if response.status() == StatusCode::OK {
            Answer::Saved
        } else {
            Answer::Failed
        };
        response.bytes().await?;
        Ok(answer)
    }

    async fn compare_and_swap(
        &self,
        name: &str,
        index: usize,
        seen: &SeenVersions,
        payload: String,
    ) -> anyhow::Result<Answer> {
        let key = BASE64.encode(name);
        let request = json!({
            "compare": [{ "key": key, "target": "MOD", "result": "EQUAL", "mod_revision": seen.get(index).to_string() }],
            "success": [{ "request_put": { "key": key, "value": BASE64.encode(payload) } }],
            // Only the revision is needed back, not the value.
            "failure": [{ "request_range": { "key": key, "keys_only": true } }],
        });
        let response = self
            .http
            .post(format!("{}/v3/kv/txn", self.base))
            .json(&request)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Ok(Answer::Failed);
        }
        let reply: TxnReply = response.json().await?;
        if reply.succeeded {
            seen.saw(index, reply.header.revision.parse()?);
            return Ok(Answer::Saved);
        }
        let current = reply
            .responses
            .first()
            .and_then(|r| r.response_range.as_ref())
            .and_then(|range| range.kvs.first())
            .map_or(Ok(0), |kv| kv.mod_revision.parse())?;
        seen.saw(index, current);
        Ok(Answer::Conflict)
    }
}

/// The parts of etcd's `TxnResponse` (proto3 JSON: 64-bit numbers are
/// strings, false and empty fields are left out).
#[derive(Deserialize)]
struct TxnReply {
    header: TxnHeader,
    #[serde(default)]
    succeeded: bool,
    #[serde(default)]
    responses: Vec<TxnResponse>,
}

#[derive(Deserialize)]
struct TxnHeader {
    revision: String,
}

#[derive(Deserialize)]
struct TxnResponse {
    response_range: Option<RangeReply>,
}

#[derive(Deserialize)]
struct RangeReply {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    mod_revision: String,
}

fn etag_version(response: &reqwest::Response) -> Option<i64> {
    let text = response.headers().get(ETAG)?.to_str().ok()?;
    text.trim().trim_matches('"').parse().ok()
}

async fn login(http: &reqwest::Client, base: &str, password: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Login {
        token: String,
    }
    let response = http
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": "admin", "password": password }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("logging in to {base}: {}", response.status());
    }
    Ok(response.json::<Login>().await?.token)
}

/// A child process stopped (SIGTERM, then kill) when dropped.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// Starts the bare handler on a free port and reads its address.
    fn start_bare(binary: &Path) -> anyhow::Result<(Self, String)> {
        let mut child = Command::new(binary)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the bare handler's stdout")?;
        let guard = Self::new(child);
        let mut first_line = String::new();
        BufReader::new(stdout).read_line(&mut first_line)?;
        let listen = crate::server::listen_address(&first_line)
            .with_context(|| format!("the bare handler printed {first_line:?}, not server_started"))?;
        Ok((guard, listen))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}
