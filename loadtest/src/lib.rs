//! loadtest: the pilot runbook's scenarios as one command, with a verdict
//! earned by reconciling every record the virtual users wrote.
//!
//! ```text
//! main (cli) ─▶ pilot | burst | bench
//!                 │  harness: spawn the coordinator (or use --target), admin + user sessions
//!                 │  virtual users: GET key ─▶ add record ─▶ PUT If-Match  (client, records)
//!                 │              or POST the record to .../items (--client items)
//!                 ▼
//!               reconcile (every record vs stored values and drafts) + logcheck (server log)
//!                 ▼
//!               verdict (PASS / PASS WITH ACTIONS / FAIL) ─▶ report (Markdown, JSON)
//! ```
//!
//! - [`client`]: the coordinator's HTTP API; one shared connection pool;
//!   our own transaction id on every request.
//! - [`server`]: finds (or builds) and starts the coordinator on a free port.
//! - [`harness`]: targets, admin login, virtual users.
//! - [`records`]: realistic activity records; appending to a JSON array as text.
//! - [`pilot`]: scenarios A-D and the recovery flow.
//! - [`burst`]: capacity runs, closed or open loop.
//! - [`bench`]: the coordinator side by side with its alternatives (`loadtest bench`).
//! - [`reconcile`], [`logcheck`], [`verdict`]: the pure rules that decide.
//! - [`histogram`]: lock-free latency percentiles.
//! - [`report`], [`progress`]: what people read.

pub mod bench;
pub mod burst;
pub mod client;
pub mod harness;
pub mod histogram;
pub mod logcheck;
pub mod pilot;
pub mod progress;
pub mod reconcile;
pub mod records;
pub mod report;
pub mod server;
pub mod verdict;
