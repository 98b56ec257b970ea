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
