use super::storage::parse_stored_json;
use super::{with_pool, Store, StoreResult};
use crate::domain::{draft::Draft, DraftReason, Timestamp};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

pub(super) const DRAFT_COLUMNS: &str = "id, storage_key, username, reason, payload, if_match, base_version, \
     current_version, transaction_id, attempts, last_error, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DraftRow {
    id: String,
    storage_key: String,
    username: String,
    reason: String,
    payload: String,
    if_match: Option<String>,
    base_version: Option<i64>,
    current_version: Option<i64>,
    transaction_id: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DraftRow> for Draft {
    type Error = sqlx::Error;
    fn try_from(row: DraftRow) -> Result<Self, Self::Error> {
        let reason = DraftReason::parse(&row.reason)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown draft reason {:?}", row.reason).into()))?;
        Ok(Draft {
            payload: parse_stored_json(&row.payload)?,
            id: row.id,
            key: row.storage_key,
            username: row.username,
            reason,
            if_match: row.if_match,
            base_version: row.base_version,
            current_version: row.current_version,
            transaction_id: row.transaction_id,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: Timestamp::from_datetime(row.created_at),
            updated_at: Timestamp::from_datetime(row.updated_at),
        })
    }
}

/// `(name, drafts)` rows of a `GROUP BY`.
type Counts = Vec<(String, i64)>;

/// Which drafts to list; `None` fields do not filter.
#[derive(Debug, Default, Clone)]
pub struct DraftFilter {
    pub username: Option<String>,
    pub key: Option<String>,
    pub reason: Option<DraftReason>,
    pub limit: i64,
    pub oldest_first: bool,
}

/// The counts the runbook's verification queries answer.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftStats {
    pub total: i64,
    pub by_reason: BTreeMap<String, i64>,
    pub by_key: BTreeMap<String, i64>,
}

impl Store {
    pub async fn get_draft(&self, id: &str) -> StoreResult<Option<Draft>> {
        let query = format!("SELECT {DRAFT_COLUMNS} FROM pending_storage_saves WHERE id = $1");
        let row: Option<DraftRow> = with_pool!(self, pool => sqlx::query_as(&query)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(Draft::try_from).transpose()
    }

    pub async fn list_drafts(&self, filter: &DraftFilter) -> StoreResult<Vec<Draft>> {
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        let query = format!(
            "SELECT {DRAFT_COLUMNS} FROM pending_storage_saves \
             WHERE ($1 IS NULL OR username = $1) AND ($2 IS NULL OR storage_key = $2) \
             AND ($3 IS NULL OR reason = $3) \
             ORDER BY created_at {order}, id {order} LIMIT $4"
        );
        let rows: Vec<DraftRow> = with_pool!(self, pool => sqlx::query_as(&query)
            .bind(&filter.username)
            .bind(&filter.key)
            .bind(filter.reason.map(DraftReason::as_str))
            .bind(filter.limit)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(Draft::try_from).collect()
    }

    pub async fn draft_stats(&self) -> StoreResult<DraftStats> {
        let (by_reason, by_key): (Counts, Counts) = with_pool!(self, pool => (
            sqlx::query_as("SELECT reason, COUNT(*) FROM pending_storage_saves GROUP BY reason")
                .fetch_all(pool)
                .await?,
            sqlx::query_as("SELECT storage_key, COUNT(*) FROM pending_storage_saves GROUP BY storage_key")
                .fetch_all(pool)
                .await?,
        ));
        Ok(DraftStats {
            total: by_reason.iter().map(|(_, n)| n).sum(),
            by_reason: by_reason.into_iter().collect(),
            by_key: by_key.into_iter().collect(),
        })
    }

    /// Deletes a draft; returns whether it existed.
    pub async fn delete_draft(&self, id: &str) -> StoreResult<bool> {
        let deleted = with_pool!(self, pool => sqlx::query("DELETE FROM pending_storage_saves WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted == 1)
    }

    /// Notes a submit that still failed: one more attempt, and why.
    pub async fn record_failed_submit(&self, id: &str, error: &str) -> StoreResult<bool> {
        let updated = with_pool!(self, pool => sqlx::query(
            "UPDATE pending_storage_saves SET attempts = attempts + 1, last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(Timestamp::now().as_datetime())
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated == 1)
    }
}
