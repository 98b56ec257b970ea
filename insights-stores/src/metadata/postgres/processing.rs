//! Processing records: calls to external AI providers.

use async_trait::async_trait;
use insights_core::domain::{
    ProviderCall, ProviderCallId, ProviderCallQuery, RecordingId, TenantId,
};
use insights_core::store::{ProcessingStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col};

#[async_trait]
impl ProcessingStore for PgStore {
    async fn record_provider_call(&self, tenant: TenantId, call: &ProviderCall) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| record(c, tenant, call))
    }

    async fn list_provider_calls(
        &self,
        tenant: TenantId,
        query: &ProviderCallQuery,
    ) -> StoreResult<Vec<ProviderCall>> {
        in_tenant!(self, tenant, |c| list(c, tenant, query))
    }
}

pub(super) async fn record(
    c: &mut PgConnection,
    tenant: TenantId,
    call: &ProviderCall,
) -> StoreResult<()> {
    if call.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "provider call belongs to another tenant".into(),
        ));
    }
    // An id recorded before: a retried write, nothing to do. An unknown
    // tenant fails the foreign key (NotFound).
    sqlx::query(
        "INSERT INTO provider_calls (tenant_id, id, recording_id, provider, operation, \
         bytes_sent, bytes_received, http_status, outcome, at, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (tenant_id, id) DO NOTHING",
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
    .bind(call.at)
    .bind(call.duration_ms)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn from_row(row: &PgRow) -> StoreResult<ProviderCall> {
    Ok(ProviderCall {
        id: ProviderCallId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        recording_id: col::<Option<Uuid>>(row, "recording_id")?.map(RecordingId),
        provider: col(row, "provider")?,
        operation: col(row, "operation")?,
        bytes_sent: col(row, "bytes_sent")?,
        bytes_received: col(row, "bytes_received")?,
        http_status: col(row, "http_status")?,
        outcome: enum_col(row, "outcome")?,
        at: col(row, "at")?,
        duration_ms: col(row, "duration_ms")?,
    })
}

pub(super) async fn list(
    c: &mut PgConnection,
    tenant: TenantId,
    q: &ProviderCallQuery,
) -> StoreResult<Vec<ProviderCall>> {
    // NULL parameters switch a filter off; LIMIT NULL is no limit.
    sqlx::query(
        "SELECT tenant_id, id, recording_id, provider, operation, bytes_sent, bytes_received, \
         http_status, outcome, at, duration_ms FROM provider_calls \
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR recording_id = $2) \
         AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4) \
         ORDER BY at, id LIMIT $5",
    )
    .bind(tenant.0)
    .bind(q.recording_id.map(|r| r.0))
    .bind(q.from)
    .bind(q.to)
    .bind((q.limit > 0).then_some(i64::from(q.limit)))
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(from_row)
    .collect()
}
