//! Counters for operators, read by `GET /metrics` in Prometheus text format.
//!
//! Nothing in the request path or the concurrency core counts anything:
//! [`MetricsLayer`] is a `tracing` layer that counts the events the code logs
//! anyway (`http_request`, `storage_write`, `storage_conflict`, the draft
//! events), like [`crate::activity`] does for the activity page. It is
//! installed beside the log output by [`crate::telemetry::init`], and its
//! counts are one per process ([`Metrics::global`]) because the subscriber is.
//! What the database knows (pending drafts by reason) and what the registry
//! knows (live key actors) is read at scrape time instead, so it is never
//! stale and never double-counted across instances; so are the batch
//! writer's transaction sizes, which it counts itself.
//!
//! Label values are bounded: routes are the route table's patterns
//! (`/api/storage/{key}`), never raw paths; methods are the standard ones or
//! `other`; reasons are the draft reasons the code emits.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::{Mutex, OnceLock, PoisonError};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Upper bounds of the request latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The routes of [`crate::http::routes`], as label values. A path that
/// matches none is counted as `other`.
const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/login",
    "/api/logout",
    "/api/storage/{key}",
    "/api/storage/{key}/items",
    "/api/storage/{key}/items/{id}",
    "/api/storage/{key}/history",
    "/api/storage/{key}/versions/{version}",
    "/api/drafts",
    "/api/drafts/submit-all",
    "/api/drafts/{id}",
    "/api/drafts/{id}/submit",
    "/api/admin/users",
    "/api/admin/drafts",
    "/api/admin/drafts/stats",
    "/api/admin/drafts/{id}",
    "/api/admin/drafts/{id}/submit",
    "/api/admin/events",
    "/api/admin/keys",
    "/",
    "/login",
    "/drafts",
    "/admin/drafts",
    "/admin/activity",
    "/ui/{asset}",
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The route pattern a path falls under, or `other`. Literal segments win
/// over `{placeholders}` because the table lists them first.
pub fn route_label(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES
        .iter()
        .find(|route| {
            let pattern: Vec<&str> = route.split('/').collect();
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
        })
        .copied()
        .unwrap_or("other")
}

fn method_label(method: &str) -> &'static str {
    METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// The process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// (route, method, status) -> requests.
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    /// route -> latency histogram.
    latency: BTreeMap<&'static str, Histogram>,
    writes: u64,
    write_failures: u64,
    /// reason -> conflicts (stale or unsafe writes answered 409).
    conflicts: BTreeMap<String, u64>,
    drafts_saved: BTreeMap<String, u64>,
    drafts_failed: BTreeMap<String, u64>,
    drafts_recovered: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`], not cumulative.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS.len()];
        }
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Pending drafts by reason, from the database.
    pub pending_drafts: BTreeMap<String, i64>,
    pub live_key_actors: usize,
    /// Transactions of the batch writer as `(smallest size in the bucket,
    /// batches)`, buckets by powers of two.
    pub write_batches: Vec<(usize, u64)>,
}

impl Metrics {
    /// The process's counters, fed by [`layer`].
    pub fn global() -> &'static Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(Metrics::default)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Every update is a few map operations that cannot be left half-done.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, event: &Captured) {
        let mut counts = self.counts();
        let reason = || event.reason.clone().unwrap_or_else(|| "unknown".into());
        match event.name.as_str() {
            "http_request" => {
                let route = route_label(event.path.as_deref().unwrap_or(""));
                let method = method_label(event.method.as_deref().unwrap_or(""));
                let status = event.status.unwrap_or(0);
                *counts.requests.entry((route, method, status)).or_default() += 1;
                if let Some(ms) = event.duration_ms {
                    counts.latency.entry(route).or_default().observe(ms / 1000.0);
                }
            }
            "storage_write" => counts.writes += 1,
            "storage_write_failed" => counts.write_failures += 1,
            "storage_conflict" => *counts.conflicts.entry(reason()).or_default() += 1,
            "storage_pending_draft_saved" => *counts.drafts_saved.entry(reason()).or_default() += 1,
            "storage_pending_draft_failed" => *counts.drafts_failed.entry(reason()).or_default() += 1,
            "storage_draft_recovered" => *counts.drafts_recovered.entry(reason()).or_default() += 1,
            _ => {}
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of the counters and the snapshot.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let counts = self.counts();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = render_into(&mut out, &counts, snapshot);
        out
    }
}

