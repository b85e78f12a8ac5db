use super::idempotency::IdempotencyRecord;
use super::{with_pool, Store, StoreResult};
use crate::domain::Timestamp;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

/// A key's committed value as the database holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValue {
    pub value: Value,
    pub version: i64,
    pub updated_at: Timestamp,
}

/// One committed version, from `storage_history`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: i64,
    pub updated_at: Timestamp,
    pub username: String,
    pub transaction_id: String,
    pub record_count: Option<i64>,
    /// Left out of history listings; present for a single version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    version: i64,
    updated_at: DateTime<Utc>,
    username: String,
    transaction_id: String,
    record_count: Option<i64>,
    value: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryEntry {
    type Error = sqlx::Error;
    fn try_from(row: HistoryRow) -> Result<Self, Self::Error> {
        Ok(Self {
            version: row.version,
            updated_at: Timestamp::from_datetime(row.updated_at),
            username: row.username,
            transaction_id: row.transaction_id,
            record_count: row.record_count,
            value: row.value.as_deref().map(parse_stored_json).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StorageRow {
    value: String,
    version: i64,
    updated_at: DateTime<Utc>,
}

impl TryFrom<StorageRow> for StoredValue {
    type Error = sqlx::Error;
    fn try_from(row: StorageRow) -> Result<Self, Self::Error> {
        Ok(Self {
            value: parse_stored_json(&row.value)?,
            version: row.version,
            updated_at: Timestamp::from_datetime(row.updated_at),
        })
    }
}

pub(super) fn parse_stored_json(text: &str) -> Result<Value, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// One new version of a key, to be written as a compare-and-set.
#[derive(Debug, Clone)]
pub struct Commit {
    pub key: String,
    /// The version the writer judged against; `None` when the key must not exist yet.
    pub expected_version: Option<i64>,
    /// The new value, version and time. `next.version` is `expected_version + 1`.
    pub next: Arc<StoredValue>,
    pub username: String,
    pub transaction_id: String,
    /// A draft this commit recovers: deleted in the same transaction, so a
    /// draft is never both applied and still pending.
    pub consumes_draft: Option<String>,
    /// The outcome to remember for an `Idempotency-Key`, in the same
    /// transaction: a retry can never find the write done but unrecorded.
    pub idempotency: Option<IdempotencyRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The database's version is not the expected one: another writer (in
    /// another process) committed first. Nothing was written.
    VersionMoved,
    /// The draft to consume is gone (discarded or already submitted). Nothing was written.
    DraftGone,
}

impl Store {
    pub async fn load_value(&self, key: &str) -> StoreResult<Option<StoredValue>> {
        let row: Option<StorageRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT value, version, updated_at FROM storage WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await?);
        row.map(StoredValue::try_from).transpose()
    }

    /// The newest `limit` versions of `key`, newest first, without values.
    pub async fn history(&self, key: &str, limit: i64) -> StoreResult<Vec<HistoryEntry>> {
        let rows: Vec<HistoryRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT version, updated_at, username, transaction_id, record_count, NULL AS value \
             FROM storage_history WHERE key = $1 ORDER BY version DESC LIMIT $2",
        )
        .bind(key)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(HistoryEntry::try_from).collect()
    }

    /// One version of `key` with its value.
    pub async fn history_entry(&self, key: &str, version: i64) -> StoreResult<Option<HistoryEntry>> {
        let row: Option<HistoryRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT version, updated_at, username, transaction_id, record_count, value \
             FROM storage_history WHERE key = $1 AND version = $2",
        )
        .bind(key)
        .bind(version)
        .fetch_optional(pool)
        .await?);
        row.map(HistoryEntry::try_from).transpose()
    }

    /// The value of `key` at `version`, from history.
    pub async fn history_value(&self, key: &str, version: i64) -> StoreResult<Option<Value>> {
        let text: Option<String> = with_pool!(self, pool => sqlx::query_scalar(
            "SELECT value FROM storage_history WHERE key = $1 AND version = $2",
        )
        .bind(key)
        .bind(version)
        .fetch_optional(pool)
        .await?);
        text.as_deref().map(parse_stored_json).transpose()
    }

    /// The version of `key` whose `updatedAt` was `at`, for clients that
    /// version by time.
    pub async fn version_at(&self, key: &str, at: Timestamp) -> StoreResult<Option<i64>> {
        with_pool!(self, pool => sqlx::query_scalar(
            "SELECT version FROM storage_history WHERE key = $1 AND updated_at = $2",
        )
        .bind(key)
        .bind(at.as_datetime())
        .fetch_optional(pool)
        .await)
    }
}
