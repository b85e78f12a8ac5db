//! How a key actor handles one write: replay an idempotent retry, judge the
//! precondition, apply the change, commit it as a compare-and-set, and keep
//! anything that cannot be committed as a draft.

use super::key_actor::{Cached, KeyEnv};
use super::messages::{Write, WriteOutcome};
use super::writer::PersistDraft;
use crate::domain::draft::{Draft, DraftSource};
use crate::domain::items::{is_pure_superset, Change};
use crate::domain::merge::{record_count, three_way_merge};
use crate::domain::precondition::CurrentTag;
use crate::domain::{DraftReason, Precondition, Timestamp};
use crate::store::{Commit, CommitOutcome, IdempotencyRecord, StoreResult, StoredValue};
use serde_json::Value;
use std::sync::Arc;

/// How often a commit may find the database moved on (another instance won
/// the race) and retry after reloading, before the write is kept as a draft.
const MAX_COMMIT_ATTEMPTS: usize = 5;

pub(super) async fn current_value(env: &KeyEnv, cached: Cached) -> StoreResult<Option<Arc<StoredValue>>> {
    match cached {
        Cached::Known(current) => Ok(current),
        Cached::Unknown => Ok(env.store.load_value(env.key.as_str()).await?.map(Arc::new)),
    }
}

pub(super) fn tag_of(current: &Option<Arc<StoredValue>>) -> Option<CurrentTag> {
    current.as_ref().map(|c| CurrentTag {
        version: c.version,
        updated_at: c.updated_at,
    })
}

enum Verdict {
    Apply,
    Stale,
    PreconditionRequired,
    /// No precondition, `--allow-unconditional`, and the write would remove
    /// or change existing records.
    Unsafe,
}

fn judge(write: &Write, current: Option<&StoredValue>) -> Verdict {
    let tag = current.map(|c| CurrentTag {
        version: c.version,
        updated_at: c.updated_at,
    });
    match &write.precondition {
        Precondition::IfMatch(if_match) if if_match.matches(tag) => Verdict::Apply,
        Precondition::IfMatch(_) => Verdict::Stale,
        Precondition::IfNoneMatchAny if current.is_none() => Verdict::Apply,
        Precondition::IfNoneMatchAny => Verdict::Stale,
        Precondition::None => match (current, write.change.as_ref()) {
            (None, _) => Verdict::Apply,
            // Item changes apply to whatever is current: they cannot go stale.
            (Some(_), change) if change.is_item_change() => Verdict::Apply,
            (Some(current), Change::Replace(new)) if write.allow_unconditional => {
                if is_pure_superset(&current.value, new) {
                    Verdict::Apply
                } else {
                    Verdict::Unsafe
                }
            }
            (Some(_), _) => Verdict::PreconditionRequired,
        },
    }
}

