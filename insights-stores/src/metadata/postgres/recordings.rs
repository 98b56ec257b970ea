//! Recordings with their participants and media streams.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    KeyId, MediaObject, MediaStream, Participant, ParticipantId, Recording, RecordingId,
    RecordingStatus, StreamId, TenantId, UserId,
};
use insights_core::store::{RecordingStore, StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col, found};

#[async_trait]
impl RecordingStore for PgStore {
    async fn count_unstored_recordings(&self, tenant: TenantId) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| count_unstored(c, tenant))
    }

    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        if recording.tenant_id != tenant {
            return Err(StoreError::Invalid(
                "recording belongs to another tenant".into(),
            ));
        }
        in_tenant!(self, tenant, |c| insert(c, tenant, recording))
    }

    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        in_tenant!(self, tenant, |c| get(c, tenant, id))
    }

    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        in_tenant!(self, tenant, |c| super::subjects::get_many(c, tenant, ids))
    }

    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        in_tenant!(self, tenant, |c| by_external_call_id(c, tenant, call_id))
    }

    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| add_participant(c, tenant, recording, p))
    }

    async fn add_participant_once(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
        object_id: Option<&str>,
    ) -> StoreResult<Participant> {
        in_tenant!(self, tenant, |c| add_participant_once(
            c, tenant, recording, p, object_id
        ))
    }

    async fn copy_recorded_users(
        &self,
        tenant: TenantId,
        from: RecordingId,
        to: RecordingId,
    ) -> StoreResult<u32> {
        in_tenant!(self, tenant, |c| copy_recorded_users(c, tenant, from, to))
    }

    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| add_stream(c, tenant, recording, s))
    }

    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| update_status(
            c,
            tenant,
            id,
            status,
            ended_at,
            result_code
        ))
    }

    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| set_media(c, tenant, id, media))
    }

    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| set_legal_hold(c, tenant, id, held))
    }

    async fn merge_recording_attributes(
        &self,
        tenant: TenantId,
        id: RecordingId,
        attributes: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| merge_attributes(
            c, tenant, id, attributes
        ))
    }

    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| update_participant_presence(
            c,
            tenant,
            recording,
            participant,
            recorded_user,
            left_ms
        ))
    }

    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        // A refusal commits too: the hold flag it raised stays raised.
        let outcome: StoreResult<Result<(), String>> =
            in_tenant!(self, tenant, |c| delete(c, tenant, id));
        outcome?.map_err(StoreError::Refused)
    }

    async fn set_participant_object_id(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        object_id: &str,
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| set_participant_object_id(
            c,
            tenant,
            recording,
            participant,
            object_id
        ))
    }
}

/// Columns of `recordings r` read by [`from_row`] (search selects them too).
macro_rules! recording_cols {
    () => {
        "r.tenant_id, r.id, r.kind, r.direction, r.started_at, r.ended_at, r.duration_ms, \
         r.external_call_id, r.call_chain_id, r.status, r.result_code, r.retention_class, \
         r.legal_hold, r.has_transcript, r.media_container, r.media_key, r.media_byte_size, \
         r.media_sha256, r.media_data_key_id, r.media_content_type, r.media_plaintext_size, \
         r.attributes, r.created_at"
    };
}
pub(super) const RECORDING_COLS: &str = recording_cols!();

/// A recording row without its participants and streams.
pub(super) fn from_row(row: &PgRow) -> StoreResult<Recording> {
    let container: Option<String> = col(row, "media_container")?;
    let media = match container {
        None => None,
        Some(container) => {
            let missing = || StoreError::Corrupt("recording media is incomplete".into());
            Some(MediaObject {
                container,
                key: col::<Option<String>>(row, "media_key")?.ok_or_else(missing)?,
                byte_size: col::<Option<i64>>(row, "media_byte_size")?.ok_or_else(missing)?,
                sha256: col::<Option<String>>(row, "media_sha256")?.ok_or_else(missing)?,
                data_key_id: KeyId(
                    col::<Option<Uuid>>(row, "media_data_key_id")?.ok_or_else(missing)?,
                ),
                content_type: col::<Option<String>>(row, "media_content_type")?
                    .ok_or_else(missing)?,
                plaintext_size: col::<Option<i64>>(row, "media_plaintext_size")?
                    .ok_or_else(missing)?,
            })
        }
    };
    Ok(Recording {
        id: RecordingId(col(row, "id")?),
        tenant_id: TenantId(col(row, "tenant_id")?),
        kind: enum_col(row, "kind")?,
        direction: enum_col(row, "direction")?,
        started_at: col(row, "started_at")?,
        ended_at: col(row, "ended_at")?,
        duration_ms: col(row, "duration_ms")?,
        external_call_id: col(row, "external_call_id")?,
        call_chain_id: col(row, "call_chain_id")?,
        status: enum_col(row, "status")?,
        result_code: col(row, "result_code")?,
        retention_class: col(row, "retention_class")?,
        legal_hold: col(row, "legal_hold")?,
        has_transcript: col(row, "has_transcript")?,
        media,
        participants: Vec::new(),
        streams: Vec::new(),
        attributes: col::<sqlx::types::Json<BTreeMap<String, serde_json::Value>>>(
            row,
            "attributes",
        )?
        .0,
        created_at: col(row, "created_at")?,
    })
}

