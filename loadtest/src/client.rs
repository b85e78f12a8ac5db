//! The coordinator's HTTP API as the virtual users call it. One
//! `reqwest::Client` (one connection pool) is shared by every session; a
//! session is that client plus a base URL, a bearer token and the phase it
//! records into. Every request carries our own `X-Transaction-Id`
//! (`<run>.<phase>.<n>`), so the server's log lines can be matched to what we
//! saw, request by request.

use crate::histogram::Histogram;
use anyhow::{anyhow, bail, Context};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TRANSACTION_ID: &str = "x-transaction-id";

/// Counters of one phase (a scenario, the setup, the burst). Shared by all
/// the sessions of the phase; atomics, so recording never waits on a lock.
#[derive(Default)]
pub struct PhaseMetrics {
    pub latency: Histogram,
    pub requests: AtomicU64,
    /// Responses by status class: index 1-5 for 1xx-5xx, 0 for no answer.
    pub by_class: [AtomicU64; 6],
}

impl PhaseMetrics {
    fn record(&self, status: Option<StatusCode>, elapsed: Duration) {
        self.latency.record(elapsed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = status.map_or(0, |s| (s.as_u16() / 100).min(5) as usize);
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn class(&self, class: usize) -> u64 {
        self.by_class[class].load(Ordering::Relaxed)
    }
}

/// Hands out transaction ids: `<run>.<phase>.<n>`.
pub struct TxIds {
    run_id: String,
    next: AtomicU64,
}

impl TxIds {
    pub fn new(run_id: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self, phase: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}.{phase}.{n}", self.run_id)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// The phase a transaction id was issued in, if it is one of this run's.
pub fn phase_of<'a>(tx: &'a str, run_id: &str) -> Option<&'a str> {
    let rest = tx.strip_prefix(run_id)?.strip_prefix('.')?;
    rest.rsplit_once('.').map(|(phase, _)| phase)
}

/// The shared client and the servers to spread users over.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    targets: Arc<Vec<String>>,
    tx: Arc<TxIds>,
}

impl Api {
    pub fn new(targets: Vec<String>, run_id: &str, max_idle_per_host: usize) -> anyhow::Result<Self> {
        if targets.is_empty() {
            bail!("no target server");
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(max_idle_per_host.max(1))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let targets = targets
            .into_iter()
            .map(|t| t.trim_end_matches('/').to_owned())
            .collect();
        Ok(Self {
            http,
            targets: Arc::new(targets),
            tx: Arc::new(TxIds::new(run_id)),
        })
    }

    pub fn run_id(&self) -> &str {
        self.tx.run_id()
    }

    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// Logs in on target `index % targets`; the session records into `metrics`.
    pub async fn login(
        &self,
        index: usize,
        username: &str,
        password: &str,
        metrics: Arc<PhaseMetrics>,
    ) -> anyhow::Result<Session> {
        let base: Arc<str> = Arc::from(self.targets[index % self.targets.len()].as_str());
        let anonymous = Session {
            api: self.clone(),
            base,
            auth: None,
            username: Arc::from(username),
            phase: "login",
            metrics,
        };
        let (status, body) = anonymous
            .send_json(
                Method::POST,
                "/api/login",
                &json!({ "username": username, "password": password }),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("login as {username} answered {status}: {}", short(&body));
        }
        #[derive(Deserialize)]
        struct LoginReply {
            token: String,
        }
        let reply: LoginReply = serde_json::from_slice(&body).context("reading the login reply")?;
        let auth =
            HeaderValue::from_str(&format!("Bearer {}", reply.token)).context("the token is not a header value")?;
        Ok(Session {
            auth: Some(auth),
            ..anonymous
        })
    }
}

/// One logged-in user on one server.
#[derive(Clone)]
pub struct Session {
    api: Api,
    base: Arc<str>,
    auth: Option<HeaderValue>,
    pub username: Arc<str>,
    phase: &'static str,
    metrics: Arc<PhaseMetrics>,
}

/// What the client sends as its precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// `If-Match: "N"`: the version the user read.
    IfMatch(i64),
    /// `If-None-Match: *`: the key was missing when read; create only.
    Create,
}

/// A key's value as read, kept as text: parsing it is the caller's choice.
pub struct Fetched {
    body: String,
    pub version: i64,
}

impl Fetched {
    /// The raw JSON text of the `value` field.
    pub fn value_text(&self) -> anyhow::Result<&str> {
        #[derive(Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            value: &'a RawValue,
        }
        let stored: Stored = serde_json::from_str(&self.body).context("reading a storage reply")?;
        Ok(stored.value.get())
    }

    pub fn value(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(self.value_text()?)?)
    }
}

