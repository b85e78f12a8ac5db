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
//! The commits are cut into steps ([`plan`]), each with one commit per key,
//! so that a step's compare-and-sets give the outcomes of one-by-one
//! commits. Commits that consume a draft run alone, each with a savepoint,
//! since only they can find half-way that they must not happen.

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
    /// The draft was not inserted and no identical pending one was found
    /// (one deleted by another connection in between, on PostgreSQL). The
    /// rest of the batch is committed; the caller keeps this draft elsewhere.
    DraftNotStored,
}

/// The commits of a batch, in the order they are written.
#[derive(Debug)]
enum Step<'a> {
    /// Commits of distinct keys, none consuming a draft: `(index in the
    /// batch, commit)`.
    Commits(Vec<(usize, &'a Commit)>),
    /// A commit that recovers a draft, alone.
    ConsumesDraft(usize, &'a Commit),
}

/// Cuts the batch's commits into steps with the same outcomes as writing the
/// commits one by one in order: within a step each key has one commit, so
/// each is its own compare-and-set, and a second commit of a key starts a
/// new step, judged after the one before it. A key actor waits for each of
/// its commits, so today a batch holds at most one commit per key and (but
/// for recovered drafts) is one step.
fn plan(items: &[BatchItem]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut commits: Vec<(usize, &Commit)> = Vec::new();
    let mut keys: HashSet<&str> = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let BatchItem::Commit(commit) = item else { continue };
        if commit.consumes_draft.is_some() || keys.contains(commit.key.as_str()) {
            keys.clear();
            if !commits.is_empty() {
                steps.push(Step::Commits(std::mem::take(&mut commits)));
            }
        }
        if commit.consumes_draft.is_some() {
            steps.push(Step::ConsumesDraft(index, commit));
            continue;
        }
        keys.insert(&commit.key);
        commits.push((index, commit));
    }
    if !commits.is_empty() {
        steps.push(Step::Commits(commits));
    }
    steps
}

/// The JSON parameters of one step: each table's rows as one array.
#[derive(Default)]
struct StepRows {
    /// `storage` rows to compare-and-set (a commit to an existing key).
    updates: Vec<StorageRow>,
    /// `storage` rows to create (a commit to a key that must not exist yet).
    creations: Vec<StorageRow>,
    history: Vec<HistoryRow>,
    drafts: Vec<DraftRow>,
    /// Outcomes to remember for `Idempotency-Key`s, kept only with a
    /// written commit (in the same transaction as the commit).
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
    /// The commit's key and expected version (none: it creates the key): on
    /// SQLite the row goes in only if the compare-and-set that follows it in
    /// the step will succeed.
    expected: Option<i64>,
}

#[derive(Serialize)]
struct IdempotencyRow {
    username: String,
    idempotency_key: String,
    request_hash: String,
    outcome: String,
    created_at: String,
    /// The storage key and the commit's expected version (as for history).
    key: String,
    expected: Option<i64>,
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
    fn of_commits(commits: &[(usize, &Commit)]) -> Self {
        let mut rows = Self::default();
        for &(_, commit) in commits {
            let value = commit.next.value.to_string();
            rows.history.push(HistoryRow {
                key: commit.key.clone(),
                version: commit.next.version,
                value: value.clone(),
                record_count: commit.next.value.as_array().map(|a| a.len() as i64),
                updated_at: time_text(commit.next.updated_at),
                username: commit.username.clone(),
                transaction_id: commit.transaction_id.clone(),
                expected: commit.expected_version,
            });
            if let Some(record) = &commit.idempotency {
                rows.idempotency.push(IdempotencyRow {
                    username: record.username.clone(),
                    idempotency_key: record.key.clone(),
                    request_hash: record.request_hash.clone(),
                    outcome: record.outcome.clone(),
                    created_at: time_text(Timestamp::now()),
                    key: commit.key.clone(),
                    expected: commit.expected_version,
                });
            }
            let row = StorageRow {
                key: commit.key.clone(),
                value,
                version: commit.next.version,
                updated_at: time_text(commit.next.updated_at),
                updated_by: commit.username.clone(),
                transaction_id: commit.transaction_id.clone(),
                expected: commit.expected_version,
            };
            match commit.expected_version {
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

/// What a step's statements answered: the keys whose commit was written, and
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

/// The batch as its statements take it: steps of commits with their rows
/// (the drafts travel with the last one, or alone), and commits that consume
/// a draft.
enum Part<'s, 'a> {
    Rows(Option<&'s [(usize, &'a Commit)]>, StepRows),
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
                Step::Commits(commits) => Part::Rows(Some(commits), StepRows::of_commits(commits)),
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
            if let Part::Rows(Some(commits), _) = part {
                for &(index, commit) in commits.iter() {
                    let outcome = if answer.written.contains(&commit.key) {
                        CommitOutcome::Committed
                    } else {
                        CommitOutcome::VersionMoved
                    };
                    outcomes[index] = Some(ItemOutcome::Commit(outcome));
                }
            }
            draft_ids.extend(answer.draft_ids);
        }
        for (index, item) in items.iter().enumerate() {
            if let BatchItem::Draft(draft) = item {
                outcomes[index] = Some(match draft_ids.get(&draft.id) {
                    Some(stored) => ItemOutcome::DraftSaved(stored.clone()),
                    None => ItemOutcome::DraftNotStored,
                });
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
                        sqlx::query_as(POSTGRES_COMMITS)
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

/// SQLite: a whole step in one statement list. `$1` commits to existing
/// keys (compare-and-set), `$2` commits that create keys, `$3` their
/// versions for history, `$4` drafts, `$5` Idempotency-Key outcomes. Rows
/// back: `('written', key, NULL)` per commit written, `('draft', sent id,
/// stored id)` per draft. History and Idempotency-Key rows go in first, each
/// only where its commit's compare-and-set will succeed: this connection is
/// the only writer and a step has one commit per key, so the condition read
/// just before the `UPDATE` is the one the `UPDATE` finds.
///
/// `or_rollback`: any failure ends the whole transaction at once, which
/// spares SQLite a statement journal (a copy of every page a multi-row
/// statement touches). Only for a transaction SQLite alone keeps track of
/// ([`SQLITE_BATCH`]): inside one of sqlx's, its own `ROLLBACK` would then
/// find no transaction, and sqlx would lose count of its nesting.
fn sqlite_step(or_rollback: bool) -> String {
    let or = if or_rollback { " OR ROLLBACK" } else { "" };
    let draft_values = DRAFT_COLUMNS_WITH_HASH
        .split(',')
        .map(|column| format!("d.value ->> '{}'", column.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "{} INSERT{or} INTO storage_history \
                 (key, version, value, record_count, updated_at, username, transaction_id) \
             SELECT h.value ->> 'key', h.value ->> 'version', h.value ->> 'value', h.value ->> 'record_count', \
                 h.value ->> 'updated_at', h.value ->> 'username', h.value ->> 'transaction_id' \
             FROM h WHERE {}",
            sqlite_rows("h", 3),
            sqlite_will_be_written("h")
        ),
        format!(
            "{} INSERT{or} INTO idempotency_keys \
                 (username, idempotency_key, request_hash, outcome, created_at) \
             SELECT i.value ->> 'username', i.value ->> 'idempotency_key', i.value ->> 'request_hash', \
                 i.value ->> 'outcome', i.value ->> 'created_at' \
             FROM i WHERE {} ON CONFLICT DO NOTHING",
            sqlite_rows("i", 5),
            sqlite_will_be_written("i")
        ),
        format!(
            "{} UPDATE{or} storage SET value = u.value ->> 'value', version = u.value ->> 'version', \
                 updated_at = u.value ->> 'updated_at', updated_by = u.value ->> 'updated_by', \
                 transaction_id = u.value ->> 'transaction_id' \
             FROM u WHERE storage.key = u.value ->> 'key' AND storage.version = u.value ->> 'expected' \
             RETURNING 'written', storage.key, NULL",
            sqlite_rows("u", 1)
        ),
        format!(
            "{} INSERT{or} INTO storage (key, value, version, updated_at, updated_by, transaction_id) \
             SELECT c.value ->> 'key', c.value ->> 'value', c.value ->> 'version', c.value ->> 'updated_at', \
                 c.value ->> 'updated_by', c.value ->> 'transaction_id' \
             FROM c WHERE true ON CONFLICT (key) DO NOTHING RETURNING 'written', key, NULL",
            sqlite_rows("c", 2)
        ),
        format!(
            "{} INSERT{or} INTO pending_storage_saves ({DRAFT_COLUMNS_WITH_HASH}) \
             SELECT {draft_values} FROM d WHERE true ON CONFLICT DO NOTHING",
            sqlite_rows("d", 4)
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
}

/// A step inside a transaction sqlx opened (a batch of several parts).
static SQLITE_STEP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sqlite_step(false));

/// `WITH name AS (...)`: the rows of the JSON array parameter `$parameter`,
/// each turned once into SQLite's binary JSON, so that reading a field is a
/// lookup rather than a parse of the row's text per field (`MATERIALIZED`
/// keeps the conversion from being repeated at each use).
fn sqlite_rows(name: &str, parameter: usize) -> String {
    format!("WITH {name} AS MATERIALIZED (SELECT jsonb(value) AS value FROM json_each(${parameter}))")
}

/// The condition that row `name`'s commit will pass its compare-and-set:
/// the key holds the expected version, or (expecting none) does not exist.
fn sqlite_will_be_written(name: &str) -> String {
    format!(
        "CASE WHEN {name}.value ->> 'expected' IS NULL \
         THEN NOT EXISTS (SELECT 1 FROM storage s WHERE s.key = {name}.value ->> 'key') \
         ELSE EXISTS (SELECT 1 FROM storage s WHERE s.key = {name}.value ->> 'key' \
             AND s.version = {name}.value ->> 'expected') END"
    )
}

/// A batch of one step, in one round trip, in a transaction only SQLite
/// keeps track of (its error path ends it with a plain `ROLLBACK`).
static SQLITE_BATCH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN IMMEDIATE; {}; COMMIT", sqlite_step(true)));

const DRAFT_COLUMNS_WITH_HASH: &str = concat!(
    "id, storage_key, username, reason, payload, if_match, base_version, ",
    "current_version, transaction_id, attempts, last_error, created_at, updated_at, payload_hash"
);

/// PostgreSQL: a step's commits in one statement. The compare-and-sets run
/// first; only the keys they wrote get their versions into history and
/// their Idempotency-Key outcomes remembered.
const POSTGRES_COMMITS: &str = "WITH updated AS ( \
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
        commit_by(key, expected, "t")
    }

    fn commit_by(key: &str, expected: Option<i64>, transaction_id: &str) -> BatchItem {
        BatchItem::Commit(Commit {
            key: key.into(),
            expected_version: expected,
            next: Arc::new(StoredValue {
                value: serde_json::json!([transaction_id]),
                version: expected.map_or(1, |v| v + 1),
                updated_at: Timestamp::now(),
            }),
            username: "u".into(),
            transaction_id: transaction_id.into(),
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

    /// Each step as its `(key, index)` pairs; a draft-consuming commit as `("draft", index)`.
    fn shape_of(steps: &[Step]) -> Vec<Vec<(String, usize)>> {
        steps
            .iter()
            .map(|step| match step {
                Step::Commits(commits) => commits.iter().map(|(i, c)| (c.key.clone(), *i)).collect(),
                Step::ConsumesDraft(index, _) => vec![("draft".into(), *index)],
            })
            .collect()
    }

    fn at(key: &str, index: usize) -> (String, usize) {
        (key.to_owned(), index)
    }

    #[test]
    fn a_second_commit_of_a_key_starts_a_new_step() {
        let items = [
            commit("a", Some(1)),
            commit("b", None),
            commit("a", Some(2)),
            commit("c", Some(4)),
            commit("a", Some(3)),
        ];
        assert_eq!(
            shape_of(&plan(&items)),
            [
                vec![at("a", 0), at("b", 1)],
                vec![at("a", 2), at("c", 3)],
                vec![at("a", 4)]
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
            [vec![at("a", 0)], vec![at("draft", 1)], vec![at("c", 2), at("a", 3)]]
        );
    }

    /// The outcomes of the commits of one batch.
    async fn commit_outcomes(store: &Store, items: &[BatchItem]) -> Vec<CommitOutcome> {
        let outcomes = store.write_batch(items).await.expect("the batch is written");
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                ItemOutcome::Commit(outcome) => outcome,
                draft => panic!("a commit answered as a draft: {draft:?}"),
            })
            .collect()
    }

    /// A migrated store on a fresh SQLite file, kept while the directory lives.
    async fn sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("batch.db").display());
        let store = Store::connect(&url, 2).await.expect("the database opens");
        store.migrate().await.expect("the migrations apply");
        (dir, store)
    }

    #[tokio::test]
    async fn a_batch_gives_the_outcomes_of_one_by_one_commits_on_sqlite() {
        use CommitOutcome::{Committed, VersionMoved};
        let (_dir, store) = sqlite_store().await;

        let created = commit_outcomes(&store, &[commit_by("a", None, "t1"), commit_by("a", None, "t1b")]).await;
        assert_eq!(created, [Committed, VersionMoved]);
        // Two versions of one key in one batch, each its own compare-and-set.
        let chained = commit_outcomes(&store, &[commit_by("a", Some(1), "t2"), commit_by("a", Some(2), "t3")]).await;
        assert_eq!(chained, [Committed, Committed]);
        // The first expects a version already gone; the second the current one.
        let late = commit_outcomes(&store, &[commit_by("a", Some(2), "t4"), commit_by("a", Some(3), "t5")]).await;
        assert_eq!(late, [VersionMoved, Committed]);
        // The same commit twice: it happens once, and the batch still stands.
        let twice = commit_outcomes(&store, &[commit_by("a", Some(4), "t6"), commit_by("a", Some(4), "t6")]).await;
        assert_eq!(twice, [Committed, VersionMoved]);

        let stored = store.load_value("a").await.expect("a read").expect("the key exists");
        assert_eq!((stored.version, stored.value), (5, serde_json::json!(["t6"])));
        let history = store.history("a", 10).await.expect("a read");
        let versions: Vec<(i64, &str)> = history.iter().map(|h| (h.version, h.transaction_id.as_str())).collect();
        assert_eq!(versions, [(5, "t6"), (4, "t5"), (3, "t3"), (2, "t2"), (1, "t1")]);
        store.close().await;
    }

    fn draft(payload: serde_json::Value) -> Draft {
        use crate::domain::draft::{DraftReason, DraftSource};
        Draft::new(DraftSource {
            key: "a".into(),
            username: "u".into(),
            reason: DraftReason::Conflict,
            payload,
            if_match: Some("\"1\"".into()),
            base_version: Some(1),
            current_version: Some(2),
            transaction_id: "t".into(),
            last_error: None,
        })
    }

    #[tokio::test]
    async fn a_draft_neither_stored_nor_found_does_not_undo_its_batch() {
        let (_dir, store) = sqlite_store().await;

        let first = draft(serde_json::json!(["first"]));
        let stored = store
            .write_batch(&[BatchItem::Draft(first.clone())])
            .await
            .expect("a batch");
        assert_eq!(stored, [ItemOutcome::DraftSaved(first.id.clone())]);
        // Identical: answered with the pending draft's id.
        let mut same = draft(serde_json::json!(["first"]));
        same.id = "another-id".into();
        // Same id, other payload: not inserted, and nothing like it pending.
        let mut clash = draft(serde_json::json!(["other"]));
        clash.id = first.id.clone();
        let outcomes = store
            .write_batch(&[commit("k", None), BatchItem::Draft(same), BatchItem::Draft(clash)])
            .await
            .expect("the batch stands");
        assert_eq!(
            outcomes,
            [
                ItemOutcome::Commit(CommitOutcome::Committed),
                ItemOutcome::DraftSaved(first.id.clone()),
                ItemOutcome::DraftNotStored
            ]
        );
        assert!(store.load_value("k").await.expect("a read").is_some());
        store.close().await;
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
