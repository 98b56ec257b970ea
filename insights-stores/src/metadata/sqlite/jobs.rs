//! Durable jobs of the AI pipeline.
//!
//! SQLite has one writer at a time, so a claim is a single
//! `UPDATE … WHERE rowid = (SELECT … LIMIT 1) RETURNING …` statement:
//! choosing the row and taking it is one atomic step, and two claimers
//! (threads or processes on the same file) can never take the same job.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::*;
use insights_core::store::{JobStore, StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::SqliteStore;
use super::recordings::exists;
use super::util::{col, db, enum_col, id, micros, opt_ts, ts};

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, tenant: TenantId, job: &NewJob) -> StoreResult<Enqueued> {
        enqueue(&self.pool, tenant, job).await
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
        get(&self.pool, tenant, id).await
    }

    async fn list_jobs(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<Vec<Job>> {
        list(&self.pool, tenant, recording).await
    }
}

const COLUMNS: &str = "tenant_id, id, recording_id, kind, state, attempts, max_attempts, \
     run_after, worker_id, lease_id, lease_expires_at, last_error, created_at, updated_at, \
     finished_at";

/// Reason stored for a job whose worker vanished on its last attempt.
const LOST_ON_LAST_ATTEMPT: &str = "the worker stopped renewing its lease on the last attempt";

fn count(row: &SqliteRow, name: &str) -> StoreResult<u32> {
    u32::try_from(col::<i64>(row, name)?)
        .map_err(|_| StoreError::Corrupt(format!("column `{name}` is out of range")))
}

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    Ok(Job {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        recording_id: id(row, "recording_id")?,
        kind: enum_col(row, "kind")?,
        state: enum_col(row, "state")?,
        attempts: count(row, "attempts")?,
        max_attempts: count(row, "max_attempts")?,
        run_after: ts(row, "run_after")?,
        worker_id: col(row, "worker_id")?,
        lease_expires_at: opt_ts(row, "lease_expires_at")?,
        last_error: col(row, "last_error")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        finished_at: opt_ts(row, "finished_at")?,
    })
}

pub(super) async fn enqueue(
    pool: &SqlitePool,
    tenant: TenantId,
    new: &NewJob,
) -> StoreResult<Enqueued> {
    if new.max_attempts == 0 {
        return Err(StoreError::Invalid(
            "max_attempts must be at least 1".into(),
        ));
    }
    let now = now();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, new.recording_id).await? {
        return Err(StoreError::NotFound);
    }
    let pending = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = ? AND recording_id = ? AND kind = ? \
         AND state IN ('queued', 'running')"
    )))
    .bind(tenant.0)
    .bind(new.recording_id.0)
    .bind(new.kind.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if let Some(row) = pending {
        tx.commit().await.map_err(db)?;
        return Ok(Enqueued {
            job: job_from_row(&row)?,
            created: false,
        });
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, 'queued', 0, ?5, ?6, NULL, NULL, \
         NULL, NULL, ?7, ?7, NULL) RETURNING {COLUMNS}"
    )))
    .bind(tenant.0)
    .bind(JobId::new().0)
    .bind(new.recording_id.0)
    .bind(new.kind.as_str())
    .bind(i64::from(new.max_attempts))
    .bind(micros(new.run_after))
    .bind(micros(now))
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Enqueued {
        job: job_from_row(&row)?,
        created: true,
    })
}

pub(super) async fn claim(
    pool: &SqlitePool,
    req: &ClaimRequest,
) -> StoreResult<Option<ClaimedJob>> {
    let kinds = serde_json::Value::from(req.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
        .to_string();
    let now = micros(req.now);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    // Workers that died on a job's last attempt: dead-letter, do not run
    // a job more often than allowed.
    sqlx::query(
        "UPDATE jobs SET state = 'dead', last_error = ?2, finished_at = ?1, updated_at = ?1, \
         worker_id = NULL, lease_id = NULL, lease_expires_at = NULL \
         WHERE state = 'running' AND lease_expires_at <= ?1 AND attempts >= max_attempts",
    )
    .bind(now)
    .bind(LOST_ON_LAST_ATTEMPT)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let lease_id = Uuid::new_v4();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker_id = ?2, \
         lease_id = ?3, lease_expires_at = ?4, updated_at = ?1 \
         WHERE rowid = ( \
             SELECT rowid FROM jobs \
             WHERE kind IN (SELECT value FROM json_each(?5)) AND ( \
                 (state = 'queued' AND run_after <= ?1) \
                 OR (state = 'running' AND lease_expires_at <= ?1 AND attempts < max_attempts)) \
             ORDER BY run_after, created_at, id LIMIT 1) \
         RETURNING {COLUMNS}"
    )))
    .bind(now)
    .bind(&req.worker_id)
    .bind(lease_id)
    .bind(micros(req.lease_until))
    .bind(kinds)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
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