/// How a `PUT /api/storage/{key}` ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PutOutcome {
    /// 200/201: acknowledged; the record must be stored from now on.
    Saved { status: u16, version: i64 },
    /// 409: stale; the payload is (the server says) the draft `draft_id`.
    Conflict { draft_id: Option<String> },
    /// 503: not committed; the payload is (the server says) a draft.
    Unavailable { draft_id: Option<String> },
    /// Any other status: nothing was stored, by contract.
    Rejected { status: u16, error: String },
    /// No answer: the outcome is unknown.
    NoAnswer { error: String },
}

impl PutOutcome {
    pub fn draft_id(&self) -> Option<&str> {
        match self {
            PutOutcome::Conflict { draft_id } | PutOutcome::Unavailable { draft_id } => draft_id.as_deref(),
            _ => None,
        }
    }

    pub fn is_saved(&self) -> bool {
        matches!(self, PutOutcome::Saved { .. })
    }

    pub fn status(&self) -> u16 {
        match self {
            PutOutcome::Saved { status, .. } | PutOutcome::Rejected { status, .. } => *status,
            PutOutcome::Conflict { .. } => 409,
            PutOutcome::Unavailable { .. } => 503,
            PutOutcome::NoAnswer { .. } => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Put {
    pub tx: String,
    pub outcome: PutOutcome,
    pub latency: Duration,
}

/// A draft as `GET /api/drafts` shows it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftView {
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub username: String,
    pub reason: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub payload: Value,
}

/// One draft's answer to a submit.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResult {
    pub draft_id: String,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DraftStats {
    pub total: i64,
    #[serde(default)]
    pub by_reason: BTreeMap<String, i64>,
    #[serde(default)]
    pub by_key: BTreeMap<String, i64>,
}

impl Session {
    /// The same user, recording into another phase.
    pub fn in_phase(&self, phase: &'static str, metrics: Arc<PhaseMetrics>) -> Session {
        Session {
            phase,
            metrics,
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> (RequestBuilder, String) {
        let tx = self.api.tx.next(self.phase);
        let mut builder = self
            .api
            .http
            .request(method, format!("{}{path}", self.base))
            .header(TRANSACTION_ID, &tx);
        if let Some(auth) = &self.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        (builder, tx)
    }

    /// Sends, records the latency and status, and reads the whole body.
    async fn exchange(
        &self,
        builder: RequestBuilder,
    ) -> anyhow::Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let started = Instant::now();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => {
                self.metrics.record(None, started.elapsed());
                return Err(error.into());
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await;
        self.metrics.record(Some(status), started.elapsed());
        Ok((status, headers, body?.to_vec()))
    }

    async fn send_json(&self, method: Method, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let (builder, _tx) = self.request(method, path);
        let (status, _, body) = self.exchange(builder.json(body)).await?;
        Ok((status, body))
    }

    async fn send_empty(&self, method: Method, path: &str) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let (builder, _tx) = self.request(method, path);
        let (status, _, body) = self.exchange(builder).await?;
        Ok((status, body))
    }

    /// `GET /api/storage/{key}`; `None` when the key was never written.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Fetched>> {
        let (builder, _tx) = self.request(Method::GET, &format!("/api/storage/{key}"));
        let (status, headers, body) = self.exchange(builder).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => {
                let body = String::from_utf8(body).context("a storage reply that is not UTF-8")?;
                let version = etag_version(headers.get(ETAG))
                    .or_else(|| body_version(&body))
                    .ok_or_else(|| anyhow!("a storage reply with no version"))?;
                Ok(Some(Fetched { body, version }))
            }
            other => bail!("GET {key} answered {other}: {}", short(&body)),
        }
    }

    /// `PUT /api/storage/{key}` with `body` as the new value.
    pub async fn put(&self, key: &str, body: String, precondition: Precondition) -> Put {
        let (builder, tx) = self.request(Method::PUT, &format!("/api/storage/{key}"));
        let builder = match precondition {
            Precondition::IfMatch(version) => builder.header(IF_MATCH, format!("\"{version}\"")),
            Precondition::Create => builder.header(IF_NONE_MATCH, "*"),
        };
        let builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        self.write(builder, tx, put_outcome).await
    }

    /// `POST /api/storage/{key}/items` with one record: appended to whatever
    /// the key holds now (created as `[record]` when missing). No
    /// precondition, so it cannot go stale; its outcome reads like a PUT's.
    pub async fn append_item(&self, key: &str, record: String) -> Put {
        let (builder, tx) = self.request(Method::POST, &format!("/api/storage/{key}/items"));
        let builder = builder.header(CONTENT_TYPE, "application/json").body(record);
        self.write(builder, tx, item_outcome).await
    }

    /// Sends a write, timed, and reads its answer with `outcome`; a broken
    /// exchange is a write with no answer.
    async fn write(
        &self,
        builder: RequestBuilder,
        tx: String,
        outcome: fn(StatusCode, Option<&HeaderValue>, &[u8]) -> PutOutcome,
    ) -> Put {
        let started = Instant::now();
        let outcome = match self.exchange(builder).await {
            Ok((status, headers, body)) => outcome(status, headers.get(ETAG), &body),
            Err(error) => PutOutcome::NoAnswer {
                error: format!("{error:#}"),
            },
        };
        Put {
            tx,
            outcome,
            latency: started.elapsed(),
        }
    }

    /// `GET /api/drafts`: this user's drafts.
    pub async fn my_drafts(&self) -> anyhow::Result<Vec<DraftView>> {
        let (status, body) = self.send_empty(Method::GET, "/api/drafts").await?;
        drafts_reply(status, &body)
    }

    /// `GET /api/drafts/{id}`; `None` on 404. Accepts the draft itself or
    /// a detail object that holds it under `draft`.
    pub async fn my_draft(&self, id: &str) -> anyhow::Result<Option<DraftView>> {
        let (status, body) = self.send_empty(Method::GET, &format!("/api/drafts/{id}")).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => {
                let mut reply: Value = serde_json::from_slice(&body).context("reading a draft")?;
                let draft = match reply.get_mut("draft") {
                    Some(inner) if inner.is_object() => inner.take(),
                    _ => reply,
                };
                Ok(Some(serde_json::from_value(draft).context("reading a draft")?))
            }
            other => bail!("GET draft {id} answered {other}: {}", short(&body)),
        }
    }

