//! Data-subject requests (GDPR): finding a subject's participant rows by
//! exact identifiers, pseudonymising a participant, deleting insights, and
//! the persisted erasure requests.

use async_trait::async_trait;
use insights_core::domain::{
    ErasureRecord, ParticipantHit, ParticipantId, RecordingId, SubjectKeys, TenantId,
};
use insights_core::store::{StoreError, StoreResult, SubjectStore};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use insights_core::domain::Recording;

use super::SqliteStore;
use super::recordings::{attach_children, from_row, recording_columns};
use super::util::{check_tenant, db, id, json_col, micros, to_json, ts, uuid_list};

#[async_trait]
impl SubjectStore for SqliteStore {
    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>> {
        find(&self.pool, tenant, keys, limit).await
    }

    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()> {
        erase_participant(&self.pool, tenant, recording, participant, label).await
    }

    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()> {
        put_erasure(&self.pool, tenant, record).await
    }

    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord> {
        get_erasure(&self.pool, tenant, id).await
    }

    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>> {
        list_erasures(&self.pool, tenant).await
    }

    async fn purge_erased_residue(&self) -> StoreResult<()> {
        purge_residue(&self.pool).await
    }
}

/// Merges of the full-text indexes (FTS5, external content): a deleted or
/// updated row only adds a delete marker, the old terms stay in the
/// index's segments until they are merged.
const FTS_OPTIMIZE: &[&str] = &[
    "INSERT INTO participants_fts (participants_fts) VALUES ('optimize')",
    "INSERT INTO participant_digits_fts (participant_digits_fts) VALUES ('optimize')",
    "INSERT INTO transcript_fts (transcript_fts) VALUES ('optimize')",
];

/// After an erasure: merges every FTS5 index into one segment (`optimize`
/// drops the erased terms; with `secure_delete` the freed pages are
/// zeroed), then checkpoints the WAL with `TRUNCATE`, so neither the
/// database file nor the WAL holds the old pages. A reader holding an old
/// snapshot can make the checkpoint incomplete (`busy`); it is retried a
/// few times and then reported as an error, so the erasure can be resumed.
pub(super) async fn purge_residue(pool: &SqlitePool) -> StoreResult<()> {
    for statement in FTS_OPTIMIZE {
        sqlx::query(*statement).execute(pool).await.map_err(db)?;
    }
    let mut attempts = 0;
    loop {
        // (busy, log frames, checkpointed frames)
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await
            .map_err(db)?;
        if busy == 0 {
            return Ok(());
        }
        attempts += 1;
        if attempts >= 50 {
            return Err(StoreError::Backend(
                "the WAL checkpoint after an erasure stayed busy (a long-running reader); resume the erasure to finish it".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(super) async fn get_many(
    pool: &SqlitePool,
    tenant: TenantId,
    ids: &[RecordingId],
) -> StoreResult<Vec<Recording>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One read transaction: recordings and children from one snapshot.
    let mut tx = pool.begin().await.map_err(db)?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        recording_columns!(),
        " FROM recordings r WHERE r.tenant_id = ? \
         AND r.id IN (SELECT unhex(value) FROM json_each(?)) ORDER BY r.started_at, r.id"
    ))
    .bind(tenant.0)
    .bind(uuid_list(ids.iter().map(|i| i.0)))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut recs = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    attach_children(&mut tx, tenant, &mut recs).await?;
    tx.commit().await.map_err(db)?;
    Ok(recs)
}

/// One indexed probe per identifier kind (each `IN (json_each)` is an
/// index lookup on `participants_by_*`), united, then joined to the
/// recording for its start time.
const FIND: &str = concat!(
    "SELECT p.recording_id AS recording_id, p.id AS participant_id, r.started_at AS started_at ",
    "FROM participants p JOIN recordings r ON r.tenant_id = p.tenant_id AND r.id = p.recording_id ",
    "WHERE p.tenant_id = ?1 AND p.pk IN (",
    "SELECT pk FROM participants WHERE tenant_id = ?1 AND phone_number IN (SELECT value FROM json_each(?2)) ",
    "UNION SELECT pk FROM participants WHERE tenant_id = ?1 AND lower(email) IN (SELECT value FROM json_each(?3)) ",
    "UNION SELECT pk FROM participants WHERE tenant_id = ?1 AND lower(uri) IN (SELECT value FROM json_each(?4)) ",
    "UNION SELECT pk FROM participants WHERE tenant_id = ?1 AND lower(display_name) IN (SELECT value FROM json_each(?5)) ",
    "UNION SELECT pk FROM participants WHERE tenant_id = ?1 AND directory_user_id IN (SELECT unhex(value) FROM json_each(?6))",
    ") ORDER BY r.started_at, p.recording_id, p.id LIMIT ?7"
);

pub(super) async fn find(
    pool: &SqlitePool,
    tenant: TenantId,
    keys: &SubjectKeys,
    limit: u32,
) -> StoreResult<Vec<ParticipantHit>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let list = |v: &[String]| serde_json::Value::from(v.to_vec()).to_string();
    let lower = |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
    let limit = if limit == 0 { -1 } else { i64::from(limit) };
    let rows = sqlx::query(FIND)
        .bind(tenant.0)
        .bind(list(&keys.phones))
        .bind(list(&lower(&keys.emails)))
        .bind(list(&lower(&keys.uris)))
        .bind(list(&lower(&keys.names)))
        .bind(uuid_list(keys.directory_user_ids.iter().map(|u| u.0)))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ParticipantHit {
                recording_id: id(row, "recording_id")?,
                participant_id: id(row, "participant_id")?,
                started_at: ts(row, "started_at")?,
            })
        })
        .collect()
}

