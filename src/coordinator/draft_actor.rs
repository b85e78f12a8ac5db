//! Persists drafts. Drafts arriving while a transaction is in flight are
//! written together in the next one (natural batching, no timer), so a burst
//! of conflicts costs a few disk flushes, not one each.

use crate::domain::draft::Draft;
use crate::store::Store;
use actix::prelude::*;

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

pub struct DraftActor {
    store: Store,
    queue: Vec<PersistDraft>,
    flushing: bool,
}

impl DraftActor {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            queue: Vec::new(),
            flushing: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.is_empty() {
            return;
        }
        self.flushing = true;
        let batch = std::mem::take(&mut self.queue);
        let store = self.store.clone();
        let persist = async move {
            let drafts: Vec<&Draft> = batch.iter().map(|p| &p.draft).collect();
            let result = store.insert_drafts(&drafts).await;
            // One bad draft must not sink the others: retry one by one.
            let saved: Vec<Result<String, String>> = match result {
                Ok(ids) => ids.into_iter().map(Ok).collect(),
                Err(_) if batch.len() > 1 => {
                    let mut each = Vec::with_capacity(batch.len());
                    for request in &batch {
                        let id = store.insert_drafts(&[&request.draft]).await.map(|mut ids| ids.remove(0));
                        each.push(id.map_err(|e| e.to_string()));
                    }
                    each
                }
                Err(e) => vec![Err(e.to_string())],
            };
            (batch, saved)
        };
        ctx.spawn(persist.into_actor(self).map(|(batch, saved), act, ctx| {
            tracing::debug!(event = "draft_batch_committed", batchSize = batch.len());
            for (request, result) in batch.into_iter().zip(saved) {
                log_outcome(&request.draft, &result);
                (request.then)(result.ok());
            }
            act.flushing = false;
            act.flush(ctx);
        }));
    }
}

fn log_outcome(draft: &Draft, result: &Result<String, String>) {
    let incoming_count = draft.incoming_count();
    match result {
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

impl Actor for DraftActor {
    type Context = Context<Self>;
}

impl Handler<PersistDraft> for DraftActor {
    type Result = ();

    fn handle(&mut self, request: PersistDraft, ctx: &mut Context<Self>) {
        self.queue.push(request);
        self.flush(ctx);
    }
}
