//! One message per operation a key actor performs, and what it answers.

use crate::domain::merge::MergeConflict;
use crate::domain::precondition::CurrentTag;
use crate::domain::{Precondition, StorageKey, Timestamp};
use actix::Message;
use serde_json::Value;
use tokio::sync::oneshot;

/// Replace the key's value, if the precondition holds.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write {
    pub key: StorageKey,
    pub value: Value,
    pub precondition: Precondition,
    /// The `If-Match` header as sent, for the logs and the draft.
    pub if_match: Option<String>,
    pub username: String,
    pub transaction_id: String,
    pub reply: oneshot::Sender<WriteOutcome>,
}

#[derive(Debug)]
pub enum WriteOutcome {
    Committed {
        version: i64,
        updated_at: Timestamp,
        /// The key did not exist before (201).
        created: bool,
    },
    /// The precondition was stale (409). The payload went to the draft actor
    /// first; `draft_id` is `None` if even that failed.
    Conflict {
        current: Option<CurrentTag>,
        draft_id: Option<String>,
    },
    /// No precondition on an existing key (428). Nothing stored.
    PreconditionRequired,
    /// The commit failed on our side (503); the payload was kept as a
    /// `write_failed` draft when possible.
    Failed { draft_id: Option<String> },
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
    Saved { version: i64, updated_at: Timestamp },
    /// The merge found changes on both sides; the draft stays, with the error.
    Conflict(MergeConflict),
    NotFound,
    Failed,
}
