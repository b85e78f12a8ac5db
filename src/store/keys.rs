//! The storage keys at a glance, for the admin activity page: the runbook's
//! recency query (`SELECT key, updated_at FROM storage ORDER BY updated_at
//! DESC`) with the version, the writer and the record count beside it.

use super::{with_pool, Store, StoreResult};
use crate::domain::Timestamp;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One key's latest commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySummary {
    pub key: String,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub transaction_id: String,
    /// Elements in the value when it is an array, as recorded in its history row.
    pub record_count: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    key: String,
    version: i64,
    updated_at: DateTime<Utc>,
    updated_by: String,
    transaction_id: String,
    record_count: Option<i64>,
}

impl From<KeyRow> for KeySummary {
    fn from(row: KeyRow) -> Self {
        Self {
            key: row.key,
            version: row.version,
            updated_at: Timestamp::from_datetime(row.updated_at),
            updated_by: row.updated_by,
            transaction_id: row.transaction_id,
            record_count: row.record_count,
        }
    }
}

impl Store {
    /// Up to `limit` keys, the most recently written first. The record count
    /// comes from the history row of the current version, written in the
    /// same transaction as the key, so the two always agree.
    pub async fn list_keys(&self, limit: i64) -> StoreResult<Vec<KeySummary>> {
        let rows: Vec<KeyRow> = with_pool!(self, pool => sqlx::query_as(
            "SELECT s.key, s.version, s.updated_at, s.updated_by, s.transaction_id, h.record_count \
             FROM storage s \
             LEFT JOIN storage_history h ON h.key = s.key AND h.version = s.version \
             ORDER BY s.updated_at DESC, s.key LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(KeySummary::from).collect())
    }
}
