-- Every entity (project, environment, flag, segment, account, member, token) is one JSON
-- document addressed by (kind, scope, key), with a version for optimistic concurrency.
-- The document is TEXT, not JSONB: it is always read whole and must keep its field order.
CREATE TABLE entities (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, scope, key)
);

CREATE TABLE entity_aliases (
    alias TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE INDEX entity_aliases_target ON entity_aliases (kind, scope, key);

CREATE TABLE audit_log (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    date BIGINT NOT NULL,
    kind TEXT NOT NULL,
    search TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX audit_log_date ON audit_log (date, seq);

CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
