//! Transcript segments and insights of a recording.

use std::collections::BTreeSet;

use async_trait::async_trait;
use insights_core::domain::{Insight, RecordingId, SegmentId, TenantId, TranscriptSegment};
use insights_core::store::{StoreError, StoreResult, TranscriptStore};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use super::recordings::exists;
use super::util::{col, db, enum_col, id, json_col, micros, opt_id, to_json, ts, uuid_list};

#[async_trait]
impl TranscriptStore for SqliteStore {
    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        put_segments(&self.pool, tenant, recording, segments).await
    }

    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>> {
        list_segments(&self.pool, tenant, recording).await
    }

    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        super::jobs::replace_transcript(&self.pool, tenant, recording, segments).await
    }

    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()> {
        put_insights(&self.pool, tenant, recording, insights).await
    }

    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>> {
        list_insights(&self.pool, tenant, recording).await
    }

    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64> {
        super::subjects::delete_insights(&self.pool, tenant, recording).await
    }
}

fn check_recording(want: RecordingId, got: RecordingId, what: &str) -> StoreResult<()> {
    if want == got {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} belongs to recording {got}, not to recording {want}"
        )))
    }
}

pub(super) async fn put_segments(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    segments: &[TranscriptSegment],
) -> StoreResult<()> {
    for s in segments {
        check_recording(rec, s.recording_id, "a transcript segment")?;
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    for s in segments {
        // An upsert, not INSERT OR REPLACE: REPLACE deletes without firing
        // the delete trigger, which would leave stale FTS entries.
        let done = sqlx::query(
            "INSERT INTO transcript_segments (tenant_id, recording_id, id, participant_id, \
             start_ms, end_ms, text, confidence, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET participant_id = excluded.participant_id, \
             start_ms = excluded.start_ms, end_ms = excluded.end_ms, text = excluded.text, \
             confidence = excluded.confidence, language = excluded.language \
             WHERE transcript_segments.recording_id = excluded.recording_id",
        )
        .bind(tenant.0)
        .bind(rec.0)
        .bind(s.id.0)
        .bind(s.participant_id.map(|p| p.0))
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(&s.text)
        .bind(f64::from(s.confidence))
        .bind(&s.language)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "transcript segment {} belongs to another recording",
                s.id
            )));
        }
    }
    sqlx::query("UPDATE recordings SET has_transcript = 1 WHERE tenant_id = ? AND id = ?")
        .bind(tenant.0)
        .bind(rec.0)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

fn segment_from_row(row: &SqliteRow) -> StoreResult<TranscriptSegment> {
    Ok(TranscriptSegment {
        id: id(row, "id")?,
        recording_id: id(row, "recording_id")?,
        participant_id: opt_id(row, "participant_id")?,
        start_ms: col(row, "start_ms")?,
        end_ms: col(row, "end_ms")?,
        text: col(row, "text")?,
        // Stored from an f32, so the conversion back is exact.
        confidence: col::<f64>(row, "confidence")? as f32,
        language: col(row, "language")?,
    })
}

pub(super) async fn list_segments(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
) -> StoreResult<Vec<TranscriptSegment>> {
    let mut tx = pool.begin().await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let rows = sqlx::query(
        "SELECT id, recording_id, participant_id, start_ms, end_ms, text, confidence, language \
         FROM transcript_segments WHERE tenant_id = ? AND recording_id = ? \
         ORDER BY start_ms, id",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    rows.iter().map(segment_from_row).collect()
}

pub(super) async fn put_insights(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
    insights: &[Insight],
) -> StoreResult<()> {
    for i in insights {
        check_recording(rec, i.recording_id, "an insight")?;
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let cited: BTreeSet<SegmentId> = insights
        .iter()
        .flat_map(|i| i.citations.iter().map(|c| c.segment_id))
        .collect();
    let known: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transcript_segments WHERE tenant_id = ? AND recording_id = ? \
         AND id IN (SELECT unhex(value) FROM json_each(?))",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .bind(uuid_list(cited.iter().map(|s| s.0)))
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    if usize::try_from(known).ok() != Some(cited.len()) {
        return Err(StoreError::Invalid(
            "an insight cites a segment that is not part of the recording".into(),
        ));
    }
    for i in insights {
        let done = sqlx::query(
            "INSERT INTO insights (tenant_id, recording_id, id, kind, text, \
             owner_participant_id, provider, created_at, citations) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET kind = excluded.kind, \
             text = excluded.text, owner_participant_id = excluded.owner_participant_id, \
             provider = excluded.provider, created_at = excluded.created_at, \
             citations = excluded.citations \
             WHERE insights.recording_id = excluded.recording_id",
        )
        .bind(tenant.0)
        .bind(rec.0)
        .bind(i.id.0)
        .bind(i.kind.as_str())
        .bind(&i.text)
        .bind(i.owner_participant_id.map(|p| p.0))
        .bind(&i.provider)
        .bind(micros(i.created_at))
        .bind(to_json(&i.citations)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "insight {} belongs to another recording",
                i.id
            )));
        }
    }
    tx.commit().await.map_err(db)
}

fn insight_from_row(row: &SqliteRow) -> StoreResult<Insight> {
    Ok(Insight {
        id: id(row, "id")?,
        recording_id: id(row, "recording_id")?,
        kind: enum_col(row, "kind")?,
        text: col(row, "text")?,
        owner_participant_id: opt_id(row, "owner_participant_id")?,
        provider: col(row, "provider")?,
        created_at: ts(row, "created_at")?,
        citations: json_col(row, "citations")?,
    })
}

pub(super) async fn list_insights(
    pool: &SqlitePool,
    tenant: TenantId,
    rec: RecordingId,
) -> StoreResult<Vec<Insight>> {
    let mut tx = pool.begin().await.map_err(db)?;
    if !exists(&mut tx, tenant, rec).await? {
        return Err(StoreError::NotFound);
    }
    let rows = sqlx::query(
        "SELECT id, recording_id, kind, text, owner_participant_id, provider, created_at, \
         citations FROM insights WHERE tenant_id = ? AND recording_id = ?",
    )
    .bind(tenant.0)
    .bind(rec.0)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    let mut out = rows
        .iter()
        .map(insight_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    // (kind, created_at, id) in the domain's own order: kinds in
    // declaration order (summary first), not alphabetically.
    out.sort_by_key(|i| (i.kind, i.created_at, i.id));
    Ok(out)
}