    /// `POST /api/drafts/{id}/submit`, with the HTTP status.
    pub async fn submit_draft(&self, id: &str) -> anyhow::Result<(u16, SubmitResult)> {
        let (status, body) = self
            .send_empty(Method::POST, &format!("/api/drafts/{id}/submit"))
            .await?;
        let result = serde_json::from_slice(&body).unwrap_or_else(|_| SubmitResult {
            draft_id: id.to_owned(),
            status: "unreadable".into(),
            error: Some(short(&body)),
            version: None,
        });
        Ok((status.as_u16(), result))
    }

    /// `POST /api/drafts/submit-all`.
    pub async fn submit_all(&self) -> anyhow::Result<Vec<SubmitResult>> {
        let (status, body) = self.send_empty(Method::POST, "/api/drafts/submit-all").await?;
        if status != StatusCode::OK {
            bail!("submit-all answered {status}: {}", short(&body));
        }
        #[derive(Deserialize)]
        struct Results {
            results: Vec<SubmitResult>,
        }
        Ok(serde_json::from_slice::<Results>(&body)
            .context("reading submit-all")?
            .results)
    }

    /// `DELETE /api/drafts/{id}`; the HTTP status.
    pub async fn delete_draft(&self, id: &str) -> anyhow::Result<u16> {
        let (status, _) = self.send_empty(Method::DELETE, &format!("/api/drafts/{id}")).await?;
        Ok(status.as_u16())
    }

    /// Admin: `POST /api/admin/users`; `false` when the user already exists.
    pub async fn create_user(&self, username: &str, password: &str) -> anyhow::Result<bool> {
        let body = json!({ "username": username, "password": password, "role": "user" });
        let (status, reply) = self.send_json(Method::POST, "/api/admin/users", &body).await?;
        match status {
            StatusCode::CREATED | StatusCode::OK => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            other => bail!("creating user {username} answered {other}: {}", short(&reply)),
        }
    }

    /// Admin: `GET /api/admin/drafts?username=..&key=..`.
    pub async fn admin_drafts(&self, username: Option<&str>, key: Option<&str>) -> anyhow::Result<Vec<DraftView>> {
        let (builder, _tx) = self.request(Method::GET, "/api/admin/drafts");
        let mut query = vec![("limit", "5000")];
        query.extend(username.map(|u| ("username", u)));
        query.extend(key.map(|k| ("key", k)));
        let (status, _, body) = self.exchange(builder.query(&query)).await?;
        drafts_reply(status, &body)
    }

    /// Admin: `GET /api/admin/drafts/stats`.
    pub async fn draft_stats(&self) -> anyhow::Result<DraftStats> {
        let (status, body) = self.send_empty(Method::GET, "/api/admin/drafts/stats").await?;
        if status != StatusCode::OK {
            bail!("draft stats answered {status}: {}", short(&body));
        }
        serde_json::from_slice(&body).context("reading draft stats")
    }
}

