//! Scheduler leases and interval runs (platform scope). Every change runs
//! in a `BEGIN IMMEDIATE` transaction, which holds the database's write
//! lock from its first statement: the lease check and the write it
//! fences see no other writer in between. Times are this host's clock
//! (one SQLite file is one host's).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    AuditEvent, LEASE_LOST, Lease, NewAuditEvent, RunClaim, ScheduledRun, TenantId, now,
};
use insights_core::store::{LeaseStore, StoreError, StoreResult};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{col, db, micros, opt_ts, ts};

fn lease_from_row(row: &SqliteRow) -> StoreResult<Lease> {
    Ok(Lease {
        job: col(row, "job")?,
        holder: col(row, "holder")?,
        token: col(row, "token")?,
        expires_at: ts(row, "expires_at")?,
    })
}

fn run_from_row(row: &SqliteRow) -> StoreResult<ScheduledRun> {
    Ok(ScheduledRun {
        job: col(row, "job")?,
        interval_start: ts(row, "interval_start")?,
        holder: col(row, "holder")?,
        token: col(row, "token")?,
        attempts: col(row, "attempts")?,
        started_at: ts(row, "started_at")?,
        finished_at: opt_ts(row, "finished_at")?,
    })
}

fn later(d: Duration) -> i64 {
    micros(now()).saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

async fn fetch_lease(c: &mut SqliteConnection, job: &str) -> StoreResult<Option<Lease>> {
    let row =
        sqlx::query("SELECT job, holder, token, expires_at FROM scheduler_leases WHERE job = ?")
            .bind(job)
            .fetch_optional(c)
            .await
            .map_err(db)?;
    row.as_ref().map(lease_from_row).transpose()
}

/// The fence, inside the caller's write transaction.
async fn fence(c: &mut SqliteConnection, lease: &Lease) -> StoreResult<()> {
    let held = sqlx::query(
        "SELECT 1 FROM scheduler_leases \
         WHERE job = ? AND holder = ? AND token = ? AND expires_at > ?",
    )
    .bind(&lease.job)
    .bind(&lease.holder)
    .bind(lease.token)
    .bind(micros(now()))
    .fetch_optional(c)
    .await
    .map_err(db)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Refused(LEASE_LOST.into())),
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let at = micros(now());
        let token = match fetch_lease(&mut tx, job).await? {
            None => 1,
            Some(l) if l.holder == holder && micros(l.expires_at) > at => l.token,
            Some(l) if micros(l.expires_at) <= at => l.token + 1,
            Some(_) => return Ok(None),
        };
        sqlx::query(
            "INSERT INTO scheduler_leases (job, holder, token, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, token = excluded.token, \
             expires_at = excluded.expires_at",
        )
        .bind(job)
        .bind(holder)
        .bind(token)
        .bind(later(ttl))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let lease = fetch_lease(&mut tx, job).await?;
        tx.commit().await.map_err(db)?;
        Ok(lease)
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StoreResult<Option<Lease>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE scheduler_leases SET expires_at = ? \
             WHERE job = ? AND holder = ? AND token = ? AND expires_at > ?",
        )
        .bind(later(ttl))
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(micros(now()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let out = match done.rows_affected() {
            1 => fetch_lease(&mut tx, &lease.job).await?,
            _ => None,
        };
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn release_lease(&self, lease: &Lease) -> StoreResult<()> {
        let at = micros(now());
        sqlx::query(
            "UPDATE scheduler_leases SET expires_at = ? \
             WHERE job = ? AND holder = ? AND token = ? AND expires_at > ?",
        )
        .bind(at)
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_lease(&self, job: &str) -> StoreResult<Option<Lease>> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        fetch_lease(&mut c, job).await
    }

    async fn check_lease(&self, lease: &Lease, margin: Duration) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM scheduler_leases \
             WHERE job = ? AND holder = ? AND token = ? AND expires_at > ?",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(later(margin))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.is_some())
    }

    async fn claim_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<RunClaim> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        fence(&mut tx, lease).await?;
        let existing: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT token, finished_at FROM scheduler_runs WHERE job = ? AND interval_start = ?",
        )
        .bind(&lease.job)
        .bind(micros(interval_start))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let claim = match existing {
            None => {
                sqlx::query(
                    "INSERT INTO scheduler_runs \
                     (job, interval_start, holder, token, attempts, started_at) \
                     VALUES (?, ?, ?, ?, 1, ?)",
                )
                .bind(&lease.job)
                .bind(micros(interval_start))
                .bind(&lease.holder)
                .bind(lease.token)
                .bind(micros(now()))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                RunClaim::Started
            }
            Some((_, Some(_))) => RunClaim::Done,
            Some((token, None)) => {
                if token != lease.token {
                    sqlx::query(
                        "UPDATE scheduler_runs SET holder = ?, token = ?, attempts = attempts + 1 \
                         WHERE job = ? AND interval_start = ?",
                    )
                    .bind(&lease.holder)
                    .bind(lease.token)
                    .bind(&lease.job)
                    .bind(micros(interval_start))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                RunClaim::Resumed
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(claim)
    }

    async fn finish_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        fence(&mut tx, lease).await?;
        let done = sqlx::query(
            "UPDATE scheduler_runs SET finished_at = ? \
             WHERE job = ? AND interval_start = ? AND token = ? AND finished_at IS NULL",
        )
        .bind(micros(now()))
        .bind(&lease.job)
        .bind(micros(interval_start))
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(db)
    }

    async fn list_scheduled_runs(&self, job: &str) -> StoreResult<Vec<ScheduledRun>> {
        sqlx::query(
            "SELECT job, interval_start, holder, token, attempts, started_at, finished_at \
             FROM scheduler_runs WHERE job = ? ORDER BY interval_start",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(run_from_row)
        .collect()
    }

    async fn append_audit_fenced(
        &self,
        tenant: TenantId,
        lease: &Lease,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        fence(&mut tx, lease).await?;
        let ev = super::audit::append_on(&mut tx, tenant, event).await?;
        tx.commit().await.map_err(db)?;
        Ok(ev)
    }
}
