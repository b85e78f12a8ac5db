//! The concurrency core.
//!
//! ```text
//!  HTTP handler ──Registry::dispatch──▶ KeyActor (one per key, mailbox = order)
//!                                         │ check If-Match, commit (CAS), bump: one atomic step
//!                                         │ accepted ──PersistCommit──▶ BatchWriter ─▶ one transaction
//!                                         │ stale    ──PersistDraft───▶ BatchWriter    per batch
//!  HTTP handler ◀──────── oneshot reply ──┴────────────────────────────────┘
//! ```
//!
//! Replies travel on a oneshot channel inside the message, and messages are
//! delivered with `do_send`: actix skips a `send` whose caller has gone away,
//! but a `do_send` message is always handled. So a client that disconnects
//! mid-request can never cancel a write halfway or lose its draft.

mod key_actor;
mod messages;
mod registry;
mod spool;
mod submit;
mod write;
mod writer;

pub use key_actor::KeyActor;
pub use messages::{IdempotencyRequest, SubmitDraft, SubmitOutcome, Write, WriteOutcome};
pub use registry::Registry;
pub use spool::Spool;
pub use writer::{BatchStats, BatchWriter, PersistCommit, PersistDraft};