fn drafts_reply(status: StatusCode, body: &[u8]) -> anyhow::Result<Vec<DraftView>> {
    if status != StatusCode::OK {
        bail!("listing drafts answered {status}: {}", short(body));
    }
    #[derive(Deserialize)]
    struct Drafts {
        drafts: Vec<DraftView>,
    }
    Ok(serde_json::from_slice::<Drafts>(body).context("reading drafts")?.drafts)
}

fn put_outcome(status: StatusCode, etag: Option<&HeaderValue>, body: &[u8]) -> PutOutcome {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Reply {
        version: Option<i64>,
        draft_id: Option<String>,
        draft_saved: Option<bool>,
        error: Option<String>,
    }
    let reply: Reply = serde_json::from_slice(body).unwrap_or_default();
    // A draft only counts when the server says it was saved.
    let draft_id = reply.draft_id.filter(|_| reply.draft_saved.unwrap_or(false));
    match status.as_u16() {
        200 | 201 => match reply.version.or_else(|| etag_version(etag)) {
            Some(version) => PutOutcome::Saved {
                status: status.as_u16(),
                version,
            },
            None => PutOutcome::Rejected {
                status: status.as_u16(),
                error: "an acknowledgement without a version".into(),
            },
        },
        409 => PutOutcome::Conflict { draft_id },
        503 => PutOutcome::Unavailable { draft_id },
        other => PutOutcome::Rejected {
            status: other,
            error: reply.error.unwrap_or_else(|| short(body)),
        },
    }
}

/// An item append's answer. A 409 here is a refusal (`duplicate_id`,
/// `not_an_array`), not a stale write: unless it names a saved draft it is a
/// rejection, so it is never mistaken for a conflict that lost its draft.
fn item_outcome(status: StatusCode, etag: Option<&HeaderValue>, body: &[u8]) -> PutOutcome {
    match put_outcome(status, etag, body) {
        PutOutcome::Conflict { draft_id: None } => PutOutcome::Rejected {
            status: 409,
            error: serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|reply| reply["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| short(body)),
        },
        other => other,
    }
}

/// `"7"` -> 7.
pub fn etag_version(etag: Option<&HeaderValue>) -> Option<i64> {
    let text = etag?.to_str().ok()?;
    text.trim().trim_matches('"').parse().ok()
}

fn body_version(body: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Versioned {
        version: i64,
    }
    serde_json::from_str::<Versioned>(body).ok().map(|v| v.version)
}

/// The start of a body, for error messages.
fn short(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_name_their_phase() {
        let ids = TxIds::new("r9");
        let tx = ids.next("A");
        assert_eq!(tx, "r9.A.1");
        assert_eq!(phase_of(&tx, "r9"), Some("A"));
        assert_eq!(phase_of("other.A.1", "r9"), None);
    }

    #[test]
    fn a_conflict_counts_its_draft_only_when_saved() {
        let saved = br#"{"error":"conflict","draftId":"d1","draftSaved":true}"#;
        assert_eq!(
            put_outcome(StatusCode::CONFLICT, None, saved),
            PutOutcome::Conflict {
                draft_id: Some("d1".into())
            }
        );
        let unsaved = br#"{"error":"conflict","draftId":"d1","draftSaved":false}"#;
        assert_eq!(
            put_outcome(StatusCode::CONFLICT, None, unsaved),
            PutOutcome::Conflict { draft_id: None }
        );
    }

    #[test]
    fn an_item_refusal_is_a_rejection_not_a_lost_conflict() {
        let duplicate = br#"{"error":"duplicate_id","message":"x"}"#;
        assert_eq!(
            item_outcome(StatusCode::CONFLICT, None, duplicate),
            PutOutcome::Rejected {
                status: 409,
                error: "duplicate_id".into()
            }
        );
        let created = br#"{"key":"k","version":3,"updatedAt":"t","id":"r1"}"#;
        assert_eq!(
            item_outcome(StatusCode::CREATED, None, created),
            PutOutcome::Saved {
                status: 201,
                version: 3
            }
        );
        let with_draft = br#"{"error":"conflict","draftId":"d1","draftSaved":true}"#;
        assert_eq!(
            item_outcome(StatusCode::CONFLICT, None, with_draft),
            PutOutcome::Conflict {
                draft_id: Some("d1".into())
            }
        );
    }

    #[test]
    fn an_acknowledgement_reads_its_version() {
        let etag = HeaderValue::from_static("\"12\"");
        assert_eq!(
            put_outcome(StatusCode::OK, Some(&etag), b"{}"),
            PutOutcome::Saved {
                status: 200,
                version: 12
            }
        );
        assert_eq!(
            put_outcome(StatusCode::CREATED, None, br#"{"version":1}"#),
            PutOutcome::Saved {
                status: 201,
                version: 1
            }
        );
    }
}
