//! Wrapped data keys and crypto-shredding.

use async_trait::async_trait;
use insights_core::crypto::{WrappedDataKey, WrappedKek};
use insights_core::domain::{KeyId, TenantId};
use insights_core::store::{DataKeyStore, StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::util::{check_tenant, col, conflict_as, db, id, micros, ts};

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn put_data_key(&self, tenant: TenantId, key: &WrappedDataKey) -> StoreResult<()> {
        put(&self.pool, tenant, key).await
    }

    async fn get_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<WrappedDataKey> {
        get(&self.pool, tenant, id).await
    }

    async fn shred_data_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<bool> {
        shred(&self.pool, tenant, id).await
    }

    async fn data_keys_not_under(
        &self,
        tenant: TenantId,
        kek_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<WrappedDataKey>> {
        let rows = sqlx::query(
            "SELECT tenant_id, id, kek_id, wrapped, created_at FROM data_keys \
             WHERE tenant_id = ? AND kek_id <> ? ORDER BY created_at, id LIMIT ?",
        )
        .bind(tenant.0)
        .bind(kek_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(data_key_row).collect()
    }

    async fn count_data_keys_not_under(&self, tenant: TenantId, kek_id: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM data_keys WHERE tenant_id = ? AND kek_id <> ?",
        )
        .bind(tenant.0)
        .bind(kek_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn rewrap_data_key(
        &self,
        tenant: TenantId,
        key: &WrappedDataKey,
        old_kek_id: &str,
    ) -> StoreResult<bool> {
        check_tenant(tenant, key.tenant_id, "the data key")?;
        let done = sqlx::query(
            "UPDATE data_keys SET kek_id = ?, wrapped = ? \
             WHERE tenant_id = ? AND id = ? AND kek_id = ?",
        )
        .bind(&key.kek_id)
        .bind(&key.wrapped)
        .bind(tenant.0)
        .bind(key.id.0)
        .bind(old_kek_id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_kek(&self, tenant: TenantId, kek: &WrappedKek) -> StoreResult<bool> {
        check_tenant(tenant, kek.tenant_id, "the key-encryption key")?;
        let done = sqlx::query(
            "INSERT INTO tenant_keks (tenant_id, version, kek_id, root_check, wrapped, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, version) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(i64::from(kek.version))
        .bind(&kek.kek_id)
        .bind(&kek.root_check)
        .bind(&kek.wrapped)
        .bind(micros(kek.created_at))
        .execute(&self.pool)
        .await
        .map_err(conflict_as("a key-encryption key with this id exists"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_keks(&self, tenant: TenantId) -> StoreResult<Vec<WrappedKek>> {
        let rows = sqlx::query(
            "SELECT tenant_id, version, kek_id, root_check, wrapped, created_at FROM tenant_keks \
             WHERE tenant_id = ? ORDER BY version",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(kek_row).collect()
    }

    async fn delete_keks_before(&self, tenant: TenantId, version: u32) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM tenant_keks WHERE tenant_id = ? AND version < ?")
            .bind(tenant.0)
            .bind(i64::from(version))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() > 0 {
            // As for shredded data keys: secure_delete zeroed the freed
            // bytes; the checkpoint moves that into the main file.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        Ok(done.rows_affected())
    }

    async fn all_keks(&self) -> StoreResult<Vec<WrappedKek>> {
        let rows = sqlx::query(
            "SELECT tenant_id, version, kek_id, root_check, wrapped, created_at FROM tenant_keks \
             ORDER BY tenant_id, version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(kek_row).collect()
    }
}

fn data_key_row(row: &SqliteRow) -> StoreResult<WrappedDataKey> {
    Ok(WrappedDataKey {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        kek_id: col(row, "kek_id")?,
        wrapped: col(row, "wrapped")?,
        created_at: ts(row, "created_at")?,
    })
}

fn kek_row(row: &SqliteRow) -> StoreResult<WrappedKek> {
    let version: i64 = col(row, "version")?;
    Ok(WrappedKek {
        tenant_id: id(row, "tenant_id")?,
        version: u32::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("key-encryption key version {version}")))?,
        kek_id: col(row, "kek_id")?,
        root_check: col(row, "root_check")?,
        wrapped: col(row, "wrapped")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Stores a wrapped key. An existing id is a `Conflict`: replacing a key
/// would make the media encrypted under the old one unreadable.
pub(super) async fn put(
    pool: &SqlitePool,
    tenant: TenantId,
    k: &WrappedDataKey,
) -> StoreResult<()> {
    check_tenant(tenant, k.tenant_id, "the data key")?;
    sqlx::query(
        "INSERT INTO data_keys (tenant_id, id, kek_id, wrapped, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(k.id.0)
    .bind(&k.kek_id)
    .bind(&k.wrapped)
    .bind(micros(k.created_at))
    .execute(pool)
    .await
    .map_err(conflict_as("a data key with this id exists"))?;
    Ok(())
}

pub(super) async fn get(
    pool: &SqlitePool,
    tenant: TenantId,
    key: KeyId,
) -> StoreResult<WrappedDataKey> {
    let row = sqlx::query(
        "SELECT tenant_id, id, kek_id, wrapped, created_at FROM data_keys \
         WHERE tenant_id = ? AND id = ?",
    )
    .bind(tenant.0)
    .bind(key.0)
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    Ok(WrappedDataKey {
        id: id(&row, "id")?,
        tenant_id: id(&row, "tenant_id")?,
        kek_id: col(&row, "kek_id")?,
        wrapped: col(&row, "wrapped")?,
        created_at: ts(&row, "created_at")?,
    })
}

/// Deletes the wrapped key, refused (`Refused`) while a legal hold covers
/// a recording encrypted with it: the hold is checked in the same
/// `BEGIN IMMEDIATE` transaction as the delete, so a hold placed
/// concurrently either wins before or waits until the key is gone.
/// `secure_delete` zeroes the freed bytes in the
/// page; the page is written to the WAL, and a checkpoint then overwrites
/// the old page in the main file and truncates the WAL, so the key does
/// not linger in either file. The checkpoint is best effort: if readers
/// hold old snapshots it completes later (SQLite checkpoints on its own).
pub(super) async fn shred(pool: &SqlitePool, tenant: TenantId, key: KeyId) -> StoreResult<bool> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if let Some(rec) = super::governance::held_by_key(&mut tx, tenant, key).await? {
        return Err(StoreError::Refused(format!(
            "recording {rec} is on legal hold: its data key cannot be shredded"
        )));
    }
    let done = sqlx::query("DELETE FROM data_keys WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(key.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    let shredded = done.rows_affected() > 0;
    if shredded {
        // Returns (busy, log, checkpointed) rather than failing when busy.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .map_err(db)?;
    }
    Ok(shredded)
}
