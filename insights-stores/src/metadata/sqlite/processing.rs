//! Processing records: calls to external AI providers.

use async_trait::async_trait;
use insights_core::domain::{ProviderCall, ProviderCallQuery, TenantId};
use insights_core::store::{ProcessingStore, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::SqliteStore;
use super::util::{check_tenant, col, db, enum_col, id, micros, opt_id, ts};

#[async_trait]
impl ProcessingStore for SqliteStore {
    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()> {
        record(&self.pool, tenant, call).await
    }

    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>> {
        list(&self.pool, tenant, query).await
    }
}

pub(super) async fn record(
    pool: &SqlitePool,
    tenant: TenantId,
    call: &ProviderCall,
) -> StoreResult<()> {
    check_tenant(tenant, call.tenant_id, "a provider call")?;
    // An id recorded before: a retried write, nothing to do. An unknown
    // tenant fails the foreign key (NotFound).
    sqlx::query(
        "INSERT INTO provider_calls (tenant_id, id, recording_id, provider, operation, \
         bytes_sent, bytes_received, http_status, outcome, at, duration_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tenant.0)
    .bind(call.id.0)
    .bind(call.recording_id.map(|r| r.0))
    .bind(&call.provider)
    .bind(&call.operation)
    .bind(call.bytes_sent.max(0))
    .bind(call.bytes_received.max(0))
    .bind(call.http_status)
    .bind(call.outcome.as_str())
    .bind(micros(call.at))
    .bind(call.duration_ms)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

fn from_row(row: &SqliteRow) -> StoreResult<ProviderCall> {
    Ok(ProviderCall {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        recording_id: opt_id(row, "recording_id")?,
        provider: col(row, "provider")?,
        operation: col(row, "operation")?,
        bytes_sent: col(row, "bytes_sent")?,
        bytes_received: col(row, "bytes_received")?,
        http_status: col(row, "http_status")?,
        outcome: enum_col(row, "outcome")?,
        at: ts(row, "at")?,
        duration_ms: col(row, "duration_ms")?,
    })
}

pub(super) async fn list(
    pool: &SqlitePool,
    tenant: TenantId,
    q: &ProviderCallQuery,
) -> StoreResult<Vec<ProviderCall>> {
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT tenant_id, id, recording_id, provider, operation, bytes_sent, bytes_received, \
         http_status, outcome, at, duration_ms FROM provider_calls WHERE tenant_id = ",
    );
    sql.push_bind(tenant.0);
    if let Some(r) = q.recording_id {
        sql.push(" AND recording_id = ").push_bind(r.0);
    }
    if let Some(from) = q.from {
        sql.push(" AND at >= ").push_bind(micros(from));
    }
    if let Some(to) = q.to {
        sql.push(" AND at < ").push_bind(micros(to));
    }
    sql.push(" ORDER BY at, id");
    if q.limit > 0 {
        sql.push(" LIMIT ").push_bind(i64::from(q.limit));
    }
    let rows = sql.build().fetch_all(pool).await.map_err(db)?;
    rows.iter().map(from_row).collect()
}
