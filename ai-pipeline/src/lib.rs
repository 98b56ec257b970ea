//! The AI pipeline: every recording becomes a per-speaker transcript and a
//! recap. Speech-to-text engines sit behind [`stt::SpeechToText`] so the
//! offline engine (Whisper through CTranslate2) and the cloud providers
//! are interchangeable per tenant.

pub mod pipeline;
pub mod stt;
pub mod vad;
#[cfg(feature = "whisper")]
pub mod whisper;
pub mod worker;
