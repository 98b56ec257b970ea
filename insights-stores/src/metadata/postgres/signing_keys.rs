//! Registered signing keys (platform scope: the pool's own role, never a
//! tenant session; the table is not granted to `insights_app`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::SigningKeyRecord;
use insights_core::store::{SigningKeyStore, StoreError, StoreResult};
use sqlx::postgres::PgRow;

use super::PgStore;
use super::error::{DbResultExt, col};

const COLUMNS: &str = "key_id, public_key, node_name, installation_id, valid_from, valid_until";

fn from_row(row: &PgRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        key_id: col(row, "key_id")?,
        public_key: col(row, "public_key")?,
        node_name: col(row, "node_name")?,
        installation_id: col(row, "installation_id")?,
        valid_from: col(row, "valid_from")?,
        valid_until: col(row, "valid_until")?,
    })
}

#[async_trait]
impl SigningKeyStore for PgStore {
    async fn register_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<SigningKeyRecord> {
        sqlx::query(
            "INSERT INTO signing_keys \
             (key_id, public_key, node_name, installation_id, valid_from, valid_until) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(&key.key_id)
        .bind(&key.public_key)
        .bind(&key.node_name)
        .bind(key.installation_id)
        .bind(key.valid_from)
        .bind(key.valid_until)
        .execute(&self.pool)
        .await
        .db()?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE key_id = $1"
        )))
        .bind(&key.key_id)
        .fetch_one(&self.pool)
        .await
        .db()?;
        let stored = from_row(&row)?;
        if stored.public_key != key.public_key {
            return Err(StoreError::Conflict(
                "the key id is registered with another public key".into(),
            ));
        }
        Ok(stored)
    }

    async fn retire_signing_key(&self, key_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET valid_until = $2 WHERE key_id = $1 AND valid_until IS NULL",
        )
        .bind(key_id.to_owned())
        .bind(at)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM signing_keys ORDER BY valid_from, key_id"
        )))
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(from_row)
        .collect()
    }
}
