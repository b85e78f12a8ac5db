//! Group commit: many commits and drafts in one transaction, so one disk
//! flush pays for all of them. Each commit is still its own compare-and-set:
//! one that finds the version moved writes nothing and does not disturb the
//! others. A database error fails the whole batch: nothing in it is written.

use super::drafts::DRAFT_COLUMNS;
use super::idempotency::insert_idempotency;
use super::storage::{Commit, CommitOutcome};
use super::{with_pool, Store, StoreResult};
use crate::domain::draft::Draft;

/// One thing to write in a batch.
#[derive(Debug)]
pub enum BatchItem {
    Commit(Commit),
    /// A draft; deduplicated against pending drafts with the same owner, key,
    /// base version and payload.
    Draft(Draft),
}

/// What became of each item of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Commit(CommitOutcome),
    /// The id of the stored draft, or of the identical pending one.
    DraftSaved(String),
}

impl Store {
    /// Writes `items` in one transaction, in order.
    pub async fn write_batch(&self, items: &[BatchItem]) -> StoreResult<Vec<ItemOutcome>> {
        let insert_draft = format!(
            "INSERT INTO pending_storage_saves ({DRAFT_COLUMNS}, payload_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"
        );
        let existing_draft = "SELECT id FROM pending_storage_saves WHERE username = $1 AND storage_key = $2 \
             AND COALESCE(base_version, -1) = $3 AND payload_hash = $4";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                let outcome = match item {
                    BatchItem::Draft(draft) => {
                        let payload_hash = draft.payload_hash();
                        let inserted = sqlx::query(&insert_draft)
                            .bind(&draft.id)
                            .bind(&draft.key)
                            .bind(&draft.username)
                            .bind(draft.reason.as_str())
                            .bind(draft.payload.to_string())
                            .bind(&draft.if_match)
                            .bind(draft.base_version)
                            .bind(draft.current_version)
                            .bind(&draft.transaction_id)
                            .bind(draft.attempts)
                            .bind(&draft.last_error)
                            .bind(draft.created_at.as_datetime())
                            .bind(draft.updated_at.as_datetime())
                            .bind(&payload_hash)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let id = if inserted == 1 {
                            draft.id.clone()
                        } else {
                            sqlx::query_scalar(existing_draft)
                                .bind(&draft.username)
                                .bind(&draft.key)
                                .bind(draft.base_version.unwrap_or(-1))
                                .bind(&payload_hash)
                                .fetch_one(&mut *tx)
                                .await?
                        };
                        ItemOutcome::DraftSaved(id)
                    }
                    BatchItem::Commit(commit) => {
                        let next = &commit.next;
                        let value = next.value.to_string();
                        let record_count = next.value.as_array().map(|a| a.len() as i64);
                        let updated_at = next.updated_at.as_datetime();
                        // Only a commit that consumes a draft can find out
                        // half-way that it must not happen: it alone needs a
                        // savepoint to undo its first statements.
                        let savepoint = commit.consumes_draft.is_some();
                        if savepoint {
                            sqlx::query("SAVEPOINT consume_draft").execute(&mut *tx).await?;
                        }
                        let written = match commit.expected_version {
                            Some(expected) => sqlx::query(
                                "UPDATE storage SET value = $1, version = $2, updated_at = $3, updated_by = $4, \
                                 transaction_id = $5 WHERE key = $6 AND version = $7",
                            )
                            .bind(&value)
                            .bind(next.version)
                            .bind(updated_at)
                            .bind(&commit.username)
                            .bind(&commit.transaction_id)
                            .bind(&commit.key)
                            .bind(expected),
                            None => sqlx::query(
                                "INSERT INTO storage (value, version, updated_at, updated_by, transaction_id, key) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO NOTHING",
                            )
                            .bind(&value)
                            .bind(next.version)
                            .bind(updated_at)
                            .bind(&commit.username)
                            .bind(&commit.transaction_id)
                            .bind(&commit.key),
                        }
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        let mut outcome = if written == 1 { CommitOutcome::Committed } else { CommitOutcome::VersionMoved };
                        if outcome == CommitOutcome::Committed {
                            sqlx::query(
                                "INSERT INTO storage_history \
                                 (key, version, value, record_count, updated_at, username, transaction_id) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(&commit.key)
                            .bind(next.version)
                            .bind(&value)
                            .bind(record_count)
                            .bind(updated_at)
                            .bind(&commit.username)
                            .bind(&commit.transaction_id)
                            .execute(&mut *tx)
                            .await?;
                            if let Some(draft_id) = &commit.consumes_draft {
                                let deleted = sqlx::query("DELETE FROM pending_storage_saves WHERE id = $1")
                                    .bind(draft_id)
                                    .execute(&mut *tx)
                                    .await?
                                    .rows_affected();
                                if deleted != 1 {
                                    outcome = CommitOutcome::DraftGone;
                                }
                            }
                        }
                        if outcome == CommitOutcome::Committed {
                            if let Some(record) = &commit.idempotency {
                                insert_idempotency(&mut *tx, record).await?;
                            }
                        }
                        if savepoint {
                            if outcome != CommitOutcome::Committed {
                                sqlx::query("ROLLBACK TO SAVEPOINT consume_draft").execute(&mut *tx).await?;
                            }
                            sqlx::query("RELEASE SAVEPOINT consume_draft").execute(&mut *tx).await?;
                        }
                        ItemOutcome::Commit(outcome)
                    }
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }

    /// One commit in its own transaction.
    pub async fn commit(&self, commit: Commit) -> StoreResult<CommitOutcome> {
        match self.write_batch(&[BatchItem::Commit(commit)]).await?.pop() {
            Some(ItemOutcome::Commit(outcome)) => Ok(outcome),
            _ => Err(sqlx::Error::Protocol("a one-commit batch answered no commit".into())),
        }
    }
}
