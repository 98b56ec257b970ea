//! Recordings with their participants and media streams.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{
    MediaObject, MediaStream, Participant, ParticipantId, Recording, RecordingId, RecordingStatus,
    TenantId, normalize_phone,
};
use insights_core::store::{RecordingStore, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use super::SqliteStore;
use super::util::{
    check_tenant, col, conflict_as, db, enum_col, id, micros, opt_id, opt_ts, req, ts, uuid_list,
};

#[async_trait]
impl RecordingStore for SqliteStore {
    async fn count_unstored_recordings(&self, tenant: TenantId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM recordings WHERE tenant_id = ? AND status IN (?, ?)",
        )
        .bind(tenant.0)
        .bind(RecordingStatus::Recording.as_str())
        .bind(RecordingStatus::Spooled.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_recording(&self, tenant: TenantId, recording: &Recording) -> StoreResult<()> {
        insert(&self.pool, tenant, recording).await
    }

    async fn get_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<Recording> {
        get(&self.pool, tenant, id).await
    }

    async fn get_recordings(
        &self,
        tenant: TenantId,
        ids: &[RecordingId],
    ) -> StoreResult<Vec<Recording>> {
        super::subjects::get_many(&self.pool, tenant, ids).await
    }

    async fn recording_by_external_call_id(
        &self,
        tenant: TenantId,
        call_id: &str,
    ) -> StoreResult<Recording> {
        by_external_call_id(&self.pool, tenant, call_id).await
    }

    async fn add_participant(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
    ) -> StoreResult<()> {
        add_participant(&self.pool, tenant, recording, p).await
    }

    async fn add_participant_once(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        p: &Participant,
        object_id: Option<&str>,
    ) -> StoreResult<Participant> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let stored = add_participant_once(&mut tx, tenant, recording, p, object_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn copy_recorded_users(
        &self,
        tenant: TenantId,
        from: RecordingId,
        to: RecordingId,
    ) -> StoreResult<u32> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        if !exists(&mut tx, tenant, to).await? {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT id, role, display_name, phone_number, uri, email, directory_user_id, \
             recorded_user, joined_ms, left_ms, directory_object_id \
             FROM participants WHERE tenant_id = ? AND recording_id = ? AND recorded_user \
             ORDER BY ord",
        )
        .bind(tenant.0)
        .bind(from.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut added = 0;
        for row in &rows {
            let oid: Option<String> = col(row, "directory_object_id")?;
            let p = Participant {
                id: ParticipantId::new(),
                joined_ms: Some(0),
                left_ms: None,
                ..participant_from_row(row)?
            };
            if add_participant_once(&mut tx, tenant, to, &p, oid.as_deref())
                .await?
                .id
                == p.id
            {
                added += 1;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(added)
    }

    async fn add_stream(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        s: &MediaStream,
    ) -> StoreResult<()> {
        add_stream(&self.pool, tenant, recording, s).await
    }

    async fn update_recording_status(
        &self,
        tenant: TenantId,
        id: RecordingId,
        status: RecordingStatus,
        ended_at: Option<chrono::DateTime<chrono::Utc>>,
        result_code: Option<&str>,
    ) -> StoreResult<()> {
        update_status(&self.pool, tenant, id, status, ended_at, result_code).await
    }

    async fn set_recording_media(
        &self,
        tenant: TenantId,
        id: RecordingId,
        media: Option<&MediaObject>,
    ) -> StoreResult<()> {
        set_media(&self.pool, tenant, id, media).await
    }

    async fn set_legal_hold_flag(
        &self,
        tenant: TenantId,
        id: RecordingId,
        held: bool,
    ) -> StoreResult<()> {
        set_legal_hold(&self.pool, tenant, id, held).await
    }

    async fn merge_recording_attributes(
        &self,
        tenant: TenantId,
        id: RecordingId,
        attributes: &BTreeMap<String, serde_json::Value>,
    ) -> StoreResult<()> {
        merge_attributes(&self.pool, tenant, id, attributes).await
    }

    async fn update_participant_presence(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        recorded_user: bool,
        left_ms: Option<i64>,
    ) -> StoreResult<()> {
        update_participant_presence(
            &self.pool,
            tenant,
            recording,
            participant,
            recorded_user,
            left_ms,
        )
        .await
    }

    async fn delete_recording(&self, tenant: TenantId, id: RecordingId) -> StoreResult<()> {
        delete(&self.pool, tenant, id).await
    }

    async fn set_participant_object_id(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        participant: ParticipantId,
        object_id: &str,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE participants SET directory_object_id = ? \
             WHERE tenant_id = ? AND recording_id = ? AND id = ?",
        )
        // Lower-case, as directory sync compares it.
        .bind(object_id.to_ascii_lowercase())
        .bind(tenant.0)
        .bind(recording.0)
        .bind(participant.0)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        affected_one(done)
    }
}

/// The columns of `recordings r`, in the order [`from_row`] reads them.
macro_rules! recording_columns {
    () => {
        "r.tenant_id, r.id, r.kind, r.direction, r.started_at, r.ended_at, r.duration_ms, \
         r.external_call_id, r.call_chain_id, r.status, r.result_code, r.retention_class, \
         r.legal_hold, r.has_transcript, r.media_container, r.media_key, r.media_byte_size, \
         r.media_sha256, r.media_data_key_id, r.media_content_type, r.media_plaintext_size, \
         r.attributes, r.created_at"
    };
}
pub(super) use recording_columns;

/// A recording row, without participants and streams.
pub(super) fn from_row(row: &SqliteRow) -> StoreResult<Recording> {
    let media = match col::<Option<String>>(row, "media_container")? {
        None => None,
        Some(container) => Some(MediaObject {
            container,
            key: req(row, "media_key")?,
            byte_size: req(row, "media_byte_size")?,
            sha256: req(row, "media_sha256")?,
            data_key_id: req::<uuid::Uuid>(row, "media_data_key_id")?.into(),
            content_type: req(row, "media_content_type")?,
            plaintext_size: req(row, "media_plaintext_size")?,
        }),
    };
    Ok(Recording {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        kind: enum_col(row, "kind")?,
        direction: enum_col(row, "direction")?,
        started_at: ts(row, "started_at")?,
        ended_at: opt_ts(row, "ended_at")?,
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
        created_at: ts(row, "created_at")?,
    })
}

fn participant_from_row(row: &SqliteRow) -> StoreResult<Participant> {
    Ok(Participant {
        id: id(row, "id")?,
        role: enum_col(row, "role")?,
        display_name: col(row, "display_name")?,
        phone_number: col(row, "phone_number")?,
        uri: col(row, "uri")?,
        email: col(row, "email")?,
        directory_user_id: opt_id(row, "directory_user_id")?,
        recorded_user: col(row, "recorded_user")?,
        joined_ms: col(row, "joined_ms")?,
        left_ms: col(row, "left_ms")?,
    })
}

fn stream_from_row(row: &SqliteRow) -> StoreResult<MediaStream> {
    Ok(MediaStream {
        id: id(row, "id")?,
        participant_id: opt_id(row, "participant_id")?,
        track: col(row, "track")?,
        media_type: col(row, "media_type")?,
        codec: col(row, "codec")?,
        sample_rate: col(row, "sample_rate")?,
        start_ms: col(row, "start_ms")?,
    })
}

/// Digits searched by number: those of the normalised phone number and of
/// a `tel:` URI, space separated (a digit query never spans the gap).
pub(super) fn phone_digits(p: &Participant) -> String {
    let tel_uri = p
        .uri
        .as_deref()
        .map(str::trim)
        .filter(|u| u.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:")))
        .map(|u| &u[4..]);
    let mut parts: Vec<String> = Vec::new();
    for raw in [p.phone_number.as_deref(), tel_uri].into_iter().flatten() {
        if let Some(n) = normalize_phone(raw) {
            let digits = n.trim_start_matches('+').to_owned();
            if !parts.contains(&digits) {
                parts.push(digits);
            }
        }
    }
    parts.join(" ")
}

/// Fills in participants (insertion order) and streams (insertion order)
/// of `recordings`, all of `tenant`.
pub(super) async fn attach_children(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    recordings: &mut [Recording],
) -> StoreResult<()> {
    if recordings.is_empty() {
        return Ok(());
    }
    let ids = uuid_list(recordings.iter().map(|r| r.id.0));
    let mut at: HashMap<RecordingId, usize> = HashMap::new();
    for (i, r) in recordings.iter().enumerate() {
        at.insert(r.id, i);
    }
    let rows = sqlx::query(
        "SELECT recording_id, id, role, display_name, phone_number, uri, email, \
         directory_user_id, recorded_user, joined_ms, left_ms FROM participants \
         WHERE tenant_id = ? AND recording_id IN (SELECT unhex(value) FROM json_each(?)) \
         ORDER BY recording_id, ord",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in &rows {
        let rec: RecordingId = id(row, "recording_id")?;
        if let Some(i) = at.get(&rec) {
            recordings[*i].participants.push(participant_from_row(row)?);
        }
    }
    let rows = sqlx::query(
        "SELECT recording_id, id, participant_id, track, media_type, codec, sample_rate, \
         start_ms FROM media_streams \
         WHERE tenant_id = ? AND recording_id IN (SELECT unhex(value) FROM json_each(?)) \
         ORDER BY recording_id, ord",
    )
    .bind(tenant.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in &rows {
        let rec: RecordingId = id(row, "recording_id")?;
        if let Some(i) = at.get(&rec) {
            recordings[*i].streams.push(stream_from_row(row)?);
        }
    }
    Ok(())
}

/// Whether the recording exists in the tenant.
pub(super) async fn exists(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM recordings WHERE tenant_id = ? AND id = ?")
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?
            .is_some(),
    )
}

async fn insert_participant(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rec: RecordingId,
    ord: i64,
    p: &Participant,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO participants (tenant_id, recording_id, id, ord, role, display_name, \
         phone_number, uri, email, directory_user_id, recorded_user, joined_ms, left_ms, \
         phone_digits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(p.id.0)
    .bind(ord)
    .bind(p.role.as_str())
    .bind(&p.display_name)
    .bind(&p.phone_number)
    .bind(&p.uri)
    .bind(&p.email)
    .bind(p.directory_user_id.map(|u| u.0))
    .bind(p.recorded_user)
    .bind(p.joined_ms)
    .bind(p.left_ms)
    .bind(phone_digits(p))
    .execute(&mut *conn)
    .await
    .map_err(conflict_as("a participant with this id exists"))?;
    Ok(())
}

async fn insert_stream(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rec: RecordingId,
    ord: i64,
    s: &MediaStream,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO media_streams (tenant_id, recording_id, id, ord, participant_id, track, \
         media_type, codec, sample_rate, start_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(s.id.0)
    .bind(ord)
    .bind(s.participant_id.map(|p| p.0))
    .bind(s.track)
    .bind(&s.media_type)
    .bind(&s.codec)
    .bind(s.sample_rate)
    .bind(s.start_ms)
    .execute(&mut *conn)
    .await
    .map_err(conflict_as("a media stream with this id exists"))?;
    Ok(())
}

pub(super) async fn insert(pool: &SqlitePool, tenant: TenantId, r: &Recording) -> StoreResult<()> {
    check_tenant(tenant, r.tenant_id, "the recording")?;
    let media = r.media.as_ref();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::query(
        "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, ended_at, \
         duration_ms, external_call_id, call_chain_id, status, result_code, retention_class, \
         legal_hold, has_transcript, media_container, media_key, media_byte_size, media_sha256, \
         media_data_key_id, media_content_type, media_plaintext_size, created_at, attributes) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant.0)
    .bind(r.id.0)
    .bind(r.kind.as_str())
    .bind(r.direction.as_str())
    .bind(micros(r.started_at))
    .bind(r.ended_at.map(micros))
    .bind(r.duration_ms)
    .bind(&r.external_call_id)
    .bind(&r.call_chain_id)
    .bind(r.status.as_str())
    .bind(&r.result_code)
    .bind(&r.retention_class)
    .bind(r.legal_hold)
    .bind(r.has_transcript)
    .bind(media.map(|m| m.container.as_str()))
    .bind(media.map(|m| m.key.as_str()))
    .bind(media.map(|m| m.byte_size))
    .bind(media.map(|m| m.sha256.as_str()))
    .bind(media.map(|m| m.data_key_id.0))
    .bind(media.map(|m| m.content_type.as_str()))
    .bind(media.map(|m| m.plaintext_size))
    .bind(micros(r.created_at))
    .bind(sqlx::types::Json(&r.attributes))
    .execute(&mut *tx)
    .await
    .map_err(conflict_as("a recording with this id exists"))?;
    for (ord, p) in r.participants.iter().enumerate() {
        insert_participant(&mut tx, tenant, r.id, ord as i64, p).await?;
    }
    for (ord, s) in r.streams.iter().enumerate() {
        insert_stream(&mut tx, tenant, r.id, ord as i64, s).await?;
    }
    super::governance::raise_if_held(&mut tx, tenant, r.id).await?;
    tx.commit().await.map_err(db)
}

/// How a single recording is looked up.
enum Lookup<'a> {
    Id(RecordingId),
    /// The most recent recording with this call id (a call id should map
    /// to one recording; if a call was recorded twice, the latest wins).
    CallId(&'a str),
}

async fn load_one(pool: &SqlitePool, tenant: TenantId, by: Lookup<'_>) -> StoreResult<Recording> {
    // One read transaction: the recording and its children come from the
    // same snapshot.
    let mut tx = pool.begin().await.map_err(db)?;
    let row = match by {
        Lookup::Id(id) => {
            sqlx::query(concat!(
                "SELECT ",
                recording_columns!(),
                " FROM recordings r WHERE r.tenant_id = ? AND r.id = ?"
            ))
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
        }
        Lookup::CallId(call_id) => {
            sqlx::query(concat!(
                "SELECT ",
                recording_columns!(),
                " FROM recordings r WHERE r.tenant_id = ? AND r.external_call_id = ? \
                 ORDER BY r.started_at DESC, r.id DESC LIMIT 1"
            ))
            .bind(tenant.0)
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await
        }
    }
    .map_err(db)?
    .ok_or(StoreError::NotFound)?;
    let mut recs = [from_row(&row)?];
    attach_children(&mut tx, tenant, &mut recs).await?;
    tx.commit().await.map_err(db)?;
    let [rec] = recs;
    Ok(rec)
}

pub(super) async fn get(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<Recording> {
    load_one(pool, tenant, Lookup::Id(id)).await
}

pub(super) async fn by_external_call_id(
    pool: &SqlitePool,
    tenant: TenantId,
    call_id: &str,
) -> StoreResult<Recording> {
    load_one(pool, tenant, Lookup::CallId(call_id)).await
}

async fn next_ord(
    conn: &mut SqliteConnection,
    table: Child,
    tenant: TenantId,
    rec: RecordingId,
) -> StoreResult<i64> {
    let sql = match table {
        Child::Participant => {
            "SELECT COALESCE(MAX(ord) + 1, 0) FROM participants WHERE tenant_id = ? AND recording_id = ?"
        }
        Child::Stream => {
            "SELECT COALESCE(MAX(ord) + 1, 0) FROM media_streams WHERE tenant_id = ? AND recording_id = ?"
        }
    };
    sqlx::query_scalar(sql)
        .bind(tenant.0)
        .bind(rec.0)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)
}

#[derive(Clone, Copy)]
enum Child {
    Participant,
    Stream,
}

pub(super) async fn add_participant(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    p: &Participant,
) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let ord = next_ord(&mut tx, Child::Participant, tenant, rec).await?;
    insert_participant(&mut tx, tenant, rec, ord, p).await?;
    super::governance::raise_if_held(&mut tx, tenant, rec).await?;
    tx.commit().await.map_err(db)
}

/// [`RecordingStore::add_participant_once`] inside a write (`IMMEDIATE`)
/// transaction: the lookup and the insert see the same state.
async fn add_participant_once(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rec: RecordingId,
    p: &Participant,
    object_id: Option<&str>,
) -> StoreResult<Participant> {
    if !exists(conn, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let object_id = object_id.map(str::to_ascii_lowercase);
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT pk FROM participants WHERE tenant_id = ?1 AND recording_id = ?2 \
         AND ((?3 IS NOT NULL AND directory_object_id = ?3) \
           OR (?4 IS NOT NULL AND directory_user_id = ?4) \
           OR (?5 IS NOT NULL AND phone_number = ?5)) \
         ORDER BY ord LIMIT 1",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(object_id.as_deref())
    .bind(p.directory_user_id.map(|u| u.0))
    .bind(p.phone_number.as_deref())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    if let Some(pk) = found {
        let row = sqlx::query(
            "UPDATE participants SET recorded_user = (recorded_user OR ?2), \
             directory_user_id = COALESCE(directory_user_id, ?3), \
             directory_object_id = COALESCE(directory_object_id, ?4) WHERE pk = ?1 \
             RETURNING id, role, display_name, phone_number, uri, email, directory_user_id, \
             recorded_user, joined_ms, left_ms",
        )
        .bind(pk)
        .bind(p.recorded_user)
        .bind(p.directory_user_id.map(|u| u.0))
        .bind(object_id.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        return participant_from_row(&row);
    }
    let ord = next_ord(conn, Child::Participant, tenant, rec).await?;
    insert_participant(conn, tenant, rec, ord, p).await?;
    if let Some(oid) = &object_id {
        sqlx::query(
            "UPDATE participants SET directory_object_id = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(oid)
        .bind(tenant.0)
        .bind(p.id.0)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    super::governance::raise_if_held(conn, tenant, rec).await?;
    Ok(p.clone())
}

pub(super) async fn add_stream(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    s: &MediaStream,
) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let ord = next_ord(&mut tx, Child::Stream, tenant, rec).await?;
    insert_stream(&mut tx, tenant, rec, ord, s).await?;
    tx.commit().await.map_err(db)
}

fn affected_one(done: sqlx::sqlite::SqliteQueryResult) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

pub(super) async fn update_status(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
    status: RecordingStatus,
    ended_at: Option<DateTime<Utc>>,
    result_code: Option<&str>,
) -> StoreResult<()> {
    // duration_ms follows the (new or kept) end; integer division of
    // microseconds truncates to whole milliseconds.
    // The status only moves forward (`RecordingStatus::may_follow`),
    // decided inside the UPDATE so that it holds against a concurrent
    // writer; ?6 is the statuses it may move from, as a JSON array of the
    // enum's fixed strings.
    let before = status
        .may_follow()
        .iter()
        .map(|s| format!("\"{}\"", s.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let done = sqlx::query(
        "UPDATE recordings SET status = CASE WHEN status IN (SELECT value FROM json_each(?6)) \
         THEN ?1 ELSE status END, \
         ended_at = COALESCE(?2, ended_at), \
         result_code = COALESCE(?3, result_code), \
         duration_ms = CASE WHEN COALESCE(?2, ended_at) IS NULL THEN duration_ms \
                       ELSE (COALESCE(?2, ended_at) - started_at) / 1000 END \
         WHERE tenant_id = ?4 AND id = ?5",
    )
    .bind(status.as_str())
    .bind(ended_at.map(micros))
    .bind(result_code)
    .bind(tenant.0)
    .bind(id.0)
    .bind(format!("[{before}]"))
    .execute(pool)
    .await
    .map_err(db)?;
    affected_one(done)
}

pub(super) async fn set_media(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
    media: Option<&MediaObject>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE recordings SET media_container = ?, media_key = ?, media_byte_size = ?, \
         media_sha256 = ?, media_data_key_id = ?, media_content_type = ?, \
         media_plaintext_size = ? WHERE tenant_id = ? AND id = ?",
    )
    .bind(media.map(|m| m.container.as_str()))
    .bind(media.map(|m| m.key.as_str()))
    .bind(media.map(|m| m.byte_size))
    .bind(media.map(|m| m.sha256.as_str()))
    .bind(media.map(|m| m.data_key_id.0))
    .bind(media.map(|m| m.content_type.as_str()))
    .bind(media.map(|m| m.plaintext_size))
    .bind(tenant.0)
    .bind(id.0)
    .execute(pool)
    .await
    .map_err(db)?;
    affected_one(done)
}

pub(super) async fn set_legal_hold(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
    held: bool,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE recordings SET legal_hold = ? WHERE tenant_id = ? AND id = ?")
        .bind(held)
        .bind(tenant.0)
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?;
    affected_one(done)
}

pub(super) async fn merge_attributes(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
    attributes: &BTreeMap<String, serde_json::Value>,
) -> StoreResult<()> {
    // json_patch (RFC 7386) replaces the named top-level members.
    let done = sqlx::query(
        "UPDATE recordings SET attributes = json_patch(attributes, ?) \
         WHERE tenant_id = ? AND id = ?",
    )
    .bind(sqlx::types::Json(attributes))
    .bind(tenant.0)
    .bind(id.0)
    .execute(pool)
    .await
    .map_err(db)?;
    affected_one(done)
}

pub(super) async fn update_participant_presence(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    participant: ParticipantId,
    recorded_user: bool,
    left_ms: Option<i64>,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE participants SET recorded_user = (recorded_user OR ?), left_ms = ? \
         WHERE tenant_id = ? AND recording_id = ? AND id = ?",
    )
    .bind(recorded_user)
    .bind(left_ms)
    .bind(tenant.0)
    .bind(rec.0)
    .bind(participant.0)
    .execute(pool)
    .await
    .map_err(db)?;
    affected_one(done)
}

pub(super) async fn delete(
    pool: &SqlitePool,
    tenant: TenantId,
    id: RecordingId,
) -> StoreResult<()> {
    // IMMEDIATE: the hold check and the delete see the same state (a hold
    // placed concurrently either wins before or waits until after).
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    // The active holds themselves decide, not only the stored flag: a
    // hold whose sweep has not reached this recording yet still wins.
    if super::governance::held_now(&mut tx, tenant, id).await? {
        tx.commit().await.map_err(db)?;
        return Err(StoreError::Refused(format!(
            "recording {id} is on legal hold"
        )));
    }
    // Children first (their triggers clear the FTS indexes); the foreign
    // keys would cascade too, this keeps the intent explicit.
    for sql in [
        "DELETE FROM transcript_segments WHERE tenant_id = ? AND recording_id = ?",
        "DELETE FROM insights WHERE tenant_id = ? AND recording_id = ?",
        "DELETE FROM media_streams WHERE tenant_id = ? AND recording_id = ?",
        "DELETE FROM participants WHERE tenant_id = ? AND recording_id = ?",
        "DELETE FROM recordings WHERE tenant_id = ? AND id = ?",
    ] {
        sqlx::query(sql)
            .bind(tenant.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
