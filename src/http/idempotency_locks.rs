//! Requests with the same user's same `Idempotency-Key` run one at a time on
//! an instance. The key is per user, not per storage key, so two such
//! requests could otherwise be judged at once by two key actors, neither
//! seeing the other's outcome yet.

use dashmap::DashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
pub struct IdempotencyLocks {
    held: DashMap<(String, String), Arc<Mutex<()>>>,
}

impl IdempotencyLocks {
    /// Waits for the key to be free; it stays taken while the guard lives.
    pub async fn acquire(&self, username: &str, key: &str) -> IdempotencyGuard<'_> {
        let id = (username.to_owned(), key.to_owned());
        let lock = self.held.entry(id.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        IdempotencyGuard {
            locks: self,
            id,
            guard: Some(guard),
        }
    }
}

pub struct IdempotencyGuard<'a> {
    locks: &'a IdempotencyLocks,
    id: (String, String),
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for IdempotencyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Forget the lock once nobody holds or waits for it.
        self.locks
            .held
            .remove_if(&self.id, |_, lock| Arc::strong_count(lock) == 1);
    }
}
