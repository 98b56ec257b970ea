//! Two-person governance: pending destructive governance changes (the
//! SQL behind [`ApprovalStore`](insights_core::store::ApprovalStore)'s
//! `*_governance_change` methods).

use chrono::{DateTime, Utc};
use insights_core::domain::{ChangeStatus, GovernanceChange, GovernanceChangeId, TenantId};
use insights_core::store::{StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::util::{
    check_tenant, col, conflict_as, db, enum_col, id, json_col, micros, opt_ts, to_json, ts,
};

macro_rules! columns {
    () => {
        "tenant_id, id, kind, target, payload, requested_by, requested_at, status, \
         decided_by, decided_at"
    };
}

pub(super) async fn create(
    pool: &SqlitePool,
    tenant: TenantId,
    c: &GovernanceChange,
) -> StoreResult<()> {
    check_tenant(tenant, c.tenant_id, "the governance change")?;
    if c.status != ChangeStatus::Pending {
        return Err(StoreError::Invalid(
            "a new governance change must be pending".into(),
        ));
    }
    sqlx::query(concat!(
        "INSERT INTO governance_changes (",
        columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL)"
    ))
    .bind(tenant.0)
    .bind(c.id.0)
    .bind(c.kind.as_str())
    .bind(&c.target)
    .bind(to_json(&c.payload)?)
    .bind(&c.requested_by)
    .bind(micros(c.requested_at))
    .execute(pool)
    .await
    .map_err(conflict_as("a governance change with this id exists"))?;
    Ok(())
}

fn from_row(row: &SqliteRow) -> StoreResult<GovernanceChange> {
    Ok(GovernanceChange {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        kind: enum_col(row, "kind")?,
        target: col(row, "target")?,
        payload: json_col(row, "payload")?,
        requested_by: col(row, "requested_by")?,
        requested_at: ts(row, "requested_at")?,
        status: enum_col(row, "status")?,
        decided_by: col(row, "decided_by")?,
        decided_at: opt_ts(row, "decided_at")?,
    })
}

pub(super) async fn get(
    pool: &SqlitePool,
    tenant: TenantId,
    cid: GovernanceChangeId,
) -> StoreResult<GovernanceChange> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM governance_changes WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant.0)
    .bind(cid.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    status: Option<ChangeStatus>,
) -> StoreResult<Vec<GovernanceChange>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM governance_changes WHERE tenant_id = ? AND (? IS NULL OR status = ?) \
         ORDER BY requested_at DESC, id"
    ))
    .bind(tenant.0)
    .bind(status.map(|s| s.as_str()))
    .bind(status.map(|s| s.as_str()))
    .fetch_all(pool)
    .await
    .map_err(db)?
    .iter()
    .map(from_row)
    .collect()
}

pub(super) async fn decide(
    pool: &SqlitePool,
    tenant: TenantId,
    cid: GovernanceChangeId,
    approve: bool,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<GovernanceChange> {
    let current = get(pool, tenant, cid).await?;
    if current.requested_by == by {
        return Err(StoreError::Invalid(
            "a governance change must be decided by someone other than the requester".into(),
        ));
    }
    let status = if approve {
        ChangeStatus::Approved
    } else {
        ChangeStatus::Rejected
    };
    // Only a pending change moves: two deciders racing cannot both win.
    let done = sqlx::query(
        "UPDATE governance_changes SET status = ?, decided_by = ?, decided_at = ? \
         WHERE tenant_id = ? AND id = ? AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(by)
    .bind(micros(at))
    .bind(tenant.0)
    .bind(cid.0)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "the governance change was already decided".into(),
        ));
    }
    get(pool, tenant, cid).await
}
