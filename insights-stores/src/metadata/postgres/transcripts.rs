//! Transcript segments and insights.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use insights_core::domain::{
    Citation, Insight, InsightId, InsightKind, ParticipantId, RecordingId, SegmentId, TenantId,
    TranscriptSegment,
};
use insights_core::store::{StoreError, StoreResult, TranscriptStore};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::error::{DbResultExt, col, enum_col, found};

#[async_trait]
impl TranscriptStore for PgStore {
    async fn put_transcript_segments(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| put_segments(
            c, tenant, recording, segments
        ))
    }

    async fn list_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<TranscriptSegment>> {
        in_tenant!(self, tenant, |c| list_segments(c, tenant, recording))
    }

    async fn replace_transcript(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        segments: &[TranscriptSegment],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| super::jobs::replace_transcript(
            c, tenant, recording, segments
        ))
    }

    async fn put_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        insights: &[Insight],
    ) -> StoreResult<()> {
        in_tenant!(self, tenant, |c| put_insights(
            c, tenant, recording, insights
        ))
    }

    async fn list_insights(
        &self,
        tenant: TenantId,
        recording: RecordingId,
    ) -> StoreResult<Vec<Insight>> {
        in_tenant!(self, tenant, |c| list_insights(c, tenant, recording))
    }

    async fn delete_insights(&self, tenant: TenantId, recording: RecordingId) -> StoreResult<u64> {
        in_tenant!(self, tenant, |c| super::subjects::delete_insights(
            c, tenant, recording
        ))
    }
}