fn participant_from_row(row: &PgRow) -> StoreResult<Participant> {
    Ok(Participant {
        id: ParticipantId(col(row, "id")?),
        role: enum_col(row, "role")?,
        display_name: col(row, "display_name")?,
        phone_number: col(row, "phone_number")?,
        uri: col(row, "uri")?,
        email: col(row, "email")?,
        directory_user_id: col::<Option<Uuid>>(row, "directory_user_id")?.map(UserId),
        recorded_user: col(row, "recorded_user")?,
        joined_ms: col(row, "joined_ms")?,
        left_ms: col(row, "left_ms")?,
    })
}

fn stream_from_row(row: &PgRow) -> StoreResult<MediaStream> {
    Ok(MediaStream {
        id: StreamId(col(row, "id")?),
        participant_id: col::<Option<Uuid>>(row, "participant_id")?.map(ParticipantId),
        track: col(row, "track")?,
        media_type: col(row, "media_type")?,
        codec: col(row, "codec")?,
        sample_rate: col(row, "sample_rate")?,
        start_ms: col(row, "start_ms")?,
    })
}

/// Fills in the participants and streams of `recordings` (two queries for
/// any number of recordings).
pub(super) async fn attach_children(
    c: &mut PgConnection,
    tenant: TenantId,
    recordings: &mut [Recording],
) -> StoreResult<()> {
    if recordings.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = recordings.iter().map(|r| r.id.0).collect();
    let mut participants: HashMap<Uuid, Vec<Participant>> = HashMap::new();
    let rows = sqlx::query(
        "SELECT recording_id, id, role, display_name, phone_number, uri, email, \
         directory_user_id, recorded_user, joined_ms, left_ms \
         FROM participants WHERE tenant_id = $1 AND recording_id = ANY($2) \
         ORDER BY recording_id, position",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *c)
    .await
    .db()?;
    for row in &rows {
        let rec: Uuid = col(row, "recording_id")?;
        participants
            .entry(rec)
            .or_default()
            .push(participant_from_row(row)?);
    }
    let mut streams: HashMap<Uuid, Vec<MediaStream>> = HashMap::new();
    let rows = sqlx::query(
        "SELECT recording_id, id, participant_id, track, media_type, codec, sample_rate, start_ms \
         FROM media_streams WHERE tenant_id = $1 AND recording_id = ANY($2) \
         ORDER BY recording_id, position",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *c)
    .await
    .db()?;
    for row in &rows {
        let rec: Uuid = col(row, "recording_id")?;
        streams.entry(rec).or_default().push(stream_from_row(row)?);
    }
    for r in recordings {
        r.participants = participants.remove(&r.id.0).unwrap_or_default();
        r.streams = streams.remove(&r.id.0).unwrap_or_default();
    }
    Ok(())
}

pub(super) async fn insert(
    c: &mut PgConnection,
    tenant: TenantId,
    r: &Recording,
) -> StoreResult<()> {
    let m = r.media.as_ref();
    sqlx::query(
        "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, ended_at, \
         duration_ms, external_call_id, call_chain_id, status, result_code, retention_class, \
         legal_hold, has_transcript, media_container, media_key, media_byte_size, media_sha256, \
         media_data_key_id, media_content_type, media_plaintext_size, created_at, attributes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23)",
    )
    .bind(tenant.0)
    .bind(r.id.0)
    .bind(r.kind.as_str())
    .bind(r.direction.as_str())
    .bind(r.started_at)
    .bind(r.ended_at)
    .bind(r.duration_ms)
    .bind(&r.external_call_id)
    .bind(&r.call_chain_id)
    .bind(r.status.as_str())
    .bind(&r.result_code)
    .bind(&r.retention_class)
    .bind(r.legal_hold)
    .bind(r.has_transcript)
    .bind(m.map(|m| &m.container))
    .bind(m.map(|m| &m.key))
    .bind(m.map(|m| m.byte_size))
    .bind(m.map(|m| &m.sha256))
    .bind(m.map(|m| m.data_key_id.0))
    .bind(m.map(|m| &m.content_type))
    .bind(m.map(|m| m.plaintext_size))
    .bind(r.created_at)
    .bind(sqlx::types::Json(&r.attributes))
    .execute(&mut *c)
    .await
    .db()?;
    insert_participants(c, tenant, r.id, &r.participants).await?;
    insert_streams(c, tenant, r.id, &r.streams).await?;
    super::governance::raise_if_held(c, tenant, r.id).await
}

