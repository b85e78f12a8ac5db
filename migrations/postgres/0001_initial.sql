-- The coordinator's schema on PostgreSQL: the same tables and columns as the
-- SQLite schema, so the pilot runbook's verification queries run unchanged
-- with psql. Values and payloads are TEXT rather than JSONB on purpose: JSONB
-- reorders keys and normalises numbers, and a value must come back exactly
-- as it was written.

-- People who can log in. Passwords are argon2 hashes, never the password.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL
);

-- Login sessions, shared by every instance. Only the SHA-256 of a token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The current value of each key; every commit is a compare-and-set on
-- `version`, so two instances can never both win.
CREATE TABLE storage (
    key            TEXT PRIMARY KEY,
    value          TEXT NOT NULL,
    version        BIGINT NOT NULL CHECK (version >= 1),
    updated_at     TIMESTAMPTZ NOT NULL,
    updated_by     TEXT NOT NULL,
    transaction_id TEXT NOT NULL
);

-- Every committed version, written in the same transaction as `storage`.
CREATE TABLE storage_history (
    key            TEXT NOT NULL,
    version        BIGINT NOT NULL,
    value          TEXT NOT NULL,
    record_count   BIGINT,
    updated_at     TIMESTAMPTZ NOT NULL,
    username       TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
CREATE INDEX storage_history_by_time ON storage_history (key, updated_at);

-- Drafts: payloads that were not committed, kept exactly as received.
CREATE TABLE pending_storage_saves (
    id              TEXT PRIMARY KEY,
    storage_key     TEXT NOT NULL,
    username        TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('conflict', 'write_failed')),
    payload         TEXT NOT NULL,
    if_match        TEXT,
    base_version    BIGINT,
    current_version BIGINT,
    transaction_id  TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_storage_saves_by_user ON pending_storage_saves (username, created_at);
CREATE INDEX pending_storage_saves_by_time ON pending_storage_saves (created_at);
CREATE INDEX pending_storage_saves_by_key ON pending_storage_saves (storage_key);
