//! Finds (or starts) the actor of a key. The map is a `DashMap` so lookups of
//! different keys do not contend on one lock.

use super::key_actor::KeyActor;
use super::writer::BatchWriter;
use crate::domain::StorageKey;
use crate::store::Store;
use actix::prelude::*;
use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    actors: DashMap<StorageKey, Slot>,
    /// Where key actors run: the arbiter that built the registry (the
    /// system's), which outlives the HTTP workers. An actor on a worker's
    /// arbiter would stop with that worker during a graceful shutdown while
    /// the other worker's requests still wait in its mailbox.
    home: ArbiterHandle,
    store: Store,
    writer: Addr<BatchWriter>,
    idle_timeout: Duration,
}

struct Slot {
    addr: Addr<KeyActor>,
    in_flight: Arc<AtomicUsize>,
}

impl Registry {
    /// Key actors will run on the current arbiter: build it on the system's.
    pub fn new(store: Store, writer: Addr<BatchWriter>, idle_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                actors: DashMap::new(),
                home: Arbiter::current(),
                store,
                writer,
                idle_timeout,
            }),
        }
    }

    /// Delivers `message` to the key's actor, starting one when there is none.
    /// `do_send` is used on purpose: the message is handled even if the
    /// caller stops waiting for the reply (see the module docs).
    pub fn dispatch<M>(&self, key: &StorageKey, message: M)
    where
        M: Message<Result = ()> + Send + 'static,
        KeyActor: Handler<M>,
    {
        let mut slot = self
            .inner
            .actors
            .entry(key.clone())
            .or_insert_with(|| self.start_actor(key));
        if !slot.addr.connected() {
            *slot = self.start_actor(key);
        }
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.addr.do_send(message);
    }

    fn start_actor(&self, key: &StorageKey) -> Slot {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let actor = KeyActor::new(
            key.clone(),
            self.inner.store.clone(),
            self.inner.writer.clone(),
            self.clone(),
            in_flight.clone(),
            self.inner.idle_timeout,
        );
        Slot {
            addr: KeyActor::start_in_arbiter(&self.inner.home, move |_| actor),
            in_flight,
        }
    }

    /// Removes the key's actor if it is the one holding `in_flight` and has no
    /// message pending. Runs under the map's shard lock, like `dispatch`.
    pub(super) fn evict_if_idle(&self, key: &StorageKey, in_flight: &Arc<AtomicUsize>) -> bool {
        self.inner
            .actors
            .remove_if(key, |_, slot| {
                Arc::ptr_eq(&slot.in_flight, in_flight) && slot.in_flight.load(Ordering::Acquire) == 0
            })
            .is_some()
    }

    /// The batch writer, for drafts made outside any key actor.
    pub fn writer(&self) -> &Addr<BatchWriter> {
        &self.inner.writer
    }

    /// Key actors alive now.
    pub fn live_actors(&self) -> usize {
        self.inner.actors.len()
    }
}
