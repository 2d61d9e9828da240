-- The work an approval request delegated to an approval integration still owes its partner:
-- one row per request, naming the next step (create the external record, poll its status,
-- report the apply, cancel it) and when it is due. Polling writes only this row, never the
-- request entity, so a status check every few minutes does not flood the change history;
-- what a status means for the request (approved, rejected) is committed as an audited change.
CREATE TABLE approval_jobs (
    request_id TEXT PRIMARY KEY,
    -- creationRequest | statusRequest | postApplyRequest | deletionRequest
    step TEXT NOT NULL,
    -- due | done | failed
    state TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- Failed attempts of the current step (reset when a step succeeds).
    attempts BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    last_error TEXT,
    -- JSON: the integration, its environment values, the template event, and what the
    -- partner answered (external id, status, link, last check).
    data TEXT NOT NULL
);
CREATE INDEX approval_jobs_due ON approval_jobs (state, due_at);
