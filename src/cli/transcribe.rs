//! `insights transcribe FILE`: the transcript of an audio file with the
//! offline engine (decode → voice-activity segmentation → Whisper).
//! Prints to stdout only; logs carry counts and times, never text.

use std::path::PathBuf;

#[cfg(feature = "whisper")]
use anyhow::Context;
use clap::Args;
use insights_core::config::Settings;

/// Arguments of `insights transcribe`.
#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// Audio file: WAV, FLAC, MP3, Ogg Vorbis or Ogg Opus.
    pub file: PathBuf,
    /// Print JSON (segments with start_ms, end_ms, text, confidence)
    /// instead of `[mm:ss.s → mm:ss.s] text` lines.
    #[arg(long)]
    pub json: bool,
}

/// `12.345 s` as `00:12.3`.
#[cfg_attr(not(feature = "whisper"), allow(dead_code))]
fn clock(ms: i64) -> String {
    let tenths = ms.max(0) / 100;
    format!(
        "{:02}:{:02}.{}",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

#[cfg(feature = "whisper")]
pub async fn run(args: TranscribeArgs, settings: &Settings) -> anyhow::Result<()> {
    use ai_pipeline::stt::{STT_SAMPLE_RATE, SpeechToText};
    use ai_pipeline::vad::{VadOptions, split};
    use ai_pipeline::whisper::WhisperEngine;

    // The same engine settings (`[stt]`) as the worker's.
    let config = super::worker::engine::whisper_config(settings);
    // Fail early on a missing model, before decoding a long file.
    ai_pipeline::whisper::check_model_dir(&config.model_dir)?;
    let engine = tokio::task::spawn_blocking(move || WhisperEngine::load(&config))
        .await
        .context("loading the model")??;

    let file = args.file.clone();
    let pcm = tokio::task::spawn_blocking(move || recorder::import::decode_file(&file))
        .await
        .context("decoding")?
        .with_context(|| format!("cannot decode {}", args.file.display()))?;
    let samples: Vec<f32> = pcm
        .samples
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let duration_ms = (samples.len() as i64 * 1000) / i64::from(STT_SAMPLE_RATE);
    let utterances = split(&samples, 0, &VadOptions::default());
    tracing::info!(
        duration_ms,
        utterances = utterances.len(),
        engine = engine.id(),
        "transcribing a file"
    );
    let results = engine.transcribe(utterances).await?;
    let segments: Vec<_> = results.into_iter().flatten().collect();

    if args.json {
        let out = serde_json::json!({
            "engine": engine.id(),
            "duration_ms": duration_ms,
            "segments": segments.iter().map(|s| serde_json::json!({
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "text": s.text,
                "confidence": s.confidence,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        for s in &segments {
            println!("[{} → {}] {}", clock(s.start_ms), clock(s.end_ms), s.text);
        }
    }
    Ok(())
}

#[cfg(not(feature = "whisper"))]
pub async fn run(_args: TranscribeArgs, _settings: &Settings) -> anyhow::Result<()> {
    anyhow::bail!(
        "this insights binary was built without the offline speech-to-text engine \
         (cargo feature `whisper`)"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_shows_minutes_seconds_and_tenths() {
        assert_eq!(super::clock(0), "00:00.0");
        assert_eq!(super::clock(12_345), "00:12.3");
        assert_eq!(super::clock(754_960), "12:34.9");
    }
}
