//! A draft (`pending_storage_saves` row): a payload the coordinator did not
//! commit, kept so its owner can recover it.

use super::merge::record_count;
use super::Timestamp;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftReason {
    /// The write's precondition was stale: someone else committed first.
    Conflict,
    /// The write was valid but could not be committed on our side.
    WriteFailed,
    /// A write without If-Match (allowed by `--allow-unconditional`) that
    /// would have removed or changed existing records.
    UnsafeOverwrite,
}

impl DraftReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DraftReason::Conflict => "conflict",
            DraftReason::WriteFailed => "write_failed",
            DraftReason::UnsafeOverwrite => "unsafe_overwrite",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "conflict" => Some(DraftReason::Conflict),
            "write_failed" => Some(DraftReason::WriteFailed),
            "unsafe_overwrite" => Some(DraftReason::UnsafeOverwrite),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub id: String,
    pub key: String,
    pub username: String,
    pub reason: DraftReason,
    /// The exact `If-Match` header the write carried, if any.
    pub if_match: Option<String>,
    /// The version the payload was based on; `None` when the client named no
    /// version we can resolve (then a submit merges against an empty base).
    pub base_version: Option<i64>,
    /// The key's version when the draft was made; `None` if the key did not exist.
    pub current_version: Option<i64>,
    pub transaction_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub payload: Value,
}

/// What a new draft is made of; the rest (id, times, attempts) is fresh.
pub struct DraftSource {
    pub key: String,
    pub username: String,
    pub reason: DraftReason,
    pub payload: Value,
    pub if_match: Option<String>,
    pub base_version: Option<i64>,
    pub current_version: Option<i64>,
    pub transaction_id: String,
    pub last_error: Option<String>,
}

impl Draft {
    pub fn new(source: DraftSource) -> Self {
        let now = Timestamp::now();
        Draft {
            id: uuid::Uuid::new_v4().to_string(),
            key: source.key,
            username: source.username,
            reason: source.reason,
            if_match: source.if_match,
            base_version: source.base_version,
            current_version: source.current_version,
            transaction_id: source.transaction_id,
            attempts: 0,
            last_error: source.last_error,
            created_at: now,
            updated_at: now,
            payload: source.payload,
        }
    }

    /// Records in the payload, when it is an array (the runbook's `incomingCount`).
    pub fn incoming_count(&self) -> Option<usize> {
        record_count(&self.payload)
    }
}

/// A draft as the API shows it: the row plus its record count.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftView<'a> {
    #[serde(flatten)]
    pub draft: &'a Draft,
    pub incoming_count: Option<usize>,
}

impl<'a> From<&'a Draft> for DraftView<'a> {
    fn from(draft: &'a Draft) -> Self {
        Self {
            draft,
            incoming_count: draft.incoming_count(),
        }
    }
}

/// What identifies a draft's content (its payload as stored) for
/// deduplication, with its owner, key and base version.
pub fn payload_hash(stored_payload: &str) -> String {
    crate::domain::credentials::sha256_hex(stored_payload.as_bytes())
}
