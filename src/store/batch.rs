//! Group commit: many commits and drafts in one transaction, so one disk
//! flush pays for all of them. Each commit is still a compare-and-set: one
//! that finds the version moved writes nothing and does not disturb the
//! others. A database error fails the whole batch: nothing in it is written.
//!
//! A batch costs a fixed handful of statements, whatever its size: every
//! statement is a round trip to the database (on SQLite, to its
//! connection's thread, which had to be woken each time), and those round
//! trips, not the database's work, were most of a batch's time. So each
//! table's rows travel as one JSON array parameter, which the statement
//! unpacks (`json_each` on SQLite, `json_to_recordset` on PostgreSQL): the
//! SQL text never changes, and stays prepared. SQLite runs a batch's
//! statements as one multi-statement query: one round trip.
//!
//! The commits are cut into steps ([`plan`]). In a step each key's commits
//! form one chain (each expects the version the one before it makes), so a
//! chain is one compare-and-set of its first expected version to its last
//! value, and every version of it goes to history. Commits that consume a
//! draft run alone, each with a savepoint, since only they can find half-way
//! that they must not happen.

use super::idempotency::insert_idempotency;
use super::storage::{Commit, CommitOutcome};
use super::{with_writer, Backend, Store, StoreResult};
use crate::domain::draft::{payload_hash, Draft};
use crate::domain::Timestamp;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

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

/// A key's commits in one step, in order: each expects the version the one
/// before it makes. `(index in the batch, commit)`.
#[derive(Debug)]
struct Chain<'a>(Vec<(usize, &'a Commit)>);

impl<'a> Chain<'a> {
    fn head(&self) -> &'a Commit {
        self.0[0].1
    }

    fn last(&self) -> &'a Commit {
        self.0[self.0.len() - 1].1
    }
}

/// The commits of a batch, in the order they are written.
#[derive(Debug)]
enum Step<'a> {
    /// At most one chain per key; none consumes a draft.
    Chains(Vec<Chain<'a>>),
    /// A commit that recovers a draft, alone.
    ConsumesDraft(usize, &'a Commit),
}

/// Cuts the batch's commits into steps with the same outcomes as writing the
/// commits one by one in order: a commit that does not continue its key's
/// chain (it expects another version) starts a new step, judged after the
/// one before it. A key actor waits for each of its commits, so today a
/// batch holds at most one commit per key and every batch is one step; the
/// plan does not rely on that, and stays correct for any sender.
fn plan(items: &[BatchItem]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_of_key: HashMap<&str, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let BatchItem::Commit(commit) = item else { continue };
        let continues = chain_of_key
            .get(commit.key.as_str())
            .map(|&chain| commit.expected_version == Some(chains[chain].last().next.version));
        match continues {
            Some(true) if commit.consumes_draft.is_none() => {
                let chain = chain_of_key[commit.key.as_str()];
                chains[chain].0.push((index, commit));
                continue;
            }
            None if commit.consumes_draft.is_none() => {}
            _ => {
                chain_of_key.clear();
                if !chains.is_empty() {
                    steps.push(Step::Chains(std::mem::take(&mut chains)));
                }
            }
        }
        if commit.consumes_draft.is_some() {
            steps.push(Step::ConsumesDraft(index, commit));
            continue;
        }
        chain_of_key.insert(&commit.key, chains.len());
        chains.push(Chain(vec![(index, commit)]));
    }
    if !chains.is_empty() {
        steps.push(Step::Chains(chains));
    }
    steps
}

/// The JSON parameters of one step: each table's rows as one array.
#[derive(Default)]
struct StepRows {
    /// `storage` rows to compare-and-set (a chain of an existing key).
    updates: Vec<StorageRow>,
    /// `storage` rows to create (a chain of a key that must not exist yet).
    creations: Vec<StorageRow>,
    history: Vec<HistoryRow>,
    drafts: Vec<DraftRow>,
    /// Outcomes to remember for `Idempotency-Key`s, kept only with a
    /// written chain (in the same transaction as the commit).
    idempotency: Vec<IdempotencyRow>,
}

/// The column names are those the statements read (`json_to_recordset`
/// matches them by name).
#[derive(Serialize)]
struct StorageRow {
    key: String,
    value: String,
    version: i64,
    updated_at: String,
    updated_by: String,
    transaction_id: String,
    expected: Option<i64>,
}

