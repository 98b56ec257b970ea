//! Pending sign-ins, address throttles, export and access-bundle jobs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::{
    AddressWindow, FileJob, FileJobEnd, FileJobId, FileJobState, PendingSignIn, TenantId,
};
use insights_core::store::{StoreError, StoreResult, TransientStore};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{check_tenant, col, db, enum_col, id, json_col, micros, to_json, ts};

const SIGN_IN_COLUMNS: &str = "state_hash, sealed, client_key, created_at, expires_at";
const JOB_COLUMNS: &str = "tenant_id, id, kind, owner, state, error, done, total, details, \
     recordings, output, lease_until, created_at, expires_at, attempt, request";

fn sign_in(row: &SqliteRow) -> StoreResult<PendingSignIn> {
    Ok(PendingSignIn {
        state_hash: col(row, "state_hash")?,
        sealed: json_col(row, "sealed")?,
        client_key: col(row, "client_key")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
    })
}

fn window(row: &SqliteRow) -> StoreResult<AddressWindow> {
    let failures: i64 = col(row, "failures")?;
    Ok(AddressWindow {
        started_at: ts(row, "started_at")?,
        failures: u32::try_from(failures).unwrap_or(0),
    })
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn job(row: &SqliteRow) -> StoreResult<FileJob> {
    let output: Option<String> = col(row, "output")?;
    Ok(FileJob {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        kind: enum_col(row, "kind")?,
        owner: col(row, "owner")?,
        state: enum_col(row, "state")?,
        error: col(row, "error")?,
        done: count(col(row, "done")?),
        total: count(col(row, "total")?),
        details: json_col(row, "details")?,
        recordings: json_col(row, "recordings")?,
        output: output
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(|_| StoreError::Corrupt("column `output`: invalid JSON".into()))?,
        lease_until: ts(row, "lease_until")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        attempt: u32::try_from(col::<i64>(row, "attempt")?).unwrap_or(1),
        request: col::<Option<String>>(row, "request")?
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|_| StoreError::Corrupt("column `request`: invalid JSON".into()))?,
    })
}

