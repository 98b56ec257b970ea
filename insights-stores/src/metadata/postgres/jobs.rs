//! Durable jobs of the AI pipeline.
//!
//! Enqueue and listing run in a tenant session (row-level security).
//! Claim, renewal, completion, failure and release serve every tenant and
//! run as the connecting user (the table owner, not subject to RLS) on
//! the `jobs` table only, by id and lease: a job row holds no personal
//! data, and the work itself runs in a tenant session for the job's
//! tenant. The claim takes the oldest due row with `FOR UPDATE SKIP
//! LOCKED`, so concurrent claimers skip each other's rows instead of
//! waiting or taking the same one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::*;
use insights_core::store::{JobStore, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col, found};

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued> {
        in_tenant!(self, tenant, |c| enqueue(c, tenant, job))
    }

    async fn claim_job(&self, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>> {
        claim(&self.pool, req).await
    }

    async fn renew_job_lease(
        &self,
        lease: &JobLease,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        renew(&self.pool, lease, until).await
    }

    async fn complete_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        complete(&self.pool, lease, now).await
    }

    async fn fail_job(
        &self,
        lease: &JobLease,
        failure: &JobFailure,
    ) -> StoreResult<Option<JobState>> {
        fail(&self.pool, lease, failure).await
    }

    async fn release_job(
        &self,
        lease: &JobLease,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        release(&self.pool, lease, now).await
    }

    async fn get_job(&self, tenant: TenantId, id: JobId) -> StoreResult<Job> {
        in_tenant!(self, tenant, |c| get(c, tenant, id))
    }

    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>> {
        in_tenant!(self, tenant, |c| list(c, tenant, recording))
    }
}

const COLUMNS: &str = "tenant_id, id, recording_id, kind, state, attempts, max_attempts, \
     run_after, worker_id, lease_id, lease_expires_at, last_error, created_at, updated_at, \
     finished_at";

/// Reason stored for a job whose worker vanished on its last attempt.
const LOST_ON_LAST_ATTEMPT: &str = "the worker stopped renewing its lease on the last attempt";

fn count(row: &PgRow, name: &str) -> StoreResult<u32> {
    u32::try_from(col::<i32>(row, name)?)
        .map_err(|_| StoreError::Corrupt(format!("column `{name}` is negative")))
}

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    Ok(Job {
        id: JobId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        kind: enum_col(row, "kind")?,
        state: enum_col(row, "state")?,
        attempts: count(row, "attempts")?,
        max_attempts: count(row, "max_attempts")?,
        run_after: col(row, "run_after")?,
        worker_id: col(row, "worker_id")?,
        lease_expires_at: col(row, "lease_expires_at")?,
        last_error: col(row, "last_error")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

fn attempts_i32(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::Invalid("max_attempts is too large".into()))
}

/// In a tenant session.
pub(super) async fn enqueue(
    c: &mut PgConnection,
    tenant: TenantId,
    new: &NewJob,
) -> StoreResult<Enqueued> {
    if new.max_attempts == 0 {
        return Err(StoreError::Invalid(
            "max_attempts must be at least 1".into(),
        ));
    }
    let now = now();
    // ON CONFLICT on the partial unique index: a pending job of this kind
    // exists already (a missing recording fails the foreign key: NotFound).
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, NULL, NULL, \
         NULL, NULL, $7, $7, NULL) \
         ON CONFLICT (tenant_id, recording_id, kind) WHERE state IN ('queued', 'running') \
         DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(tenant.0)
    .bind(JobId::new().0)
    .bind(new.recording_id.0)
    .bind(new.kind.as_str())
    .bind(attempts_i32(new.max_attempts)?)
    .bind(new.run_after)
    .bind(now)
    .fetch_optional(&mut *c)
    .await
    .db()?;
    if let Some(row) = inserted {
        return Ok(Enqueued {
            job: job_from_row(&row)?,
            created: true,
        });
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND recording_id = $2 AND kind = $3 \
         AND state IN ('queued', 'running')"
    )))
    .bind(tenant.0)
    .bind(new.recording_id.0)
    .bind(new.kind.as_str())
    .fetch_optional(&mut *c)
    .await
    .db()?
    // The pending job finished between the two statements: rare; the
    // caller may simply enqueue again.
    .ok_or_else(|| StoreError::Conflict("the pending job changed concurrently".into()))?;
    Ok(Enqueued {
        job: job_from_row(&row)?,
        created: false,
    })
}

