//! One message per operation a key actor performs, and what it answers.

use crate::domain::items::{Change, ItemError};
use crate::domain::merge::MergeConflict;
use crate::domain::precondition::CurrentTag;
use crate::domain::{DraftReason, Precondition, StorageKey, Timestamp};
use actix::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Change the key's value, if the precondition holds.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write {
    pub key: StorageKey,
    /// Shared with the HTTP handler, which keeps the payload as a draft
    /// itself if the actor fails before answering.
    pub change: Arc<Change>,
    pub precondition: Precondition,
    /// The `If-Match` header as sent, for the logs and the draft.
    pub if_match: Option<String>,
    /// `Prefer: merge`: merge a stale PUT by record id when the changes do not overlap.
    pub prefer_merge: bool,
    /// `--allow-unconditional`: a PUT without precondition may only add records.
    pub allow_unconditional: bool,
    pub idempotency: Option<IdempotencyRequest>,
    pub username: String,
    pub transaction_id: String,
    pub reply: oneshot::Sender<WriteOutcome>,
}

/// An `Idempotency-Key` and a hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub key: String,
    pub request_hash: String,
}

/// What a write came to. Committed and conflict outcomes are also stored
/// (as JSON) for `Idempotency-Key` retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WriteOutcome {
    Committed {
        version: i64,
        updated_at: Timestamp,
        /// The key did not exist before (201).
        created: bool,
        /// A stale `Prefer: merge` PUT merged with the current value.
        merged: bool,
        /// The record an item write touched.
        item_id: Option<Value>,
    },
    /// The precondition was stale, or the write unsafe (409). The payload
    /// went to the draft actor first; `draft_id` is `None` if even that failed.
    Conflict {
        current: Option<CurrentTag>,
        draft_id: Option<String>,
        reason: DraftReason,
    },
    /// No precondition on an existing key (428). Nothing stored.
    PreconditionRequired,
    /// An item write that does not fit the current value. Nothing stored.
    Rejected { error: ItemError },
    /// The commit failed on our side (503); the payload was kept as a
    /// `write_failed` draft when possible.
    Failed { draft_id: Option<String> },
    /// The `Idempotency-Key` was used before with a different request (422).
    IdempotencyKeyReused,
    /// The first outcome of this `Idempotency-Key`; nothing was changed now.
    /// Never stored itself.
    #[serde(skip)]
    Replayed(Box<WriteOutcome>),
}

impl WriteOutcome {
    pub fn draft_saved(&self) -> bool {
        matches!(self, WriteOutcome::Conflict { draft_id: Some(_), .. })
    }
}

/// Re-apply a draft to the key's current value.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubmitDraft {
    pub draft_id: String,
    /// Only this user's draft may be submitted; `None` for an admin.
    pub owner: Option<String>,
    pub submitted_by: String,
    pub transaction_id: String,
    pub reply: oneshot::Sender<SubmitOutcome>,
}

#[derive(Debug)]
pub enum SubmitOutcome {
    /// Stored (or already contained in the current value); the draft is gone.
    Saved {
        version: i64,
        updated_at: Timestamp,
    },
    /// The merge found changes on both sides; the draft stays, with the error.
    Conflict(MergeConflict),
    NotFound,
    Failed,
}
