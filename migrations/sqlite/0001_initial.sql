-- The coordinator's schema on SQLite. Table and column names are a contract:
-- the pilot runbook's verification queries read `storage` and
-- `pending_storage_saves` directly. Times are RFC 3339 UTC text, which sorts
-- in time order, so `ORDER BY created_at DESC` means newest first.

-- People who can log in. Passwords are argon2 hashes, never the password.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL
);

-- Login sessions. Only the SHA-256 of a token is kept: a copy of this table
-- cannot be replayed as a login.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The current value of each key. `version` starts at 1 and grows by one per
-- commit; every commit is a compare-and-set on it (`WHERE version = $old`),
-- so two writers can never both win, whatever process they run in.
CREATE TABLE storage (
    key            TEXT PRIMARY KEY,
    value          TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL,
    transaction_id TEXT NOT NULL
);

-- Every committed version, written in the same transaction as `storage`:
-- the audit trail, and the base a draft is merged against. The primary key
-- makes reusing a version number impossible.
CREATE TABLE storage_history (
    key            TEXT NOT NULL,
    version        INTEGER NOT NULL,
    value          TEXT NOT NULL,
    record_count   INTEGER,
    updated_at     TEXT NOT NULL,
    username       TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE INDEX storage_history_by_time ON storage_history (key, updated_at);

-- Drafts: payloads that were not committed (a stale write, or a write that
-- failed on our side), kept exactly as received until their owner submits
-- or discards them.
CREATE TABLE pending_storage_saves (
    id              TEXT PRIMARY KEY,
    storage_key     TEXT NOT NULL,
    username        TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('conflict', 'write_failed')),
    payload         TEXT NOT NULL,
    if_match        TEXT,
    base_version    INTEGER,
    current_version INTEGER,
    transaction_id  TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX pending_storage_saves_by_user ON pending_storage_saves (username, created_at);
CREATE INDEX pending_storage_saves_by_time ON pending_storage_saves (created_at);
CREATE INDEX pending_storage_saves_by_key ON pending_storage_saves (storage_key);
