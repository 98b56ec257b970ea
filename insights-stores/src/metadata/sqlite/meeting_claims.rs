//! Meeting claims of gateway nodes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{ClaimTakeover, MeetingClaim, MeetingFailover, RecordingId, TenantId};
use insights_core::store::{MeetingClaimStore, StoreResult};
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{col, db, id, micros, opt_id, opt_ts, ts};

const COLUMNS: &str = "tenant_id, chain_key, recording_id, holder, lease_until, epoch, claimed_at, \
     prev_recording_id, prev_holder, prev_lease_until";
const FAILOVER_COLUMNS: &str = "tenant_id, recording_id, continues, gap_from, gap_to, reason, node";

fn from_row(row: &SqliteRow) -> StoreResult<MeetingClaim> {
    Ok(MeetingClaim {
        tenant_id: id(row, "tenant_id")?,
        chain_key: col(row, "chain_key")?,
        recording_id: id(row, "recording_id")?,
        holder: col(row, "holder")?,
        lease_until: ts(row, "lease_until")?,
        epoch: col(row, "epoch")?,
        claimed_at: ts(row, "claimed_at")?,
        previous: match (
            opt_id::<RecordingId>(row, "prev_recording_id")?,
            col::<Option<String>>(row, "prev_holder")?,
            opt_ts(row, "prev_lease_until")?,
        ) {
            (Some(recording_id), Some(holder), Some(lease_until)) => Some(ClaimTakeover {
                recording_id,
                holder,
                lease_until,
            }),
            _ => None,
        },
    })
}

fn failover_from_row(row: &SqliteRow) -> StoreResult<MeetingFailover> {
    Ok(MeetingFailover {
        tenant_id: id(row, "tenant_id")?,
        recording_id: id(row, "recording_id")?,
        continues: id(row, "continues")?,
        gap_from: ts(row, "gap_from")?,
        gap_to: ts(row, "gap_to")?,
        reason: col(row, "reason")?,
        node: col(row, "node")?,
    })
}

#[async_trait]
impl MeetingClaimStore for SqliteStore {
    async fn claim_meeting(
        &self,
        tenant: TenantId,
        chain_key: &str,
        recording_id: RecordingId,
        node: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<MeetingClaim> {
        // One statement: insert, or take over a claim whose lease ran out.
        sqlx::query(
            "INSERT INTO meeting_claims \
             (tenant_id, chain_key, recording_id, holder, lease_until, epoch, claimed_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?) \
             ON CONFLICT (tenant_id, chain_key) DO UPDATE SET \
               prev_recording_id = meeting_claims.recording_id, \
               prev_holder = meeting_claims.holder, \
               prev_lease_until = meeting_claims.lease_until, \
               recording_id = excluded.recording_id, holder = excluded.holder, \
               lease_until = excluded.lease_until, claimed_at = excluded.claimed_at, \
               epoch = meeting_claims.epoch + 1 \
             WHERE meeting_claims.lease_until <= ?",
        )
        .bind(tenant.0)
        .bind(chain_key)
        .bind(recording_id.0)
        .bind(node)
        .bind(micros(lease_until))
        .bind(micros(at))
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.meeting_claim(tenant, chain_key)
            .await?
            .ok_or(insights_core::store::StoreError::NotFound)
    }

    async fn renew_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
        epoch: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE meeting_claims SET lease_until = ? \
             WHERE tenant_id = ? AND chain_key = ? AND holder = ? AND epoch = ?",
        )
        .bind(micros(lease_until))
        .bind(tenant.0)
        .bind(chain_key)
        .bind(node)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_meeting_claims(
        &self,
        tenant: TenantId,
        node: &str,
        claims: &[(String, i64)],
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        // One write transaction (one WAL fsync) for the whole heartbeat.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let mut held = Vec::with_capacity(claims.len());
        for (chain_key, epoch) in claims {
            let done = sqlx::query(
                "UPDATE meeting_claims SET lease_until = ? \
                 WHERE tenant_id = ? AND chain_key = ? AND holder = ? AND epoch = ?",
            )
            .bind(micros(lease_until))
            .bind(tenant.0)
            .bind(chain_key)
            .bind(node)
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            held.push(done.rows_affected() == 1);
        }
        tx.commit().await.map_err(db)?;
        Ok(held)
    }

    async fn release_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM meeting_claims WHERE tenant_id = ? AND chain_key = ? AND holder = ?",
        )
        .bind(tenant.0)
        .bind(chain_key)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
    ) -> StoreResult<Option<MeetingClaim>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM meeting_claims WHERE tenant_id = ? AND chain_key = ?"
        )))
        .bind(tenant.0)
        .bind(chain_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn record_meeting_failover(
        &self,
        tenant: TenantId,
        f: &MeetingFailover,
    ) -> StoreResult<()> {
        if f.tenant_id != tenant {
            return Err(insights_core::store::StoreError::Invalid(
                "the failover belongs to another tenant".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO meeting_failovers \
             (tenant_id, recording_id, continues, gap_from, gap_to, reason, node) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, recording_id) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(f.recording_id.0)
        .bind(f.continues.0)
        .bind(micros(f.gap_from))
        .bind(micros(f.gap_to))
        .bind(&f.reason)
        .bind(&f.node)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn meeting_failovers(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<MeetingFailover>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FAILOVER_COLUMNS} FROM meeting_failovers \
             WHERE tenant_id = ? AND (recording_id = ? OR continues = ?) \
             ORDER BY gap_from, recording_id"
        )))
        .bind(tenant.0)
        .bind(recording.0)
        .bind(recording.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(failover_from_row)
        .collect()
    }
}
