//! The batch writer: the one actor that writes commits and drafts (it is
//! the draft-persistence actor too). Whatever arrives while a transaction is
//! in flight is written together in the next one (natural batching, no
//! timer), so a burst costs a few disk flushes instead of one per request.
//! Each request is answered only once its batch is durable.
//!
//! Key actors keep at most one commit of their key in flight, so a batch
//! never holds two commits of one key, and every commit in it was judged
//! against the key's confirmed version: the same answers as one-by-one
//! commits, with one flush for many.

use super::spool::Spool;
use crate::domain::draft::Draft;
use crate::store::{BatchItem, Commit, CommitOutcome, ItemOutcome, Store};
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Store `draft` durably, then call `then` with its id (`None` if it could
/// not be stored). The caller answers its client from `then`, so a 409 is
/// sent only after its draft is on disk. The id is that of an identical
/// pending draft when there is one: drafts are deduplicated.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistDraft {
    pub draft: Draft,
    pub then: Box<dyn FnOnce(Option<String>) + Send>,
}

/// Write `commit` in the next batch; the reply comes once it is durable
/// (or the error text, if the batch failed: then nothing of it was written).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PersistCommit {
    pub commit: Commit,
    pub reply: oneshot::Sender<Result<CommitOutcome, String>>,
}

enum Job {
    Draft(PersistDraft),
    Commit(PersistCommit),
}

pub struct BatchWriter {
    store: Store,
    queue: VecDeque<Job>,
    flushing: bool,
    /// Most jobs per transaction; 1 turns batching off.
    max_batch: usize,
    stats: Arc<BatchStats>,
    /// Where drafts go when the database refuses them.
    spool: Arc<Spool>,
    draining: bool,
    /// A checkpoint is running (on its own connection, beside the batches).
    checkpointing: bool,
    last_checkpoint: Instant,
}

/// Checkpoints start at most this often: a page the batches rewrite many
/// times in between (a busy key's row) is copied to the database file once.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// How often the spool is checked for drafts to move into the database.
const SPOOL_DRAIN_INTERVAL: Duration = Duration::from_secs(2);