/// Check, commit, bump. Returns what the actor should cache afterwards.
pub(super) async fn apply_write(env: KeyEnv, cached: Cached, write: Write) -> Cached {
    #[cfg(feature = "fault-injection")]
    fault_injection::maybe_panic(&write);
    let mut current = match current_value(&env, cached).await {
        Ok(current) => current,
        Err(error) => {
            fail_write(&env, write, None, None, &error);
            return Cached::Unknown;
        }
    };
    if let Some(request) = &write.idempotency {
        match env.store.find_idempotency(&write.username, &request.key).await {
            Ok(None) => {}
            Ok(Some(saved)) => {
                let outcome = if saved.request_hash != request.request_hash {
                    WriteOutcome::IdempotencyKeyReused
                } else {
                    match serde_json::from_str(&saved.outcome) {
                        Ok(first) => WriteOutcome::Replayed(Box::new(first)),
                        Err(_) => WriteOutcome::IdempotencyKeyReused,
                    }
                };
                let _ = write.reply.send(outcome);
                return Cached::Known(current);
            }
            Err(error) => {
                fail_write(&env, write, tag_of(&current), None, &error);
                return Cached::Unknown;
            }
        }
    }
    // A stale verdict or a lost compare-and-set may only mean this cache is
    // behind the database (another instance wrote): reload once, where that
    // can matter, and judge again.
    let mut reloaded = false;
    for _ in 0..MAX_COMMIT_ATTEMPTS {
        let verdict = judge(&write, current.as_deref());
        if matches!(verdict, Verdict::Stale | Verdict::Unsafe) && !reloaded && reload_could_help(&env, &write, &current)
        {
            match env.store.load_value(env.key.as_str()).await {
                Ok(fresh) => current = fresh.map(Arc::new),
                Err(error) => {
                    fail_write(&env, write, tag_of(&current), None, &error);
                    return Cached::Unknown;
                }
            }
            reloaded = true;
            continue;
        }
        let (value, merged) = match verdict {
            Verdict::PreconditionRequired => {
                let _ = write.reply.send(WriteOutcome::PreconditionRequired);
                return Cached::Known(current);
            }
            Verdict::Unsafe => {
                let payload = write.change.as_draft_payload();
                keep_draft(&env, write, &current, DraftReason::UnsafeOverwrite, payload, None);
                return Cached::Known(current);
            }
            Verdict::Stale => match resolve_stale(&env, &write, &current).await {
                Ok(StaleResolution::Merged(merged)) => (merged, true),
                Ok(StaleResolution::Draft { payload, base_version }) => {
                    keep_draft(&env, write, &current, DraftReason::Conflict, payload, base_version);
                    return Cached::Known(current);
                }
                Err(error) => {
                    fail_write(&env, write, tag_of(&current), None, &error);
                    return Cached::Unknown;
                }
            },
            Verdict::Apply => match write.change.apply(current.as_ref().map(|c| &c.value)) {
                Ok(value) => (value, false),
                Err(error) => {
                    let _ = write.reply.send(WriteOutcome::Rejected { error });
                    return Cached::Known(current);
                }
            },
        };

        let next = Arc::new(StoredValue {
            value,
            version: current.as_ref().map_or(1, |c| c.version + 1),
            updated_at: Timestamp::next_after(current.as_ref().map(|c| c.updated_at)),
        });
        let outcome = WriteOutcome::Committed {
            version: next.version,
            updated_at: next.updated_at,
            created: current.is_none(),
            merged,
            item_id: write.change.item_id(),
        };
        let commit = Commit {
            key: env.key.to_string(),
            expected_version: current.as_ref().map(|c| c.version),
            next: next.clone(),
            username: write.username.clone(),
            transaction_id: write.transaction_id.clone(),
            consumes_draft: None,
            idempotency: idempotency_record(&write, &outcome),
        };
        match env.commit(commit).await {
            Ok(CommitOutcome::Committed) => {
                tracing::info!(
                    event = "storage_write",
                    key = %env.key,
                    username = %write.username,
                    transactionId = %write.transaction_id,
                    conditional = write.precondition.is_conditional(),
                    ifMatch = write.if_match.as_deref(),
                    change = write.change.kind(),
                    merged,
                    version = next.version,
                    updatedAt = %next.updated_at,
                    incomingCount = record_count(&next.value),
                    currentCount = current.as_ref().and_then(|c| record_count(&c.value)),
                );
                let _ = write.reply.send(outcome);
                return Cached::Known(Some(next));
            }
            Ok(CommitOutcome::VersionMoved | CommitOutcome::DraftGone) => {
                match env.store.load_value(env.key.as_str()).await {
                    Ok(fresh) => current = fresh.map(Arc::new),
                    Err(error) => {
                        fail_write(&env, write, tag_of(&current), Some(next.value.clone()), &error);
                        return Cached::Unknown;
                    }
                }
                reloaded = true;
            }
            Err(error) => {
                fail_write(&env, write, tag_of(&current), Some(next.value.clone()), &error);
                return Cached::Unknown;
            }
        }
    }
    // The database kept moving under us: keep the payload rather than spin.
    let payload = write.change.as_draft_payload();
    let base_version = match write.change.as_ref() {
        Change::Replace(_) => existing_version(named_version(&write.precondition), tag_of(&current)),
        _ => None,
    };
    keep_draft(&env, write, &current, DraftReason::Conflict, payload, base_version);
    Cached::Known(current)
}

