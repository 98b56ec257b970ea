use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{InsightId, ParticipantId, RecordingId, SegmentId, string_enum};

/// A stretch of speech by one participant. Attribution comes from the
/// participant's own media stream, so `participant_id` is exact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub id: SegmentId,
    pub recording_id: RecordingId,
    pub participant_id: Option<ParticipantId>,
    /// Offset from the recording start, ms.
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// 0.0..=1.0.
    pub confidence: f32,
    /// BCP-47 language tag, e.g. `en`.
    pub language: Option<String>,
}

string_enum!(
    /// What an [`Insight`] is.
    InsightKind {
        Summary => "summary",
        Decision => "decision",
        ActionItem => "action-item",
        Topic => "topic",
    }
);

/// A summary, decision, action item or topic derived from a transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    pub id: InsightId,
    pub recording_id: RecordingId,
    pub kind: InsightKind,
    pub text: String,
    /// For action items: the participant it was assigned to.
    pub owner_participant_id: Option<ParticipantId>,
    /// Which engine produced it (`local:whisper-tiny.en`, `azure-openai:...`).
    pub provider: String,
    pub created_at: DateTime<Utc>,
}
