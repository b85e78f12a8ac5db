//! One actor per storage key. It owns the key's cached version and handles
//! its writes one at a time: each handler is an `AtomicResponse`, so no other
//! message of this key runs while a check-commit-bump is awaiting the
//! database. The database stays the authority: every commit is a
//! compare-and-set, and a cache found stale is reloaded, never trusted.

use super::writer::{BatchWriter, PersistCommit};
use super::messages::{SubmitDraft, Write};
use super::registry::Registry;
use super::submit::apply_submit;
use super::write::apply_write;
use crate::domain::StorageKey;
use crate::store::{Commit, CommitOutcome, Store, StoredValue};
use actix::prelude::*;
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
        let env = self.env.clone();
        let cached = self.cached.clone();
        AtomicResponse::new(Box::pin(apply_write(env, cached, write).into_actor(self).map(
            |cached, act, _ctx| {
                act.cached = cached;
                act.finish_message();
            },
        )))
    }
}

impl Handler<SubmitDraft> for KeyActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, submit: SubmitDraft, _ctx: &mut Context<Self>) -> Self::Result {
        let env = self.env.clone();
        let cached = self.cached.clone();
        AtomicResponse::new(Box::pin(apply_submit(env, cached, submit).into_actor(self).map(
            |cached, act, _ctx| {
                act.cached = cached;
                act.finish_message();
            },
        )))
    }
}

