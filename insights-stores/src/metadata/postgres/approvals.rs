//! Four-eyes access requests.

use async_trait::async_trait;
use insights_core::domain::{
    AccessDecision, AccessRequest, AccessRequestId, AccessRequestStatus, ChangeStatus,
    GovernanceChange, GovernanceChangeId, RecordingId, TenantId,
};
use insights_core::store::{ApprovalStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

#[async_trait]
impl ApprovalStore for PgStore {
    async fn create_access_request(&self, tenant: TenantId, r: &AccessRequest) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| create(c, tenant, r))
    }

    async fn get_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
    ) -> StoreResult<AccessRequest> {
        in_tenant!(self, tenant, |c| get(c, tenant, id))
    }

    async fn list_access_requests(
        &self,
        tenant: TenantId,
        status: Option<AccessRequestStatus>,
        requested_by: Option<&str>,
    ) -> StoreResult<Vec<AccessRequest>> {
        in_tenant!(self, tenant, |c| list(c, tenant, status, requested_by))
    }

    async fn decide_access_request(
        &self,
        tenant: TenantId,
        id: AccessRequestId,
        decision: &AccessDecision,
    ) -> StoreResult<AccessRequest> {
        in_tenant!(self, tenant, |c| decide(c, tenant, id, decision))
    }

    async fn create_governance_change(
        &self,
        tenant: TenantId,
        change: &GovernanceChange,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::changes::create(c, tenant, change))
    }

    async fn get_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
    ) -> StoreResult<GovernanceChange> {
        in_tenant!(self, tenant, |c| super::changes::get(c, tenant, id))
    }

    async fn list_governance_changes(
        &self,
        tenant: TenantId,
        status: Option<ChangeStatus>,
    ) -> StoreResult<Vec<GovernanceChange>> {
        in_tenant!(self, tenant, |c| super::changes::list(c, tenant, status))
    }

    async fn decide_governance_change(
        &self,
        tenant: TenantId,
        id: GovernanceChangeId,
        approve: bool,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<GovernanceChange> {
        in_tenant!(self, tenant, |c| super::changes::decide(
            c, tenant, id, approve, by, at
        ))
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
    c: &mut PgConnection,
    tenant: TenantId,
    r: &AccessRequest,
) -> StoreResult<()> {
    if r.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "the access request belongs to another tenant".into(),
        ));
    }
    if r.status != AccessRequestStatus::Pending {
        return Err(StoreError::Invalid(
            "a new access request must be pending".into(),
        ));
    }
    sqlx::query(concat!(
        "INSERT INTO access_requests (",
        columns!(),
        ") \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, NULL)"
    ))
    .bind(tenant.0)
    .bind(r.id.0)
    .bind(r.recording_id.0)
    .bind(&r.requested_by)
    .bind(&r.reason)
    .bind(r.requested_at)
    .bind(r.status.as_str())
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn from_row(row: &PgRow) -> StoreResult<AccessRequest> {
    Ok(AccessRequest {
        id: AccessRequestId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        requested_by: col(row, "requested_by")?,
        reason: col(row, "reason")?,
        requested_at: col(row, "requested_at")?,
        status: enum_col(row, "status")?,
        decided_by: col(row, "decided_by")?,
        decided_at: col(row, "decided_at")?,
        decision_note: col(row, "decision_note")?,
        expires_at: col(row, "expires_at")?,
    })
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    rid: AccessRequestId,
) -> StoreResult<AccessRequest> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM access_requests WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.0)
    .bind(rid.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
    status: Option<AccessRequestStatus>,
    requested_by: Option<&str>,
) -> StoreResult<Vec<AccessRequest>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM access_requests WHERE tenant_id = $1 \
         AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR requested_by = $3) \
         ORDER BY requested_at DESC, id"
    ))
    .bind(tenant.0)
    .bind(status.map(|s| s.as_str()))
    .bind(requested_by)
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
    rid: AccessRequestId,
    d: &AccessDecision,
) -> StoreResult<AccessRequest> {
    // Lock the row: two deciders racing cannot both win.
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM access_requests WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(tenant.0)
    .bind(rid.0)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    let current = from_row(&row)?;
    if current.requested_by == d.by {
        return Err(StoreError::Invalid(
            "an access request must be decided by someone other than the requester".into(),
        ));
    }
    if current.status != AccessRequestStatus::Pending {
        return Err(StoreError::Conflict(
            "the access request was already decided".into(),
        ));
    }
    let status = if d.approve {
        AccessRequestStatus::Approved
    } else {
        AccessRequestStatus::Denied
    };
    let row = sqlx::query(concat!(
        "UPDATE access_requests SET status = $3, decided_by = $4, decided_at = $5, \
         decision_note = $6, expires_at = $7 WHERE tenant_id = $1 AND id = $2 \
         RETURNING ",
        columns!(),
        ""
    ))
    .bind(tenant.0)
    .bind(rid.0)
    .bind(status.as_str())
    .bind(&d.by)
    .bind(d.at)
    .bind(&d.note)
    .bind(d.approve.then_some(d.expires_at))
    .fetch_one(c)
    .await
    .db()?;
    from_row(&row)
}