/// Appends participants after the recording's existing ones, keeping
/// their order.
async fn insert_participants(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    ps: &[Participant],
) -> StoreResult<()> {
    if ps.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO participants (tenant_id, recording_id, id, position, role, display_name, \
         phone_number, uri, email, directory_user_id, recorded_user, joined_ms, left_ms) \
         SELECT $1, $2, u.id, \
         (SELECT COALESCE(MAX(position) + 1, 0) FROM participants \
          WHERE tenant_id = $1 AND recording_id = $2) + u.ord::int - 1, \
         u.role, u.display_name, u.phone_number, u.uri, u.email, u.directory_user_id, \
         u.recorded_user, u.joined_ms, u.left_ms \
         FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
         $9::uuid[], $10::bool[], $11::int8[], $12::int8[]) WITH ORDINALITY \
         AS u(id, role, display_name, phone_number, uri, email, directory_user_id, \
         recorded_user, joined_ms, left_ms, ord)",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(ps.iter().map(|p| p.id.0).collect::<Vec<_>>())
    .bind(ps.iter().map(|p| p.role.as_str()).collect::<Vec<_>>())
    .bind(
        ps.iter()
            .map(|p| p.display_name.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        ps.iter()
            .map(|p| p.phone_number.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(ps.iter().map(|p| p.uri.as_deref()).collect::<Vec<_>>())
    .bind(ps.iter().map(|p| p.email.as_deref()).collect::<Vec<_>>())
    .bind(
        ps.iter()
            .map(|p| p.directory_user_id.map(|u| u.0))
            .collect::<Vec<_>>(),
    )
    .bind(ps.iter().map(|p| p.recorded_user).collect::<Vec<_>>())
    .bind(ps.iter().map(|p| p.joined_ms).collect::<Vec<_>>())
    .bind(ps.iter().map(|p| p.left_ms).collect::<Vec<_>>())
    .execute(c)
    .await
    .db()?;
    Ok(())
}

/// Appends streams after the recording's existing ones, keeping their order.
async fn insert_streams(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    ss: &[MediaStream],
) -> StoreResult<()> {
    if ss.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO media_streams (tenant_id, recording_id, id, position, participant_id, \
         track, media_type, codec, sample_rate, start_ms) \
         SELECT $1, $2, u.id, \
         (SELECT COALESCE(MAX(position) + 1, 0) FROM media_streams \
          WHERE tenant_id = $1 AND recording_id = $2) + u.ord::int - 1, \
         u.participant_id, u.track, u.media_type, u.codec, u.sample_rate, u.start_ms \
         FROM UNNEST($3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], $8::int4[], \
         $9::int8[]) WITH ORDINALITY \
         AS u(id, participant_id, track, media_type, codec, sample_rate, start_ms, ord)",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(ss.iter().map(|s| s.id.0).collect::<Vec<_>>())
    .bind(
        ss.iter()
            .map(|s| s.participant_id.map(|p| p.0))
            .collect::<Vec<_>>(),
    )
    .bind(ss.iter().map(|s| s.track).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.media_type.as_str()).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.codec.as_str()).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.sample_rate).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.start_ms).collect::<Vec<_>>())
    .execute(c)
    .await
    .db()?;
    Ok(())
}

