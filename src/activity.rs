//! The admin activity log: the latest storage events, kept in memory so the
//! activity page can show them live without anyone reading the log files.
//!
//! [`ActivityLayer`] is a `tracing` layer that copies the storage events the
//! runbook watches (`storage_write`, `storage_conflict`, ...) into a bounded
//! ring ([`ActivityLog`]); `GET /api/admin/events` reads the ring.
//!
//! The ring is one per process ([`ActivityLog::global`]), because the
//! `tracing` subscriber it is fed from is one per process too: it is
//! installed once, before any `Application` is built, and an event does not
//! say which `Application` emitted it. A test process that builds several
//! applications therefore sees all their events in one ring, exactly as it
//! sees all their log lines on one stdout.
//!
//! The layer has its own filter, apart from the log filter, so the page keeps
//! working whatever `--log-level` and `--log-format` say.

use crate::domain::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How many events the process keeps: enough for a few minutes of a pilot
/// burst, small enough (a few hundred KiB) to never matter.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The events the activity page shows, as the runbook and the code name them.
pub const RECORDED_EVENTS: &[&str] = &[
    "storage_write",
    "storage_conflict",
    "storage_pending_draft_saved",
    "storage_pending_draft_failed",
    "storage_write_failed",
    "storage_draft_recovered",
    "storage_draft_conflict",
    "storage_draft_discarded",
    "storage_draft_submit_failed",
];

/// The fields kept from each event; anything else (payload sizes aside) stays
/// in the log only.
const RECORDED_FIELDS: &[&str] = &[
    "username",
    "key",
    "version",
    "currentVersion",
    "transactionId",
    "draftId",
    "reason",
    "error",
    "statusCode",
    "submittedBy",
    "discardedBy",
    "ifMatch",
    "incomingCount",
    "currentCount",
];

/// Longer strings (an error chain, a hostile `If-Match`) are cut to this many characters.
const MAX_FIELD_CHARS: usize = 300;

/// One recorded event. `seq` grows by one per event, so a client can tell
/// which rows are new since its last poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityEvent {
    pub seq: u64,
    pub time: Timestamp,
    pub level: String,
    pub event: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// A bounded ring of the latest events, oldest dropped first.
#[derive(Debug)]
pub struct ActivityLog {
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<ActivityEvent>,
}

impl ActivityLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: Mutex::new(Ring::default()),
        }
    }

    /// The process's ring, fed by [`layer`] and read by the admin API.
    pub fn global() -> Arc<ActivityLog> {
        static GLOBAL: OnceLock<Arc<ActivityLog>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Arc::new(ActivityLog::new(DEFAULT_CAPACITY)))
            .clone()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends an event, dropping the oldest when full.
    pub fn push(&self, level: &str, event: String, fields: Map<String, Value>) {
        // A panic while holding the lock cannot leave the ring half-written
        // (push and pop are single calls), so a poisoned lock is still usable.
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.next_seq += 1;
        let entry = ActivityEvent {
            seq: ring.next_seq,
            time: Timestamp::now(),
            level: level.to_owned(),
            event,
            fields,
        };
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(entry);
    }

    /// Up to `limit` events, newest first.
    pub fn latest(&self, limit: usize) -> Vec<ActivityEvent> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.events.iter().rev().take(limit).cloned().collect()
    }
}

/// Copies the storage events into an [`ActivityLog`].
pub struct ActivityLayer {
    log: Arc<ActivityLog>,
}

impl ActivityLayer {
    pub fn new(log: Arc<ActivityLog>) -> Self {
        Self { log }
    }
}

/// The layer to install beside the log output: records into
/// [`ActivityLog::global`], with a filter of its own that only lets through
/// this crate's events that carry an `event` name, at INFO or above.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ActivityLayer::new(ActivityLog::global())
        .with_filter(filter_fn(may_be_recorded).with_max_level_hint(LevelFilter::INFO))
}

/// Decided once per call site, so other events cost nothing here.
fn may_be_recorded(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    metadata.is_event()
        && *metadata.level() <= tracing::Level::INFO
        && (target == "coordinator" || target.starts_with("coordinator::"))
        && metadata.fields().field("event").is_some()
}