impl BatchWriter {
    pub fn new(store: Store, max_batch: usize, stats: Arc<BatchStats>, spool: Arc<Spool>) -> Self {
        Self {
            store,
            queue: VecDeque::new(),
            flushing: false,
            max_batch: max_batch.max(1),
            stats,
            spool,
            draining: false,
            checkpointing: false,
            last_checkpoint: Instant::now(),
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let take = self.queue.len().min(self.max_batch);
        let jobs: Vec<Job> = self.queue.drain(..take).collect();
        let store = self.store.clone();
        let started = Instant::now();
        let write = async move {
            let (items, replies): (Vec<BatchItem>, Vec<Reply>) = jobs.into_iter().map(split_job).unzip();
            let result = store.write_batch(&items).await;
            (items, replies, result)
        };
        ctx.spawn(write.into_actor(self).map(move |(items, replies, result), act, ctx| {
            let size = items.len();
            act.stats.record(size);
            tracing::debug!(
                event = "batch_committed",
                batchSize = size,
                commits = items.iter().filter(|i| matches!(i, BatchItem::Commit(_))).count(),
                ok = result.is_ok(),
                durationMs = started.elapsed().as_secs_f64() * 1000.0,
            );
            match result {
                Ok(outcomes) => {
                    let mut unstored = Vec::new();
                    for ((item, reply), outcome) in items.into_iter().zip(replies).zip(outcomes) {
                        match (item, reply, outcome) {
                            (BatchItem::Draft(draft), Reply::Draft(then), ItemOutcome::DraftNotStored) => {
                                unstored.push((draft, then))
                            }
                            (item, reply, outcome) => reply.send(&item, Ok(outcome)),
                        }
                    }
                    act.spool_drafts(
                        unstored,
                        "the database neither stored the draft nor holds one like it".into(),
                        ctx,
                    );
                    act.checkpoint(ctx);
                }
                Err(error) => {
                    let error = error.to_string();
                    tracing::error!(event = "batch_failed", batchSize = size, error = %error);
                    act.fail_batch(items, replies, error, ctx);
                }
            }
            act.flushing = false;
            act.flush(ctx);
        }));
    }

    /// Nothing of a failed batch was written. Commits fail (their key actors
    /// keep the payloads as `write_failed` drafts, which come back here).
    /// Drafts cannot fail on their own (ids are fresh, duplicates are
    /// skipped), so a failed batch means the database is in trouble: its
    /// drafts go to the spool at once rather than wait on it again.
    fn fail_batch(&mut self, items: Vec<BatchItem>, replies: Vec<Reply>, error: String, ctx: &mut Context<Self>) {
        let mut spooled = Vec::new();
        for (item, reply) in items.into_iter().zip(replies) {
            match (item, reply) {
                (BatchItem::Draft(draft), Reply::Draft(then)) => spooled.push((draft, then)),
                (item, reply) => reply.send(&item, Err(error.clone())),
            }
        }
        self.spool_drafts(spooled, error, ctx);
    }

    /// Keeps drafts the database did not take in the spool, then answers them.
    fn spool_drafts(&mut self, spooled: Vec<(Draft, DraftThen)>, error: String, ctx: &mut Context<Self>) {
        if spooled.is_empty() {
            return;
        }
        let spool = self.spool.clone();
        ctx.spawn(
            async move {
                for (draft, then) in spooled {
                    let item = BatchItem::Draft(draft);
                    let outcome = spool_draft(&spool, &item, error.clone()).await;
                    Reply::Draft(then).send(&item, outcome);
                }
            }
            .into_actor(self),
        );
    }

    /// Starts a checkpoint unless one is running: it copies what the batches
    /// wrote to the WAL into the database file while the next batch goes on.
    fn checkpoint(&mut self, ctx: &mut Context<Self>) {
        if self.checkpointing || self.last_checkpoint.elapsed() < CHECKPOINT_INTERVAL {
            return;
        }
        self.checkpointing = true;
        self.last_checkpoint = Instant::now();
        let store = self.store.clone();
        ctx.spawn(
            async move { store.checkpoint().await }
                .into_actor(self)
                .map(|result, act, _| {
                    act.checkpointing = false;
                    match result {
                        Ok(Some(done)) => tracing::debug!(
                            event = "wal_checkpointed",
                            walPages = done.wal_pages,
                            checkpointedPages = done.checkpointed_pages,
                        ),
                        Ok(None) => {}
                        Err(error) => tracing::warn!(event = "wal_checkpoint_failed", error = %error),
                    }
                }),
        );
    }

    /// Moves spooled drafts into the database, when there are any and it
    /// takes them; otherwise they wait for the next round.
    fn drain_spool(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        let (store, spool) = (self.store.clone(), self.spool.clone());
        let drain = async move {
            let drafts = spool.take().await?;
            if drafts.is_empty() {
                return Ok(0);
            }
            let items: Vec<BatchItem> = drafts.into_iter().map(BatchItem::Draft).collect();
            let outcomes = store.write_batch(&items).await.map_err(std::io::Error::other)?;
            if outcomes.contains(&ItemOutcome::DraftNotStored) {
                // The spool keeps them all for the next round (those stored
                // now are found as identical pending drafts then).
                return Err(std::io::Error::other("a spooled draft was neither stored nor found"));
            }
            spool.drained().await?;
            Ok::<_, std::io::Error>(items.len())
        };
        ctx.spawn(drain.into_actor(self).map(|result, act, _| {
            act.draining = false;
            match result {
                Ok(0) => {}
                Ok(moved) => tracing::info!(event = "spool_drained", drafts = moved),
                Err(error) => tracing::warn!(event = "spool_drain_failed", error = %error),
            }
        }));
    }
}

/// The database refused the draft: keep it in the spool, on disk, before
/// anyone is told it is saved.
async fn spool_draft(spool: &Spool, item: &BatchItem, db_error: String) -> Result<ItemOutcome, String> {
    let BatchItem::Draft(draft) = item else {
        return Err(db_error);
    };
    match spool.append(draft).await {
        Ok(()) => {
            tracing::warn!(
                event = "storage_pending_draft_spooled",
                draftId = %draft.id,
                key = %draft.key,
                username = %draft.username,
                transactionId = %draft.transaction_id,
                error = %db_error,
            );
            Ok(ItemOutcome::DraftSaved(draft.id.clone()))
        }
        Err(spool_error) => Err(format!("{db_error}; the spool failed too: {spool_error}")),
    }
}

/// What a draft's sender runs with the id it is stored under (none: not saved).
type DraftThen = Box<dyn FnOnce(Option<String>) + Send>;

/// How a job is answered, kept apart from what is written.
enum Reply {
    Draft(DraftThen),
    Commit(oneshot::Sender<Result<CommitOutcome, String>>),
}

fn split_job(job: Job) -> (BatchItem, Reply) {
    match job {
        Job::Draft(PersistDraft { draft, then }) => (BatchItem::Draft(draft), Reply::Draft(then)),
        Job::Commit(PersistCommit { commit, reply }) => (BatchItem::Commit(commit), Reply::Commit(reply)),
    }
}

impl Reply {
    fn send(self, item: &BatchItem, outcome: Result<ItemOutcome, String>) {
        match self {
            Reply::Draft(then) => {
                let saved = match outcome {
                    Ok(ItemOutcome::DraftSaved(id)) => Ok(id),
                    Ok(ItemOutcome::Commit(_)) => Err("a draft was answered as a commit".into()),
                    Ok(ItemOutcome::DraftNotStored) => Err("the draft was not stored".into()),
                    Err(error) => Err(error),
                };
                if let BatchItem::Draft(draft) = item {
                    log_draft(draft, &saved);
                }
                then(saved.ok());
            }
            Reply::Commit(reply) => {
                let outcome = match outcome {
                    Ok(ItemOutcome::Commit(outcome)) => Ok(outcome),
                    Ok(ItemOutcome::DraftSaved(_) | ItemOutcome::DraftNotStored) => {
                        Err("a commit was answered as a draft".into())
                    }
                    Err(error) => Err(error),
                };
                let _ = reply.send(outcome);
            }
        }
    }
}

fn log_draft(draft: &Draft, saved: &Result<String, String>) {
    let incoming_count = draft.incoming_count();
    match saved {
        Ok(id) => tracing::info!(
            event = "storage_pending_draft_saved",
            draftId = %id,
            deduplicated = *id != draft.id,
            key = %draft.key,
            username = %draft.username,
            reason = draft.reason.as_str(),
            transactionId = %draft.transaction_id,
            baseVersion = draft.base_version,
            currentVersion = draft.current_version,
            incomingCount = incoming_count,
        ),
        Err(error) => tracing::error!(
            event = "storage_pending_draft_failed",
            key = %draft.key,
            username = %draft.username,
            reason = draft.reason.as_str(),
            transactionId = %draft.transaction_id,
            incomingCount = incoming_count,
            error = %error,
        ),
    }
}

impl Actor for BatchWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Drafts spooled before a restart are moved in at start too.
        self.drain_spool(ctx);
        ctx.run_interval(SPOOL_DRAIN_INTERVAL, |act, ctx| act.drain_spool(ctx));
    }
}