fn render_into(out: &mut String, counts: &Counts, snapshot: &Snapshot) -> fmt::Result {
    header(
        out,
        "coordinator_http_requests_total",
        "counter",
        "HTTP requests by route, method and status.",
    )?;
    for ((route, method, status), n) in &counts.requests {
        writeln!(
            out,
            "coordinator_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            escape(route)
        )?;
    }
    header(
        out,
        "coordinator_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by route.",
    )?;
    for (route, histogram) in &counts.latency {
        let route = escape(route);
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&histogram.buckets) {
            cumulative += n;
            writeln!(
                out,
                "coordinator_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            )?;
        }
        let name = "coordinator_http_request_duration_seconds";
        writeln!(
            out,
            "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            histogram.count
        )?;
        writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", histogram.sum)?;
        writeln!(out, "{name}_count{{route=\"{route}\"}} {}", histogram.count)?;
    }
    header(
        out,
        "coordinator_storage_writes_total",
        "counter",
        "Committed writes (storage_write).",
    )?;
    writeln!(out, "coordinator_storage_writes_total {}", counts.writes)?;
    header(
        out,
        "coordinator_storage_write_failures_total",
        "counter",
        "Writes the database failed to commit (storage_write_failed).",
    )?;
    writeln!(
        out,
        "coordinator_storage_write_failures_total {}",
        counts.write_failures
    )?;
    let by_reason: [(&str, &str, &BTreeMap<String, u64>); 4] = [
        (
            "coordinator_storage_conflicts_total",
            "Writes answered 409 (storage_conflict).",
            &counts.conflicts,
        ),
        (
            "coordinator_drafts_saved_total",
            "Drafts stored (storage_pending_draft_saved).",
            &counts.drafts_saved,
        ),
        (
            "coordinator_drafts_failed_total",
            "Drafts that could not be stored (storage_pending_draft_failed).",
            &counts.drafts_failed,
        ),
        (
            "coordinator_drafts_recovered_total",
            "Drafts submitted and committed (storage_draft_recovered).",
            &counts.drafts_recovered,
        ),
    ];
    for (name, help, map) in by_reason {
        header(out, name, "counter", help)?;
        for (reason, n) in map {
            writeln!(out, "{name}{{reason=\"{}\"}} {n}", escape(reason))?;
        }
    }
    header(
        out,
        "coordinator_pending_drafts",
        "gauge",
        "Drafts waiting in pending_storage_saves, by reason.",
    )?;
    for (reason, n) in &snapshot.pending_drafts {
        writeln!(out, "coordinator_pending_drafts{{reason=\"{}\"}} {n}", escape(reason))?;
    }
    header(
        out,
        "coordinator_live_key_actors",
        "gauge",
        "Key actors running in this instance.",
    )?;
    writeln!(out, "coordinator_live_key_actors {}", snapshot.live_key_actors)?;
    header(
        out,
        "coordinator_write_batches_total",
        "counter",
        "Transactions of the batch writer by size: min_size to 2*min_size-1 commits and drafts each.",
    )?;
    for (min_size, batches) in &snapshot.write_batches {
        writeln!(
            out,
            "coordinator_write_batches_total{{min_size=\"{min_size}\"}} {batches}"
        )?;
    }
    Ok(())
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts events into a [`Metrics`].
pub struct MetricsLayer {
    metrics: &'static Metrics,
}

/// The events the layer counts.
const COUNTED_EVENTS: &[&str] = &[
    "http_request",
    "storage_write",
    "storage_write_failed",
    "storage_conflict",
    "storage_pending_draft_saved",
    "storage_pending_draft_failed",
    "storage_draft_recovered",
];

/// The layer to install beside the log output: counts into
/// [`Metrics::global`], with its own filter (this crate's named events at
/// INFO or above), so the metrics do not depend on `--log-level`.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    MetricsLayer {
        metrics: Metrics::global(),
    }
    .with_filter(filter_fn(may_be_counted).with_max_level_hint(LevelFilter::INFO))
}

