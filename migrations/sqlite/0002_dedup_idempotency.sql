-- Safer retries.
--
-- 1. Drafts are deduplicated: the same stale write sent five times leaves one
--    draft. `payload_hash` (SHA-256 of the stored payload text) with the
--    owner, the key and the base version identifies a draft's content.
-- 2. A third reason, `unsafe_overwrite`: a write without If-Match, let
--    through by --allow-unconditional, that would have removed or changed
--    records.
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt.

CREATE TABLE pending_storage_saves_v2 (
    id              TEXT PRIMARY KEY,
    storage_key     TEXT NOT NULL,
    username        TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('conflict', 'write_failed', 'unsafe_overwrite')),
    payload         TEXT NOT NULL,
    payload_hash    TEXT,
    if_match        TEXT,
    base_version    INTEGER,
    current_version INTEGER,
    transaction_id  TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
INSERT INTO pending_storage_saves_v2
    (id, storage_key, username, reason, payload, if_match, base_version, current_version,
     transaction_id, attempts, last_error, created_at, updated_at)
SELECT id, storage_key, username, reason, payload, if_match, base_version, current_version,
       transaction_id, attempts, last_error, created_at, updated_at
FROM pending_storage_saves;
DROP TABLE pending_storage_saves;
ALTER TABLE pending_storage_saves_v2 RENAME TO pending_storage_saves;
CREATE INDEX pending_storage_saves_by_user ON pending_storage_saves (username, created_at);
CREATE INDEX pending_storage_saves_by_time ON pending_storage_saves (created_at);
CREATE INDEX pending_storage_saves_by_key ON pending_storage_saves (storage_key);
-- Drafts from before this migration have no hash and never collide.
CREATE UNIQUE INDEX pending_storage_saves_dedup
    ON pending_storage_saves (username, storage_key, COALESCE(base_version, -1), payload_hash);

-- Idempotency-Key: the outcome of the first request with a key, per user,
-- so a retry gets the same answer and changes nothing. Kept at least 24 h.
CREATE TABLE idempotency_keys (
    username        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (username, idempotency_key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
