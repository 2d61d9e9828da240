-- Outbound deliveries (webhooks, integration subscriptions): one row per (audit entry,
-- destination), inserted in the transaction of the change it reports, so a change that
-- commits is never lost and one that rolls back is never sent.
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, seq);
CREATE INDEX deliveries_destination ON deliveries (destination, seq);

-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
