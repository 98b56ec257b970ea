//! Completeness reconciliation: runs, calls and the tenant's threshold
//! (migration 0036), under the tenant's row-level security.

use chrono::{DateTime, Utc};
use insights_core::domain::{CallCompleteness, CompletenessRun, CompletenessThreshold, TenantId};
use insights_core::store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::types::Json;

use super::error::{DbResultExt, col};

/// At most this many calls come back from one listing.
const MAX_CALLS: i64 = 100_000;

pub(super) async fn put_completeness(
    c: &mut PgConnection,
    tenant: TenantId,
    run: &CompletenessRun,
    calls: &[CallCompleteness],
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO completeness_runs (tenant_id, id, started_at, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.0)
    .bind(run.id)
    .bind(run.started_at)
    .bind(Json(run))
    .execute(&mut *c)
    .await
    .db()?;
    for call in calls {
        sqlx::query(
            "INSERT INTO completeness_calls (tenant_id, call_id, started_at, status, detail, \
             run_id) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, call_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
             status = EXCLUDED.status, detail = EXCLUDED.detail, run_id = EXCLUDED.run_id",
        )
        .bind(tenant.0)
        .bind(&call.call_id)
        .bind(call.started_at)
        .bind(call.status.as_str())
        .bind(Json(call))
        .bind(run.id)
        .execute(&mut *c)
        .await
        .db()?;
    }
    Ok(())
}

pub(super) async fn list_completeness_calls(
    c: &mut PgConnection,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<CallCompleteness>> {
    let rows = sqlx::query(
        "SELECT detail FROM completeness_calls WHERE tenant_id = $1 AND started_at >= $2 \
         AND started_at < $3 ORDER BY started_at, call_id LIMIT $4",
    )
    .bind(tenant.0)
    .bind(from)
    .bind(to)
    .bind(MAX_CALLS)
    .fetch_all(c)
    .await
    .db()?;
    rows.iter()
        .map(|r| col::<Json<CallCompleteness>>(r, "detail").map(|Json(v)| v))
        .collect()
}

pub(super) async fn list_completeness_runs(
    c: &mut PgConnection,
    tenant: TenantId,
    limit: u32,
) -> StoreResult<Vec<CompletenessRun>> {
    let rows = sqlx::query(
        "SELECT detail FROM completeness_runs WHERE tenant_id = $1 \
         ORDER BY started_at DESC, id LIMIT $2",
    )
    .bind(tenant.0)
    .bind(i64::from(limit.clamp(1, 1000)))
    .fetch_all(c)
    .await
    .db()?;
    rows.iter()
        .map(|r| col::<Json<CompletenessRun>>(r, "detail").map(|Json(v)| v))
        .collect()
}

pub(super) async fn completeness_threshold(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Option<CompletenessThreshold>> {
    let row = sqlx::query(
        "SELECT tenant_id, threshold_permille, updated_at, updated_by \
         FROM completeness_settings WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_optional(c)
    .await
    .db()?;
    row.map(|row| {
        let t: i32 = col(&row, "threshold_permille")?;
        Ok(CompletenessThreshold {
            tenant_id: TenantId(col(&row, "tenant_id")?),
            threshold_permille: u32::try_from(t)
                .map_err(|_| StoreError::Corrupt("column `threshold_permille`".into()))?,
            updated_at: col(&row, "updated_at")?,
            updated_by: col(&row, "updated_by")?,
        })
    })
    .transpose()
}

pub(super) async fn put_completeness_threshold(
    c: &mut PgConnection,
    tenant: TenantId,
    s: &CompletenessThreshold,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO completeness_settings (tenant_id, threshold_permille, updated_at, \
         updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
         threshold_permille = EXCLUDED.threshold_permille, updated_at = EXCLUDED.updated_at, \
         updated_by = EXCLUDED.updated_by",
    )
    .bind(tenant.0)
    .bind(i32::try_from(s.threshold_permille).unwrap_or(i32::MAX))
    .bind(s.updated_at)
    .bind(&s.updated_by)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

/// Refuses settings or a run of another tenant, or a threshold above 100 %.
pub(super) fn check(tenant: TenantId, of: TenantId, threshold: Option<u32>) -> StoreResult<()> {
    if of != tenant {
        return Err(StoreError::Invalid(
            "the completeness data belongs to another tenant".into(),
        ));
    }
    if threshold.is_some_and(|t| t > 1000) {
        return Err(StoreError::Invalid(
            "the threshold is at most 1000 (100 %)".into(),
        ));
    }
    Ok(())
}
