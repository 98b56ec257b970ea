//! The AI pipeline: every recording becomes a per-speaker transcript and a
//! recap. Speech-to-text engines sit behind [`stt::SpeechToText`] so the
//! offline engine (Whisper through CTranslate2) and the cloud providers
//! are interchangeable per tenant; recap engines sit behind
//! [`recap::RecapEngine`] (local extractive by default, LLMs opt-in).
//! [`providers::Providers`] picks the engines of a job from the tenant's
//! settings and records every cloud call.

pub mod pipeline;
pub mod providers;
pub mod recap;
pub mod stt;
pub mod vad;
#[cfg(feature = "whisper")]
pub mod whisper;
pub mod worker;
