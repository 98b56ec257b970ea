//! Scheduler leases and interval runs (platform scope: the pool's own
//! role, never a tenant session; the tables are not granted to
//! `insights_app`). Times are the database's `now()`, so the nodes'
//! clocks need not agree.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    AuditEvent, LEASE_LOST, Lease, NewAuditEvent, RunClaim, ScheduledRun, TenantId,
};
use insights_core::store::{LeaseStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::error::{DbResultExt, col};
use super::{APP_ROLE, PgStore};

const LEASE_COLUMNS: &str = "job, holder, token, expires_at";

fn lease_from_row(row: &PgRow) -> StoreResult<Lease> {
    Ok(Lease {
        job: col(row, "job")?,
        holder: col(row, "holder")?,
        token: col(row, "token")?,
        expires_at: col(row, "expires_at")?,
    })
}

fn run_from_row(row: &PgRow) -> StoreResult<ScheduledRun> {
    Ok(ScheduledRun {
        job: col(row, "job")?,
        interval_start: col(row, "interval_start")?,
        holder: col(row, "holder")?,
        token: col(row, "token")?,
        attempts: col(row, "attempts")?,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The fence: the lease row still names this holder and token and has
/// not expired, locked (`FOR SHARE`) until the caller's transaction ends,
/// so a takeover (an `UPDATE` of the row) waits for the fenced write to
/// commit or roll back.
async fn fence(c: &mut PgConnection, lease: &Lease) -> StoreResult<()> {
    let held = sqlx::query(
        "SELECT 1 FROM scheduler_leases \
         WHERE job = $1 AND holder = $2 AND token = $3 AND expires_at > now() FOR SHARE",
    )
    .bind(&lease.job)
    .bind(&lease.holder)
    .bind(lease.token)
    .fetch_optional(&mut *c)
    .await
    .db()?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Refused(LEASE_LOST.into())),
    }
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>> {
        // One statement: the conflicting row is locked by the upsert, so
        // two nodes racing for an expired lease are serialised and the
        // second sees the first's fresh expiry.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO scheduler_leases AS l (job, holder, token, expires_at) \
             VALUES ($1, $2, 1, now() + make_interval(secs => $3)) \
             ON CONFLICT (job) DO UPDATE SET \
               holder = excluded.holder, \
               token = CASE WHEN l.holder = excluded.holder AND l.expires_at > now() \
                       THEN l.token ELSE l.token + 1 END, \
               expires_at = excluded.expires_at \
             WHERE l.holder = excluded.holder OR l.expires_at <= now() \
             RETURNING {LEASE_COLUMNS}"
        )))
        .bind(job)
        .bind(holder)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> StoreResult<Option<Lease>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE scheduler_leases SET expires_at = now() + make_interval(secs => $4) \
             WHERE job = $1 AND holder = $2 AND token = $3 AND expires_at > now() \
             RETURNING {LEASE_COLUMNS}"
        )))
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn release_lease(&self, lease: &Lease) -> StoreResult<()> {
        sqlx::query(
            "UPDATE scheduler_leases SET expires_at = now() \
             WHERE job = $1 AND holder = $2 AND token = $3 AND expires_at > now()",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_lease(&self, job: &str) -> StoreResult<Option<Lease>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLUMNS} FROM scheduler_leases WHERE job = $1"
        )))
        .bind(job)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(lease_from_row).transpose()
    }

    async fn check_lease(&self, lease: &Lease, margin: Duration) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM scheduler_leases WHERE job = $1 AND holder = $2 AND token = $3 \
             AND expires_at > now() + make_interval(secs => $4)",
        )
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.token)
        .bind(secs(margin))
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(row.is_some())
    }

    async fn claim_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<RunClaim> {
        let mut tx = self.pool.begin().await.db()?;
        fence(&mut tx, lease).await?;
        let inserted = sqlx::query(
            "INSERT INTO scheduler_runs (job, interval_start, holder, token, attempts, started_at) \
             VALUES ($1, $2, $3, $4, 1, now()) ON CONFLICT (job, interval_start) DO NOTHING",
        )
        .bind(&lease.job)
        .bind(interval_start)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .db()?;
        let claim = if inserted.rows_affected() == 1 {
            RunClaim::Started
        } else {
            let (token, finished): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT token, finished_at FROM scheduler_runs \
                 WHERE job = $1 AND interval_start = $2 FOR UPDATE",
            )
            .bind(&lease.job)
            .bind(interval_start)
            .fetch_one(&mut *tx)
            .await
            .db()?;
            if finished.is_some() {
                RunClaim::Done
            } else {
                if token != lease.token {
                    sqlx::query(
                        "UPDATE scheduler_runs SET holder = $3, token = $4, \
                         attempts = attempts + 1 WHERE job = $1 AND interval_start = $2",
                    )
                    .bind(&lease.job)
                    .bind(interval_start)
                    .bind(&lease.holder)
                    .bind(lease.token)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                }
                RunClaim::Resumed
            }
        };
        tx.commit().await.db()?;
        Ok(claim)
    }

    async fn finish_scheduled_run(
        &self,
        lease: &Lease,
        interval_start: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.db()?;
        fence(&mut tx, lease).await?;
        let done = sqlx::query(
            "UPDATE scheduler_runs SET finished_at = now() \
             WHERE job = $1 AND interval_start = $2 AND token = $3 AND finished_at IS NULL",
        )
        .bind(&lease.job)
        .bind(interval_start)
        .bind(lease.token)
        .execute(&mut *tx)
        .await
        .db()?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.db()
    }

    async fn list_scheduled_runs(&self, job: &str) -> StoreResult<Vec<ScheduledRun>> {
        sqlx::query(
            "SELECT job, interval_start, holder, token, attempts, started_at, finished_at \
             FROM scheduler_runs WHERE job = $1 ORDER BY interval_start",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await
        .db()?
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
        let mut tx = self.pool.begin().await.db()?;
        // The fence first, as the connecting user (the lease table is not
        // granted to the tenant role); its row lock lasts until commit.
        fence(&mut tx, lease).await?;
        // Then the tenant session of `tenant_session`, in this transaction.
        sqlx::query("SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true)")
            .bind(APP_ROLE)
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
        let ev = super::audit::append(&mut tx, tenant, event).await?;
        tx.commit().await.db()?;
        Ok(ev)
    }
}
