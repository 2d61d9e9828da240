-- Where each feature-store / big-segment-store configuration's sync stands: the environment
-- version last written to the store, and the last failure. Protocol state of the sync
-- engines (one row per configuration, rewritten on every push), not a change anyone reviews,
-- so it lives beside the configuration entity instead of inside its audited document.
CREATE TABLE store_sync (
    config_id TEXT PRIMARY KEY,
    -- The environment version (outbox sequence) the store holds; 0 = never written.
    pushed_version BIGINT NOT NULL,
    pushed_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    -- Consecutive failed attempts since the last success, and when the next one is due.
    failures BIGINT NOT NULL,
    next_retry_at BIGINT
);