pub(super) async fn erase_participant(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    participant: ParticipantId,
    label: &str,
) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let held: Option<bool> =
        sqlx::query_scalar("SELECT legal_hold FROM recordings WHERE tenant_id = ? AND id = ?")
            .bind(tenant.0)
            .bind(rec.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    match held {
        None => return Err(StoreError::NotFound),
        Some(true) => {
            return Err(StoreError::Refused(format!(
                "recording {rec} is on legal hold"
            )));
        }
        Some(false) => {}
    }
    // The update triggers rewrite the participant FTS and digit indexes.
    let done = sqlx::query(
        "UPDATE participants SET display_name = ?, phone_number = NULL, uri = NULL, \
         email = NULL, directory_user_id = NULL, directory_object_id = NULL, phone_digits = '' \
         WHERE tenant_id = ? AND recording_id = ? AND id = ?",
    )
    .bind(label)
    .bind(tenant.0)
    .bind(rec.0)
    .bind(participant.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    // DTMF the call carried (SIPREC `dtmf` attribute: PINs, account
    // numbers) cannot be told apart by person: it goes with any party's
    // erasure.
    sqlx::query(
        "UPDATE recordings SET attributes = json_remove(attributes, '$.dtmf') \
         WHERE tenant_id = ? AND id = ? AND json_type(attributes, '$.dtmf') IS NOT NULL",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}

pub(super) async fn delete_insights(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM insights WHERE tenant_id = ? AND recording_id = ?")
        .bind(tenant.0)
        .bind(rec.0)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(done.rows_affected())
}

pub(super) async fn put_erasure(
    pool: &SqlitePool,
    tenant: TenantId,
    r: &ErasureRecord,
) -> StoreResult<()> {
    check_tenant(tenant, r.tenant_id, "the erasure request")?;
    sqlx::query(
        "INSERT INTO erasure_requests (tenant_id, id, status, created_at, created_by, \
         updated_at, state) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET status = excluded.status, \
         updated_at = excluded.updated_at, state = excluded.state",
    )
    .bind(tenant.0)
    .bind(r.id)
    .bind(&r.status)
    .bind(micros(r.created_at))
    .bind(&r.created_by)
    .bind(micros(r.updated_at))
    .bind(to_json(&r.state)?)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

fn erasure_from_row(row: &SqliteRow) -> StoreResult<ErasureRecord> {
    Ok(ErasureRecord {
        id: super::util::col(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        status: super::util::col(row, "status")?,
        created_at: ts(row, "created_at")?,
        created_by: super::util::col(row, "created_by")?,
        updated_at: ts(row, "updated_at")?,
        state: json_col(row, "state")?,
    })
}

pub(super) async fn get_erasure(
    pool: &SqlitePool,
    tenant: TenantId,
    id: Uuid,
) -> StoreResult<ErasureRecord> {
    let row = sqlx::query("SELECT * FROM erasure_requests WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound)?;
    erasure_from_row(&row)
}

pub(super) async fn list_erasures(
    pool: &SqlitePool,
    tenant: TenantId,
) -> StoreResult<Vec<ErasureRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM erasure_requests WHERE tenant_id = ? ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(erasure_from_row).collect()
}