/// As the connecting user: every tenant.
pub(super) async fn claim(pool: &PgPool, req: &ClaimRequest) -> StoreResult<Option<ClaimedJob>> {
    let kinds: Vec<&str> = req.kinds.iter().map(|k| k.as_str()).collect();
    let mut tx = pool.begin().await.db()?;
    // Workers that died on a job's last attempt: dead-letter, do not run
    // a job more often than allowed.
    sqlx::query(
        "UPDATE jobs SET state = 'dead', last_error = $2, finished_at = $1, updated_at = $1, \
         worker_id = NULL, lease_id = NULL, lease_expires_at = NULL \
         WHERE state = 'running' AND lease_expires_at <= $1 AND attempts >= max_attempts",
    )
    .bind(req.now)
    .bind(LOST_ON_LAST_ATTEMPT)
    .execute(&mut *tx)
    .await
    .db()?;
    let lease_id = Uuid::new_v4();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker_id = $2, \
         lease_id = $3, lease_expires_at = $4, updated_at = $1 \
         WHERE (tenant_id, id) = ( \
             SELECT tenant_id, id FROM jobs \
             WHERE kind = ANY($5) AND ( \
                 (state = 'queued' AND run_after <= $1) \
                 OR (state = 'running' AND lease_expires_at <= $1 AND attempts < max_attempts)) \
             ORDER BY run_after, created_at, id \
             LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    )))
    .bind(req.now)
    .bind(&req.worker_id)
    .bind(lease_id)
    .bind(req.lease_until)
    .bind(&kinds)
    .fetch_optional(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()?;
    row.map(|row| {
        let job = job_from_row(&row)?;
        Ok(ClaimedJob {
            lease: JobLease {
                job_id: job.id,
                tenant_id: job.tenant_id,
                lease_id,
            },
            job,
        })
    })
    .transpose()
}

/// `WHERE` fragment matching a held lease ($1 tenant, $2 id, $3 lease).
const HELD: &str = "tenant_id = $1 AND id = $2 AND lease_id = $3 AND state = 'running'";

pub(super) async fn renew(
    pool: &PgPool,
    lease: &JobLease,
    until: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET lease_expires_at = $4 WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(until)
    .execute(pool)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn complete(
    pool: &PgPool,
    lease: &JobLease,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'succeeded', finished_at = $4, updated_at = $4, \
         lease_id = NULL, lease_expires_at = NULL, last_error = NULL WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(now)
    .execute(pool)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn fail(
    pool: &PgPool,
    lease: &JobLease,
    failure: &JobFailure,
) -> StoreResult<Option<JobState>> {
    // Retry only a transient failure with attempts left; else dead.
    let state: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET \
           state = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts \
                        THEN 'queued' ELSE 'dead' END, \
           run_after = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts \
                            THEN $5 ELSE run_after END, \
           finished_at = CASE WHEN $5::timestamptz IS NOT NULL AND attempts < max_attempts \
                              THEN NULL ELSE $6 END, \
           last_error = $4, updated_at = $6, lease_id = NULL, lease_expires_at = NULL \
         WHERE {HELD} RETURNING state"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(&failure.reason)
    .bind(failure.retry_at)
    .bind(failure.now)
    .fetch_optional(pool)
    .await
    .db()?;
    state
        .map(|s| {
            s.parse()
                .map_err(|e: UnknownVariant| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
}

pub(super) async fn release(
    pool: &PgPool,
    lease: &JobLease,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0), run_after = $4, \
         updated_at = $4, lease_id = NULL, lease_expires_at = NULL WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(now)
    .execute(pool)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

/// In a tenant session.
pub(super) async fn get(c: &mut PgConnection, tenant: TenantId, id: JobId) -> StoreResult<Job> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

/// In a tenant session.
pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<Job>> {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM recordings WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_optional(&mut *c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND recording_id = $2 \
         ORDER BY created_at, id"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(job_from_row)
    .collect()
}

/// In a tenant session: lock the recording row first, so concurrent
/// replaces of one recording run one after the other (a replace that
/// started later never sees an empty transcript and inserts next to the
/// other's rows).
pub(super) async fn replace_transcript(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    segments: &[TranscriptSegment],
) -> StoreResult<()> {
    if segments.iter().any(|s| s.recording_id != recording) {
        return Err(StoreError::Invalid(
            "a segment belongs to another recording".into(),
        ));
    }
    let done =
        sqlx::query("UPDATE recordings SET has_transcript = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(recording.0)
            .bind(!segments.is_empty())
            .execute(&mut *c)
            .await
            .db()?;
    found(done)?;
    sqlx::query("DELETE FROM transcript_segments WHERE tenant_id = $1 AND recording_id = $2")
        .bind(tenant.0)
        .bind(recording.0)
        .execute(&mut *c)
        .await
        .db()?;
    if segments.is_empty() {
        return Ok(());
    }
    super::transcripts::put_segments(c, tenant, recording, segments).await
}
