//! Pending sign-ins and address throttles (platform scope: the pool's own
//! role; the tables are not granted to `insights_app`) and export and
//! access-bundle jobs (tenant sessions, row-level security).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::{
    AddressWindow, FileJob, FileJobEnd, FileJobId, FileJobOutput, FileJobState, PendingSignIn,
    RecordingId, TenantId,
};
use insights_core::store::{StoreError, StoreResult, TransientStore};
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

const SIGN_IN_COLUMNS: &str = "state_hash, sealed, client_key, created_at, expires_at";
const JOB_COLUMNS: &str = "tenant_id, id, kind, owner, state, error, done, total, details, \
     recordings, output, lease_until, created_at, expires_at, attempt, request";

fn sign_in(row: &PgRow) -> StoreResult<PendingSignIn> {
    let sealed: String = col(row, "sealed")?;
    Ok(PendingSignIn {
        state_hash: col(row, "state_hash")?,
        sealed: serde_json::from_str(&sealed)
            .map_err(|_| StoreError::Corrupt("column `sealed`: invalid JSON".into()))?,
        client_key: col(row, "client_key")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
    })
}

fn window(row: &PgRow) -> StoreResult<AddressWindow> {
    let failures: i32 = col(row, "failures")?;
    Ok(AddressWindow {
        started_at: col(row, "started_at")?,
        failures: u32::try_from(failures).unwrap_or(0),
    })
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn job(row: &PgRow) -> StoreResult<FileJob> {
    let Json(details): Json<serde_json::Value> = col(row, "details")?;
    let Json(recordings): Json<Vec<RecordingId>> = col(row, "recordings")?;
    let output: Option<Json<FileJobOutput>> = col(row, "output")?;
    Ok(FileJob {
        id: FileJobId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        owner: col(row, "owner")?,
        state: enum_col(row, "state")?,
        error: col(row, "error")?,
        done: count(col(row, "done")?),
        total: count(col(row, "total")?),
        details,
        recordings,
        output: output.map(|Json(o)| o),
        lease_until: col(row, "lease_until")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        attempt: u32::try_from(col::<i32>(row, "attempt")?).unwrap_or(1),
        request: col::<Option<Json<serde_json::Value>>>(row, "request")?.map(|Json(r)| r),
    })
}

fn sealed_json(p: &PendingSignIn) -> StoreResult<String> {
    serde_json::to_string(&p.sealed)
        .map_err(|_| StoreError::Invalid("sealed value cannot be serialised".into()))
}

#[async_trait]
impl TransientStore for PgStore {
    async fn put_pending_sign_in(
        &self,
        p: &PendingSignIn,
        per_client: u32,
        max_pending: u32,
    ) -> StoreResult<()> {
        let sealed = sealed_json(p)?;
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("DELETE FROM pending_sign_ins WHERE expires_at <= $1")
            .bind(p.created_at)
            .execute(&mut *tx)
            .await
            .db()?;
        if let Some(client) = &p.client_key {
            // Keeps the newest `per_client - 1`, making room for this one.
            sqlx::query(
                "DELETE FROM pending_sign_ins WHERE state_hash IN (\
                   SELECT state_hash FROM pending_sign_ins WHERE client_key = $1 \
                   ORDER BY created_at DESC, state_hash OFFSET $2)",
            )
            .bind(client)
            .bind(i64::from(per_client.max(1)) - 1)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_sign_ins")
            .fetch_one(&mut *tx)
            .await
            .db()?;
        if pending >= i64::from(max_pending) {
            return Err(StoreError::Refused("too many sign-ins pending".into()));
        }
        sqlx::query(
            "INSERT INTO pending_sign_ins (state_hash, sealed, client_key, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&p.state_hash)
        .bind(sealed)
        .bind(&p.client_key)
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn take_pending_sign_in(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingSignIn>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM pending_sign_ins WHERE state_hash = $1 RETURNING {SIGN_IN_COLUMNS}"
        )))
        .bind(state_hash.to_owned())
        .fetch_optional(&self.pool)
        .await
        .db()?;
        match row {
            Some(r) => {
                let p = sign_in(&r)?;
                Ok((p.expires_at > now).then_some(p))
            }
            None => Ok(None),
        }
    }

    async fn address_window(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Option<AddressWindow>> {
        sqlx::query(
            "SELECT started_at, failures FROM address_throttles \
             WHERE key = $1 AND started_at > $2",
        )
        .bind(key.to_owned())
        .bind(since)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .as_ref()
        .map(window)
        .transpose()
    }

    async fn count_address_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        window_len: chrono::Duration,
    ) -> StoreResult<AddressWindow> {
        let over = at - window_len;
        sqlx::query("DELETE FROM address_throttles WHERE started_at <= $1")
            .bind(over)
            .execute(&self.pool)
            .await
            .db()?;
        let row = sqlx::query(
            "INSERT INTO address_throttles AS t (key, started_at, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               started_at = CASE WHEN t.started_at <= $3 THEN $2 ELSE t.started_at END, \
               failures = CASE WHEN t.started_at <= $3 THEN 1 ELSE t.failures + 1 END \
             RETURNING started_at, failures",
        )
        .bind(key.to_owned())
        .bind(at)
        .bind(over)
        .fetch_one(&self.pool)
        .await
        .db()?;
        window(&row)
    }

    async fn create_file_job(&self, tenant: TenantId, j: &FileJob) -> StoreResult<()> {
        if j.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the job belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |conn| async {
            sqlx::query(
                "INSERT INTO file_jobs (tenant_id, id, kind, owner, state, error, done, total, \
                   details, recordings, output, lease_until, created_at, expires_at, attempt, \
                   request) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(tenant.0)
            .bind(j.id.0)
            .bind(j.kind.as_str())
            .bind(&j.owner)
            .bind(j.state.as_str())
            .bind(&j.error)
            .bind(big(j.done))
            .bind(big(j.total))
            .bind(Json(&j.details))
            .bind(Json(&j.recordings))
            .bind(j.output.as_ref().map(Json))
            .bind(j.lease_until)
            .bind(j.created_at)
            .bind(j.expires_at)
            .bind(i32::try_from(j.attempt).unwrap_or(i32::MAX))
            .bind(j.request.as_ref().map(Json))
            .execute(&mut *conn)
            .await
            .db()
            .map(|_| ())
        })
    }

    async fn get_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<FileJob> {
        in_tenant!(self, tenant, |conn| async {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM file_jobs WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
            row.as_ref().map(job).unwrap_or(Err(StoreError::NotFound))
        })
    }

    async fn list_file_jobs(&self, tenant: TenantId) -> StoreResult<Vec<FileJob>> {
        in_tenant!(self, tenant, |conn| async {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM file_jobs WHERE tenant_id = $1 ORDER BY created_at, id"
            )))
            .bind(tenant.0)
            .fetch_all(&mut *conn)
            .await
            .db()?
            .iter()
            .map(job)
            .collect::<StoreResult<Vec<_>>>()
        })
    }

    async fn renew_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        done: u64,
        total: u64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |conn| async {
            sqlx::query(
                "UPDATE file_jobs SET done = $3, total = $4, lease_until = $5 \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempt = $6",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(big(done))
            .bind(big(total))
            .bind(lease_until)
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
            .execute(&mut *conn)
            .await
            .db()
            .map(|r| r.rows_affected() == 1)
        })
    }

    async fn finish_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        end: &FileJobEnd,
    ) -> StoreResult<bool> {
        let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
        in_tenant!(self, tenant, |conn| async {
            let q = match end {
                FileJobEnd::Done {
                    output,
                    recordings,
                    details,
                    done,
                    total,
                } => sqlx::query(
                    "UPDATE file_jobs SET state = $3, output = $4, recordings = $5, \
                       details = $6, done = $7, total = $8, request = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempt = $9",
                )
                .bind(tenant.0)
                .bind(id.0)
                .bind(FileJobState::Done.as_str())
                .bind(Json(output))
                .bind(Json(recordings))
                .bind(Json(details))
                .bind(big(*done))
                .bind(big(*total))
                .bind(attempt),
                FileJobEnd::Failed { error } => sqlx::query(
                    "UPDATE file_jobs SET state = $3, error = $4, request = NULL \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempt = $5",
                )
                .bind(tenant.0)
                .bind(id.0)
                .bind(FileJobState::Failed.as_str())
                .bind(error)
                .bind(attempt),
            };
            q.execute(&mut *conn)
                .await
                .db()
                .map(|r| r.rows_affected() == 1)
        })
    }

    async fn take_over_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<FileJob>> {
        in_tenant!(self, tenant, |conn| async {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE file_jobs SET attempt = attempt + 1, lease_until = $5, done = 0 \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND attempt = $3 \
                   AND lease_until < $4 \
                 RETURNING {JOB_COLUMNS}"
            )))
            .bind(tenant.0)
            .bind(id.0)
            .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
            .bind(at)
            .bind(lease_until)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
            row.as_ref().map(job).transpose()
        })
    }

    async fn delete_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<bool> {
        in_tenant!(self, tenant, |conn| async {
            sqlx::query("DELETE FROM file_jobs WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(id.0)
                .execute(&mut *conn)
                .await
                .db()
                .map(|r| r.rows_affected() == 1)
        })
    }

    async fn rewrap_file_job_key(
        &self,
        tenant: TenantId,
        id: FileJobId,
        old_kek_id: &str,
        new: &WrappedDataKey,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |conn| async {
            sqlx::query(
                "UPDATE file_jobs SET output = jsonb_set(output, '{data_key}', $3) \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'done' \
                   AND output->'data_key'->>'kek_id' = $4",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(Json(new))
            .bind(old_kek_id)
            .execute(&mut *conn)
            .await
            .db()
            .map(|r| r.rows_affected() == 1)
        })
    }
}