/// Locks the recording row for the rest of the transaction (serialises
/// roster updates, deletion and flag changes); `NotFound` when it is not
/// there. Returns its legal-hold flag.
pub(super) async fn lock(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT legal_hold FROM recordings WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<Recording> {
    let row = sqlx::query(concat!(
        "SELECT ",
        recording_cols!(),
        " FROM recordings r WHERE r.tenant_id = $1 AND r.id = $2"
    ))
    .bind(tenant.0)
    .bind(id.0)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    let mut recs = [from_row(&row)?];
    attach_children(c, tenant, &mut recs).await?;
    let [rec] = recs;
    Ok(rec)
}

/// The recording of a platform call id. Should a call id have been used
/// twice, the most recently started recording wins.
pub(super) async fn by_external_call_id(
    c: &mut PgConnection,
    tenant: TenantId,
    call_id: &str,
) -> StoreResult<Recording> {
    let id: Uuid = sqlx::query_scalar(
        "SELECT id FROM recordings WHERE tenant_id = $1 AND external_call_id = $2 \
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(tenant.0)
    .bind(call_id)
    .fetch_optional(&mut *c)
    .await
    .db()?
    .ok_or(StoreError::NotFound)?;
    get(c, tenant, RecordingId(id)).await
}

pub(super) async fn add_participant(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    p: &Participant,
) -> StoreResult<()> {
    lock(c, tenant, recording).await?;
    insert_participants(c, tenant, recording, std::slice::from_ref(p)).await?;
    super::governance::raise_if_held(c, tenant, recording).await
}

/// [`RecordingStore::add_participant_once`]: under the recording's row
/// lock (held to the end of the transaction), so of concurrent callers on
/// any nodes the first stores the person and the others find them.
pub(super) async fn add_participant_once(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    p: &Participant,
    object_id: Option<&str>,
) -> StoreResult<Participant> {
    lock(c, tenant, recording).await?;
    let object_id = object_id.map(str::to_ascii_lowercase);
    let existing = sqlx::query(
        "UPDATE participants SET recorded_user = (recorded_user OR $6), \
         directory_user_id = COALESCE(directory_user_id, $4), \
         directory_object_id = COALESCE(directory_object_id, $3) \
         WHERE tenant_id = $1 AND id = (SELECT id FROM participants \
           WHERE tenant_id = $1 AND recording_id = $2 \
           AND (($3::text IS NOT NULL AND directory_object_id = $3) \
             OR ($4::uuid IS NOT NULL AND directory_user_id = $4) \
             OR ($5::text IS NOT NULL AND phone_number = $5)) \
           ORDER BY position LIMIT 1) \
         RETURNING id, role, display_name, phone_number, uri, email, directory_user_id, \
         recorded_user, joined_ms, left_ms",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(object_id.as_deref())
    .bind(p.directory_user_id.map(|u| u.0))
    .bind(p.phone_number.as_deref())
    .bind(p.recorded_user)
    .fetch_optional(&mut *c)
    .await
    .db()?;
    if let Some(row) = existing {
        return participant_from_row(&row);
    }
    insert_participants(c, tenant, recording, std::slice::from_ref(p)).await?;
    if let Some(oid) = &object_id {
        set_participant_object_id(c, tenant, recording, p.id, oid).await?;
    }
    super::governance::raise_if_held(c, tenant, recording).await?;
    Ok(p.clone())
}

/// [`RecordingStore::copy_recorded_users`], in one transaction under the
/// target recording's row lock.
pub(super) async fn copy_recorded_users(
    c: &mut PgConnection,
    tenant: TenantId,
    from: RecordingId,
    to: RecordingId,
) -> StoreResult<u32> {
    lock(c, tenant, to).await?;
    let rows = sqlx::query(
        "SELECT id, role, display_name, phone_number, uri, email, directory_user_id, \
         recorded_user, joined_ms, left_ms, directory_object_id \
         FROM participants WHERE tenant_id = $1 AND recording_id = $2 AND recorded_user \
         ORDER BY position",
    )
    .bind(tenant.0)
    .bind(from.0)
    .fetch_all(&mut *c)
    .await
    .db()?;
    let mut added = 0;
    for row in &rows {
        let oid: Option<String> = col(row, "directory_object_id")?;
        let p = Participant {
            id: ParticipantId::new(),
            joined_ms: Some(0),
            left_ms: None,
            ..participant_from_row(row)?
        };
        if add_participant_once(c, tenant, to, &p, oid.as_deref())
            .await?
            .id
            == p.id
        {
            added += 1;
        }
    }
    Ok(added)
}

pub(super) async fn add_stream(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    s: &MediaStream,
) -> StoreResult<()> {
    lock(c, tenant, recording).await?;
    insert_streams(c, tenant, recording, std::slice::from_ref(s)).await
}

pub(super) async fn update_status(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
    status: RecordingStatus,
    ended_at: Option<DateTime<Utc>>,
    result_code: Option<&str>,
) -> StoreResult<()> {
    // EXTRACT(EPOCH ...) is exact (numeric); trunc rounds toward zero like
    // chrono's `num_milliseconds`.
    // The status only moves forward (`RecordingStatus::may_follow`),
    // decided inside the UPDATE: it sees the row as it is once locked, so a
    // late call-end cannot undo a concurrent `stored`.
    let before: Vec<&str> = status.may_follow().iter().map(|s| s.as_str()).collect();
    let done = sqlx::query(
        "UPDATE recordings SET status = CASE WHEN status = ANY($6) THEN $3 ELSE status END, \
         ended_at = COALESCE($4, ended_at), \
         result_code = COALESCE($5, result_code), \
         duration_ms = CASE WHEN COALESCE($4, ended_at) IS NULL THEN duration_ms \
         ELSE trunc(EXTRACT(EPOCH FROM (COALESCE($4, ended_at) - started_at)) * 1000)::bigint END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.0)
    .bind(id.0)
    .bind(status.as_str())
    .bind(ended_at)
    .bind(result_code)
    .bind(before)
    .execute(c)
    .await
    .db()?;
    found(done)
}

pub(super) async fn set_media(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
    media: Option<&MediaObject>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE recordings SET media_container = $3, media_key = $4, media_byte_size = $5, \
         media_sha256 = $6, media_data_key_id = $7, media_content_type = $8, \
         media_plaintext_size = $9 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.0)
    .bind(id.0)
    .bind(media.map(|m| &m.container))
    .bind(media.map(|m| &m.key))
    .bind(media.map(|m| m.byte_size))
    .bind(media.map(|m| &m.sha256))
    .bind(media.map(|m| m.data_key_id.0))
    .bind(media.map(|m| &m.content_type))
    .bind(media.map(|m| m.plaintext_size))
    .execute(c)
    .await
    .db()?;
    found(done)
}

pub(super) async fn set_legal_hold(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
    held: bool,
) -> StoreResult<()> {
    let done =
        sqlx::query("UPDATE recordings SET legal_hold = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .bind(held)
            .execute(c)
            .await
            .db()?;
    found(done)
}

pub(super) async fn merge_attributes(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
    attributes: &BTreeMap<String, serde_json::Value>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE recordings SET attributes = attributes || $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.0)
    .bind(id.0)
    .bind(sqlx::types::Json(attributes))
    .execute(c)
    .await
    .db()?;
    found(done)
}

pub(super) async fn update_participant_presence(
    c: &mut PgConnection,
    tenant: TenantId,
    rec: RecordingId,
    participant: ParticipantId,
    recorded_user: bool,
    left_ms: Option<i64>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE participants SET recorded_user = (recorded_user OR $4), left_ms = $5 \
         WHERE tenant_id = $1 AND recording_id = $2 AND id = $3",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(participant.0)
    .bind(recorded_user)
    .bind(left_ms)
    .execute(c)
    .await
    .db()?;
    found(done)
}

pub(super) async fn set_participant_object_id(
    c: &mut PgConnection,
    tenant: TenantId,
    rec: RecordingId,
    participant: ParticipantId,
    object_id: &str,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE participants SET directory_object_id = $4 \
         WHERE tenant_id = $1 AND recording_id = $2 AND id = $3",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(participant.0)
    // Lower-case, as directory sync compares it.
    .bind(object_id.to_ascii_lowercase())
    .execute(c)
    .await
    .db()?;
    found(done)
}

/// Deletes the recording; participants, streams, transcript segments (and
/// with them their search index entries) and insights go with it through
/// `ON DELETE CASCADE`.
/// `Ok(Err(why))` when refused by a legal hold.
pub(super) async fn delete(
    c: &mut PgConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<Result<(), String>> {
    // The active holds themselves decide (under the hold lock), not only
    // the stored flag: a hold whose sweep has not reached this recording
    // yet still wins.
    if super::governance::held_now(c, tenant, id).await? {
        return Ok(Err("the recording is on legal hold".into()));
    }
    let done = sqlx::query("DELETE FROM recordings WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id.0)
        .execute(c)
        .await
        .db()?;
    found(done).map(Ok)
}

async fn count_unstored(c: &mut PgConnection, tenant: TenantId) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recordings WHERE tenant_id = $1 AND status IN ($2, $3)",
    )
    .bind(tenant.0)
    .bind(RecordingStatus::Recording.as_str())
    .bind(RecordingStatus::Spooled.as_str())
    .fetch_one(c)
    .await
    .db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}
