//! Segment uploads of live calls (tenant sessions, row-level security;
//! the node heartbeat and the lapsed-row search as the platform, like the
//! job claim).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{RecordingId, SegmentUpload, TenantId};
use insights_core::store::{SegmentUploadStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col};

const COLUMNS: &str = "tenant_id, recording_id, node, epoch, lease_until, object_key, blocks, \
     staged_len, journal, created_at, updated_at";

fn from_row(row: &PgRow) -> StoreResult<SegmentUpload> {
    let count = |name: &str| -> StoreResult<i64> {
        let v: i64 = col(row, name)?;
        if v < 0 {
            return Err(StoreError::Corrupt(format!("column `{name}` is negative")));
        }
        Ok(v)
    };
    Ok(SegmentUpload {
        tenant_id: TenantId(col(row, "tenant_id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        node: col(row, "node")?,
        epoch: col(row, "epoch")?,
        lease_until: col(row, "lease_until")?,
        object_key: col(row, "object_key")?,
        blocks: u32::try_from(count("blocks")?)
            .map_err(|_| StoreError::Corrupt("column `blocks` too large".into()))?,
        staged_len: count("staged_len")? as u64,
        journal: col(row, "journal")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn len_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid("length too large".into()))
}

#[async_trait]
impl SegmentUploadStore for PgStore {
    async fn begin_segment_upload(
        &self,
        tenant: TenantId,
        upload: &SegmentUpload,
    ) -> StoreResult<SegmentUpload> {
        if upload.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the segment upload belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| begin(c, upload))
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
        let staged_len = len_i64(staged_len)?;
        let p = Progress {
            tenant,
            recording,
            node,
            epoch,
            blocks: i64::from(blocks),
            staged_len,
            lease_until,
        };
        in_tenant!(self, tenant, |c| p.record(c))
    }

    async fn segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Option<SegmentUpload>> {
        in_tenant!(self, tenant, |c| get(c, tenant, recording))
    }

    async fn delete_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: Option<&str>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| delete(c, tenant, recording, node))
    }

    async fn retire_segment_upload(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        node: &str,
        epoch: i64,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| retire(c, tenant, recording, node, epoch))
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
        let t = TakeOver {
            tenant,
            recording,
            epoch,
            node,
            now,
            lease_until,
        };
        in_tenant!(self, tenant, |c| t.run(c))
    }

    async fn renew_segment_leases(
        &self,
        node: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE segment_uploads SET lease_until = $1 WHERE node = $2 AND journal <> ''",
        )
        .bind(lease_until)
        .bind(node)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn lapsed_segment_uploads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM segment_uploads WHERE lease_until <= $1 \
             ORDER BY lease_until, tenant_id, recording_id LIMIT $2"
        )))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn node_segment_uploads(&self, node: &str) -> StoreResult<Vec<SegmentUpload>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM segment_uploads WHERE node = $1 AND journal <> '' \
             ORDER BY tenant_id, recording_id"
        )))
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(from_row)
        .collect()
    }
}

async fn begin(c: &mut PgConnection, u: &SegmentUpload) -> StoreResult<SegmentUpload> {
    sqlx::query(
        "INSERT INTO segment_uploads (tenant_id, recording_id, node, epoch, lease_until, \
         object_key, blocks, staged_len, journal, created_at, updated_at) \
         VALUES ($1, $2, $3, 1, $4, $5, 0, 0, $6, $7, $7) \
         ON CONFLICT (tenant_id, recording_id) DO NOTHING",
    )
    .bind(u.tenant_id.0)
    .bind(u.recording_id.0)
    .bind(&u.node)
    .bind(u.lease_until)
    .bind(&u.object_key)
    .bind(&u.journal)
    .bind(u.created_at)
    .execute(&mut *c)
    .await
    .db()?;
    get(c, u.tenant_id, u.recording_id)
        .await?
        .ok_or(StoreError::NotFound)
}

async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Option<SegmentUpload>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM segment_uploads WHERE tenant_id = $1 AND recording_id = $2"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_optional(c)
    .await
    .db()?
    .as_ref()
    .map(from_row)
    .transpose()
}

struct Progress<'a> {
    tenant: TenantId,
    recording: RecordingId,
    node: &'a str,
    epoch: i64,
    blocks: i64,
    staged_len: i64,
    lease_until: DateTime<Utc>,
}

impl Progress<'_> {
    async fn record(&self, c: &mut PgConnection) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE segment_uploads SET blocks = $1, staged_len = $2, lease_until = $3, \
             updated_at = now() \
             WHERE tenant_id = $4 AND recording_id = $5 AND node = $6 AND epoch = $7",
        )
        .bind(self.blocks)
        .bind(self.staged_len)
        .bind(self.lease_until)
        .bind(self.tenant.0)
        .bind(self.recording.0)
        .bind(self.node)
        .bind(self.epoch)
        .execute(c)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }
}

async fn delete(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    node: Option<&str>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM segment_uploads WHERE tenant_id = $1 AND recording_id = $2 \
         AND ($3::text IS NULL OR node = $3)",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(node)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

async fn retire(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    node: &str,
    epoch: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE segment_uploads SET journal = '', blocks = 0, staged_len = 0, \
         lease_until = $1, updated_at = now() \
         WHERE tenant_id = $2 AND recording_id = $3 AND node = $4 AND epoch = $5",
    )
    .bind(insights_core::domain::retired_lease_until())
    .bind(tenant.0)
    .bind(recording.0)
    .bind(node)
    .bind(epoch)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

struct TakeOver<'a> {
    tenant: TenantId,
    recording: RecordingId,
    epoch: i64,
    node: &'a str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
}

impl TakeOver<'_> {
    async fn run(&self, c: &mut PgConnection) -> StoreResult<Option<SegmentUpload>> {
        // One statement: the row is locked, so two nodes never both win.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE segment_uploads SET node = $1, epoch = epoch + 1, lease_until = $2, \
             updated_at = $3 \
             WHERE tenant_id = $4 AND recording_id = $5 AND epoch = $6 AND lease_until <= $3 \
             RETURNING {COLUMNS}"
        )))
        .bind(self.node)
        .bind(self.lease_until)
        .bind(self.now)
        .bind(self.tenant.0)
        .bind(self.recording.0)
        .bind(self.epoch)
        .fetch_optional(c)
        .await
        .db()?;
        row.as_ref().map(from_row).transpose()
    }
}
