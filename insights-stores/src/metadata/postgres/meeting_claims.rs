//! Meeting claims of gateway nodes (tenant sessions, row-level security).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{ClaimTakeover, MeetingClaim, MeetingFailover, RecordingId, TenantId};
use insights_core::store::{MeetingClaimStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col};

const COLUMNS: &str = "tenant_id, chain_key, recording_id, holder, lease_until, epoch, claimed_at, \
     prev_recording_id, prev_holder, prev_lease_until";
const FAILOVER_COLUMNS: &str = "tenant_id, recording_id, continues, gap_from, gap_to, reason, node";

fn from_row(row: &PgRow) -> StoreResult<MeetingClaim> {
    Ok(MeetingClaim {
        tenant_id: TenantId(col(row, "tenant_id")?),
        chain_key: col(row, "chain_key")?,
        recording_id: RecordingId(col(row, "recording_id")?),
        holder: col(row, "holder")?,
        lease_until: col(row, "lease_until")?,
        epoch: col(row, "epoch")?,
        claimed_at: col(row, "claimed_at")?,
        previous: match (
            col::<Option<uuid::Uuid>>(row, "prev_recording_id")?,
            col::<Option<String>>(row, "prev_holder")?,
            col::<Option<DateTime<Utc>>>(row, "prev_lease_until")?,
        ) {
            (Some(r), Some(holder), Some(lease_until)) => Some(ClaimTakeover {
                recording_id: RecordingId(r),
                holder,
                lease_until,
            }),
            _ => None,
        },
    })
}

fn failover_from_row(row: &PgRow) -> StoreResult<MeetingFailover> {
    Ok(MeetingFailover {
        tenant_id: TenantId(col(row, "tenant_id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        continues: RecordingId(col(row, "continues")?),
        gap_from: col(row, "gap_from")?,
        gap_to: col(row, "gap_to")?,
        reason: col(row, "reason")?,
        node: col(row, "node")?,
    })
}

#[async_trait]
impl MeetingClaimStore for PgStore {
    async fn claim_meeting(
        &self,
        tenant: TenantId,
        chain_key: &str,
        recording_id: RecordingId,
        node: &str,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<MeetingClaim> {
        let claim = Claim {
            tenant,
            chain_key,
            recording_id,
            node,
            at,
            lease_until,
        };
        in_tenant!(self, tenant, |c| claim.run(c))
    }

    async fn renew_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
        epoch: i64,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| renew(
            c,
            tenant,
            chain_key,
            node,
            epoch,
            lease_until
        ))
    }

    async fn renew_meeting_claims(
        &self,
        tenant: TenantId,
        node: &str,
        claims: &[(String, i64)],
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        in_tenant!(self, tenant, |c| renew_all(
            c,
            tenant,
            node,
            claims,
            lease_until
        ))
    }

    async fn release_meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
        node: &str,
    ) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| release(c, tenant, chain_key, node))
    }

    async fn meeting_claim(
        &self,
        tenant: TenantId,
        chain_key: &str,
    ) -> StoreResult<Option<MeetingClaim>> {
        in_tenant!(self, tenant, |c| get(c, tenant, chain_key))
    }

    async fn record_meeting_failover(
        &self,
        tenant: TenantId,
        f: &MeetingFailover,
    ) -> StoreResult<()> {
        if f.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the failover belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| put_failover(c, f))
    }

    async fn meeting_failovers(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<MeetingFailover>> {
        in_tenant!(self, tenant, |c| failovers(c, tenant, recording))
    }
}

async fn put_failover(c: &mut PgConnection, f: &MeetingFailover) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO meeting_failovers \
         (tenant_id, recording_id, continues, gap_from, gap_to, reason, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, recording_id) DO NOTHING",
    )
    .bind(f.tenant_id.0)
    .bind(f.recording_id.0)
    .bind(f.continues.0)
    .bind(f.gap_from)
    .bind(f.gap_to)
    .bind(&f.reason)
    .bind(&f.node)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

async fn failovers(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<MeetingFailover>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {FAILOVER_COLUMNS} FROM meeting_failovers \
         WHERE tenant_id = $1 AND (recording_id = $2 OR continues = $2) \
         ORDER BY gap_from, recording_id"
    )))
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(failover_from_row)
    .collect()
}

struct Claim<'a> {
    tenant: TenantId,
    chain_key: &'a str,
    recording_id: RecordingId,
    node: &'a str,
    at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
}

impl Claim<'_> {
    async fn run(&self, c: &mut PgConnection) -> StoreResult<MeetingClaim> {
        // One statement: insert, or take over a claim whose lease ran out
        // (the conflicting row is locked, so two nodes never both win).
        sqlx::query(
            "INSERT INTO meeting_claims \
             (tenant_id, chain_key, recording_id, holder, lease_until, epoch, claimed_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) \
             ON CONFLICT (tenant_id, chain_key) DO UPDATE SET \
               prev_recording_id = meeting_claims.recording_id, \
               prev_holder = meeting_claims.holder, \
               prev_lease_until = meeting_claims.lease_until, \
               recording_id = excluded.recording_id, holder = excluded.holder, \
               lease_until = excluded.lease_until, claimed_at = excluded.claimed_at, \
               epoch = meeting_claims.epoch + 1 \
             WHERE meeting_claims.lease_until <= $6",
        )
        .bind(self.tenant.0)
        .bind(self.chain_key)
        .bind(self.recording_id.0)
        .bind(self.node)
        .bind(self.lease_until)
        .bind(self.at)
        .execute(&mut *c)
        .await
        .db()?;
        get(c, self.tenant, self.chain_key)
            .await?
            .ok_or(StoreError::NotFound)
    }
}

async fn renew(
    c: &mut PgConnection,
    tenant: TenantId,
    chain_key: &str,
    node: &str,
    epoch: i64,
    lease_until: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE meeting_claims SET lease_until = $1 \
         WHERE tenant_id = $2 AND chain_key = $3 AND holder = $4 AND epoch = $5",
    )
    .bind(lease_until)
    .bind(tenant.0)
    .bind(chain_key)
    .bind(node)
    .bind(epoch)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

async fn renew_all(
    c: &mut PgConnection,
    tenant: TenantId,
    node: &str,
    claims: &[(String, i64)],
    lease_until: DateTime<Utc>,
) -> StoreResult<Vec<bool>> {
    let mut held = Vec::with_capacity(claims.len());
    for (chain_key, epoch) in claims {
        held.push(renew(&mut *c, tenant, chain_key, node, *epoch, lease_until).await?);
    }
    Ok(held)
}

async fn release(
    c: &mut PgConnection,
    tenant: TenantId,
    chain_key: &str,
    node: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM meeting_claims WHERE tenant_id = $1 AND chain_key = $2 AND holder = $3",
    )
    .bind(tenant.0)
    .bind(chain_key)
    .bind(node)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() == 1)
}

async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    chain_key: &str,
) -> StoreResult<Option<MeetingClaim>> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM meeting_claims WHERE tenant_id = $1 AND chain_key = $2"
    )))
    .bind(tenant.0)
    .bind(chain_key)
    .fetch_optional(c)
    .await
    .db()?
    .as_ref()
    .map(from_row)
    .transpose()
}
