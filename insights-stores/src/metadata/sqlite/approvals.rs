//! Four-eyes access requests.

use async_trait::async_trait;
use insights_core::domain::{
    AccessDecision, AccessRequest, AccessRequestId, AccessRequestStatus, ChangeStatus,
    GovernanceChange, GovernanceChangeId, TenantId,
};
use insights_core::store::{ApprovalStore, StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{check_tenant, col, conflict_as, db, enum_col, id, micros, opt_ts, ts};

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()> {
        create(&self.pool, tenant, r).await
    }

    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest> {
        get(&self.pool, tenant, id).await
    }

    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>> {
        list(&self.pool, tenant, status, requested_by).await
    }

    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest> {
        decide(&self.pool, tenant, id, decision).await
    }

    async fn create_governance_change(
        &self,
        tenant: TenantId,
        change: &GovernanceChange,
    ) -> StoreResult<()> {
        super::changes::create(&self.pool, tenant, change).await
    }

    async fn get_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
    ) -> StoreResult<GovernanceChange> {
        super::changes::get(&self.pool, tenant, id).await
    }

    async fn list_governance_changes(
        &self,
        tenant: TenantId,
        status: Option<ChangeStatus>,
    ) -> StoreResult<Vec<GovernanceChange>> {
        super::changes::list(&self.pool, tenant, status).await
    }

    async fn decide_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
        approve: bool,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<GovernanceChange> {
        super::changes::decide(&self.pool, tenant, id, approve, by, at).await
    }
}

/// The columns, in [`from_row`]'s order.
macro_rules! columns {
    () => {
        "tenant_id, id, recording_id, requested_by, reason, requested_at, status, \
                       decided_by, decided_at, decision_note, expires_at"
    };
}

pub(super) async fn create(
    pool: &SqlitePool,
    tenant: TenantId,
    r: &AccessRequest,
) -> StoreResult<()> {
    check_tenant(tenant, r.tenant_id, "the access request")?;
    if r.status != AccessRequestStatus::Pending {
        return Err(StoreError::Invalid(
            "a new access request must be pending".into(),
        ));
    }
    // The foreign key turns a recording of another tenant (or none) into
    // NotFound.
    sqlx::query(concat!(
        "INSERT INTO access_requests (",
        columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)"
    ))
    .bind(tenant.0)
    .bind(r.id.0)
    .bind(r.recording_id.0)
    .bind(&r.requested_by)
    .bind(&r.reason)
    .bind(micros(r.requested_at))
    .bind(r.status.as_str())
    .execute(pool)
    .await
    .map_err(conflict_as("an access request with this id exists"))?;
    Ok(())
}

fn from_row(row: &SqliteRow) -> StoreResult<AccessRequest> {
    Ok(AccessRequest {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        recording_id: id(row, "recording_id")?,
        requested_by: col(row, "requested_by")?,
        reason: col(row, "reason")?,
        requested_at: ts(row, "requested_at")?,
        status: enum_col(row, "status")?,
        decided_by: col(row, "decided_by")?,
        decided_at: opt_ts(row, "decided_at")?,
        decision_note: col(row, "decision_note")?,
        expires_at: opt_ts(row, "expires_at")?,
    })
}

pub(super) async fn get(
    pool: &SqlitePool,
    tenant: TenantId,
    rid: AccessRequestId,
) -> StoreResult<AccessRequest> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM access_requests WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant.0)
    .bind(rid.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    status: Option<AccessRequestStatus>,
    requested_by: Option<&str>,
) -> StoreResult<Vec<AccessRequest>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM access_requests WHERE tenant_id = ? \
         AND (? IS NULL OR status = ?) AND (? IS NULL OR requested_by = ?) \
         ORDER BY requested_at DESC, id"
    ))
    .bind(tenant.0)
    .bind(status.map(|s| s.as_str()))
    .bind(status.map(|s| s.as_str()))
    .bind(requested_by)
    .bind(requested_by)
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
    rid: AccessRequestId,
    d: &AccessDecision,
) -> StoreResult<AccessRequest> {
    let current = get(pool, tenant, rid).await?;
    if current.requested_by == d.by {
        return Err(StoreError::Invalid(
            "an access request must be decided by someone other than the requester".into(),
        ));
    }
    let status = if d.approve {
        AccessRequestStatus::Approved
    } else {
        AccessRequestStatus::Denied
    };
    // Only a pending request changes: two deciders racing cannot both win.
    let done = sqlx::query(
        "UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ?, \
         decision_note = ?, expires_at = ? \
         WHERE tenant_id = ? AND id = ? AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(&d.by)
    .bind(micros(d.at))
    .bind(&d.note)
    .bind(d.approve.then(|| micros(d.expires_at)))
    .bind(tenant.0)
    .bind(rid.0)
    .execute(pool)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "the access request was already decided".into(),
        ));
    }
    get(pool, tenant, rid).await
}
