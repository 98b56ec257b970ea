//! Two-person governance: pending destructive governance changes (the
//! SQL behind [`ApprovalStore`](insights_core::store::ApprovalStore)'s
//! `*_governance_change` methods).

use chrono::{DateTime, Utc};
use insights_core::domain::{ChangeStatus, GovernanceChange, GovernanceChangeId, TenantId};
use insights_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::error::{DbResultExt, col, enum_col};

macro_rules! columns {
    () => {
        "tenant_id, id, kind, target, payload, requested_by, requested_at, status, \
         decided_by, decided_at"
    };
}

pub(super) async fn create(
    c: &mut PgConnection,
    tenant: TenantId,
    ch: &GovernanceChange,
) -> StoreResult<()> {
    if ch.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "the governance change belongs to another tenant".into(),
        ));
    }
    if ch.status != ChangeStatus::Pending {
        return Err(StoreError::Invalid(
            "a new governance change must be pending".into(),
        ));
    }
    sqlx::query(concat!(
        "INSERT INTO governance_changes (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL, NULL)"
    ))
    .bind(tenant.0)
    .bind(ch.id.0)
    .bind(ch.kind.as_str())
    .bind(&ch.target)
    .bind(Json(&ch.payload))
    .bind(&ch.requested_by)
    .bind(ch.requested_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn from_row(row: &PgRow) -> StoreResult<GovernanceChange> {
    let Json(payload): Json<serde_json::Value> = col(row, "payload")?;
    Ok(GovernanceChange {
        id: GovernanceChangeId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        target: col(row, "target")?,
        payload,
        requested_by: col(row, "requested_by")?,
        requested_at: col(row, "requested_at")?,
        status: enum_col(row, "status")?,
        decided_by: col(row, "decided_by")?,
        decided_at: col(row, "decided_at")?,
    })
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    cid: GovernanceChangeId,
) -> StoreResult<GovernanceChange> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM governance_changes WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(cid.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
    status: Option<ChangeStatus>,
) -> StoreResult<Vec<GovernanceChange>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM governance_changes WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR status = $2) ORDER BY requested_at DESC, id"
    ))
    .bind(tenant.0)
    .bind(status.map(|s| s.as_str()))
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(from_row)
    .collect()
}

pub(super) async fn decide(
    c: &mut PgConnection,
    tenant: TenantId,
    cid: GovernanceChangeId,
    approve: bool,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<GovernanceChange> {
    // Lock the row: two deciders racing cannot both win.
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM governance_changes WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant.0)
    .bind(cid.0)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    let current = from_row(&row)?;
    if current.requested_by == by {
        return Err(StoreError::Invalid(
            "a governance change must be decided by someone other than the requester".into(),
        ));
    }
    if current.status != ChangeStatus::Pending {
        return Err(StoreError::Conflict(
            "the governance change was already decided".into(),
        ));
    }
    let status = if approve {
        ChangeStatus::Approved
    } else {
        ChangeStatus::Rejected
    };
    let row = sqlx::query(concat!(
        "UPDATE governance_changes SET status = $3, decided_by = $4, decided_at = $5 \
         WHERE tenant_id = $1 AND id = $2 RETURNING ",
        columns!(),
        ""
    ))
    .bind(tenant.0)
    .bind(cid.0)
    .bind(status.as_str())
    .bind(by)
    .bind(at)
    .fetch_one(c)
    .await
    .db()?;
    from_row(&row)
}