impl Handler<PersistDraft> for BatchWriter {
    type Result = ();

    fn handle(&mut self, request: PersistDraft, ctx: &mut Context<Self>) {
        self.queue.push_back(Job::Draft(request));
        self.flush(ctx);
    }
}

impl Handler<PersistCommit> for BatchWriter {
    type Result = ();

    fn handle(&mut self, request: PersistCommit, ctx: &mut Context<Self>) {
        self.queue.push_back(Job::Commit(request));
        self.flush(ctx);
    }
}

/// How many batches of each size were written: power-of-two buckets
/// (1, 2-3, 4-7, ... , 2048+), for the logs, metrics and the benchmark.
#[derive(Debug, Default)]
pub struct BatchStats {
    buckets: [AtomicU64; 12],
}

impl BatchStats {
    pub fn record(&self, size: usize) {
        let bucket = (usize::BITS - size.max(1).leading_zeros() - 1) as usize;
        self.buckets[bucket.min(11)].fetch_add(1, Ordering::Relaxed);
    }

    /// `(smallest size in the bucket, batches)` for every non-empty bucket.
    pub fn snapshot(&self) -> Vec<(usize, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, count)| (1usize << i, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::BatchStats;

    #[test]
    fn batch_sizes_fall_into_power_of_two_buckets() {
        let stats = BatchStats::default();
        for size in [1, 2, 3, 4, 7, 8, 100, 5000] {
            stats.record(size);
        }
        assert_eq!(
            stats.snapshot(),
            vec![(1, 1), (2, 2), (4, 2), (8, 1), (64, 1), (2048, 1)]
        );
    }
}
