//! Gaps of recordings (pauses; tenant sessions, row-level security).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{GapId, RecordingGap, RecordingId, TenantId};
use insights_core::store::{RecordingGapStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

const COLUMNS: &str = "tenant_id, id, recording_id, reason, requested_at, requested_by, \
     started_at, resume_requested_at, resumed_by, ended_at";

fn from_row(row: &PgRow) -> StoreResult<RecordingGap> {
    Ok(RecordingGap {
        tenant_id: TenantId(col(row, "tenant_id")?),
        id: GapId(col(row, "id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        reason: enum_col(row, "reason")?,
        requested_at: col(row, "requested_at")?,
        requested_by: col(row, "requested_by")?,
        started_at: col(row, "started_at")?,
        resume_requested_at: col(row, "resume_requested_at")?,
        resumed_by: col(row, "resumed_by")?,
        ended_at: col(row, "ended_at")?,
    })
}

#[async_trait]
impl RecordingGapStore for PgStore {
    async fn open_recording_gap(
        &self,
        tenant: TenantId,
        gap: &RecordingGap,
    ) -> StoreResult<RecordingGap> {
        if gap.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the gap belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| insert(c, gap))
    }

    async fn request_gap_end(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        by: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<RecordingGap> {
        in_tenant!(self, tenant, |c| request_end(c, tenant, recording, by, at))
    }

    async fn mark_gap_started(
        &self,
        tenant: TenantId,
        gap: GapId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| started(c, tenant, gap, at))
    }

    async fn close_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| close(c, tenant, recording, at))
    }

    async fn current_recording_gap(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<RecordingGap>> {
        in_tenant!(self, tenant, |c| current(c, tenant, recording))
    }

    async fn recording_gaps(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<RecordingGap>> {
        in_tenant!(self, tenant, |c| all(c, tenant, recording))
    }
}

async fn insert(c: &mut PgConnection, gap: &RecordingGap) -> StoreResult<RecordingGap> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO recording_gaps ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING {COLUMNS}"
    )))
    .bind(gap.tenant_id.0)
    .bind(gap.id.0)
    .bind(gap.recording_id.0)
    .bind(gap.reason.as_str())
    .bind(gap.requested_at)
    .bind(&gap.requested_by)
    .bind(gap.started_at)
    .bind(gap.resume_requested_at)
    .bind(gap.resumed_by.as_deref())
    .bind(gap.ended_at)
    .fetch_one(c)
    .await
    .db()?;
    from_row(&row)
}

async fn request_end(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<RecordingGap> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE recording_gaps SET resume_requested_at = $1, resumed_by = $2 \
         WHERE tenant_id = $3 AND recording_id = $4 AND ended_at IS NULL \
           AND resume_requested_at IS NULL \
         RETURNING {COLUMNS}"
    )))
    .bind(at)
    .bind(by)
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

async fn started(
    c: &mut PgConnection,
    tenant: TenantId,
    gap: GapId,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recording_gaps SET started_at = $1 \
         WHERE tenant_id = $2 AND id = $3 AND started_at IS NULL AND ended_at IS NULL",
    )
    .bind(at)
    .bind(tenant.0)
    .bind(gap.0)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

async fn close(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recording_gaps SET ended_at = $1 \
         WHERE tenant_id = $2 AND recording_id = $3 AND ended_at IS NULL",
    )
    .bind(at)
    .bind(tenant.0)
    .bind(recording.0)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() > 0)
}

async fn current(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Option<RecordingGap>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM recording_gaps \
         WHERE tenant_id = $1 AND recording_id = $2 AND ended_at IS NULL"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_optional(c)
    .await
    .db()?
    .map(|r| from_row(&r))
    .transpose()
}

async fn all(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<RecordingGap>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM recording_gaps \
         WHERE tenant_id = $1 AND recording_id = $2 ORDER BY requested_at, id"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(from_row)
    .collect()
}
