//! Retention policies, legal holds and security profiles.

use async_trait::async_trait;
use insights_core::domain::{
    AccountId, HoldScope, LegalHold, LegalHoldId, LocalAccount, Permission, Realm, Recording,
    RecordingId, RecordingPolicy, RetentionPolicy, RetentionPolicyId, RetentionScope, Role,
    SecurityProfile, SecurityProfileId, TenantId, UserId, VisibilityScope,
};
use insights_core::store::{
    AccountChange, GovernanceQuery, GovernanceStore, StoreError, StoreResult,
};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col, found, opt_enum_col};
use super::recordings::{RECORDING_COLS, attach_children, from_row, get, lock};

#[async_trait]
impl GovernanceStore for PgStore {
    async fn upsert_retention_policy(
        &self,
        tenant: TenantId,
        p: &RetentionPolicy,
    ) -> StoreResult<()> {
        if p.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "policy belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| upsert_retention_policy(c, tenant, p))
    }

    async fn list_retention_policies(&self, tenant: TenantId) -> StoreResult<Vec<RetentionPolicy>> {
        in_tenant!(self, tenant, |c| list_retention_policies(c, tenant))
    }

    async fn delete_retention_policy(
        &self,
        tenant: TenantId,
        id: RetentionPolicyId,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| delete_retention_policy(c, tenant, id))
    }

    async fn create_legal_hold(&self, tenant: TenantId, hold: &LegalHold) -> StoreResult<()> {
        if hold.tenant_id != tenant {
            return Err(StoreError::Invalid("hold belongs to another tenant".into()));
        }
        in_tenant!(self, tenant, |c| create_legal_hold(c, tenant, hold))
    }

    async fn list_legal_holds(
        &self,
        tenant: TenantId,
        active_only: bool,
    ) -> StoreResult<Vec<LegalHold>> {
        in_tenant!(self, tenant, |c| list_legal_holds(c, tenant, active_only))
    }

    async fn lift_legal_hold(
        &self,
        tenant: TenantId,
        id: LegalHoldId,
        by: &str,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| lift_legal_hold(c, tenant, id, by))
    }

    async fn list_recordings_for_governance(
        &self,
        tenant: TenantId,
        query: &GovernanceQuery,
    ) -> StoreResult<Vec<Recording>> {
        in_tenant!(self, tenant, |c| list_recordings_for_governance(
            c, tenant, query
        ))
    }

    async fn apply_legal_holds(&self, tenant: TenantId, id: RecordingId) -> StoreResult<bool> {
        in_tenant!(self, tenant, |c| apply_legal_holds(c, tenant, id))
    }

    async fn recording_policy(&self, tenant: TenantId) -> StoreResult<Option<RecordingPolicy>> {
        in_tenant!(self, tenant, |c| recording_policy(c, tenant))
    }

    async fn put_recording_policy(
        &self,
        tenant: TenantId,
        policy: &RecordingPolicy,
    ) -> StoreResult<()> {
        if policy.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "the recording policy belongs to another tenant".into(),
            ));
        }
        policy.validate().map_err(StoreError::Invalid)?;
        in_tenant!(self, tenant, |c| put_recording_policy(c, tenant, policy))
    }

    async fn put_completeness(
        &self,
        tenant: TenantId,
        run: &insights_core::domain::CompletenessRun,
        calls: &[insights_core::domain::CallCompleteness],
    ) -> StoreResult<()> {
        super::completeness::check(tenant, run.tenant_id, None)?;
        in_tenant!(self, tenant, |c| super::completeness::put_completeness(
            c, tenant, run, calls
        ))
    }

    async fn list_completeness_calls(
        &self,
        tenant: TenantId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<insights_core::domain::CallCompleteness>> {
        in_tenant!(self, tenant, |c| {
            super::completeness::list_completeness_calls(c, tenant, from, to)
        })
    }

    async fn list_completeness_runs(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> StoreResult<Vec<insights_core::domain::CompletenessRun>> {
        in_tenant!(self, tenant, |c| {
            super::completeness::list_completeness_runs(c, tenant, limit)
        })
    }

    async fn completeness_threshold(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Option<insights_core::domain::CompletenessThreshold>> {
        in_tenant!(self, tenant, |c| {
            super::completeness::completeness_threshold(c, tenant)
        })
    }

    async fn put_completeness_threshold(
        &self,
        tenant: TenantId,
        settings: &insights_core::domain::CompletenessThreshold,
    ) -> StoreResult<()> {
        super::completeness::check(
            tenant,
            settings.tenant_id,
            Some(settings.threshold_permille),
        )?;
        in_tenant!(self, tenant, |c| {
            super::completeness::put_completeness_threshold(c, tenant, settings)
        })
    }
}

// ---- recording policy ----

async fn recording_policy(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Option<RecordingPolicy>> {
    let row = sqlx::query(
        "SELECT tenant_id, mode, failure_mode, rules, updated_at, updated_by \
         FROM recording_policies WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_optional(c)
    .await
    .db()?;
    row.map(|row| {
        let Json(rules) = col(&row, "rules")?;
        Ok(RecordingPolicy {
            tenant_id: TenantId(col(&row, "tenant_id")?),
            mode: enum_col(&row, "mode")?,
            failure_mode: enum_col(&row, "failure_mode")?,
            rules,
            updated_at: col(&row, "updated_at")?,
            updated_by: col(&row, "updated_by")?,
        })
    })
    .transpose()
}

async fn put_recording_policy(
    c: &mut PgConnection,
    tenant: TenantId,
    policy: &RecordingPolicy,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO recording_policies (tenant_id, mode, failure_mode, rules, updated_at, \
         updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id) DO UPDATE SET mode = EXCLUDED.mode, \
         failure_mode = EXCLUDED.failure_mode, rules = EXCLUDED.rules, \
         updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
    )
    .bind(tenant.0)
    .bind(policy.mode.as_str())
    .bind(policy.failure_mode.as_str())
    .bind(Json(&policy.rules))
    .bind(policy.updated_at)
    .bind(&policy.updated_by)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

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
    lock_holds(&mut *c, tenant).await?;
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

// ---- governance sweeps and the legal-hold flag ----

/// Recordings for retention and hold sweeps, oldest first, keyset-paged.
pub(super) async fn list_recordings_for_governance(
    c: &mut PgConnection,
    tenant: TenantId,
    q: &GovernanceQuery,
) -> StoreResult<Vec<Recording>> {
    let ids: Option<Vec<Uuid>> = q.ids.as_ref().map(|v| v.iter().map(|r| r.0).collect());
    let sql = format!(
        "SELECT {RECORDING_COLS} FROM recordings r WHERE r.tenant_id = $1 \
         AND ($2::timestamptz IS NULL OR r.started_at < $2) \
         AND ($3::timestamptz IS NULL OR r.started_at >= $3) \
         AND ($4::uuid[] IS NULL OR r.id = ANY($4)) \
         AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM participants p \
              WHERE p.tenant_id = r.tenant_id AND p.recording_id = r.id \
              AND p.directory_user_id = $5)) \
         AND ($6::boolean IS NULL OR r.legal_hold = $6) \
         AND ($7::timestamptz IS NULL OR (r.started_at, r.id) > ($7, $8::uuid)) \
         ORDER BY r.started_at, r.id LIMIT $9"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(q.started_before)
        .bind(q.started_from)
        .bind(ids)
        .bind(q.user_id.map(|u| u.0))
        .bind(q.legal_hold)
        .bind(q.after.map(|(t, _)| t))
        .bind(q.after.map(|(_, id)| id.0))
        .bind(i64::from(q.limit.clamp(1, 1000)))
        .fetch_all(&mut *c)
        .await
        .db()?;
    let mut recs = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    attach_children(c, tenant, &mut recs).await?;
    Ok(recs)
}

/// Serialises hold placement against recordings being inserted or gaining
/// participants in the same tenant: placing takes this lock exclusively,
/// inserts take it shared, both until their transaction ends. Without it
/// an insert could read the holds just before a new one commits and
/// commit itself just after the placement's sweep looked for recordings.
async fn hold_lock(c: &mut PgConnection, tenant: TenantId, exclusive: bool) -> StoreResult<()> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock(hashtextextended('insights-legal-holds:' || $1::text, 0))"
    } else {
        "SELECT pg_advisory_xact_lock_shared(hashtextextended('insights-legal-holds:' || $1::text, 0))"
    };
    sqlx::query(sql).bind(tenant.0).execute(c).await.db()?;
    Ok(())
}

/// Takes the exclusive hold lock (before a hold is created).
pub(super) async fn lock_holds(c: &mut PgConnection, tenant: TenantId) -> StoreResult<()> {
    hold_lock(c, tenant, true).await
}

/// The scopes of the tenant's active holds.
async fn active_scopes(c: &mut PgConnection, tenant: TenantId) -> StoreResult<Vec<HoldScope>> {
    Ok(list_legal_holds(c, tenant, true)
        .await?
        .into_iter()
        .map(|h| h.scope)
        .collect())
}

async fn store_flag(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
    held: bool,
) -> StoreResult<()> {
    sqlx::query("UPDATE recordings SET legal_hold = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .bind(held)
        .execute(c)
        .await
        .db()?;
    Ok(())
}

/// Sets the flag of a recording that an active hold covers, inside the
/// caller's transaction (insert, new participant). Only ever raises the
/// flag: a caller may insert a recording already flagged.
pub(super) async fn raise_if_held(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<()> {
    hold_lock(c, tenant, false).await?;
    let scopes = active_scopes(c, tenant).await?;
    if scopes.is_empty() {
        return Ok(());
    }
    let rec = get(c, tenant, id).await?;
    if !rec.legal_hold && scopes.iter().any(|s| s.covers(&rec)) {
        store_flag(c, tenant, id, true).await?;
    }
    Ok(())
}

/// Re-evaluates the flag from the active holds with the recording row
/// locked (so concurrent evaluations of one recording serialise, and the
/// last one reads every hold committed before it).
pub(super) async fn apply_legal_holds(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    lock(c, tenant, id).await?;
    let rec = get(c, tenant, id).await?;
    let scopes = active_scopes(c, tenant).await?;
    let held = scopes.iter().any(|s| s.covers(&rec));
    if held != rec.legal_hold {
        store_flag(c, tenant, id, held).await?;
    }
    Ok(held)
}

/// Whether an active hold covers the recording now, inside the caller's
/// transaction: takes the shared hold lock (a hold being placed waits, or
/// is waited for) and the recording's row lock, then decides from the
/// active holds themselves. A covered recording whose flag is not set
/// yet gets it. `NotFound` for a missing recording.
pub(super) async fn held_now(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    hold_lock(c, tenant, false).await?;
    let flagged = lock(c, tenant, id).await?;
    let rec = get(c, tenant, id).await?;
    let scopes = active_scopes(c, tenant).await?;
    let covered = scopes.iter().any(|s| s.covers(&rec));
    if covered && !flagged {
        store_flag(c, tenant, id, true).await?;
    }
    Ok(flagged || covered)
}

/// The first recording using data key `key` that a hold covers now
/// (see [`held_now`]), inside the caller's transaction.
pub(super) async fn held_by_key(
    c: &mut PgConnection,
    tenant: TenantId,
    key: insights_core::domain::KeyId,
) -> StoreResult<Option<RecordingId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM recordings WHERE tenant_id = $1 AND media_data_key_id = $2 ORDER BY id",
    )
    .bind(tenant.0)
    .bind(key.0)
    .fetch_all(&mut *c)
    .await
    .db()?;
    for id in ids {
        let id = RecordingId(id);
        if held_now(c, tenant, id).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

// ---- tenant accounts (administration) ----

pub(super) async fn update_account(
    c: &mut PgConnection,
    tenant: TenantId,
    id: AccountId,
    change: &AccountChange,
) -> StoreResult<LocalAccount> {
    if change.role == Some(Role::PlatformOperator) {
        return Err(StoreError::Invalid(
            "a tenant account cannot become a platform operator".into(),
        ));
    }
    if let Some(Some(profile)) = change.security_profile_id {
        let found = sqlx::query("SELECT 1 FROM security_profiles WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(profile.0)
            .fetch_optional(&mut *c)
            .await
            .db()?;
        if found.is_none() {
            return Err(StoreError::Invalid(format!(
                "no security profile {profile} in this tenant"
            )));
        }
    }
    let done = sqlx::query(
        "UPDATE accounts SET role = COALESCE($1, role), \
         security_profile_id = CASE WHEN $2 THEN $3 ELSE security_profile_id END, \
         active = COALESCE($4, active) WHERE tenant_id = $5 AND id = $6",
    )
    .bind(change.role.map(|r| r.as_str()))
    .bind(change.security_profile_id.is_some())
    .bind(change.security_profile_id.flatten().map(|p| p.0))
    .bind(change.active)
    .bind(tenant.0)
    .bind(id.0)
    .execute(&mut *c)
    .await
    .db()?;
    found(done)?;
    super::accounts::get_account(c, Realm::Tenant(tenant), id).await
}
