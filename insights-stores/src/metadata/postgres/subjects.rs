//! Data-subject requests (GDPR): finding a subject's participant rows by
//! exact identifiers, pseudonymising a participant, deleting insights, and
//! the persisted erasure requests.
//!
//! The lookup compares plain (generated, lower-cased) columns with `=`
//! (`texteq`, `uuid_eq`: LEAKPROOF), so each probe uses its index inside
//! the row-level-security session (migration 0008).

use async_trait::async_trait;
use insights_core::domain::{
    ErasureRecord, ParticipantHit, ParticipantId, RecordingId, SubjectKeys, TenantId, UserId,
};
use insights_core::store::{StoreError, StoreResult, SubjectStore};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use insights_core::domain::Recording;

use super::PgStore;
use super::error::{DbResultExt, col, found};
use super::recordings::{RECORDING_COLS, attach_children, from_row};

#[async_trait]
impl SubjectStore for PgStore {
    async fn find_subject_participants(
        &self,
        tenant: TenantId,
        keys: &SubjectKeys,
        limit: u32,
    ) -> StoreResult<Vec<ParticipantHit>> {
        in_tenant!(self, tenant, |c| find(c, tenant, keys, limit))
    }

    async fn erase_participant_identity(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        label: &str,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| erase_participant(
            c,
            tenant,
            recording,
            participant,
            label
        ))
    }

    async fn put_erasure_request(
        &self,
        tenant: TenantId,
        record: &ErasureRecord,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| put_erasure(c, tenant, record))
    }

    async fn get_erasure_request(
        &self,
        tenant: TenantId,
        id: uuid::Uuid,
    ) -> StoreResult<ErasureRecord> {
        in_tenant!(self, tenant, |c| get_erasure(c, tenant, id))
    }

    async fn list_erasure_requests(&self, tenant: TenantId) -> StoreResult<Vec<ErasureRecord>> {
        in_tenant!(self, tenant, |c| list_erasures(c, tenant))
    }

    /// Nothing to do in-process: PostgreSQL keeps dead row versions until
    /// (auto)vacuum reclaims them, which the application role may not run
    /// and which cannot run inside the erasure's transactions.
    async fn purge_erased_residue(&self) -> StoreResult<()> {
        Ok(())
    }
}

pub(super) async fn get_many(
    c: &mut PgConnection,
    tenant: TenantId,
    ids: &[RecordingId],
) -> StoreResult<Vec<Recording>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORDING_COLS} FROM recordings r WHERE r.tenant_id = $1 AND r.id = ANY($2) \
         ORDER BY r.started_at, r.id"
    )))
    .bind(tenant.0)
    .bind(ids)
    .fetch_all(&mut *c)
    .await
    .db()?;
    let mut recs = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    attach_children(c, tenant, &mut recs).await?;
    Ok(recs)
}

const FIND: &str = concat!(
    "SELECT p.recording_id, p.id AS participant_id, r.started_at ",
    "FROM participants p JOIN recordings r ON r.tenant_id = p.tenant_id AND r.id = p.recording_id ",
    "WHERE p.tenant_id = $1 AND (p.phone_number = ANY($2) OR p.email_lc = ANY($3) ",
    "OR p.uri_lc = ANY($4) OR p.name_lc = ANY($5) OR p.directory_user_id = ANY($6)) ",
    "ORDER BY r.started_at, p.recording_id, p.id LIMIT $7"
);

pub(super) async fn find(
    c: &mut PgConnection,
    tenant: TenantId,
    keys: &SubjectKeys,
    limit: u32,
) -> StoreResult<Vec<ParticipantHit>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let lower = |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_lowercase()).collect() };
    let users: Vec<Uuid> = keys
        .directory_user_ids
        .iter()
        .map(|u: &UserId| u.0)
        .collect();
    let limit: Option<i64> = (limit > 0).then_some(i64::from(limit));
    let rows = sqlx::query(FIND)
        .bind(tenant.0)
        .bind(&keys.phones)
        .bind(lower(&keys.emails))
        .bind(lower(&keys.uris))
        .bind(lower(&keys.names))
        .bind(users)
        .bind(limit)
        .fetch_all(c)
        .await
        .db()?;
    rows.iter()
        .map(|row| {
            Ok(ParticipantHit {
                recording_id: RecordingId(col(row, "recording_id")?),
                participant_id: ParticipantId(col(row, "participant_id")?),
                started_at: col(row, "started_at")?,
            })
        })
        .collect()
}

pub(super) async fn erase_participant(
    c: &mut PgConnection,
    tenant: TenantId,
    rec: RecordingId,
    participant: ParticipantId,
    label: &str,
) -> StoreResult<()> {
    if super::recordings::lock(&mut *c, tenant, rec).await? {
        return Err(StoreError::Refused("the recording is on legal hold".into()));
    }
    let done = sqlx::query(
        "UPDATE participants SET display_name = $1, phone_number = NULL, uri = NULL, \
         email = NULL, directory_user_id = NULL, directory_object_id = NULL \
         WHERE tenant_id = $2 AND recording_id = $3 AND id = $4",
    )
    .bind(label)
    .bind(tenant.0)
    .bind(rec.0)
    .bind(participant.0)
    .execute(&mut *c)
    .await
    .db()?;
    found(done)?;
    // DTMF the call carried (SIPREC `dtmf` attribute: PINs, account
    // numbers) cannot be told apart by person: it goes with any party's
    // erasure.
    sqlx::query(
        "UPDATE recordings SET attributes = attributes - 'dtmf' \
         WHERE tenant_id = $1 AND id = $2 AND attributes ? 'dtmf'",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

pub(super) async fn delete_insights(
    c: &mut PgConnection,
    tenant: TenantId,
    rec: RecordingId,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM insights WHERE tenant_id = $1 AND recording_id = $2")
        .bind(tenant.0)
        .bind(rec.0)
        .execute(c)
        .await
        .db()?;
    Ok(done.rows_affected())
}

pub(super) async fn put_erasure(
    c: &mut PgConnection,
    tenant: TenantId,
    r: &ErasureRecord,
) -> StoreResult<()> {
    if r.tenant_id != tenant {
        return Err(StoreError::Invalid(
            "the erasure request belongs to another tenant".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO erasure_requests (tenant_id, id, status, created_at, created_by, \
         updated_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET status = EXCLUDED.status, \
         updated_at = EXCLUDED.updated_at, state = EXCLUDED.state",
    )
    .bind(tenant.0)
    .bind(r.id)
    .bind(&r.status)
    .bind(r.created_at)
    .bind(&r.created_by)
    .bind(r.updated_at)
    .bind(Json(&r.state))
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn erasure_from_row(row: &PgRow) -> StoreResult<ErasureRecord> {
    let state: Json<serde_json::Value> = col(row, "state")?;
    Ok(ErasureRecord {
        id: col(row, "id")?,
        tenant_id: TenantId(col(row, "tenant_id")?),
        status: col(row, "status")?,
        created_at: col(row, "created_at")?,
        created_by: col(row, "created_by")?,
        updated_at: col(row, "updated_at")?,
        state: state.0,
    })
}

pub(super) async fn get_erasure(
    c: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> StoreResult<ErasureRecord> {
    let row = sqlx::query("SELECT * FROM erasure_requests WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)?;
    erasure_from_row(&row)
}

pub(super) async fn list_erasures(
    c: &mut PgConnection,
    tenant: TenantId,
) -> StoreResult<Vec<ErasureRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM erasure_requests WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant.0)
    .fetch_all(c)
    .await
    .db()?;
    rows.iter().map(erasure_from_row).collect()
}
