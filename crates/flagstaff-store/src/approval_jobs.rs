//! Approval-integration jobs: what an approval request delegated to a partner still owes it
//! (`migrations/*/0006_approval_jobs.sql`). Claimed with a lease like deliveries, so several
//! nodes share the polling and a crashed node's work is taken over when the lease ends.

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalJob {
    pub request_id: String,
    /// `creationRequest`, `statusRequest`, `postApplyRequest` or `deletionRequest`.
    pub step: String,
    /// `due`, `done` or `failed`.
    pub state: String,
    pub due_at: i64,
    pub lease_until: i64,
    pub attempts: i64,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    /// JSON, owned by the server.
    pub data: String,
}

#[async_trait]
pub trait ApprovalJobStore {
    /// Writes the job whatever its current state (a new step replaces the old one).
    async fn approval_job_put(&self, job: &ApprovalJob) -> StoreResult<()>;
    async fn approval_job_get(&self, request_id: &str) -> StoreResult<Option<ApprovalJob>>;
    /// Leases up to `limit` due, unleased jobs (earliest first) until `lease_until`.
    async fn approval_jobs_claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> StoreResult<Vec<ApprovalJob>>;
    /// Leases one job now, due or not (a status check on read), unless another worker
    /// holds it or it is not waiting for anything.
    async fn approval_job_claim_one(
        &self,
        request_id: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<ApprovalJob>>;
    /// Records a leased job's outcome and releases the lease; false (nothing written) when
    /// the job moved to another step meanwhile (the request was applied or deleted).
    async fn approval_job_record(&self, job: &ApprovalJob, leased_step: &str) -> StoreResult<bool>;
    /// Jobs due at `now` or earlier (the polling backlog), for monitoring and benchmarks.
    async fn approval_jobs_due(&self, now: i64) -> StoreResult<i64>;
}

pub(crate) mod sql {
    pub const PUT: &str = "INSERT INTO approval_jobs (request_id, step, state, due_at, lease_until, attempts, last_attempt_at, last_error, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET step = excluded.step, state = excluded.state, due_at = excluded.due_at, lease_until = excluded.lease_until, attempts = excluded.attempts, last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error, data = excluded.data";
    pub const GET: &str = "SELECT request_id, step, state, due_at, lease_until, attempts, last_attempt_at, last_error, data FROM approval_jobs WHERE request_id = ?";
    pub const CLAIM: &str = "UPDATE approval_jobs SET lease_until = ? WHERE request_id IN (SELECT request_id FROM approval_jobs WHERE state = 'due' AND due_at <= ? AND lease_until <= ? ORDER BY due_at LIMIT ?) AND lease_until <= ? RETURNING request_id, step, state, due_at, lease_until, attempts, last_attempt_at, last_error, data";
    pub const CLAIM_ONE: &str = "UPDATE approval_jobs SET lease_until = ? WHERE request_id = ? AND state = 'due' AND lease_until <= ? RETURNING request_id, step, state, due_at, lease_until, attempts, last_attempt_at, last_error, data";
    pub const RECORD: &str = "UPDATE approval_jobs SET step = ?, state = ?, due_at = ?, lease_until = 0, attempts = ?, last_attempt_at = ?, last_error = ?, data = ? WHERE request_id = ? AND step = ?";
    pub const DUE: &str = "SELECT COUNT(*) FROM approval_jobs WHERE state = 'due' AND due_at <= ?";

    pub const ALL: &[&str] = &[PUT, GET, CLAIM, CLAIM_ONE, RECORD, DUE];
}

pub(crate) type JobRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

pub(crate) fn job(row: JobRow) -> ApprovalJob {
    let (request_id, step, state, due_at, lease_until, attempts, last_attempt_at, last_error, data) =
        row;
    ApprovalJob {
        request_id,
        step,
        state,
        due_at,
        lease_until,
        attempts,
        last_attempt_at,
        last_error,
        data,
    }
}

/// The [`ApprovalJobStore`] implementation both dialects share.
macro_rules! impl_approval_job_store_for {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::approval_jobs::ApprovalJobStore for $store {
            async fn approval_job_put(
                &self,
                job: &$crate::approval_jobs::ApprovalJob,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(self.sql($crate::approval_jobs::sql::PUT))
                    .bind(&job.request_id)
                    .bind(&job.step)
                    .bind(&job.state)
                    .bind(job.due_at)
                    .bind(job.lease_until)
                    .bind(job.attempts)
                    .bind(job.last_attempt_at)
                    .bind(&job.last_error)
                    .bind(&job.data)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn approval_job_get(
                &self,
                request_id: &str,
            ) -> $crate::StoreResult<Option<$crate::approval_jobs::ApprovalJob>> {
                let row: Option<$crate::approval_jobs::JobRow> =
                    sqlx::query_as(self.sql($crate::approval_jobs::sql::GET))
                        .bind(request_id)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.map($crate::approval_jobs::job))
            }

            async fn approval_jobs_claim(
                &self,
                now: i64,
                lease_until: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::approval_jobs::ApprovalJob>> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<$crate::approval_jobs::JobRow> =
                    sqlx::query_as(self.sql($crate::approval_jobs::sql::CLAIM))
                        .bind(lease_until)
                        .bind(now)
                        .bind(now)
                        .bind(limit)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(rows.into_iter().map($crate::approval_jobs::job).collect())
            }

            async fn approval_job_claim_one(
                &self,
                request_id: &str,
                now: i64,
                lease_until: i64,
            ) -> $crate::StoreResult<Option<$crate::approval_jobs::ApprovalJob>> {
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::approval_jobs::JobRow> =
                    sqlx::query_as(self.sql($crate::approval_jobs::sql::CLAIM_ONE))
                        .bind(lease_until)
                        .bind(request_id)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(row.map($crate::approval_jobs::job))
            }

            async fn approval_job_record(
                &self,
                job: &$crate::approval_jobs::ApprovalJob,
                leased_step: &str,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(self.sql($crate::approval_jobs::sql::RECORD))
                    .bind(&job.step)
                    .bind(&job.state)
                    .bind(job.due_at)
                    .bind(job.attempts)
                    .bind(job.last_attempt_at)
                    .bind(&job.last_error)
                    .bind(&job.data)
                    .bind(&job.request_id)
                    .bind(leased_step)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn approval_jobs_due(&self, now: i64) -> $crate::StoreResult<i64> {
                let (count,): (i64,) = sqlx::query_as(self.sql($crate::approval_jobs::sql::DUE))
                    .bind(now)
                    .fetch_one(self.reader())
                    .await?;
                Ok(count)
            }
        }
    };
}
pub(crate) use impl_approval_job_store_for;
