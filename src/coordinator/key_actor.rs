//! One actor per storage key. It owns the key's cached version and handles
//! its writes one at a time: each handler is an `AtomicResponse`, so no other
//! message of this key runs while a check-commit-bump is awaiting the
//! database. The database stays the authority: every commit is a
//! compare-and-set, and a cache found stale is reloaded, never trusted.

use super::draft_actor::{DraftActor, PersistDraft};
use super::messages::{SubmitDraft, SubmitOutcome, Write, WriteOutcome};
use super::registry::Registry;
use crate::domain::draft::Draft;
use crate::domain::merge::{record_count, three_way_merge};
use crate::domain::precondition::CurrentTag;
use crate::domain::{DraftReason, Precondition, StorageKey, Timestamp};
use crate::store::{Commit, CommitOutcome, Store, StoreResult, StoredValue};
use actix::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a commit may find the database moved on (another instance won
/// the race) and retry after reloading, before the write is kept as a draft.
const MAX_COMMIT_ATTEMPTS: usize = 5;

/// What the actor believes the key holds. `Unknown` until first loaded, and
/// again after a database error, so the next message reloads.
#[derive(Debug, Clone)]
enum Cached {
    Unknown,
    Known(Option<Arc<StoredValue>>),
}

/// The parts an operation needs while it runs outside `&mut self`.
#[derive(Clone)]
struct KeyEnv {
    key: StorageKey,
    store: Store,
    drafts: Addr<DraftActor>,
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
        drafts: Addr<DraftActor>,
        registry: Registry,
        in_flight: Arc<AtomicUsize>,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            env: KeyEnv { key, store, drafts },
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

async fn current_value(env: &KeyEnv, cached: Cached) -> StoreResult<Option<Arc<StoredValue>>> {
    match cached {
        Cached::Known(current) => Ok(current),
        Cached::Unknown => Ok(env.store.load_value(env.key.as_str()).await?.map(Arc::new)),
    }
}

fn tag_of(current: &Option<Arc<StoredValue>>) -> Option<CurrentTag> {
    current.as_ref().map(|c| CurrentTag {
        version: c.version,
        updated_at: c.updated_at,
    })
}

enum Verdict {
    Accept,
    Stale,
    PreconditionRequired,
}

fn judge(precondition: &Precondition, current: Option<CurrentTag>) -> Verdict {
    match (precondition, current) {
        (Precondition::IfMatch(if_match), current) if if_match.matches(current) => Verdict::Accept,
        (Precondition::IfMatch(_), _) => Verdict::Stale,
        (Precondition::IfNoneMatchAny, None) => Verdict::Accept,
        (Precondition::IfNoneMatchAny, Some(_)) => Verdict::Stale,
        (Precondition::None, None) => Verdict::Accept,
        (Precondition::None, Some(_)) => Verdict::PreconditionRequired,
    }
}

/// Check, commit, bump. Returns what the actor should cache afterwards.
async fn apply_write(env: KeyEnv, cached: Cached, write: Write) -> Cached {
    let mut current = match current_value(&env, cached).await {
        Ok(current) => current,
        Err(error) => {
            fail_write(&env, write, None, &error);
            return Cached::Unknown;
        }
    };
    // A stale verdict or a lost compare-and-set may only mean this cache is
    // behind the database (another instance wrote): reload once and judge again.
    let mut reloaded = false;
    for _ in 0..MAX_COMMIT_ATTEMPTS {
        let verdict = judge(&write.precondition, tag_of(&current));
        if matches!(verdict, Verdict::Stale) && !reloaded {
            match env.store.load_value(env.key.as_str()).await {
                Ok(fresh) => current = fresh.map(Arc::new),
                Err(error) => {
                    fail_write(&env, write, tag_of(&current), &error);
                    return Cached::Unknown;
                }
            }
            reloaded = true;
            continue;
        }
        match verdict {
            Verdict::PreconditionRequired => {
                let _ = write.reply.send(WriteOutcome::PreconditionRequired);
                return Cached::Known(current);
            }
            Verdict::Stale => {
                keep_conflict(&env, write, &current).await;
                return Cached::Known(current);
            }
            Verdict::Accept => {}
        }
        let next = StoredValue {
            value: write.value.clone(),
            version: current.as_ref().map_or(1, |c| c.version + 1),
            updated_at: Timestamp::next_after(current.as_ref().map(|c| c.updated_at)),
        };
        let commit = Commit {
            key: env.key.as_str(),
            expected_version: current.as_ref().map(|c| c.version),
            value: &next.value,
            updated_at: next.updated_at,
            username: &write.username,
            transaction_id: &write.transaction_id,
            consumes_draft: None,
        };
        match env.store.commit(&commit).await {
            Ok(CommitOutcome::Committed) => {
                tracing::info!(
                    event = "storage_write",
                    key = %env.key,
                    username = %write.username,
                    transactionId = %write.transaction_id,
                    conditional = write.precondition.is_conditional(),
                    ifMatch = write.if_match.as_deref(),
                    version = next.version,
                    updatedAt = %next.updated_at,
                    incomingCount = record_count(&next.value),
                    currentCount = current.as_ref().and_then(|c| record_count(&c.value)),
                );
                let _ = write.reply.send(WriteOutcome::Committed {
                    version: next.version,
                    updated_at: next.updated_at,
                    created: current.is_none(),
                });
                return Cached::Known(Some(Arc::new(next)));
            }
            Ok(CommitOutcome::VersionMoved | CommitOutcome::DraftGone) => {
                match env.store.load_value(env.key.as_str()).await {
                    Ok(fresh) => current = fresh.map(Arc::new),
                    Err(error) => {
                        fail_write(&env, write, tag_of(&current), &error);
                        return Cached::Unknown;
                    }
                }
                reloaded = true;
            }
            Err(error) => {
                fail_write(&env, write, tag_of(&current), &error);
                return Cached::Unknown;
            }
        }
    }
    // The database kept moving under us: keep the payload rather than spin.
    keep_conflict(&env, write, &current).await;
    Cached::Known(current)
}

/// The write lost: log the conflict, hand the payload to the draft actor, and
/// answer 409 once the draft is durable.
async fn keep_conflict(env: &KeyEnv, write: Write, current: &Option<Arc<StoredValue>>) {
    let current_tag = tag_of(current);
    tracing::warn!(
        event = "storage_conflict",
        key = %env.key,
        username = %write.username,
        transactionId = %write.transaction_id,
        conditional = write.precondition.is_conditional(),
        ifMatch = write.if_match.as_deref(),
        currentVersion = current_tag.map(|c| c.version),
        currentUpdatedAt = current_tag.map(|c| c.updated_at.to_rfc3339()),
        incomingCount = record_count(&write.value),
        currentCount = current.as_ref().and_then(|c| record_count(&c.value)),
        statusCode = 409,
    );
    let base_version = base_version_of(env, &write.precondition).await;
    let draft = new_draft(&write, DraftReason::Conflict, base_version, current_tag, None);
    let draft_id = draft.id.clone();
    let reply = write.reply;
    env.drafts.do_send(PersistDraft {
        draft,
        then: Box::new(move |saved| {
            let _ = reply.send(WriteOutcome::Conflict {
                current: current_tag,
                draft_id: saved.then_some(draft_id),
            });
        }),
    });
}

/// The commit failed on our side: log it, keep the payload as a
/// `write_failed` draft, answer 503.
fn fail_write(env: &KeyEnv, write: Write, current: Option<CurrentTag>, error: &sqlx::Error) {
    tracing::error!(
        event = "storage_write_failed",
        key = %env.key,
        username = %write.username,
        transactionId = %write.transaction_id,
        conditional = write.precondition.is_conditional(),
        ifMatch = write.if_match.as_deref(),
        incomingCount = record_count(&write.value),
        statusCode = 503,
        error = %error,
    );
    let base_version = match &write.precondition {
        Precondition::IfMatch(if_match) => if_match.newest_named_version(),
        _ => None,
    };
    let draft = new_draft(&write, DraftReason::WriteFailed, base_version, current, Some(error.to_string()));
    let draft_id = draft.id.clone();
    let reply = write.reply;
    env.drafts.do_send(PersistDraft {
        draft,
        then: Box::new(move |saved| {
            let _ = reply.send(WriteOutcome::Failed {
                draft_id: saved.then_some(draft_id),
            });
        }),
    });
}

/// The version the rejected payload was based on, so a later submit can
/// merge three ways. Clients that version by time name an `updatedAt`; its
/// version is looked up in history.
async fn base_version_of(env: &KeyEnv, precondition: &Precondition) -> Option<i64> {
    let Precondition::IfMatch(if_match) = precondition else {
        return None;
    };
    if let Some(version) = if_match.newest_named_version() {
        return Some(version);
    }
    let at = if_match.newest_named_time()?;
    env.store.version_at(env.key.as_str(), at).await.ok().flatten()
}

fn new_draft(
    write: &Write,
    reason: DraftReason,
    base_version: Option<i64>,
    current: Option<CurrentTag>,
    last_error: Option<String>,
) -> Draft {
    let now = Timestamp::now();
    Draft {
        id: uuid::Uuid::new_v4().to_string(),
        key: write.key.to_string(),
        username: write.username.clone(),
        reason,
        if_match: write.if_match.clone(),
        base_version,
        current_version: current.map(|c| c.version),
        transaction_id: write.transaction_id.clone(),
        attempts: 0,
        last_error,
        created_at: now,
        updated_at: now,
        payload: write.value.clone(),
    }
}

/// Re-applies a draft: three-way merge against the current value, then a
/// commit that also deletes the draft, in one transaction.
async fn apply_submit(env: KeyEnv, cached: Cached, submit: SubmitDraft) -> Cached {
    let (outcome, cached) = submit_draft(&env, cached, &submit).await;
    let _ = submit.reply.send(outcome);
    cached
}

async fn submit_draft(env: &KeyEnv, cached: Cached, submit: &SubmitDraft) -> (SubmitOutcome, Cached) {
    let failed = |error: &sqlx::Error| {
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
    for _ in 0..MAX_COMMIT_ATTEMPTS {
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
        let next = StoredValue {
            version: current.as_ref().map_or(1, |c| c.version + 1),
            updated_at: Timestamp::next_after(current.as_ref().map(|c| c.updated_at)),
            value: merged,
        };
        let commit = Commit {
            key: env.key.as_str(),
            expected_version: current.as_ref().map(|c| c.version),
            value: &next.value,
            updated_at: next.updated_at,
            username: &draft.username,
            transaction_id: &submit.transaction_id,
            consumes_draft: Some(&draft.id),
        };
        match env.store.commit(&commit).await {
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
                return (outcome, Cached::Known(Some(Arc::new(next))));
            }
            Ok(CommitOutcome::DraftGone) => return (SubmitOutcome::NotFound, Cached::Unknown),
            Ok(CommitOutcome::VersionMoved) => match env.store.load_value(env.key.as_str()).await {
                Ok(fresh) => current = fresh.map(Arc::new),
                Err(error) => return failed(&error),
            },
            Err(error) => return failed(&error),
        }
    }
    let busy = sqlx::Error::Protocol("the key kept changing during the submit".into());
    failed(&busy)
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
