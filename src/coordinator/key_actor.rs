//! One actor per storage key. It owns the key's cached version and handles
//! its writes one at a time: each handler is an `AtomicResponse`, so no other
//! message of this key runs while a check-commit-bump is awaiting the
//! database. The database stays the authority: every commit is a
//! compare-and-set, and where other instances write (PostgreSQL) a cache
//! that may be stale is reloaded before a write is refused.

use super::messages::{SubmitDraft, Write};
use super::registry::Registry;
use super::submit::apply_submit;
use super::write::apply_write;
use super::writer::{BatchWriter, PersistCommit};
use crate::domain::StorageKey;
use crate::store::{Commit, CommitOutcome, Store, StoredValue};
use actix::prelude::*;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the actor believes the key holds. `Unknown` until first loaded, and
/// again after a database error, so the next message reloads.
#[derive(Debug, Clone)]
pub(super) enum Cached {
    Unknown,
    Known(Option<Arc<StoredValue>>),
}

/// The parts an operation needs while it runs outside `&mut self`.
#[derive(Clone)]
pub(super) struct KeyEnv {
    pub key: StorageKey,
    /// For reads (loading the value, history); every write goes through `writer`.
    pub store: Store,
    pub writer: Addr<BatchWriter>,
}

impl KeyEnv {
    /// Commits in the writer's next batch; answers once that batch is durable.
    pub async fn commit(&self, commit: Commit) -> Result<CommitOutcome, String> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.writer.do_send(PersistCommit { commit, reply });
        outcome.await.unwrap_or_else(|_| Err("the batch writer stopped".into()))
    }
}

pub struct KeyActor {
    env: KeyEnv,
    cached: Cached,
    registry: Registry,
    /// Messages dispatched to this actor and not yet finished. The registry
    /// increments it under its map lock before sending; eviction removes the
    /// actor only while it is zero, under the same lock, so no message can
    /// land in the mailbox of an actor that is about to stop.
    in_flight: Arc<AtomicUsize>,
    last_activity: Instant,
    idle_timeout: Duration,
}

impl KeyActor {
    pub(super) fn new(
        key: StorageKey,
        store: Store,
        writer: Addr<BatchWriter>,
        registry: Registry,
        in_flight: Arc<AtomicUsize>,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            env: KeyEnv { key, store, writer },
            cached: Cached::Unknown,
            registry,
            in_flight,
            last_activity: Instant::now(),
            idle_timeout,
        }
    }

    fn finish_message(&mut self) {
        self.last_activity = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Actor for KeyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let check_every = (self.idle_timeout / 2).max(Duration::from_millis(50));
        ctx.run_interval(check_every, |act, ctx| {
            if act.last_activity.elapsed() >= act.idle_timeout
                && act.registry.evict_if_idle(&act.env.key, &act.in_flight)
            {
                ctx.stop();
            }
        });
    }
}

impl Handler<Write> for KeyActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, write: Write, _ctx: &mut Context<Self>) -> Self::Result {
        let operation = apply_write(self.env.clone(), self.cached.clone(), write);
        self.run_atomically(operation)
    }
}

impl Handler<SubmitDraft> for KeyActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, submit: SubmitDraft, _ctx: &mut Context<Self>) -> Self::Result {
        let operation = apply_submit(self.env.clone(), self.cached.clone(), submit);
        self.run_atomically(operation)
    }
}

impl KeyActor {
    /// Runs one operation with the mailbox held (no other message of this key
    /// runs until it ends), then caches what it leaves. A panic inside is
    /// caught: its reply channel is dropped unanswered (the HTTP handler then
    /// keeps the payload as a draft and answers 500), and the actor forgets
    /// its cache, so the next message reloads the key from the database —
    /// a restart, without losing the mailbox.
    fn run_atomically(&mut self, operation: impl Future<Output = Cached> + 'static) -> AtomicResponse<Self, ()> {
        let guarded = AssertUnwindSafe(operation).catch_unwind();
        AtomicResponse::new(Box::pin(guarded.into_actor(self).map(|outcome, act, _ctx| {
            act.cached = match outcome {
                Ok(cached) => cached,
                Err(panic) => {
                    tracing::error!(
                        event = "key_actor_panicked",
                        key = %act.env.key,
                        error = panic_message(&panic),
                    );
                    Cached::Unknown
                }
            };
            act.finish_message();
        })))
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