/// `items` without earlier duplicates of an id (the last one wins, as if
/// they had been stored one after the other).
fn last_per_id<T, K: std::hash::Hash + Eq>(items: &[T], id: impl Fn(&T) -> K) -> Vec<&T> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(&id(item)) {
            Some(&i) => out[i] = item,
            None => {
                index.insert(id(item), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// `NotFound` unless the recording exists in this tenant.
async fn require_recording(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1 FROM recordings WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(recording.0)
        .fetch_optional(c)
        .await
        .db()?
        .ok_or(StoreError::NotFound)
        .map(|_| ())
}

pub(super) async fn put_segments(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    segments: &[TranscriptSegment],
) -> StoreResult<()> {
    // A missing recording is `NotFound` before anything else is checked.
    let done =
        sqlx::query("UPDATE recordings SET has_transcript = true WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(recording.0)
            .execute(&mut *c)
            .await
            .db()?;
    found(done)?;
    if segments.iter().any(|s| s.recording_id != recording) {
        return Err(StoreError::Invalid(
            "a segment belongs to another recording".into(),
        ));
    }
    let segs = last_per_id(segments, |s| s.id);
    if segs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO transcript_segments (tenant_id, recording_id, id, participant_id, \
         start_ms, end_ms, text, confidence, language) \
         SELECT $1, $2, u.id, u.participant_id, u.start_ms, u.end_ms, u.text, u.confidence, \
         u.language \
         FROM UNNEST($3::uuid[], $4::uuid[], $5::int8[], $6::int8[], $7::text[], \
         $8::float4[], $9::text[]) \
         AS u(id, participant_id, start_ms, end_ms, text, confidence, language) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET recording_id = EXCLUDED.recording_id, \
         participant_id = EXCLUDED.participant_id, start_ms = EXCLUDED.start_ms, \
         end_ms = EXCLUDED.end_ms, text = EXCLUDED.text, confidence = EXCLUDED.confidence, \
         language = EXCLUDED.language",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(segs.iter().map(|s| s.id.0).collect::<Vec<_>>())
    .bind(
        segs.iter()
            .map(|s| s.participant_id.map(|p| p.0))
            .collect::<Vec<_>>(),
    )
    .bind(segs.iter().map(|s| s.start_ms).collect::<Vec<_>>())
    .bind(segs.iter().map(|s| s.end_ms).collect::<Vec<_>>())
    .bind(segs.iter().map(|s| s.text.as_str()).collect::<Vec<_>>())
    .bind(segs.iter().map(|s| s.confidence).collect::<Vec<_>>())
    .bind(
        segs.iter()
            .map(|s| s.language.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn segment_from_row(row: &PgRow) -> StoreResult<TranscriptSegment> {
    Ok(TranscriptSegment {
        id: SegmentId(col(row, "id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        participant_id: col::<Option<Uuid>>(row, "participant_id")?.map(ParticipantId),
        start_ms: col(row, "start_ms")?,
        end_ms: col(row, "end_ms")?,
        text: col(row, "text")?,
        confidence: col(row, "confidence")?,
        language: col(row, "language")?,
    })
}

pub(super) async fn list_segments(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<TranscriptSegment>> {
    require_recording(c, tenant, recording).await?;
    sqlx::query(
        "SELECT id, recording_id, participant_id, start_ms, end_ms, text, confidence, language \
         FROM transcript_segments WHERE tenant_id = $1 AND recording_id = $2 \
         ORDER BY start_ms, id",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(segment_from_row)
    .collect()
}

pub(super) async fn put_insights(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
    insights: &[Insight],
) -> StoreResult<()> {
    require_recording(c, tenant, recording).await?;
    if insights.iter().any(|i| i.recording_id != recording) {
        return Err(StoreError::Invalid(
            "an insight belongs to another recording".into(),
        ));
    }
    let items = last_per_id(insights, |i| i.id);
    if items.is_empty() {
        return Ok(());
    }
    let cited: BTreeSet<Uuid> = items
        .iter()
        .flat_map(|i| i.citations.iter().map(|c| c.segment_id.0))
        .collect();
    if !cited.is_empty() {
        let known: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM transcript_segments \
             WHERE tenant_id = $1 AND recording_id = $2 AND id = ANY($3)",
        )
        .bind(tenant.0)
        .bind(recording.0)
        .bind(cited.iter().copied().collect::<Vec<_>>())
        .fetch_one(&mut *c)
        .await
        .db()?;
        if usize::try_from(known).ok() != Some(cited.len()) {
            return Err(StoreError::Invalid(
                "an insight cites a segment that is not part of the recording".into(),
            ));
        }
    }
    let citations = items
        .iter()
        .map(|i| {
            serde_json::to_string(&i.citations)
                .map_err(|_| StoreError::Invalid("citations cannot be serialised".into()))
        })
        .collect::<StoreResult<Vec<String>>>()?;
    sqlx::query(
        "INSERT INTO insights (tenant_id, recording_id, id, kind, text, owner_participant_id, \
         provider, created_at, citations) \
         SELECT $1, $2, u.id, u.kind, u.text, u.owner, u.provider, u.created_at, \
         u.citations::jsonb \
         FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::text[], \
         $8::timestamptz[], $9::text[]) \
         AS u(id, kind, text, owner, provider, created_at, citations) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET recording_id = EXCLUDED.recording_id, \
         kind = EXCLUDED.kind, text = EXCLUDED.text, \
         owner_participant_id = EXCLUDED.owner_participant_id, provider = EXCLUDED.provider, \
         created_at = EXCLUDED.created_at, citations = EXCLUDED.citations",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(items.iter().map(|i| i.id.0).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| i.owner_participant_id.map(|p| p.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|i| i.provider.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|i| i.created_at).collect::<Vec<_>>())
    .bind(citations)
    .execute(c)
    .await
    .db()?;
    Ok(())
}

fn insight_from_row(row: &PgRow) -> StoreResult<Insight> {
    Ok(Insight {
        id: InsightId(col(row, "id")?),
        recording_id: RecordingId(col(row, "recording_id")?),
        kind: enum_col(row, "kind")?,
        text: col(row, "text")?,
        owner_participant_id: col::<Option<Uuid>>(row, "owner_participant_id")?.map(ParticipantId),
        provider: col(row, "provider")?,
        created_at: col(row, "created_at")?,
        citations: col::<sqlx::types::Json<Vec<Citation>>>(row, "citations")?.0,
    })
}

/// Ordered by `(kind, created_at, id)` as in Rust: kinds in declaration
/// order (summary, key point, decision, action item, topic), not by
/// their names.
pub(super) async fn list_insights(
    c: &mut PgConnection,
    tenant: TenantId,
    recording: RecordingId,
) -> StoreResult<Vec<Insight>> {
    require_recording(c, tenant, recording).await?;
    let kinds: Vec<&str> = InsightKind::ALL.iter().map(|k| k.as_str()).collect();
    sqlx::query(
        "SELECT id, recording_id, kind, text, owner_participant_id, provider, created_at, \
         citations FROM insights WHERE tenant_id = $1 AND recording_id = $2 \
         ORDER BY array_position($3::text[], kind), created_at, id",
    )
    .bind(tenant.0)
    .bind(recording.0)
    .bind(kinds)
    .fetch_all(c)
    .await
    .db()?
    .iter()
    .map(insight_from_row)
    .collect()
}