impl<S: Subscriber> Layer<S> for ActivityLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut capture = Capture::default();
        event.record(&mut capture);
        let Some(name) = capture.event.filter(|name| RECORDED_EVENTS.contains(&name.as_str())) else {
            return;
        };
        self.log.push(event.metadata().level().as_str(), name, capture.fields);
    }
}

#[derive(Default)]
struct Capture {
    event: Option<String>,
    fields: Map<String, Value>,
}

impl Capture {
    fn keep(&mut self, field: &Field, value: Value) {
        if RECORDED_FIELDS.contains(&field.name()) {
            self.fields.insert(field.name().to_owned(), value);
        }
    }

    fn keep_text(&mut self, field: &Field, text: String) {
        if field.name() == "event" {
            self.event = Some(text);
        } else if RECORDED_FIELDS.contains(&field.name()) {
            let text = match text.char_indices().nth(MAX_FIELD_CHARS) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            };
            self.fields.insert(field.name().to_owned(), Value::String(text));
        }
    }
}

impl Visit for Capture {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep_text(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep_text(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_ring<F: FnOnce()>(capacity: usize, emit: F) -> Arc<ActivityLog> {
        let log = Arc::new(ActivityLog::new(capacity));
        let layer = ActivityLayer::new(log.clone()).with_filter(filter_fn(may_be_recorded));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        log
    }

    #[test]
    fn records_storage_events_with_their_runbook_fields() {
        let log = with_ring(10, || {
            tracing::warn!(
                event = "storage_conflict",
                key = "activities",
                username = "alice",
                transactionId = "tx-1",
                currentVersion = Some(3_i64),
                statusCode = 409,
                incomingCount = 2,
            );
        });
        let events = log.latest(10);
        assert_eq!(events.len(), 1);
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["event"], "storage_conflict");
        assert_eq!(json["level"], "WARN");
        assert_eq!(json["key"], "activities");
        assert_eq!(json["username"], "alice");
        assert_eq!(json["transactionId"], "tx-1");
        assert_eq!(json["currentVersion"], 3);
        assert_eq!(json["statusCode"], 409);
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn ignores_other_events_and_unnamed_lines() {
        let log = with_ring(10, || {
            tracing::info!(event = "user_login", username = "alice");
            tracing::info!(event = "storage_request", key = "k");
            tracing::info!("a line without an event name");
            tracing::debug!(event = "storage_write", key = "k");
        });
        assert!(log.latest(10).is_empty());
    }

    #[test]
    fn keeps_only_the_newest_events_newest_first() {
        let log = with_ring(3, || {
            for version in 1..=5_i64 {
                tracing::info!(event = "storage_write", key = "k", version);
            }
        });
        let versions: Vec<_> = log.latest(10).iter().map(|e| e.fields["version"].clone()).collect();
        assert_eq!(versions, [5, 4, 3]);
        let seqs: Vec<_> = log.latest(2).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 4]);
    }

    #[test]
    fn display_fields_are_kept_as_text_and_long_ones_are_cut() {
        let long = "x".repeat(MAX_FIELD_CHARS + 50);
        let draft_id = uuid::Uuid::new_v4();
        let log = with_ring(10, || {
            tracing::error!(event = "storage_write_failed", draftId = %draft_id, error = %long);
        });
        let event = &log.latest(1)[0];
        assert_eq!(event.fields["draftId"], draft_id.to_string());
        let error = event.fields["error"].as_str().unwrap();
        assert_eq!(error.chars().count(), MAX_FIELD_CHARS + 1);
    }

    #[test]
    fn the_filter_lets_through_only_named_events_of_this_crate() {
        let log = with_ring(10, || {
            tracing::info!(target: "sqlx::query", event = "storage_write", key = "k");
            tracing::info!(target: "coordinator_loadtest", event = "storage_write", key = "k");
            tracing::info!(target: "coordinator::coordinator::key_actor", event = "storage_write", key = "k");
        });
        assert_eq!(log.latest(10).len(), 1);
    }
}
