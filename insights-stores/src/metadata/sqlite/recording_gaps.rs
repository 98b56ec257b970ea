//! Gaps of recordings (pauses).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{GapId, RecordingGap, RecordingId, TenantId};
use insights_core::store::{RecordingGapStore, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{check_tenant, col, conflict_as, db, enum_col, id, micros, opt_ts, ts};

const COLUMNS: &str = "tenant_id, id, recording_id, reason, requested_at, requested_by, \
     started_at, resume_requested_at, resumed_by, ended_at";

fn from_row(row: &SqliteRow) -> StoreResult<RecordingGap> {
    Ok(RecordingGap {
        tenant_id: id(row, "tenant_id")?,
        id: id(row, "id")?,
        recording_id: id(row, "recording_id")?,
        reason: enum_col(row, "reason")?,
        requested_at: ts(row, "requested_at")?,
        requested_by: col(row, "requested_by")?,
        started_at: opt_ts(row, "started_at")?,
        resume_requested_at: opt_ts(row, "resume_requested_at")?,
        resumed_by: col(row, "resumed_by")?,
        ended_at: opt_ts(row, "ended_at")?,
    })
}

#[async_trait]
impl RecordingGapStore for SqliteStore {
    async fn open_recording_gap(
        &self,
        tenant: TenantId,
        gap: &RecordingGap,
    ) -> StoreResult<RecordingGap> {
        check_tenant(tenant, gap.tenant_id, "the gap")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO recording_gaps ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {COLUMNS}"
        )))
        .bind(tenant.0)
        .bind(gap.id.0)
        .bind(gap.recording_id.0)
        .bind(gap.reason.as_str())
        .bind(micros(gap.requested_at))
        .bind(&gap.requested_by)
        .bind(gap.started_at.map(micros))
        .bind(gap.resume_requested_at.map(micros))
        .bind(gap.resumed_by.as_deref())
        .bind(gap.ended_at.map(micros))
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_as("the recording has an open gap"))
        .and_then(|r| from_row(&r))
    }

    async fn request_gap_end(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<RecordingGap> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE recording_gaps SET resume_requested_at = ?, resumed_by = ? \
             WHERE tenant_id = ? AND recording_id = ? AND ended_at IS NULL \
               AND resume_requested_at IS NULL \
             RETURNING {COLUMNS}"
        )))
        .bind(micros(at))
        .bind(by)
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)
        .and_then(|r| from_row(&r))
    }

    async fn mark_gap_started(
        &self,
        tenant: TenantId,
        gap: GapId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recording_gaps SET started_at = ? \
             WHERE tenant_id = ? AND id = ? AND started_at IS NULL AND ended_at IS NULL",
        )
        .bind(micros(at))
        .bind(tenant.0)
        .bind(gap.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn close_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recording_gaps SET ended_at = ? \
             WHERE tenant_id = ? AND recording_id = ? AND ended_at IS NULL",
        )
        .bind(micros(at))
        .bind(tenant.0)
        .bind(recording.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn current_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<RecordingGap>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM recording_gaps \
             WHERE tenant_id = ? AND recording_id = ? AND ended_at IS NULL"
        )))
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .map(|r| from_row(&r))
        .transpose()
    }

    async fn recording_gaps(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<RecordingGap>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM recording_gaps \
             WHERE tenant_id = ? AND recording_id = ? ORDER BY requested_at, id"
        )))
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
    }
}