#[derive(Serialize)]
struct HistoryRow {
    key: String,
    version: i64,
    value: String,
    record_count: Option<i64>,
    updated_at: String,
    username: String,
    transaction_id: String,
    /// The chain's last version and transaction: on SQLite, a version goes
    /// to history only if the key's row now holds exactly those.
    chain_version: i64,
    chain_transaction_id: String,
}

#[derive(Serialize)]
struct IdempotencyRow {
    username: String,
    idempotency_key: String,
    request_hash: String,
    outcome: String,
    created_at: String,
    /// The storage key, and its chain's last version and transaction (as
    /// for history).
    key: String,
    chain_version: i64,
    chain_transaction_id: String,
}

#[derive(Serialize)]
struct DraftRow {
    id: String,
    storage_key: String,
    username: String,
    reason: &'static str,
    payload: String,
    if_match: Option<String>,
    base_version: Option<i64>,
    current_version: Option<i64>,
    transaction_id: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
    payload_hash: String,
}

/// A time as both backends store it: the text SQLite holds is exactly the
/// one a bound `DateTime` would make (so `updated_at = $1` lookups match).
fn time_text(at: Timestamp) -> String {
    at.as_datetime().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

impl StepRows {
    fn of_chains(chains: &[Chain]) -> Self {
        let mut rows = Self::default();
        for chain in chains {
            let (head, last) = (chain.head(), chain.last());
            let mut last_text = String::new();
            for &(_, commit) in &chain.0 {
                let text = commit.next.value.to_string();
                rows.history.push(HistoryRow {
                    key: commit.key.clone(),
                    version: commit.next.version,
                    value: text.clone(),
                    record_count: commit.next.value.as_array().map(|a| a.len() as i64),
                    updated_at: time_text(commit.next.updated_at),
                    username: commit.username.clone(),
                    transaction_id: commit.transaction_id.clone(),
                    chain_version: last.next.version,
                    chain_transaction_id: last.transaction_id.clone(),
                });
                if let Some(record) = &commit.idempotency {
                    rows.idempotency.push(IdempotencyRow {
                        username: record.username.clone(),
                        idempotency_key: record.key.clone(),
                        request_hash: record.request_hash.clone(),
                        outcome: record.outcome.clone(),
                        created_at: time_text(Timestamp::now()),
                        key: commit.key.clone(),
                        chain_version: last.next.version,
                        chain_transaction_id: last.transaction_id.clone(),
                    });
                }
                last_text = text;
            }
            let row = StorageRow {
                key: head.key.clone(),
                value: last_text,
                version: last.next.version,
                updated_at: time_text(last.next.updated_at),
                updated_by: last.username.clone(),
                transaction_id: last.transaction_id.clone(),
                expected: head.expected_version,
            };
            match head.expected_version {
                Some(_) => rows.updates.push(row),
                None => rows.creations.push(row),
            }
        }
        rows
    }

    fn add_drafts(&mut self, drafts: &[&Draft]) {
        self.drafts = drafts
            .iter()
            .map(|draft| {
                // The payload as stored, and its hash for the unique index.
                let payload = draft.payload.to_string();
                DraftRow {
                    payload_hash: payload_hash(&payload),
                    payload,
                    id: draft.id.clone(),
                    storage_key: draft.key.clone(),
                    username: draft.username.clone(),
                    reason: draft.reason.as_str(),
                    if_match: draft.if_match.clone(),
                    base_version: draft.base_version,
                    current_version: draft.current_version,
                    transaction_id: draft.transaction_id.clone(),
                    attempts: draft.attempts,
                    last_error: draft.last_error.clone(),
                    created_at: time_text(draft.created_at),
                    updated_at: time_text(draft.updated_at),
                }
            })
            .collect();
    }

    fn json<T: Serialize>(rows: &[T]) -> String {
        serde_json::to_string(rows).expect("rows of strings and numbers always serialise")
    }
}

/// What a step's statements answered: the keys whose chain was written, and
/// for each draft (by the id it was sent with) the id it is stored under.
#[derive(Default)]
struct StepAnswer {
    written: HashSet<String>,
    draft_ids: HashMap<String, String>,
}

impl StepAnswer {
    /// Rows `(what, a, b)`: `("written", key, NULL)` or `("draft", sent id, stored id)`.
    fn read(&mut self, rows: Vec<(String, String, Option<String>)>) {
        for (what, a, b) in rows {
            match (what.as_str(), b) {
                ("draft", Some(stored)) => {
                    self.draft_ids.insert(a, stored);
                }
                _ => {
                    self.written.insert(a);
                }
            }
        }
    }
}

/// One commit that recovers a draft, under a savepoint: the draft's deletion
/// and the commit happen together or not at all. Evaluates to its outcome.
macro_rules! consume_draft {
    ($tx:ident, $commit:expr) => {{
        let commit: &Commit = $commit;
        let value = commit.next.value.to_string();
        let record_count = commit.next.value.as_array().map(|a| a.len() as i64);
        let updated_at = commit.next.updated_at.as_datetime();
        sqlx::query("SAVEPOINT consume_draft").execute(&mut *$tx).await?;
        let written = match commit.expected_version {
            Some(expected) => sqlx::query(
                "UPDATE storage SET value = $1, version = $2, updated_at = $3, updated_by = $4, \
                 transaction_id = $5 WHERE key = $6 AND version = $7",
            )
            .bind(&value)
            .bind(commit.next.version)
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
            .bind(commit.next.version)
            .bind(updated_at)
            .bind(&commit.username)
            .bind(&commit.transaction_id)
            .bind(&commit.key),
        }
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        let mut outcome = CommitOutcome::VersionMoved;
        if written == 1 {
            sqlx::query(
                "INSERT INTO storage_history \
                 (key, version, value, record_count, updated_at, username, transaction_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&commit.key)
            .bind(commit.next.version)
            .bind(&value)
            .bind(record_count)
            .bind(updated_at)
            .bind(&commit.username)
            .bind(&commit.transaction_id)
            .execute(&mut *$tx)
            .await?;
            let deleted = sqlx::query("DELETE FROM pending_storage_saves WHERE id = $1")
                .bind(&commit.consumes_draft)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            outcome = if deleted == 1 {
                CommitOutcome::Committed
            } else {
                CommitOutcome::DraftGone
            };
        }
        if let (CommitOutcome::Committed, Some(record)) = (outcome, &commit.idempotency) {
            insert_idempotency(&mut *$tx, record).await?;
        }
        if outcome != CommitOutcome::Committed {
            sqlx::query("ROLLBACK TO SAVEPOINT consume_draft")
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query("RELEASE SAVEPOINT consume_draft")
            .execute(&mut *$tx)
            .await?;
        outcome
    }};
}

/// Binds the parameters of [`SQLITE_STEP`], in order (a macro: the body of
/// `with_writer!` is compiled for both backends' argument types).
macro_rules! bind_sqlite_step {
    ($query:expr, $rows:expr) => {
        $query
            .bind(StepRows::json(&$rows.updates))
            .bind(StepRows::json(&$rows.creations))
            .bind(StepRows::json(&$rows.history))
            .bind(StepRows::json(&$rows.drafts))
            .bind(StepRows::json(&$rows.idempotency))
    };
}

/// The batch as its statements take it: steps of chains with their rows
/// (the drafts travel with the last one, or alone), and commits that consume
/// a draft.
enum Part<'s, 'a> {
    Rows(Option<&'s [Chain<'a>]>, StepRows),
    ConsumesDraft(usize, &'a Commit),
}

impl Store {
    /// Writes `items` in one transaction: the commits in order, then the
    /// drafts. Commits go first so that a draft is never answered with the id
    /// of a pending draft that a commit of the same batch consumes.
    pub async fn write_batch(&self, items: &[BatchItem]) -> StoreResult<Vec<ItemOutcome>> {
        let steps = plan(items);
        let drafts: Vec<&Draft> = items
            .iter()
            .filter_map(|item| match item {
                BatchItem::Draft(draft) => Some(draft),
                BatchItem::Commit(_) => None,
            })
            .collect();
        let mut parts: Vec<Part> = steps
            .iter()
            .map(|step| match step {
                Step::Chains(chains) => Part::Rows(Some(chains), StepRows::of_chains(chains)),
                Step::ConsumesDraft(index, commit) => Part::ConsumesDraft(*index, commit),
            })
            .collect();
        match parts.last_mut() {
            Some(Part::Rows(_, rows)) => rows.add_drafts(&drafts),
            _ if !drafts.is_empty() => {
                let mut rows = StepRows::default();
                rows.add_drafts(&drafts);
                parts.push(Part::Rows(None, rows));
            }
            _ => {}
        }
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
        let answers = match (&self.backend, parts.as_slice()) {
            (_, []) => Vec::new(),
            (Backend::Sqlite(_), [Part::Rows(_, rows)]) => vec![self.sqlite_step_alone(rows).await?],
            _ => self.write_parts(&parts, &mut outcomes).await?,
        };
        let mut draft_ids: HashMap<String, String> = HashMap::new();
        for (part, answer) in parts.iter().filter(|part| matches!(part, Part::Rows(..))).zip(answers) {
            if let Part::Rows(Some(chains), _) = part {
                for chain in chains.iter() {
                    let outcome = if answer.written.contains(&chain.head().key) {
                        CommitOutcome::Committed
                    } else {
                        CommitOutcome::VersionMoved
                    };
                    for &(index, _) in &chain.0 {
                        outcomes[index] = Some(ItemOutcome::Commit(outcome));
                    }
                }
            }
            draft_ids.extend(answer.draft_ids);
        }
        for (index, item) in items.iter().enumerate() {
            if let BatchItem::Draft(draft) = item {
                let stored = draft_ids
                    .get(&draft.id)
                    .ok_or_else(|| sqlx::Error::Protocol(format!("draft {} was neither stored nor found", draft.id)))?;
                outcomes[index] = Some(ItemOutcome::DraftSaved(stored.clone()));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every item was written"))
            .collect())
    }

    /// The usual batch on SQLite: one step, sent with its `BEGIN` and
    /// `COMMIT` as one multi-statement query, so a whole batch costs one
    /// round trip to the connection's thread.
    async fn sqlite_step_alone(&self, rows: &StepRows) -> StoreResult<StepAnswer> {
        let Some(pool) = &self.sqlite_writer else {
            return Err(sqlx::Error::Protocol("no SQLite writer connection".into()));
        };
        let mut connection = pool.acquire().await?;
        let result = bind_sqlite_step!(sqlx::query_as(&SQLITE_BATCH), rows)
            .fetch_all(&mut *connection)
            .await;
        match result {
            Ok(rows) => {
                let mut answer = StepAnswer::default();
                answer.read(rows);
                Ok(answer)
            }
            Err(error) => {
                // A statement failed: nothing may stay half-done on this
                // connection. If even the rollback fails, the connection is
                // dropped rather than reused in an unknown state.
                if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *connection).await {
                    if !rollback.to_string().contains("no transaction is active") {
                        connection.detach();
                    }
                }
                Err(error)
            }
        }
    }

    /// Any other batch: its parts one after another in one transaction.
    /// Fills in the outcomes of commits that consume a draft and returns the
    /// answers of the other parts, in order.
    async fn write_parts(
        &self,
        parts: &[Part<'_, '_>],
        outcomes: &mut [Option<ItemOutcome>],
    ) -> StoreResult<Vec<StepAnswer>> {
        let postgres = matches!(self.backend, Backend::Postgres(_));
        let mut answers = Vec::new();
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            for part in parts {
                let rows = match part {
                    Part::ConsumesDraft(index, commit) => {
                        let outcome = consume_draft!(tx, commit);
                        outcomes[*index] = Some(ItemOutcome::Commit(outcome));
                        continue;
                    }
                    Part::Rows(_, rows) => rows,
                };
                let mut answer = StepAnswer::default();
                if !postgres {
                    answer.read(bind_sqlite_step!(sqlx::query_as(&SQLITE_STEP), rows).fetch_all(&mut *tx).await?);
                    answers.push(answer);
                    continue;
                }
                if !rows.updates.is_empty() || !rows.creations.is_empty() {
                    answer.read(
                        sqlx::query_as(POSTGRES_CHAINS)
                            .bind(StepRows::json(&rows.updates))
                            .bind(StepRows::json(&rows.creations))
                            .bind(StepRows::json(&rows.history))
                            .bind(StepRows::json(&rows.idempotency))
                            .fetch_all(&mut *tx)
                            .await?,
                    );
                }
                if !rows.drafts.is_empty() {
                    let drafts = StepRows::json(&rows.drafts);
                    sqlx::query(&POSTGRES_INSERT_DRAFTS).bind(&drafts).execute(&mut *tx).await?;
                    answer.read(sqlx::query_as(POSTGRES_DRAFT_IDS).bind(&drafts).fetch_all(&mut *tx).await?);
                }
                answers.push(answer);
            }
            tx.commit().await?;
        });
        Ok(answers)
    }
}

/// SQLite: a whole step in one statement list. `$1` chains of existing keys
/// (compare-and-set), `$2` chains of new keys, `$3` their versions for
/// history, `$4` drafts, `$5` Idempotency-Key outcomes. Rows back:
/// `('written', key, NULL)` per chain written, `('draft', sent id, stored
/// id)` per draft. SQLite has one writer (this connection), so a key's row
/// holding a chain's last version and transaction id means this step wrote
/// it. `OR ROLLBACK`: any failure ends the whole transaction (a batch fails as
/// a whole anyway), which spares SQLite a statement journal, a copy of every
/// page a multi-row statement touches.
static SQLITE_STEP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let draft_values = DRAFT_COLUMNS_WITH_HASH
        .split(',')
        .map(|column| format!("d.value ->> '{}'", column.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "{} UPDATE OR ROLLBACK storage SET value = u.value ->> 'value', version = u.value ->> 'version', \
                 updated_at = u.value ->> 'updated_at', updated_by = u.value ->> 'updated_by', \
                 transaction_id = u.value ->> 'transaction_id' \
             FROM u WHERE storage.key = u.value ->> 'key' AND storage.version = u.value ->> 'expected' \
             RETURNING 'written', storage.key, NULL",
            sqlite_rows("u", 1)
        ),
        format!(
            "{} INSERT OR ROLLBACK INTO storage (key, value, version, updated_at, updated_by, transaction_id) \
             SELECT c.value ->> 'key', c.value ->> 'value', c.value ->> 'version', c.value ->> 'updated_at', \
                 c.value ->> 'updated_by', c.value ->> 'transaction_id' \
             FROM c WHERE true ON CONFLICT (key) DO NOTHING RETURNING 'written', key, NULL",
            sqlite_rows("c", 2)
        ),
        format!(
            "{} INSERT OR ROLLBACK INTO storage_history \
                 (key, version, value, record_count, updated_at, username, transaction_id) \
             SELECT h.value ->> 'key', h.value ->> 'version', h.value ->> 'value', h.value ->> 'record_count', \
                 h.value ->> 'updated_at', h.value ->> 'username', h.value ->> 'transaction_id' \
             FROM h WHERE {}",
            sqlite_rows("h", 3),
            sqlite_chain_written("h")
        ),
        format!(
            "{} INSERT OR ROLLBACK INTO pending_storage_saves ({DRAFT_COLUMNS_WITH_HASH}) \
             SELECT {draft_values} FROM d WHERE true ON CONFLICT DO NOTHING",
            sqlite_rows("d", 4)
        ),
        format!(
            "{} INSERT OR ROLLBACK INTO idempotency_keys \
                 (username, idempotency_key, request_hash, outcome, created_at) \
             SELECT i.value ->> 'username', i.value ->> 'idempotency_key', i.value ->> 'request_hash', \
                 i.value ->> 'outcome', i.value ->> 'created_at' \
             FROM i WHERE {} ON CONFLICT DO NOTHING",
            sqlite_rows("i", 5),
            sqlite_chain_written("i")
        ),
        // Each draft and the id it is stored under: its own, or that of the
        // identical pending draft (the unique index's columns).
        format!(
            "{} SELECT 'draft', d.value ->> 'id', p.id FROM d \
             JOIN pending_storage_saves p ON p.username = d.value ->> 'username' \
                 AND p.storage_key = d.value ->> 'storage_key' \
                 AND COALESCE(p.base_version, -1) = COALESCE(d.value ->> 'base_version', -1) \
                 AND p.payload_hash = d.value ->> 'payload_hash'",
            sqlite_rows("d", 4)
        ),
    ]
    .join("; ")
});

