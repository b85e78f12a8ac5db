use crate::coordinator::Registry;
use crate::store::Store;
use std::time::Duration;

/// What every handler can reach, shared by all workers.
pub struct AppState {
    pub store: Store,
    pub registry: Registry,
    pub max_body_bytes: usize,
    pub token_ttl: Duration,
    /// Sessions seen recently, for when the database is out of reach.
    pub sessions: super::sessions::SessionCache,
    /// One request at a time per user and `Idempotency-Key`.
    pub idempotency_locks: super::idempotency_locks::IdempotencyLocks,
    /// `--allow-unconditional`: PUT without If-Match may add records, never drop or change them.
    pub allow_unconditional: bool,
    /// Sizes of the batches the writer committed (group commit).
    pub batch_stats: std::sync::Arc<crate::coordinator::BatchStats>,
    /// `--max-json-depth`: deepest nesting a JSON body may have.
    pub max_json_depth: usize,
    /// `--metrics-token`: when set, `GET /metrics` needs it as a bearer token.
    pub metrics_token: Option<String>,
    /// Failed logins per username and per address, in memory.
    pub login_limiter: super::rate_limit::LoginLimiter,
}
