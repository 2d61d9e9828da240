-- Every entity (project, environment, flag, segment, account, member, token) is one JSON
-- document addressed by (kind, scope, key), with a version for optimistic concurrency.
CREATE TABLE entities (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, scope, key)
) WITHOUT ROWID;

-- Secondary unique names that resolve to an entity: SDK keys, mobile keys, client-side IDs,
-- token hashes.
CREATE TABLE entity_aliases (
    alias TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX entity_aliases_target ON entity_aliases (kind, scope, key);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    date INTEGER NOT NULL,
    kind TEXT NOT NULL,
    search TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX audit_log_date ON audit_log (date, seq);

-- Changes for later consumers (SDK streams, integrations, webhooks), written in the same
-- transaction as the change itself.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
