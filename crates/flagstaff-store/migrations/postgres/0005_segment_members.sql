-- Synced-segment (big segment) membership, one row per (environment, segment, context key),
-- so a batch of changes costs O(batch) however large the cohort is. The segment document
-- itself holds no members (it is `unbounded`); its version still rises with every batch that
-- changes something, in the same transaction.
--
-- `environment_id` is the environment's `_id` (its client-side ID). `included = false` is a
-- removed member, kept as a tombstone so an incremental reader (a big-segment store syncer)
-- sees the removal. `seq` comes from `segment_member_seq` and rises with every insert or
-- update anywhere in the database: read changes with `seq > cursor ORDER BY seq`.
CREATE TABLE segment_members (
    environment_id TEXT NOT NULL,
    segment_key TEXT NOT NULL,
    context_key TEXT NOT NULL,
    included BOOLEAN NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (environment_id, segment_key, context_key)
);
CREATE INDEX segment_members_changes ON segment_members (environment_id, seq);
-- Flagstaff's own evaluation asks which segments include a context key.
CREATE INDEX segment_members_context ON segment_members (environment_id, context_key);

-- One counter row. Taking numbers from it is an UPDATE, so on Postgres writers of members
-- hold its row lock until they commit: sequence order is commit order, and a reader never
-- finds a lower seq committed after it has read past it.
CREATE TABLE segment_member_seq (
    id INTEGER PRIMARY KEY,
    last BIGINT NOT NULL
);
INSERT INTO segment_member_seq (id, last) VALUES (1, 0);
