//! The speech-to-text engine of this build: the offline Whisper engine
//! (feature `whisper`, model from `[stt]`, loaded by the first job that
//! needs it), a stand-in that fails every job as unavailable without the
//! feature, and the placeholder engine of `--test-engine-delay-ms`.

use std::sync::Arc;
use std::time::Duration;

use ai_pipeline::stt::{Recognized, SpeechToText, SttError, Utterance};
use async_trait::async_trait;
use insights_core::config::Settings;

/// The speech-to-text engine of this build: the offline Whisper engine
/// (feature `whisper`, model from `[stt]`), loaded on first use.
pub(crate) fn engine(settings: &Settings, test_delay_ms: Option<u64>) -> Arc<dyn SpeechToText> {
    match test_delay_ms {
        Some(ms) => Arc::new(TestEngine {
            delay: Duration::from_millis(ms),
        }),
        None => offline_engine(settings),
    }
}

#[cfg(feature = "whisper")]
pub(crate) fn whisper_config(settings: &Settings) -> ai_pipeline::whisper::WhisperConfig {
    use ai_pipeline::whisper::{Batching, WhisperConfig};
    use insights_core::config::SttBatching;
    let stt = &settings.stt;
    let mut config = WhisperConfig::new(stt.resolved_model_dir(), stt.model.clone());
    config.threads = stt.threads;
    config.beam_size = stt.beam_size;
    config.language = stt.language.clone();
    config.batching = match stt.batching {
        SttBatching::Pack => Batching::Pack,
        SttBatching::Window => Batching::Window,
    };
    config
}

#[cfg(feature = "whisper")]
fn offline_engine(settings: &Settings) -> Arc<dyn SpeechToText> {
    let config = whisper_config(settings);
    Arc::new(LazyWhisper {
        id: format!("local:{}", config.model),
        config,
        engine: tokio::sync::OnceCell::new(),
    })
}

/// Whisper, loaded by the first job that needs it (so `insights serve`
/// starts at once, and runs without a model until one is installed:
/// its jobs then fail as unavailable, are retried and finally
/// dead-lettered with the reason).
#[cfg(feature = "whisper")]
struct LazyWhisper {
    id: String,
    config: ai_pipeline::whisper::WhisperConfig,
    engine: tokio::sync::OnceCell<ai_pipeline::whisper::WhisperEngine>,
}

#[cfg(feature = "whisper")]
#[async_trait]
impl SpeechToText for LazyWhisper {
    fn id(&self) -> &str {
        &self.id
    }

    async fn transcribe(&self, utts: Vec<Utterance>) -> Result<Vec<Vec<Recognized>>, SttError> {
        let engine = self
            .engine
            .get_or_try_init(|| async {
                let config = self.config.clone();
                let started = std::time::Instant::now();
                let e = tokio::task::spawn_blocking(move || {
                    ai_pipeline::whisper::WhisperEngine::load(&config)
                })
                .await
                .map_err(|e| SttError::Unavailable(format!("loading the model: {e}")))??;
                tracing::info!(
                    engine = e.id(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "speech-to-text model loaded"
                );
                Ok::<_, SttError>(e)
            })
            .await?;
        engine.transcribe(utts).await
    }
}

#[cfg(not(feature = "whisper"))]
fn offline_engine(_: &Settings) -> Arc<dyn SpeechToText> {
    Arc::new(NoEngine)
}

/// A build without the `whisper` feature: every transcription fails as
/// unavailable (retried with backoff, then dead-lettered with the reason).
#[cfg(not(feature = "whisper"))]
struct NoEngine;

#[cfg(not(feature = "whisper"))]
#[async_trait]
impl SpeechToText for NoEngine {
    fn id(&self) -> &str {
        "none"
    }

    async fn transcribe(&self, _: Vec<Utterance>) -> Result<Vec<Vec<Recognized>>, SttError> {
        Err(SttError::Unavailable(
            "this build has no speech-to-text engine (cargo feature `whisper`)".into(),
        ))
    }
}

/// Tests only (`--test-engine-delay-ms`): one placeholder segment per
/// utterance, after a delay.
struct TestEngine {
    delay: Duration,
}

#[async_trait]
impl SpeechToText for TestEngine {
    fn id(&self) -> &str {
        "test:placeholder"
    }

    async fn transcribe(&self, utts: Vec<Utterance>) -> Result<Vec<Vec<Recognized>>, SttError> {
        tokio::time::sleep(self.delay).await;
        Ok(utts
            .iter()
            .map(|u| {
                vec![Recognized {
                    start_ms: u.start_ms,
                    end_ms: u.start_ms + u.duration_ms(),
                    text: format!("utterance of {} ms", u.duration_ms()),
                    confidence: 0.5,
                    language: Some("en".into()),
                }]
            })
            .collect())
    }
}
