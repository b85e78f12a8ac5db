//! coordinator: takes concurrent JSON writes to shared storage keys and
//! guarantees that no submission is silently lost.
//!
//! ```text
//! request ─▶ http (auth, validation) ─▶ Registry ─▶ KeyActor (one per key)
//!                                                    │ If-Match current? commit (CAS) + history, bump
//!                                                    │ stale / failed ─▶ DraftActor ─▶ pending_storage_saves
//!                                                    ▼
//!                                                  store (SQLite or PostgreSQL)
//! ```
//!
//! - [`config`]: every setting, as flags and environment variables.
//! - [`app`]: builds and runs the service (also used by the tests, on port 0).
//! - [`http`]: routes, extractors, the error type; no business rules.
//! - [`coordinator`]: the key actors, the draft actor and the registry.
//! - [`domain`]: pure rules: keys, If-Match, merge, drafts; unit-tested alone.
//! - [`store`]: all SQL, for both backends.
//! - [`telemetry`]: JSON log lines with the runbook's field names.
//! - [`metrics`]: counters of the logged events, for `GET /metrics`.
//! - [`activity`]: the latest storage events in memory, for the admin activity page.

pub mod activity;
pub mod app;
pub mod config;
pub mod coordinator;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;
