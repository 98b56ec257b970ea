//! Wrapped data keys and crypto-shredding.

use async_trait::async_trait;
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::{KeyId, TenantId};
use insights_core::store::{DataKeyStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col};

#[async_trait]
impl DataKeyStore for PgStore {
    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()> {
        if key.tenant_id != tenant {
            return Err(StoreError::Invalid("key belongs to another tenant".into()));
        }
        in_tenant!(self, tenant, |c| put(c, tenant, key))
    }

    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey> {
        in_tenant!(self, tenant, |c| get(c, tenant, id))
    }

    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool> {
        // A refusal commits too: the hold flag it raised stays raised.
        let outcome: StoreResult<Result<bool, String>> =
            in_tenant!(self, tenant, |c| shred(c, tenant, id));
        outcome?.map_err(StoreError::Refused)
    }
}

/// Stores a new wrapped key; keys are immutable, so an existing id is a
/// conflict.
pub(super) async fn put(
    c: &mut PgConnection,
    tenant: TenantId,
    k: &WrappedDataKey,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO data_keys (tenant_id, id, kek_id, wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.0)
    .bind(k.id.0)
    .bind(&k.kek_id)
    .bind(&k.wrapped)
    .bind(k.created_at)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn from_row(row: &PgRow) -> StoreResult<WrappedDataKey> {
    Ok(WrappedDataKey {
        id: KeyId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        kek_id: col(row, "kek_id")?,
        wrapped: col(row, "wrapped")?,
        created_at: col(row, "created_at")?,
    })
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    id: KeyId,
) -> StoreResult<WrappedDataKey> {
    let row = sqlx::query(
        "SELECT tenant_id, id, kek_id, wrapped, created_at FROM data_keys \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Deletes the wrapped key, refused (`Refused`) while a legal hold covers
/// a recording encrypted with it, checked in the same transaction under
/// the hold lock. PostgreSQL cannot overwrite the bytes in
/// place: the dead tuple stays in the heap (and in WAL and base backups)
/// until vacuum reclaims its space; the table is tuned for early
/// autovacuum (see the migration).
/// `Ok(Err(why))` when refused.
pub(super) async fn shred(
    c: &mut PgConnection,
    tenant: TenantId,
    id: KeyId,
) -> StoreResult<Result<bool, String>> {
    if let Some(rec) = super::governance::held_by_key(c, tenant, id).await? {
        return Ok(Err(format!(
            "recording {rec} is on legal hold: its data key cannot be shredded"
        )));
    }
    let done = sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .execute(c)
        .await
        .db()?;
    Ok(Ok(done.rows_affected() > 0))
}