/// Whether rereading the key could change this write's fate. On a database
/// no other instance writes (SQLite), the cache is the truth and a key is
/// never deleted, so a write naming a version at or below the cached one, or
/// creating a key known to exist, is stale without asking; on a hot key that
/// is almost every losing write, and the read would serialise them. Where
/// other instances write (PostgreSQL) the reload also refreshes what the 409,
/// the draft and a `Prefer: merge` are built from, so it always happens.
fn reload_could_help(env: &KeyEnv, write: &Write, current: &Option<Arc<StoredValue>>) -> bool {
    if env.store.shared_by_instances() {
        return true;
    }
    match &write.precondition {
        Precondition::IfMatch(if_match) => if_match.could_match_newer_than(tag_of(current)),
        Precondition::IfNoneMatchAny => false,
        Precondition::None => true,
    }
}

enum StaleResolution {
    /// `Prefer: merge` and the changes do not overlap: commit this instead.
    Merged(Value),
    /// Keep this payload as a draft based on that version.
    Draft { payload: Value, base_version: Option<i64> },
}

/// A stale write becomes a draft of what its author meant: the whole value
/// for a PUT, or the item change applied to the version the author saw. With
/// `Prefer: merge`, a PUT is first merged three ways against the current value.
async fn resolve_stale(
    env: &KeyEnv,
    write: &Write,
    current: &Option<Arc<StoredValue>>,
) -> StoreResult<StaleResolution> {
    let named = base_version_of(env, &write.precondition).await?;
    let base_version = existing_version(named, tag_of(current));
    let needs_base = write.prefer_merge || write.change.is_item_change();
    let base = match base_version {
        Some(version) if needs_base => env.store.history_value(env.key.as_str(), version).await?,
        _ => None,
    };
    let theirs = current.as_ref().map(|c| &c.value);
    let (payload, base_version) = match write.change.as_ref() {
        Change::Replace(ours) => {
            if write.prefer_merge {
                if let Ok(merged) = three_way_merge(base.as_ref(), theirs, ours) {
                    return Ok(StaleResolution::Merged(merged));
                }
            }
            (ours.clone(), base_version)
        }
        // An item change becomes the whole value it would have made of the
        // version its author saw; failing that, of the current one. The base
        // is always the version the payload was made from, so a later submit
        // never mistakes others' later changes for removals by this user.
        change => match base.as_ref().map(|base| change.apply(Some(base))) {
            Some(Ok(payload)) => (payload, base_version),
            _ => match change.apply(theirs) {
                Ok(payload) => (payload, current.as_ref().map(|c| c.version)),
                Err(_) => (change.as_draft_payload(), None),
            },
        },
    };
    Ok(StaleResolution::Draft { payload, base_version })
}

/// A version a client named, if it is one the key really had: never a
/// version from the future (that would make a later submit read somebody
/// else's commit as this payload's base) and never one of an unknown state.
fn existing_version(named: Option<i64>, current: Option<CurrentTag>) -> Option<i64> {
    let current = current?;
    named.filter(|version| (1..=current.version).contains(version))
}

fn idempotency_record(write: &Write, outcome: &WriteOutcome) -> Option<IdempotencyRecord> {
    let request = write.idempotency.as_ref()?;
    Some(IdempotencyRecord {
        username: write.username.clone(),
        key: request.key.clone(),
        request_hash: request.request_hash.clone(),
        outcome: serde_json::to_string(outcome).ok()?,
    })
}

/// The write lost (or was unsafe): log the conflict, hand the payload to the
/// draft actor, and answer 409 once the draft is durable.
fn keep_draft(
    env: &KeyEnv,
    write: Write,
    current: &Option<Arc<StoredValue>>,
    reason: DraftReason,
    payload: Value,
    base_version: Option<i64>,
) {
    let current_tag = tag_of(current);
    tracing::warn!(
        event = "storage_conflict",
        key = %env.key,
        username = %write.username,
        transactionId = %write.transaction_id,
        conditional = write.precondition.is_conditional(),
        ifMatch = write.if_match.as_deref(),
        reason = reason.as_str(),
        currentVersion = current_tag.map(|c| c.version),
        currentUpdatedAt = current_tag.map(|c| c.updated_at.to_rfc3339()),
        incomingCount = record_count(&payload),
        currentCount = current.as_ref().and_then(|c| record_count(&c.value)),
        statusCode = 409,
    );
    let draft = new_draft(&write, reason, payload, base_version, current_tag, None);
    let store = env.store.clone();
    env.writer.do_send(PersistDraft {
        draft,
        then: Box::new(move |draft_id| {
            let outcome = WriteOutcome::Conflict {
                current: current_tag,
                draft_id,
                reason,
            };
            // Remember the 409 for retries with the same Idempotency-Key
            // (only once its draft is safe), then answer.
            let record = outcome
                .draft_saved()
                .then(|| idempotency_record(&write, &outcome))
                .flatten();
            match record {
                None => {
                    let _ = write.reply.send(outcome);
                }
                Some(record) => {
                    actix::spawn(async move {
                        if let Err(error) = store.save_idempotency(&record).await {
                            tracing::warn!(event = "idempotency_save_failed", error = %error);
                        }
                        let _ = write.reply.send(outcome);
                    });
                }
            }
        }),
    });
}

