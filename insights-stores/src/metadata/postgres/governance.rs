//! Retention policies, legal holds and security profiles.

use insights_core::domain::{
    HoldScope, LegalHold, LegalHoldId, Permission, RecordingId, RetentionPolicy, RetentionPolicyId,
    RetentionScope, SecurityProfile, SecurityProfileId, TenantId, UserId, VisibilityScope,
};
use insights_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::error::{DbResultExt, col, enum_col, found, opt_enum_col};

// ---- retention policies ----

pub(super) async fn upsert_retention_policy(
    c: &mut PgConnection,
    tenant: TenantId,
    p: &RetentionPolicy,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO retention_policies (tenant_id, id, name, scope_kind, scope_direction, \
         scope_group, scope_retention_class, retain_days, action, enabled, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, \
         scope_kind = EXCLUDED.scope_kind, scope_direction = EXCLUDED.scope_direction, \
         scope_group = EXCLUDED.scope_group, \
         scope_retention_class = EXCLUDED.scope_retention_class, \
         retain_days = EXCLUDED.retain_days, action = EXCLUDED.action, \
         enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at",
    )
    .bind(tenant.0)
    .bind(p.id.0)
    .bind(&p.name)
    .bind(p.scope.kind.map(|k| k.as_str()))
    .bind(p.scope.direction.map(|d| d.as_str()))
    .bind(&p.scope.group)
    .bind(&p.scope.retention_class)
    .bind(p.retain_days)
    .bind(p.action.as_str())
    .bind(p.enabled)
    .bind(p.updated_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn policy_from_row(row: &PgRow) -> StoreResult<RetentionPolicy> {
    Ok(RetentionPolicy {
        id: RetentionPolicyId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        name: col(row, "name")?,
        scope: RetentionScope {
            kind: opt_enum_col(row, "scope_kind")?,
            direction: opt_enum_col(row, "scope_direction")?,
            group: col(row, "scope_group")?,
            retention_class: col(row, "scope_retention_class")?,
        },
        retain_days: col(row, "retain_days")?,
        action: enum_col(row, "action")?,
        enabled: col(row, "enabled")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Policies ordered by name, then id.
pub(super) async fn list_retention_policies(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Vec<RetentionPolicy>> {
    sqlx::query(
        "SELECT tenant_id, id, name, scope_kind, scope_direction, scope_group, \
         scope_retention_class, retain_days, action, enabled, updated_at \
         FROM retention_policies WHERE tenant_id = $1 ORDER BY name COLLATE \"C\", id",
    )
    .bind(tenant.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(policy_from_row)
    .collect()
}

pub(super) async fn delete_retention_policy(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RetentionPolicyId,
) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM retention_policies WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .execute(c)
        .await
        .db()?;
    found(done)
}

// ---- legal holds ----

pub(super) async fn create_legal_hold(
    c: &mut PgConnection,
    tenant: TenantId,
    h: &LegalHold,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO legal_holds (tenant_id, id, case_name, reason, scope_user_id, \
         scope_participant_identifier, scope_from, scope_to, scope_recording_ids, placed_by, \
         placed_at, lifted_by, lifted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(tenant.0)
    .bind(h.id.0)
    .bind(&h.case_name)
    .bind(&h.reason)
    .bind(h.scope.user_id.map(|u| u.0))
    .bind(&h.scope.participant_identifier)
    .bind(h.scope.from)
    .bind(h.scope.to)
    .bind(
        h.scope
            .recording_ids
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
    )
    .bind(&h.placed_by)
    .bind(h.placed_at)
    .bind(&h.lifted_by)
    .bind(h.lifted_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn hold_from_row(row: &PgRow) -> StoreResult<LegalHold> {
    let recording_ids: Vec<Uuid> = col(row, "scope_recording_ids")?;
    Ok(LegalHold {
        id: LegalHoldId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        case_name: col(row, "case_name")?,
        reason: col(row, "reason")?,
        scope: HoldScope {
            user_id: col::<Option<Uuid>>(row, "scope_user_id")?.map(UserId),
            participant_identifier: col(row, "scope_participant_identifier")?,
            from: col(row, "scope_from")?,
            to: col(row, "scope_to")?,
            recording_ids: recording_ids.into_iter().map(RecordingId).collect(),
        },
        placed_by: col(row, "placed_by")?,
        placed_at: col(row, "placed_at")?,
        lifted_by: col(row, "lifted_by")?,
        lifted_at: col(row, "lifted_at")?,
    })
}

pub(super) async fn list_legal_holds(
    c: &mut PgConnection,
    tenant: TenantId,
    active_only: bool,
) -> StoreResult<Vec<LegalHold>> {
    sqlx::query(
        "SELECT tenant_id, id, case_name, reason, scope_user_id, scope_participant_identifier, \
         scope_from, scope_to, scope_recording_ids, placed_by, placed_at, lifted_by, lifted_at \
         FROM legal_holds WHERE tenant_id = $1 AND (NOT $2 OR lifted_at IS NULL) \
         ORDER BY placed_at, id",
    )
    .bind(tenant.0)
    .bind(active_only)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(hold_from_row)
    .collect()
}

/// Lifts an active hold. Lifting a hold that was already lifted changes
/// nothing (who lifted it first, and when, stays on record).
pub(super) async fn lift_legal_hold(
    c: &mut PgConnection,
    tenant: TenantId,
    id: LegalHoldId,
    by: &str,
) -> StoreResult<()> {
    let lifted_at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT lifted_at FROM legal_holds WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    if lifted_at.is_some() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE legal_holds SET lifted_by = $3, lifted_at = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.0)
    .bind(id.0)
    .bind(by)
    .bind(insights_core::domain::now())
    .execute(c)
    .await
    .db()?;
    Ok(())
}

// ---- security profiles ----

pub(super) async fn upsert_security_profile(
    c: &mut PgConnection,
    tenant: TenantId,
    p: &SecurityProfile,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO security_profiles (tenant_id, id, name, role, permissions, scope) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, \
         role = EXCLUDED.role, permissions = EXCLUDED.permissions, scope = EXCLUDED.scope",
    )
    .bind(tenant.0)
    .bind(p.id.0)
    .bind(&p.name)
    .bind(p.role.as_str())
    .bind(p.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>())
    .bind(Json(&p.scope))
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn profile_from_row(row: &PgRow) -> StoreResult<SecurityProfile> {
    let permissions: Vec<String> = col(row, "permissions")?;
    let Json(scope): Json<VisibilityScope> = col(row, "scope")?;
    Ok(SecurityProfile {
        id: SecurityProfileId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        name: col(row, "name")?,
        role: enum_col(row, "role")?,
        permissions: permissions
            .iter()
            .map(|p| p.parse::<Permission>())
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        scope,
    })
}

/// Profiles ordered by name, then id.
pub(super) async fn list_security_profiles(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Vec<SecurityProfile>> {
    sqlx::query(
        "SELECT tenant_id, id, name, role, permissions, scope FROM security_profiles \
         WHERE tenant_id = $1 ORDER BY name COLLATE \"C\", id",
    )
    .bind(tenant.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(profile_from_row)
    .collect()
}