fn may_be_counted(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    metadata.is_event()
        && *metadata.level() <= tracing::Level::INFO
        && (target == "coordinator" || target.starts_with("coordinator::"))
        && metadata.fields().field("event").is_some()
}

impl<S: Subscriber> Layer<S> for MetricsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut captured = Captured::default();
        event.record(&mut captured);
        if COUNTED_EVENTS.contains(&captured.name.as_str()) {
            self.metrics.count(&captured);
        }
    }
}

/// The few fields the counters need.
#[derive(Default)]
struct Captured {
    name: String,
    path: Option<String>,
    method: Option<String>,
    status: Option<u16>,
    duration_ms: Option<f64>,
    reason: Option<String>,
}

impl Captured {
    fn text(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event" => self.name = value.to_owned(),
            "path" => self.path = Some(value.to_owned()),
            "method" => self.method = Some(value.to_owned()),
            "reason" => self.reason = Some(value.to_owned()),
            _ => {}
        }
    }

    fn number(&mut self, field: &Field, value: f64) {
        match field.name() {
            "statusCode" if (0.0..=999.0).contains(&value) => self.status = Some(value as u16),
            "durationMs" => self.duration_ms = Some(value),
            _ => {}
        }
    }
}

impl Visit for Captured {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value as f64);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value as f64);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.number(field, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here; their Debug is their Display.
        self.text(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn paths_become_route_patterns_and_unknown_paths_other() {
        assert_eq!(route_label("/api/storage/activities"), "/api/storage/{key}");
        assert_eq!(route_label("/api/storage/a/items/7"), "/api/storage/{key}/items/{id}");
        assert_eq!(route_label("/api/drafts/submit-all"), "/api/drafts/submit-all");
        assert_eq!(route_label("/api/drafts/abc"), "/api/drafts/{id}");
        assert_eq!(route_label("/api/admin/drafts/stats"), "/api/admin/drafts/stats");
        assert_eq!(route_label("/api/storage/"), "other");
        assert_eq!(route_label("/etc/passwd"), "other");
        assert_eq!(method_label("BREW"), "other");
    }

    #[test]
    fn events_are_counted_and_rendered_in_the_text_format() {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        let metrics = METRICS.get_or_init(Metrics::default);
        let layer = MetricsLayer { metrics }.with_filter(filter_fn(may_be_counted));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(
                event = "http_request",
                method = "PUT",
                path = "/api/storage/k",
                statusCode = 409_u16,
                durationMs = 3.0
            );
            tracing::info!(
                event = "http_request",
                method = "PUT",
                path = "/api/storage/j",
                statusCode = 409_u16,
                durationMs = 30.0
            );
            tracing::warn!(event = "storage_conflict", reason = "conflict");
            tracing::info!(event = "storage_write", key = "k");
            tracing::info!(target: "sqlx::query", event = "storage_write", key = "k");
        });
        let text = metrics.render(&Snapshot {
            pending_drafts: BTreeMap::from([("conflict".into(), 2)]),
            live_key_actors: 3,
            write_batches: vec![(1, 5), (4, 2)],
        });
        assert!(
            text.contains(
                "coordinator_http_requests_total{route=\"/api/storage/{key}\",method=\"PUT\",status=\"409\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "coordinator_http_request_duration_seconds_bucket{route=\"/api/storage/{key}\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "coordinator_http_request_duration_seconds_bucket{route=\"/api/storage/{key}\",le=\"0.05\"} 2\n"
        ));
        assert!(text.contains("coordinator_http_request_duration_seconds_count{route=\"/api/storage/{key}\"} 2\n"));
        assert!(text.contains("coordinator_storage_writes_total 1\n"));
        assert!(text.contains("coordinator_storage_conflicts_total{reason=\"conflict\"} 1\n"));
        assert!(text.contains("coordinator_pending_drafts{reason=\"conflict\"} 2\n"));
        assert!(text.contains("coordinator_live_key_actors 3\n"));
        assert!(text.contains("coordinator_write_batches_total{min_size=\"4\"} 2\n"));
    }
}
