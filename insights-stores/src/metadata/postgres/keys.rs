//! Wrapped data keys and crypto-shredding.

use async_trait::async_trait;
use insights_core::crypto::{WrappedDataKey, WrappedKek};
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

    async fn data_keys_not_under(
        &self,
        tenant: TenantId,
        kek_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedDataKey>> {
        in_tenant!(self, tenant, |c| not_under(c, tenant, kek_id, limit))
    }

    async fn count_data_keys_not_under(&self, tenant: TenantId, kek_id: &str) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| count_not_under(c, tenant, kek_id))
    }

    async fn rewrap_data_key(
        &self,
        tenant: TenantId,
        key: &WrappedDataKey,
        old_kek_id: &str,
    ) -> StoreResult<bool> {
        if key.tenant_id != tenant {
            return Err(StoreError::Invalid("key belongs to another tenant".into()));
        }
        in_tenant!(self, tenant, |c| rewrap(c, tenant, key, old_kek_id))
    }

    async fn put_kek(&self, tenant: TenantId, kek: &WrappedKek) -> StoreResult<bool> {
        if kek.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "key-encryption key belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| put_kek(c, tenant, kek))
    }

    async fn list_keks(&self, tenant: TenantId) -> StoreResult<Vec<WrappedKek>> {
        in_tenant!(self, tenant, |c| list_keks(c, Some(tenant)))
    }

    async fn delete_keks_before(&self, tenant: TenantId, version: u32) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| delete_keks_before(c, tenant, version))
    }

    async fn all_keks(&self) -> StoreResult<Vec<WrappedKek>> {
        // Platform scope: the connecting user (not `insights_app`).
        let mut c = self.pool.acquire().await.db()?;
        list_keks(&mut c, None).await
    }
}

async fn not_under(
    c: &mut PgConnection,
    tenant: TenantId,
    kek_id: &str,
    limit: u32,
) -> StoreResult<Vec<WrappedDataKey>> {
    let rows = sqlx::query(
        "SELECT tenant_id, id, kek_id, wrapped, created_at FROM data_keys \
         WHERE tenant_id = $1 AND kek_id <> $2 ORDER BY created_at, id LIMIT $3",
    )
    .bind(tenant.0)
    .bind(kek_id)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .db()?;
    rows.iter().map(from_row).collect()
}

async fn count_not_under(c: &mut PgConnection, tenant: TenantId, kek_id: &str) -> StoreResult<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM data_keys WHERE tenant_id = $1 AND kek_id <> $2")
            .bind(tenant.0)
            .bind(kek_id)
            .fetch_one(c)
            .await
            .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn rewrap(
    c: &mut PgConnection,
    tenant: TenantId,
    k: &WrappedDataKey,
    old_kek_id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE data_keys SET kek_id = $1, wrapped = $2 \
         WHERE tenant_id = $3 AND id = $4 AND kek_id = $5",
    )
    .bind(&k.kek_id)
    .bind(&k.wrapped)
    .bind(tenant.0)
    .bind(k.id.0)
    .bind(old_kek_id)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() > 0)
}

async fn put_kek(c: &mut PgConnection, tenant: TenantId, k: &WrappedKek) -> StoreResult<bool> {
    let version = i32::try_from(k.version)
        .map_err(|_| StoreError::Invalid("key-encryption key version too large".into()))?;
    let done = sqlx::query(
        "INSERT INTO tenant_keks (tenant_id, version, kek_id, root_check, wrapped, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, version) DO NOTHING",
    )
    .bind(tenant.0)
    .bind(version)
    .bind(&k.kek_id)
    .bind(&k.root_check)
    .bind(&k.wrapped)
    .bind(k.created_at)
    .execute(c)
    .await
    .db()?;
    Ok(done.rows_affected() > 0)
}

async fn list_keks(c: &mut PgConnection, tenant: Option<TenantId>) -> StoreResult<Vec<WrappedKek>> {
    let rows = match tenant {
        Some(t) => sqlx::query(
            "SELECT tenant_id, version, kek_id, root_check, wrapped, created_at FROM tenant_keks \
             WHERE tenant_id = $1 ORDER BY version",
        )
        .bind(t.0)
        .fetch_all(c)
        .await
        .db()?,
        None => sqlx::query(
            "SELECT tenant_id, version, kek_id, root_check, wrapped, created_at FROM tenant_keks \
             ORDER BY tenant_id, version",
        )
        .fetch_all(c)
        .await
        .db()?,
    };
    rows.iter()
        .map(|row| {
            let version: i32 = col(row, "version")?;
            Ok(WrappedKek {
                tenant_id: TenantId(col(row, "tenant_id")?),
                version: u32::try_from(version).map_err(|_| {
                    StoreError::Corrupt(format!("key-encryption key version {version}"))
                })?,
                kek_id: col(row, "kek_id")?,
                root_check: col(row, "root_check")?,
                wrapped: col(row, "wrapped")?,
                created_at: col(row, "created_at")?,
            })
        })
        .collect()
}

/// Deletes the old versions. As with shredded data keys, PostgreSQL
/// cannot overwrite the bytes in place: the dead tuples stay until vacuum
/// reclaims them (the table is tuned for early autovacuum).
async fn delete_keks_before(
    c: &mut PgConnection,
    tenant: TenantId,
    version: u32,
) -> StoreResult<u64> {
    // Every stored version is below i32::MAX + 1.
    let version = i64::from(version);
    let done = sqlx::query("DELETE FROM tenant_keks WHERE tenant_id = $1 AND version < $2")
        .bind(tenant.0)
        .bind(version)
        .execute(c)
        .await
        .db()?;
    Ok(done.rows_affected())
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
