-- Outbound deliveries (webhooks, integration subscriptions): one row per (audit entry,
-- destination), inserted in the transaction of the change it reports, so a change that
-- commits is never lost and one that rolls back is never sent.
CREATE TABLE deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL,
    audit_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at, seq);
CREATE INDEX deliveries_destination ON deliveries (destination, seq);

-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