/// `WHERE` fragment matching a held lease (?1 tenant, ?2 id, ?3 lease).
const HELD: &str = "tenant_id = ?1 AND id = ?2 AND lease_id = ?3 AND state = 'running'";

pub(super) async fn renew(
    pool: &SqlitePool,
    lease: &JobLease,
    until: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET lease_expires_at = ?4 WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(micros(until))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn complete(
    pool: &SqlitePool,
    lease: &JobLease,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'succeeded', finished_at = ?4, updated_at = ?4, \
         lease_id = NULL, lease_expires_at = NULL, last_error = NULL WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(micros(now))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn fail(
    pool: &SqlitePool,
    lease: &JobLease,
    failure: &JobFailure,
) -> StoreResult<Option<JobState>> {
    // Retry only a transient failure with attempts left; else dead.
    let state: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET \
           state = CASE WHEN ?5 IS NOT NULL AND attempts < max_attempts \
                        THEN 'queued' ELSE 'dead' END, \
           run_after = CASE WHEN ?5 IS NOT NULL AND attempts < max_attempts \
                            THEN ?5 ELSE run_after END, \
           finished_at = CASE WHEN ?5 IS NOT NULL AND attempts < max_attempts \
                              THEN NULL ELSE ?6 END, \
           last_error = ?4, updated_at = ?6, lease_id = NULL, lease_expires_at = NULL \
         WHERE {HELD} RETURNING state"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(&failure.reason)
    .bind(failure.retry_at.map(micros))
    .bind(micros(failure.now))
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    state
        .map(|s| {
            s.parse()
                .map_err(|e: UnknownVariant| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
}

pub(super) async fn release(
    pool: &SqlitePool,
    lease: &JobLease,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), run_after = ?4, \
         updated_at = ?4, lease_id = NULL, lease_expires_at = NULL WHERE {HELD}"
    )))
    .bind(lease.tenant_id.0)
    .bind(lease.job_id.0)
    .bind(lease.lease_id)
    .bind(micros(now))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn get(pool: &SqlitePool, tenant: TenantId, job: JobId) -> StoreResult<Job> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = ? AND id = ?"
    )))
    .bind(tenant.0)
    .bind(job.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    job_from_row(&row)
}

pub(super) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<Job>> {
    let mut tx = pool.begin().await.map_err(db)?;
    if !exists(&mut tx, tenant, recording).await? {
        return Err(StoreError::NotFound);
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = ? AND recording_id = ? \
         ORDER BY created_at, id"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    rows.iter().map(job_from_row).collect()
}

/// Delete and insert in one IMMEDIATE transaction (one writer at a time:
/// concurrent replaces run one after the other); the FTS triggers fire
/// for every row, so the index follows.
pub(super) async fn replace_transcript(
    pool: &SqlitePool,
    tenant: TenantId,
    recording: RecordingId,
    segments: &[TranscriptSegment],
) -> StoreResult<()> {
    if segments.iter().any(|s| s.recording_id != recording) {
        return Err(StoreError::Invalid(
            "a segment belongs to another recording".into(),
        ));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, recording).await? {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM transcript_segments WHERE tenant_id = ? AND recording_id = ?")
        .bind(tenant.0)
        .bind(recording.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    for s in segments {
        // Upsert: the same id twice in `segments` keeps the last one.
        sqlx::query(
            "INSERT INTO transcript_segments (tenant_id, recording_id, id, participant_id, \
             start_ms, end_ms, text, confidence, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET participant_id = excluded.participant_id, \
             start_ms = excluded.start_ms, end_ms = excluded.end_ms, text = excluded.text, \
             confidence = excluded.confidence, language = excluded.language \
             WHERE transcript_segments.recording_id = excluded.recording_id",
        )
        .bind(tenant.0)
        .bind(recording.0)
        .bind(s.id.0)
        .bind(s.participant_id.map(|p| p.0))
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(&s.text)
        .bind(f64::from(s.confidence))
        .bind(&s.language)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            super::util::conflict_as("a transcript segment id belongs to another recording")(e)
        })?;
    }
    sqlx::query("UPDATE recordings SET has_transcript = ? WHERE tenant_id = ? AND id = ?")
        .bind(!segments.is_empty())
        .bind(tenant.0)
        .bind(recording.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}