/// `WITH name AS (...)`: the rows of the JSON array parameter `$parameter`,
/// each turned once into SQLite's binary JSON, so that reading a field is a
/// lookup rather than a parse of the row's text per field (`MATERIALIZED`
/// keeps the conversion from being repeated at each use).
fn sqlite_rows(name: &str, parameter: usize) -> String {
    format!("WITH {name} AS MATERIALIZED (SELECT jsonb(value) AS value FROM json_each(${parameter}))")
}

/// The condition that row `name`'s chain was written in this step.
fn sqlite_chain_written(name: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM storage s WHERE s.key = {name}.value ->> 'key' \
         AND s.version = {name}.value ->> 'chain_version' \
         AND s.transaction_id = {name}.value ->> 'chain_transaction_id')"
    )
}

/// A batch of one step, in one round trip.
static SQLITE_BATCH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN IMMEDIATE; {}; COMMIT", *SQLITE_STEP));

const DRAFT_COLUMNS_WITH_HASH: &str = concat!(
    "id, storage_key, username, reason, payload, if_match, base_version, ",
    "current_version, transaction_id, attempts, last_error, created_at, updated_at, payload_hash"
);

/// PostgreSQL: a step's chains in one statement. The compare-and-sets run
/// first; only the keys they wrote get their versions into history and
/// their Idempotency-Key outcomes remembered.
const POSTGRES_CHAINS: &str = "WITH updated AS ( \
         UPDATE storage SET value = u.value, version = u.version, updated_at = u.updated_at, \
             updated_by = u.updated_by, transaction_id = u.transaction_id \
         FROM json_to_recordset($1::json) AS u (key text, value text, version bigint, \
             updated_at timestamptz, updated_by text, transaction_id text, expected bigint) \
         WHERE storage.key = u.key AND storage.version = u.expected RETURNING storage.key), \
     created AS ( \
         INSERT INTO storage (key, value, version, updated_at, updated_by, transaction_id) \
         SELECT key, value, version, updated_at, updated_by, transaction_id \
         FROM json_to_recordset($2::json) AS c (key text, value text, version bigint, \
             updated_at timestamptz, updated_by text, transaction_id text) \
         ON CONFLICT (key) DO NOTHING RETURNING key), \
     written AS (SELECT key FROM updated UNION ALL SELECT key FROM created), \
     history AS ( \
         INSERT INTO storage_history (key, version, value, record_count, updated_at, username, transaction_id) \
         SELECT key, version, value, record_count, updated_at, username, transaction_id \
         FROM json_to_recordset($3::json) AS h (key text, version bigint, value text, record_count bigint, \
             updated_at timestamptz, username text, transaction_id text) \
         WHERE h.key IN (SELECT key FROM written)), \
     remembered AS ( \
         INSERT INTO idempotency_keys (username, idempotency_key, request_hash, outcome, created_at) \
         SELECT username, idempotency_key, request_hash, outcome, created_at \
         FROM json_to_recordset($4::json) AS i (username text, idempotency_key text, request_hash text, \
             outcome text, created_at timestamptz, key text) \
         WHERE i.key IN (SELECT key FROM written) \
         ON CONFLICT DO NOTHING) \
     SELECT 'written', key, NULL::text FROM written";

