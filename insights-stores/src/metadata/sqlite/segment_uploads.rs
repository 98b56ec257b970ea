//! Segment uploads of live calls.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{RecordingId, SegmentUpload, TenantId};
use insights_core::store::{SegmentUploadStore, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{col, db, id, micros, ts};

const COLUMNS: &str = "tenant_id, recording_id, node, epoch, lease_until, object_key, blocks, \
     staged_len, journal, created_at, updated_at";

fn from_row(row: &SqliteRow) -> StoreResult<SegmentUpload> {
    let count = |name: &str| -> StoreResult<i64> {
        let v: i64 = col(row, name)?;
        if v < 0 {
            return Err(StoreError::Corrupt(format!("column `{name}` is negative")));
        }
        Ok(v)
    };
    Ok(SegmentUpload {
        tenant_id: id(row, "tenant_id")?,
        recording_id: id(row, "recording_id")?,
        node: col(row, "node")?,
        epoch: col(row, "epoch")?,
        lease_until: ts(row, "lease_until")?,
        object_key: col(row, "object_key")?,
        blocks: u32::try_from(count("blocks")?)
            .map_err(|_| StoreError::Corrupt("column `blocks` too large".into()))?,
        staged_len: count("staged_len")? as u64,
        journal: col(row, "journal")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn len_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("length too large".into()))
}

#[async_trait]
impl SegmentUploadStore for SqliteStore {
    async fn begin_segment_upload(
        &self,
        tenant: TenantId,
        u: &SegmentUpload,
    ) -> StoreResult<SegmentUpload> {
        if u.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the segment upload belongs to another tenant".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO segment_uploads (tenant_id, recording_id, node, epoch, lease_until, \
             object_key, blocks, staged_len, journal, created_at, updated_at) \
             VALUES (?, ?, ?, 1, ?, ?, 0, 0, ?, ?, ?) \
             ON CONFLICT (tenant_id, recording_id) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(u.recording_id.0)
        .bind(&u.node)
        .bind(micros(u.lease_until))
        .bind(&u.object_key)
        .bind(&u.journal)
        .bind(micros(u.created_at))
        .bind(micros(u.created_at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.segment_upload(tenant, u.recording_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn record_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: &str,
        epoch: i64,
        blocks: u32,
        staged_len: u64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE segment_uploads SET blocks = ?, staged_len = ?, lease_until = ?, \
             updated_at = ? \
             WHERE tenant_id = ? AND recording_id = ? AND node = ? AND epoch = ?",
        )
        .bind(i64::from(blocks))
        .bind(len_i64(staged_len)?)
        .bind(micros(lease_until))
        .bind(micros(insights_core::domain::now()))
        .bind(tenant.0)
        .bind(recording.0)
        .bind(node)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM segment_uploads WHERE tenant_id = ? AND recording_id = ?"
        )))
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn delete_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM segment_uploads WHERE tenant_id = ?1 AND recording_id = ?2 \
             AND (?3 IS NULL OR node = ?3)",
        )
        .bind(tenant.0)
        .bind(recording.0)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn retire_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: &str,
        epoch: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE segment_uploads SET journal = '', blocks = 0, staged_len = 0, \
             lease_until = ?, updated_at = ? \
             WHERE tenant_id = ? AND recording_id = ? AND node = ? AND epoch = ?",
        )
        .bind(micros(insights_core::domain::retired_lease_until()))
        .bind(micros(insights_core::domain::now()))
        .bind(tenant.0)
        .bind(recording.0)
        .bind(node)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_over_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        epoch: i64,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE segment_uploads SET node = ?, epoch = epoch + 1, lease_until = ?, \
             updated_at = ? \
             WHERE tenant_id = ? AND recording_id = ? AND epoch = ? AND lease_until <= ? \
             RETURNING {COLUMNS}"
        )))
        .bind(node)
        .bind(micros(lease_until))
        .bind(micros(now))
        .bind(tenant.0)
        .bind(recording.0)
        .bind(epoch)
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn renew_segment_leases(
        &self,
        node: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE segment_uploads SET lease_until = ? WHERE node = ? AND journal <> ''",
        )
        .bind(micros(lease_until))
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn lapsed_segment_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM segment_uploads WHERE lease_until <= ? \
             ORDER BY lease_until, tenant_id, recording_id LIMIT ?"
        )))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn node_segment_uploads(&self, node: &str) -> StoreResult<Vec<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM segment_uploads WHERE node = ? AND journal <> '' \
             ORDER BY tenant_id, recording_id"
        )))
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(from_row)
        .collect()
    }
}
