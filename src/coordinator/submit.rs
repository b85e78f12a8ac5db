//! How a key actor re-applies a draft: a three-way merge against the
//! current value, then a commit that also deletes the draft, in one
//! transaction, so a draft is never both applied and still pending.

use super::key_actor::{Cached, KeyEnv};
use super::messages::{SubmitDraft, SubmitOutcome};
use super::write::current_value;
use crate::domain::draft::Draft;
use crate::domain::merge::{record_count, three_way_merge};
use crate::domain::Timestamp;
use crate::store::{Commit, CommitOutcome, StoredValue};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How often the database may move on under a submit (only another
/// instance can move it) before the submit is answered 503 and the draft
/// stays. Each retry first waits a random pause that grows with the
/// attempts, so that instances recovering drafts of one key take turns
/// instead of moving it under each other again and again.
const MAX_COMMIT_ATTEMPTS: u32 = 12;

/// The pause after failed attempt `attempt` (from 1): up to 2 ms, doubling, at most 64 ms.
fn retry_pause(attempt: u32) -> Duration {
    let ceiling_ms = 2_u64 << attempt.saturating_sub(1).min(5);
    Duration::from_micros(rand::random::<u64>() % (ceiling_ms * 1000 + 1))
}

pub(super) async fn apply_submit(env: KeyEnv, cached: Cached, submit: SubmitDraft) -> Cached {
    let (outcome, cached) = submit_draft(&env, cached, &submit).await;
    let _ = submit.reply.send(outcome);
    cached
}

async fn submit_draft(env: &KeyEnv, cached: Cached, submit: &SubmitDraft) -> (SubmitOutcome, Cached) {
    let failed = |error: &dyn std::fmt::Display| {
        tracing::error!(
            event = "storage_draft_submit_failed",
            key = %env.key,
            draftId = %submit.draft_id,
            username = %submit.submitted_by,
            transactionId = %submit.transaction_id,
            error = %error,
        );
        (SubmitOutcome::Failed, Cached::Unknown)
    };
    let mut current = match current_value(env, cached).await {
        Ok(current) => current,
        Err(error) => return failed(&error),
    };
    let draft = match env.store.get_draft(&submit.draft_id).await {
        Ok(Some(draft)) if draft.key == env.key.as_str() => draft,
        Ok(_) => return (SubmitOutcome::NotFound, Cached::Known(current)),
        Err(error) => return failed(&error),
    };
    if submit.owner.as_ref().is_some_and(|owner| *owner != draft.username) {
        return (SubmitOutcome::NotFound, Cached::Known(current));
    }
    let base: Option<Value> = match draft.base_version {
        Some(version) => match env.store.history_value(env.key.as_str(), version).await {
            Ok(base) => base,
            Err(error) => return failed(&error),
        },
        None => None,
    };
    for attempt in 1..=MAX_COMMIT_ATTEMPTS {
        let theirs = current.as_ref().map(|c| &c.value);
        let merged = match three_way_merge(base.as_ref(), theirs, &draft.payload) {
            Ok(merged) => merged,
            Err(conflict) => {
                tracing::warn!(
                    event = "storage_draft_conflict",
                    key = %env.key,
                    draftId = %draft.id,
                    username = %draft.username,
                    submittedBy = %submit.submitted_by,
                    transactionId = %submit.transaction_id,
                    currentVersion = current.as_ref().map(|c| c.version),
                    error = conflict.code(),
                    statusCode = 409,
                );
                if let Err(error) = env.store.record_failed_submit(&draft.id, &conflict.message()).await {
                    return failed(&error);
                }
                return (SubmitOutcome::Conflict(conflict), Cached::Known(current));
            }
        };
        if let Some(unchanged) = current.as_ref().filter(|c| c.value == merged) {
            // Everything the draft holds is already stored: nothing to write.
            return match env.store.delete_draft(&draft.id).await {
                Ok(true) => {
                    log_recovered(env, &draft, submit, unchanged.version);
                    let outcome = SubmitOutcome::Saved {
                        version: unchanged.version,
                        updated_at: unchanged.updated_at,
                    };
                    (outcome, Cached::Known(current))
                }
                Ok(false) => (SubmitOutcome::NotFound, Cached::Known(current)),
                Err(error) => failed(&error),
            };
        }
        let next = Arc::new(StoredValue {
            version: current.as_ref().map_or(1, |c| c.version + 1),
            updated_at: Timestamp::next_after(current.as_ref().map(|c| c.updated_at)),
            value: merged,
        });
        let commit = Commit {
            key: env.key.to_string(),
            expected_version: current.as_ref().map(|c| c.version),
            next: next.clone(),
            username: draft.username.clone(),
            transaction_id: submit.transaction_id.clone(),
            consumes_draft: Some(draft.id.clone()),
            idempotency: None,
        };
        match env.commit(commit).await {
            Ok(CommitOutcome::Committed) => {
                tracing::info!(
                    event = "storage_write",
                    key = %env.key,
                    username = %draft.username,
                    transactionId = %submit.transaction_id,
                    draftId = %draft.id,
                    conditional = true,
                    version = next.version,
                    updatedAt = %next.updated_at,
                    incomingCount = record_count(&next.value),
                    currentCount = current.as_ref().and_then(|c| record_count(&c.value)),
                );
                log_recovered(env, &draft, submit, next.version);
                let outcome = SubmitOutcome::Saved {
                    version: next.version,
                    updated_at: next.updated_at,
                };
                return (outcome, Cached::Known(Some(next)));
            }
            Ok(CommitOutcome::DraftGone) => return (SubmitOutcome::NotFound, Cached::Unknown),
            Ok(CommitOutcome::VersionMoved) if attempt == MAX_COMMIT_ATTEMPTS => break,
            Ok(CommitOutcome::VersionMoved) => {
                tokio::time::sleep(retry_pause(attempt)).await;
                match env.store.load_value(env.key.as_str()).await {
                    Ok(fresh) => current = fresh.map(Arc::new),
                    Err(error) => return failed(&error),
                }
            }
            Err(error) => return failed(&error),
        }
    }
    failed(&"the key kept changing during the submit")
}

fn log_recovered(env: &KeyEnv, draft: &Draft, submit: &SubmitDraft, version: i64) {
    tracing::info!(
        event = "storage_draft_recovered",
        key = %env.key,
        draftId = %draft.id,
        username = %draft.username,
        submittedBy = %submit.submitted_by,
        transactionId = %submit.transaction_id,
        reason = draft.reason.as_str(),
        version,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_and_stay_bounded() {
        for _ in 0..200 {
            assert!(retry_pause(1) <= Duration::from_millis(2));
            assert!(retry_pause(3) <= Duration::from_millis(8));
            assert!(retry_pause(MAX_COMMIT_ATTEMPTS) <= Duration::from_millis(64));
        }
    }
}
