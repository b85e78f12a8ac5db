//! Group commit: many commits and drafts in one transaction, so one disk
//! flush pays for all of them. Each commit is still its own compare-and-set:
//! one that finds the version moved writes nothing and does not disturb the
//! others. A database error fails the whole batch: nothing in it is written.

use super::drafts::DRAFT_COLUMNS;
use super::idempotency::insert_idempotency;
use super::storage::{Commit, CommitOutcome};
use super::{with_writer, Store, StoreResult};
use crate::domain::draft::{payload_hash, Draft};
use std::collections::HashSet;

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

/// Drafts per `INSERT` statement: a few fixed sizes, so that a connection
/// prepares at most four such statements (14 parameters per draft, far below
/// either backend's limit).
const DRAFTS_PER_STATEMENT: [usize; 4] = [64, 16, 4, 1];

/// The columns of one draft row, in the order `insert_drafts_sql` binds them.
const DRAFT_ROW_COLUMNS: usize = 14;

impl Store {
    /// Writes `items` in one transaction: the commits in order, then the
    /// drafts, many per statement. Commits go first so that a draft is never
    /// answered with the id of a pending draft that a commit of the same
    /// batch consumes.
    pub async fn write_batch(&self, items: &[BatchItem]) -> StoreResult<Vec<ItemOutcome>> {
        let drafts: Vec<(usize, &Draft)> = items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item {
                BatchItem::Draft(draft) => Some((index, draft)),
                BatchItem::Commit(_) => None,
            })
            .collect();
        let existing_draft = "SELECT id FROM pending_storage_saves WHERE username = $1 AND storage_key = $2 \
             AND COALESCE(base_version, -1) = $3 AND payload_hash = $4";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
            for (slot, item) in outcomes.iter_mut().zip(items) {
                let BatchItem::Commit(commit) = item else { continue };
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
                *slot = Some(ItemOutcome::Commit(outcome));
            }
            for chunk in statement_chunks(&drafts) {
                let sql = insert_drafts_sql(chunk.len());
                // The payload as stored, and its hash for the unique index.
                let payloads: Vec<(String, String)> = chunk
                    .iter()
                    .map(|(_, draft)| {
                        let text = draft.payload.to_string();
                        let hash = payload_hash(&text);
                        (text, hash)
                    })
                    .collect();
                let mut insert = sqlx::query_scalar::<_, String>(&sql);
                for (&(_, draft), (payload, hash)) in chunk.iter().zip(&payloads) {
                    insert = insert
                        .bind(&draft.id)
                        .bind(&draft.key)
                        .bind(&draft.username)
                        .bind(draft.reason.as_str())
                        .bind(payload)
                        .bind(&draft.if_match)
                        .bind(draft.base_version)
                        .bind(draft.current_version)
                        .bind(&draft.transaction_id)
                        .bind(draft.attempts)
                        .bind(&draft.last_error)
                        .bind(draft.created_at.as_datetime())
                        .bind(draft.updated_at.as_datetime())
                        .bind(hash);
                }
                let inserted: HashSet<String> = insert.fetch_all(&mut *tx).await?.into_iter().collect();
                for (&(index, draft), (_, hash)) in chunk.iter().zip(&payloads) {
                    let id = if inserted.contains(&draft.id) {
                        draft.id.clone()
                    } else {
                        sqlx::query_scalar(existing_draft)
                            .bind(&draft.username)
                            .bind(&draft.key)
                            .bind(draft.base_version.unwrap_or(-1))
                            .bind(hash)
                            .fetch_one(&mut *tx)
                            .await?
                    };
                    outcomes[index] = Some(ItemOutcome::DraftSaved(id));
                }
            }
            tx.commit().await?;
            Ok(outcomes.into_iter().map(|outcome| outcome.expect("every item was written")).collect())
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

/// `rows` cut into slices of the sizes in `DRAFTS_PER_STATEMENT`, largest first.
fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = DRAFTS_PER_STATEMENT.into_iter().find(|&size| size <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `INSERT` of `rows` drafts that skips any identical to a pending one (same
/// owner, key, base version and payload: the unique index) and returns the
/// ids it did insert.
fn insert_drafts_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO pending_storage_saves ({DRAFT_COLUMNS}, payload_hash) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..DRAFT_ROW_COLUMNS {
            if column > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", row * DRAFT_ROW_COLUMNS + column + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING id");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draft_insert_numbers_every_parameter_once() {
        let sql = insert_drafts_sql(2);
        assert!(sql.contains("VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14),($15,"));
        assert!(sql.ends_with("$28) ON CONFLICT DO NOTHING RETURNING id"));
        assert_eq!(DRAFT_COLUMNS.split(',').count() + 1, DRAFT_ROW_COLUMNS);
    }

    #[test]
    fn drafts_go_in_statements_of_a_few_fixed_sizes() {
        let rows: Vec<usize> = (0..151).collect();
        let sizes: Vec<usize> = statement_chunks(&rows).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 64, 16, 4, 1, 1, 1]);
        assert_eq!(statement_chunks(&rows).flatten().copied().collect::<Vec<_>>(), rows);
        assert_eq!(statement_chunks::<usize>(&[]).count(), 0);
    }
}