static POSTGRES_INSERT_DRAFTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO pending_storage_saves ({DRAFT_COLUMNS_WITH_HASH}) \
         SELECT {DRAFT_COLUMNS_WITH_HASH} FROM json_to_recordset($1::json) AS d (id text, storage_key text, \
             username text, reason text, payload text, if_match text, base_version bigint, \
             current_version bigint, transaction_id text, attempts bigint, last_error text, \
             created_at timestamptz, updated_at timestamptz, payload_hash text) \
         ON CONFLICT DO NOTHING"
    )
});

const POSTGRES_DRAFT_IDS: &str = "SELECT 'draft', d.id, p.id FROM json_to_recordset($1::json) AS d \
         (id text, storage_key text, username text, base_version bigint, payload_hash text) \
     JOIN pending_storage_saves p ON p.username = d.username AND p.storage_key = d.storage_key \
     AND COALESCE(p.base_version, -1) = COALESCE(d.base_version, -1) AND p.payload_hash = d.payload_hash";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::drafts::DRAFT_COLUMNS;
    use crate::store::StoredValue;
    use std::sync::Arc;

    fn commit(key: &str, expected: Option<i64>) -> BatchItem {
        BatchItem::Commit(Commit {
            key: key.into(),
            expected_version: expected,
            next: Arc::new(StoredValue {
                value: serde_json::json!([]),
                version: expected.map_or(1, |v| v + 1),
                updated_at: Timestamp::now(),
            }),
            username: "u".into(),
            transaction_id: "t".into(),
            consumes_draft: None,
            idempotency: None,
        })
    }

    fn consuming(key: &str, expected: i64) -> BatchItem {
        let BatchItem::Commit(mut commit) = commit(key, Some(expected)) else {
            unreachable!("commit() makes a commit")
        };
        commit.consumes_draft = Some("draft".into());
        BatchItem::Commit(commit)
    }

    /// Each step as `(key, [indexes])` per chain, or `("draft", [index])`.
    fn shape_of(steps: &[Step]) -> Vec<Vec<(String, Vec<usize>)>> {
        steps
            .iter()
            .map(|step| match step {
                Step::Chains(chains) => chains
                    .iter()
                    .map(|c| (c.head().key.clone(), c.0.iter().map(|(i, _)| *i).collect()))
                    .collect(),
                Step::ConsumesDraft(index, _) => vec![("draft".into(), vec![*index])],
            })
            .collect()
    }

    fn chain(key: &str, indexes: &[usize]) -> (String, Vec<usize>) {
        (key.to_owned(), indexes.to_vec())
    }

    #[test]
    fn each_keys_commits_that_follow_one_another_form_one_chain() {
        let items = [
            commit("a", Some(1)),
            commit("b", None),
            commit("a", Some(2)),
            commit("a", Some(3)),
        ];
        assert_eq!(shape_of(&plan(&items)), [[chain("a", &[0, 2, 3]), chain("b", &[1])]]);
    }

    #[test]
    fn a_commit_that_breaks_its_keys_chain_starts_a_new_step() {
        // The second commit of `a` expects version 7, not the 2 the first
        // makes: written one by one it is judged after the first.
        let items = [
            commit("a", Some(1)),
            commit("b", Some(4)),
            commit("a", Some(7)),
            commit("b", Some(5)),
        ];
        assert_eq!(
            shape_of(&plan(&items)),
            [
                vec![chain("a", &[0]), chain("b", &[1])],
                vec![chain("a", &[2]), chain("b", &[3])]
            ]
        );
    }

    #[test]
    fn a_commit_that_consumes_a_draft_runs_alone_in_its_place() {
        let items = [
            commit("a", Some(1)),
            consuming("a", 2),
            commit("c", None),
            commit("a", Some(3)),
        ];
        assert_eq!(
            shape_of(&plan(&items)),
            [
                vec![chain("a", &[0])],
                vec![chain("draft", &[1])],
                vec![chain("c", &[2]), chain("a", &[3])],
            ]
        );
    }

    #[test]
    fn a_chain_is_one_compare_and_set_from_its_first_expected_version_to_its_last_value() {
        let items = [commit("a", Some(1)), commit("a", Some(2)), commit("n", None)];
        let steps = plan(&items);
        let [Step::Chains(chains)] = steps.as_slice() else {
            panic!("one step of chains: {steps:?}")
        };
        let rows = StepRows::of_chains(chains);
        assert_eq!(
            rows.updates.iter().map(|r| (r.expected, r.version)).collect::<Vec<_>>(),
            [(Some(1), 3)]
        );
        assert_eq!(rows.creations.iter().map(|r| r.version).collect::<Vec<_>>(), [1]);
        assert_eq!(
            rows.history
                .iter()
                .map(|r| (r.key.as_str(), r.version, r.chain_version))
                .collect::<Vec<_>>(),
            [("a", 2, 3), ("a", 3, 3), ("n", 1, 1)]
        );
    }

    #[test]
    fn the_sqlite_draft_insert_reads_every_column_the_table_is_given() {
        assert_eq!(DRAFT_COLUMNS_WITH_HASH, format!("{DRAFT_COLUMNS}, payload_hash"));
        assert!(SQLITE_STEP.contains("d.value ->> 'payload_hash' FROM d WHERE true"));
        let row = serde_json::to_value(DraftRow {
            id: "i".into(),
            storage_key: "k".into(),
            username: "u".into(),
            reason: "conflict",
            payload: "[]".into(),
            if_match: None,
            base_version: None,
            current_version: None,
            transaction_id: "t".into(),
            attempts: 0,
            last_error: None,
            created_at: "c".into(),
            updated_at: "u".into(),
            payload_hash: "h".into(),
        })
        .expect("a draft row serialises");
        let fields: Vec<&str> = row.as_object().expect("an object").keys().map(String::as_str).collect();
        let columns: Vec<&str> = DRAFT_COLUMNS_WITH_HASH.split(',').map(str::trim).collect();
        assert_eq!(fields, columns);
    }

    #[test]
    fn times_are_stored_as_a_bound_datetime_would_be() {
        let at = Timestamp::parse("2026-12-04T04:54:32.128374Z").expect("a valid time");
        assert_eq!(time_text(at), "2026-12-04T04:54:32.128374+00:00");
    }
}
