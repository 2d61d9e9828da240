//! Delivery queue types: rows written with a change, claimed by workers with a lease,
//! and the attempt log.

/// A delivery to create in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Unique id, sent to the receiver so it can drop duplicates (delivery is at-least-once).
    pub id: String,
    /// `webhook/<id>` or `integration/<integrationKey>/<id>`.
    pub destination: String,
    pub audit_id: String,
    /// 0: due at once, for whichever worker claims it. Otherwise leased until then (Unix ms)
    /// to the node that committed it, which hands it to its worker in memory; should that
    /// node die first, the lease expires and any worker claims it.
    pub lease_until: i64,
}

/// A due delivery a worker now holds until its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub id: String,
    pub destination: String,
    pub audit_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Give up: attempts exhausted, or nothing can be sent (destination gone).
    Failed,
}

impl DeliveryNext {
    pub fn state(self) -> &'static str {
        match self {
            DeliveryNext::Delivered => "delivered",
            DeliveryNext::RetryAt(_) => "pending",
            DeliveryNext::Failed => "failed",
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub id: String,
    /// 1-based number of this attempt.
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// Kept only where the integration allows it (`includeErrorResponseBody`).
    pub response_body: Option<String>,
    pub next: DeliveryNext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub id: String,
    pub destination: String,
    pub audit_id: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

pub(crate) type RecordRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) fn record(row: RecordRow) -> DeliveryRecord {
    let (
        seq,
        id,
        destination,
        audit_id,
        state,
        attempts,
        next_attempt_at,
        created_at,
        updated_at,
        last_status,
        last_error,
    ) = row;
    DeliveryRecord {
        seq,
        id,
        destination,
        audit_id,
        state,
        attempts,
        next_attempt_at,
        created_at,
        updated_at,
        last_status,
        last_error,
    }
}

pub(crate) mod sql {
    pub const GET: &str = "SELECT seq, id, destination, audit_id, state, attempts, next_attempt_at, created_at, updated_at, last_status, last_error FROM deliveries WHERE id = ?";
    pub const LIST: &str = "SELECT seq, id, destination, audit_id, state, attempts, next_attempt_at, created_at, updated_at, last_status, last_error FROM deliveries WHERE destination = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
    pub const ATTEMPTS: &str = "SELECT attempt, at, status, latency_ms, error, response_body FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt";
    pub const REQUEUE: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = 0, updated_at = ? WHERE id = ?";
    pub const COUNT_PENDING: &str =
        "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND destination = ?";

    /// Rows per multi-row statement: 7 bound values a row stays far below both SQLite's
    /// (32,766) and Postgres' (65,535) limit on parameters.
    pub const CHUNK: usize = 500;

    fn rows(count: usize, row: &str) -> String {
        vec![row; count].join(", ")
    }

    /// Inserts `count` deliveries: (id, destination, audit_id, next_attempt_at, lease_until,
    /// created_at, updated_at) each.
    pub fn insert(count: usize) -> String {
        format!(
            "INSERT INTO deliveries (id, destination, audit_id, state, attempts, next_attempt_at, \
             lease_until, created_at, updated_at) VALUES {}",
            rows(count, "(?, ?, ?, 'pending', 0, ?, ?, ?, ?)")
        )
    }

    /// Sets the next state of `count` deliveries from one list of values (id, state,
    /// attempts, next_attempt_at, updated_at, last_status, last_error). `VALUES` columns are
    /// `column1…` in both dialects; the casts give Postgres the types of untyped parameters.
    pub fn record(count: usize) -> String {
        format!(
            "UPDATE deliveries SET state = v.column2, attempts = v.column3, \
             next_attempt_at = v.column4, lease_until = 0, updated_at = v.column5, \
             last_status = v.column6, last_error = v.column7 FROM (VALUES {}) AS v \
             WHERE deliveries.id = v.column1",
            rows(
                count,
                "(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), \
                 CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT))"
            )
        )
    }

    /// Appends `count` attempts to the log.
    pub fn insert_attempts(count: usize) -> String {
        format!(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status, latency_ms, error, \
             response_body) VALUES {} ON CONFLICT DO NOTHING",
            rows(count, "(?, ?, ?, ?, ?, ?, ?)")
        )
    }

    /// Claims due rows: the outer `lease_until` test re-checks each row after any lock wait,
    /// so two workers (or nodes) never hold the same delivery at once.
    pub fn claim(excluded: usize) -> String {
        let exclude = if excluded == 0 {
            String::new()
        } else {
            format!(
                " AND destination NOT IN ({})",
                vec!["?"; excluded].join(", ")
            )
        };
        format!(
            "UPDATE deliveries SET lease_until = ? WHERE seq IN (SELECT seq FROM deliveries \
             WHERE state = 'pending' AND next_attempt_at <= ? AND lease_until <= ?{exclude} \
             ORDER BY seq LIMIT ?) AND lease_until <= ? \
             RETURNING seq, id, destination, audit_id, attempts"
        )
    }

    pub const ALL: &[&str] = &[GET, LIST, ATTEMPTS, REQUEUE, COUNT_PENDING];
}
