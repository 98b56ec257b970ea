//! Recaps: summary, key points, decisions, action items (with their owner
//! when one is named) and topics of a transcript, every item citing the
//! segments it came from.
//!
//! Two kinds of engine implement [`RecapEngine`]:
//!
//! * [`Extractive`] (`local:extractive`), the default: a deterministic
//!   extractive summarizer and rule-based detection of decisions and
//!   action items. Nothing leaves the machine; the same transcript always
//!   gives the same recap (same texts, same ids).
//! * [`LlmRecap`] over a chat model ([`crate::providers`]): Azure OpenAI,
//!   OpenAI-compatible servers, Anthropic. The model sees numbered
//!   segments and must answer JSON in which every item cites segment
//!   numbers; items citing nothing or unknown numbers are dropped.

mod extractive;
mod ids;
mod llm;
mod text;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use insights_core::domain::{Participant, RecordingId, TranscriptSegment};

pub use extractive::{EXTRACTIVE_ID, Extractive};
pub use llm::{ChatModel, LlmRecap, RecapAnswer, build_prompt, parse_answer};

use insights_core::domain::Insight;

/// What a recap is made from.
#[derive(Clone, Copy, Debug)]
pub struct RecapInput<'a> {
    pub recording_id: RecordingId,
    /// The recording's participants (names resolve action-item owners).
    pub participants: &'a [Participant],
    /// The transcript, in time order.
    pub segments: &'a [TranscriptSegment],
    /// Stamped on every item as `created_at`.
    pub at: DateTime<Utc>,
}

/// Why a recap failed.
#[derive(Debug, thiserror::Error)]
pub enum RecapError {
    /// The engine cannot run (configuration, credentials refused).
    #[error("recap engine unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (a 4xx other than 429).
    #[error("recap provider rejected the request: {0}")]
    Rejected(String),
    /// The model's answer is not the JSON we asked for.
    #[error("recap answer is invalid: {0}")]
    InvalidAnswer(String),
    /// Provider 5xx, 429 or timeout after the retries: try again later.
    #[error("recap failed transiently: {message}")]
    Transient {
        message: String,
        retry_after_ms: Option<u64>,
    },
}

impl RecapError {
    /// Whether the job should be retried rather than dead-lettered.
    pub fn is_transient(&self) -> bool {
        matches!(self, RecapError::Transient { .. })
    }
}

/// Something that turns a transcript into recap items.
#[async_trait]
pub trait RecapEngine: Send + Sync {
    /// Stable id stored as the items' `provider` (`local:extractive`,
    /// `azure-openai:<deployment>`, ...).
    fn id(&self) -> &str;

    /// The recap of `input`; empty for an empty transcript.
    async fn recap(&self, input: &RecapInput<'_>) -> Result<Vec<Insight>, RecapError>;
}

/// Why [`recap_recording`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RecapStepError {
    #[error(transparent)]
    Store(#[from] insights_core::store::StoreError),
    #[error(transparent)]
    Recap(#[from] RecapError),
}

impl RecapStepError {
    /// Whether the job should be retried rather than dead-lettered: a
    /// transient provider failure or a database failure.
    pub fn is_transient(&self) -> bool {
        match self {
            RecapStepError::Recap(e) => e.is_transient(),
            RecapStepError::Store(e) => {
                matches!(e, insights_core::store::StoreError::Backend(_))
            }
        }
    }
}

/// The recap step of the pipeline: reads the recording and its transcript,
/// runs `engine` and stores the items (replacing by id, so a retried step
/// never duplicates them). Returns the stored items.
pub async fn recap_recording(
    store: &dyn insights_core::store::MetadataStore,
    engine: &dyn RecapEngine,
    tenant: insights_core::domain::TenantId,
    recording: RecordingId,
) -> Result<Vec<Insight>, RecapStepError> {
    let rec = store.get_recording(tenant, recording).await?;
    let segments = store.list_transcript(tenant, recording).await?;
    let items = engine
        .recap(&RecapInput {
            recording_id: recording,
            participants: &rec.participants,
            segments: &segments,
            at: insights_core::domain::now(),
        })
        .await?;
    store.put_insights(tenant, recording, &items).await?;
    tracing::info!(
        recording = %recording,
        provider = engine.id(),
        items = items.len(),
        "recap stored"
    );
    Ok(items)
}