#[async_trait]
impl TransientStore for SqliteStore {
    async fn put_pending_sign_in(
        &self,
        p: &PendingSignIn,
        per_client: u32,
        max_pending: u32,
    ) -> StoreResult<()> {
        let sealed = to_json(&p.sealed)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        sqlx::query("DELETE FROM pending_sign_ins WHERE expires_at <= ?")
            .bind(micros(p.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(client) = &p.client_key {
            // Keeps the newest `per_client - 1`, making room for this one.
            sqlx::query(
                "DELETE FROM pending_sign_ins WHERE state_hash IN (\
                   SELECT state_hash FROM pending_sign_ins WHERE client_key = ? \
                   ORDER BY created_at DESC, state_hash LIMIT -1 OFFSET ?)",
            )
            .bind(client.clone())
            .bind(i64::from(per_client.max(1)) - 1)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_sign_ins")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if pending >= i64::from(max_pending) {
            return Err(StoreError::Refused("too many sign-ins pending".into()));
        }
        sqlx::query(
            "INSERT INTO pending_sign_ins (state_hash, sealed, client_key, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(p.state_hash.clone())
        .bind(sealed)
        .bind(p.client_key.clone())
        .bind(micros(p.created_at))
        .bind(micros(p.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn take_pending_sign_in(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingSignIn>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM pending_sign_ins WHERE state_hash = ? RETURNING {SIGN_IN_COLUMNS}"
        )))
        .bind(state_hash.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
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
             WHERE key = ? AND started_at > ?",
        )
        .bind(key.to_owned())
        .bind(micros(since))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
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
        let over = micros(at - window_len);
        sqlx::query("DELETE FROM address_throttles WHERE started_at <= ?")
            .bind(over)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        let row = sqlx::query(
            "INSERT INTO address_throttles (key, started_at, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               started_at = CASE WHEN started_at <= ?3 THEN ?2 ELSE started_at END, \
               failures = CASE WHEN started_at <= ?3 THEN 1 ELSE failures + 1 END \
             RETURNING started_at, failures",
        )
        .bind(key.to_owned())
        .bind(micros(at))
        .bind(over)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        window(&row)
    }

    async fn create_file_job(&self, tenant: TenantId, j: &FileJob) -> StoreResult<()> {
        check_tenant(tenant, j.tenant_id, "the job")?;
        sqlx::query(
            "INSERT INTO file_jobs (tenant_id, id, kind, owner, state, error, done, total, \
               details, recordings, output, lease_until, created_at, expires_at, attempt, \
               request) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.0)
        .bind(j.id.0)
        .bind(j.kind.as_str())
        .bind(j.owner.clone())
        .bind(j.state.as_str())
        .bind(j.error.clone())
        .bind(big(j.done))
        .bind(big(j.total))
        .bind(to_json(&j.details)?)
        .bind(to_json(&j.recordings)?)
        .bind(j.output.as_ref().map(to_json).transpose()?)
        .bind(micros(j.lease_until))
        .bind(micros(j.created_at))
        .bind(micros(j.expires_at))
        .bind(i64::from(j.attempt))
        .bind(j.request.as_ref().map(to_json).transpose()?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<FileJob> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM file_jobs WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(job).unwrap_or(Err(StoreError::NotFound))
    }

    async fn list_file_jobs(&self, tenant: TenantId) -> StoreResult<Vec<FileJob>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM file_jobs WHERE tenant_id = ? ORDER BY created_at, id"
        )))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(job)
        .collect()
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
        let r = sqlx::query(
            "UPDATE file_jobs SET done = ?, total = ?, lease_until = ? \
             WHERE tenant_id = ? AND id = ? AND state = 'running' AND attempt = ?",
        )
        .bind(big(done))
        .bind(big(total))
        .bind(micros(lease_until))
        .bind(tenant.0)
        .bind(id.0)
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        end: &FileJobEnd,
    ) -> StoreResult<bool> {
        let r = match end {
            FileJobEnd::Done {
                output,
                recordings,
                details,
                done,
                total,
            } => {
                sqlx::query(
                    "UPDATE file_jobs SET state = ?, output = ?, recordings = ?, details = ?, \
                       done = ?, total = ?, request = NULL \
                     WHERE tenant_id = ? AND id = ? AND state = 'running' AND attempt = ?",
                )
                .bind(FileJobState::Done.as_str())
                .bind(to_json(output)?)
                .bind(to_json(recordings)?)
                .bind(to_json(details)?)
                .bind(big(*done))
                .bind(big(*total))
                .bind(tenant.0)
                .bind(id.0)
                .bind(i64::from(attempt))
                .execute(&self.pool)
                .await
            }
            FileJobEnd::Failed { error } => {
                sqlx::query(
                    "UPDATE file_jobs SET state = ?, error = ?, request = NULL \
                     WHERE tenant_id = ? AND id = ? AND state = 'running' AND attempt = ?",
                )
                .bind(FileJobState::Failed.as_str())
                .bind(error.clone())
                .bind(tenant.0)
                .bind(id.0)
                .bind(i64::from(attempt))
                .execute(&self.pool)
                .await
            }
        }
        .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn take_over_file_job(
        &self,
        tenant: TenantId,
        id: FileJobId,
        attempt: u32,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<FileJob>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE file_jobs SET attempt = attempt + 1, lease_until = ?, done = 0 \
             WHERE tenant_id = ? AND id = ? AND state = 'running' AND attempt = ? \
               AND lease_until < ? \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(micros(lease_until))
        .bind(tenant.0)
        .bind(id.0)
        .bind(i64::from(attempt))
        .bind(micros(at))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(job).transpose()
    }

    async fn delete_file_job(&self, tenant: TenantId, id: FileJobId) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM file_jobs WHERE tenant_id = ? AND id = ?")
            .bind(tenant.0)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn rewrap_file_job_key(
        &self,
        tenant: TenantId,
        id: FileJobId,
        old_kek_id: &str,
        new: &WrappedDataKey,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE file_jobs SET output = json_set(output, '$.data_key', json(?)) \
             WHERE tenant_id = ? AND id = ? AND state = 'done' \
               AND json_extract(output, '$.data_key.kek_id') = ?",
        )
        .bind(to_json(new)?)
        .bind(tenant.0)
        .bind(id.0)
        .bind(old_kek_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }
}
