//! The speech-to-text interface every engine implements.
//!
//! The pipeline decodes each participant's own channel or track, cuts it
//! into utterances with voice-activity detection and hands them to an
//! engine in one batch, so an engine that pads to fixed windows (Whisper:
//! 30 s) can pack short utterances together. Speaker attribution never
//! depends on the engine: every utterance comes from one participant's
//! audio.

use async_trait::async_trait;

/// Sample rate of every [`Utterance`], Hz.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// One stretch of speech by one participant: 16 kHz mono samples in
/// -1.0..=1.0, and where it starts in the recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// Offset of the first sample from the recording start, ms.
    pub start_ms: i64,
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
}

/// Speech is personal data: the samples are cleared from memory when the
/// utterance is dropped.
impl Drop for Utterance {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.samples);
    }
}

impl Utterance {
    /// Duration in ms.
    pub fn duration_ms(&self) -> i64 {
        (self.samples.len() as i64 * 1000) / i64::from(STT_SAMPLE_RATE)
    }
}

/// Text an engine recognised, with times relative to the recording start.
#[derive(Clone, Debug, PartialEq)]
pub struct Recognized {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// 0.0..=1.0.
    pub confidence: f32,
    /// BCP-47 language tag when the engine knows it.
    pub language: Option<String>,
}

/// Why recognition failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// The engine cannot run at all (model missing, bad configuration).
    #[error("speech-to-text engine unavailable: {0}")]
    Unavailable(String),
    /// The input cannot be recognised (never retried).
    #[error("speech-to-text rejected the input: {0}")]
    Rejected(String),
    /// A transient failure (provider 5xx, timeout, 429): retry later.
    #[error("speech-to-text failed transiently: {message}")]
    Transient {
        message: String,
        /// What the provider asked for (Retry-After), if anything.
        retry_after_ms: Option<u64>,
    },
}

impl SttError {
    /// Whether the job should be retried rather than dead-lettered.
    pub fn is_transient(&self) -> bool {
        matches!(self, SttError::Transient { .. })
    }
}

/// A speech-to-text engine.
#[async_trait]
pub trait SpeechToText: Send + Sync {
    /// Stable id stored with the results, e.g. `local:whisper-tiny.en`
    /// or `azure-speech`.
    fn id(&self) -> &str;

    /// Recognises each utterance. The result has one entry per utterance,
    /// in order; an entry may be empty (no speech found). Times in the
    /// results are relative to the recording start.
    async fn transcribe(
        &self,
        utterances: Vec<Utterance>,
    ) -> Result<Vec<Vec<Recognized>>, SttError>;
}
