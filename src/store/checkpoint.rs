//! SQLite checkpoints off the commit path. A commit appends pages to the
//! write-ahead log and flushes it; copying those pages back into the
//! database file (a checkpoint, which flushes the database file too) is left
//! to a connection of its own, run by the batch writer after each batch while
//! the next one is being written. A checkpoint inside a commit, SQLite's
//! default every 1000 pages, stalled every tenth batch for several
//! milliseconds. PASSIVE never waits for the writer or for readers.

use super::Store;

/// What one checkpoint found, in WAL pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Pages in the WAL.
    pub wal_pages: i64,
    /// Of those, pages now copied into the database file.
    pub checkpointed_pages: i64,
}

impl Store {
    /// Copies what it can of the WAL into the database file, without waiting
    /// for anyone. `Ok(None)` on PostgreSQL, which checkpoints by itself.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, sqlx::Error> {
        let Some(pool) = &self.sqlite_checkpointer else {
            return Ok(None);
        };
        let (_busy, wal_pages, checkpointed_pages): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
        Ok(Some(Checkpoint {
            wal_pages,
            checkpointed_pages,
        }))
    }
}
