-- Safer retries: deduplicated drafts, the `unsafe_overwrite` reason, and
-- Idempotency-Key outcomes. See the SQLite migration of the same name.

ALTER TABLE pending_storage_saves ADD COLUMN payload_hash TEXT;
ALTER TABLE pending_storage_saves DROP CONSTRAINT pending_storage_saves_reason_check;
ALTER TABLE pending_storage_saves ADD CONSTRAINT pending_storage_saves_reason_check
    CHECK (reason IN ('conflict', 'write_failed', 'unsafe_overwrite'));
-- Drafts from before this migration have no hash and never collide.
CREATE UNIQUE INDEX pending_storage_saves_dedup
    ON pending_storage_saves (username, storage_key, COALESCE(base_version, -1), payload_hash);

CREATE TABLE idempotency_keys (
    username        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (username, idempotency_key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