/// The commit failed on our side: log it, keep the payload as a
/// `write_failed` draft, answer 503. `attempted` is the value that failed
/// to commit, when it got that far.
fn fail_write(
    env: &KeyEnv,
    write: Write,
    current: Option<CurrentTag>,
    attempted: Option<Value>,
    error: &dyn std::fmt::Display,
) {
    tracing::error!(
        event = "storage_write_failed",
        key = %env.key,
        username = %write.username,
        transactionId = %write.transaction_id,
        conditional = write.precondition.is_conditional(),
        ifMatch = write.if_match.as_deref(),
        statusCode = 503,
        error = %error,
    );
    // What failed to commit was made from the current version; without it,
    // a whole value is based on what its client named, a record on nothing.
    let (payload, base_version) = match (attempted, write.change.as_ref()) {
        (Some(attempted), _) => (attempted, current.map(|c| c.version)),
        (None, Change::Replace(value)) => (
            value.clone(),
            existing_version(named_version(&write.precondition), current),
        ),
        (None, change) => (change.as_draft_payload(), None),
    };
    let draft = new_draft(
        &write,
        DraftReason::WriteFailed,
        payload,
        base_version,
        current,
        Some(error.to_string()),
    );
    let reply = write.reply;
    env.writer.do_send(PersistDraft {
        draft,
        then: Box::new(move |draft_id| {
            let _ = reply.send(WriteOutcome::Failed { draft_id });
        }),
    });
}

fn named_version(precondition: &Precondition) -> Option<i64> {
    match precondition {
        Precondition::IfMatch(if_match) => if_match.newest_named_version(),
        _ => None,
    }
}

/// The version the rejected payload was based on, so a later submit can
/// merge three ways. Clients that version by time name an `updatedAt`; its
/// version is looked up in history.
async fn base_version_of(env: &KeyEnv, precondition: &Precondition) -> StoreResult<Option<i64>> {
    let Precondition::IfMatch(if_match) = precondition else {
        return Ok(None);
    };
    if let Some(version) = if_match.newest_named_version() {
        return Ok(Some(version));
    }
    match if_match.newest_named_time() {
        Some(at) => env.store.version_at(env.key.as_str(), at).await,
        None => Ok(None),
    }
}

fn new_draft(
    write: &Write,
    reason: DraftReason,
    payload: Value,
    base_version: Option<i64>,
    current: Option<CurrentTag>,
    last_error: Option<String>,
) -> Draft {
    Draft::new(DraftSource {
        key: write.key.to_string(),
        username: write.username.clone(),
        reason,
        payload,
        if_match: write.if_match.clone(),
        base_version,
        current_version: current.map(|c| c.version),
        transaction_id: write.transaction_id.clone(),
        last_error,
    })
}

/// Test-only: a build with the `fault-injection` feature panics in the
/// middle of a write whose value holds a record `{"injectFault": "panic"}`,
/// to prove that a failing actor loses nothing. Release builds never have it.
#[cfg(feature = "fault-injection")]
mod fault_injection {
    use super::{Change, Write};

    pub fn maybe_panic(write: &Write) {
        let Change::Replace(serde_json::Value::Array(records)) = write.change.as_ref() else {
            return;
        };
        if records.iter().any(|record| record["injectFault"] == "panic") {
            panic!("injected fault: key actor of {} fails mid-write", write.key);
        }
    }
}
