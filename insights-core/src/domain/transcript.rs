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
        /// One of the few most important statements of the conversation.
        KeyPoint => "key-point",
        Decision => "decision",
        ActionItem => "action-item",
        Topic => "topic",
    }
);

/// The transcript segment a recap item was derived from, with its times,
/// so a reader can jump to the moment and check the item against the
/// evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Citation {
    pub segment_id: SegmentId,
    /// The segment's start, ms from the recording start.
    pub start_ms: i64,
    /// The segment's end, ms from the recording start.
    pub end_ms: i64,
}

impl Citation {
    /// Cites the whole of `segment`.
    pub fn of(segment: &TranscriptSegment) -> Self {
        Self {
            segment_id: segment.id,
            start_ms: segment.start_ms,
            end_ms: segment.end_ms,
        }
    }
}

/// A summary sentence, key point, decision, action item or topic derived
/// from a transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    pub id: InsightId,
    pub recording_id: RecordingId,
    pub kind: InsightKind,
    pub text: String,
    /// For action items: the participant it was assigned to.
    pub owner_participant_id: Option<ParticipantId>,
    /// Which engine produced it: `local:extractive` for the built-in
    /// deterministic summarizer and rules, `azure-openai:<deployment>`,
    /// `openai-compatible:<model>`, `anthropic:<model>` for an LLM.
    pub provider: String,
    pub created_at: DateTime<Utc>,
    /// The segments it came from, in transcript order. Insights stored
    /// before citations existed have none.
    #[serde(default)]
    pub citations: Vec<Citation>,
}

impl Insight {
    /// Whether a local engine (no cloud provider) produced it: the UI and
    /// API label such items as machine-extracted, not AI-written.
    pub fn is_local(&self) -> bool {
        self.provider.starts_with("local:")
    }
}
