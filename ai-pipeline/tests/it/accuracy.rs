//! Accuracy of the offline engine on synthetic speech: ten business
//! sentences spoken by espeak-ng (generated here, at run time), cut by the
//! VAD and transcribed by Whisper tiny.en with either batching strategy.
//! The word error rate over the set must stay at or below 10 %, and every
//! sentence's words must come back in that sentence's time span (packing
//! must not give text to the wrong utterance).
#![cfg(feature = "whisper")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::speech;

use ai_pipeline::stt::{Recognized, SpeechToText};
use ai_pipeline::vad::{VadOptions, split};
use ai_pipeline::whisper::{Batching, WhisperConfig, WhisperEngine, check_model_dir};
use speech::{SENTENCES, conversation, model_dir, wer};

/// Each sentence's hypothesis: the text of the segments whose middle lies
/// in its span.
fn by_sentence(spans: &[(i64, i64)], segments: &[Recognized]) -> Vec<String> {
    spans
        .iter()
        .map(|&(from, to)| {
            segments
                .iter()
                .filter(|s| {
                    let mid = (s.start_ms + s.end_ms) / 2;
                    mid >= from - 300 && mid <= to + 300
                })
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn word_error_rate_on_espeak_sentences_is_at_most_ten_percent() {
    let dir = model_dir();
    let (audio, spans) = conversation(SENTENCES, 1200);
    let utterances = split(&audio, 0, &VadOptions::default());
    assert_eq!(
        utterances.len(),
        SENTENCES.len(),
        "the VAD found one utterance per sentence"
    );

    for batching in [Batching::Pack, Batching::Window] {
        let mut config = WhisperConfig::new(&dir, "whisper-tiny.en");
        config.batching = batching;
        let engine = WhisperEngine::load(&config).unwrap();
        assert_eq!(engine.id(), "local:whisper-tiny.en");
        let started = std::time::Instant::now();
        let results = engine.transcribe(utterances.clone()).await.unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(results.len(), utterances.len());
        let segments: Vec<Recognized> = results.into_iter().flatten().collect();
        for s in &segments {
            assert!(
                s.start_ms <= s.end_ms && s.end_ms <= (audio.len() / 16) as i64,
                "{s:?}"
            );
            assert!((0.0..=1.0).contains(&s.confidence), "{s:?}");
        }
        let hypotheses = by_sentence(&spans, &segments);
        let rate = wer(SENTENCES, &hypotheses);
        let audio_s = audio.len() as f64 / 16_000.0;
        println!(
            "{batching:?}: WER {:.1} % over {} sentences ({} words), {:.1} s of audio in {elapsed:.1} s (RTF {:.3})",
            rate * 100.0,
            SENTENCES.len(),
            SENTENCES
                .iter()
                .map(|s| speech::normalise(s).len())
                .sum::<usize>(),
            audio_s,
            elapsed / audio_s,
        );
        for (i, (r, h)) in SENTENCES.iter().zip(&hypotheses).enumerate() {
            let errors = speech::word_errors(&speech::normalise(r), &speech::normalise(h));
            if errors > 0 {
                println!("  sentence {i}: {errors} word error(s): {h:?}");
            }
        }
        assert!(
            rate <= 0.10,
            "{batching:?}: WER {:.1} % > 10 %",
            rate * 100.0
        );
    }
}

#[tokio::test]
async fn silence_gives_no_text_and_a_missing_model_is_a_clear_error() {
    let engine = WhisperEngine::load(&WhisperConfig::new(model_dir(), "whisper-tiny.en")).unwrap();
    let quiet = vec![0.0f32; 16_000 * 3];
    assert!(split(&quiet, 0, &VadOptions::default()).is_empty());
    let results = engine.transcribe(Vec::new()).await.unwrap();
    assert!(results.is_empty());

    let missing = std::env::temp_dir().join("no-such-insights-model");
    let err = check_model_dir(&missing).unwrap_err().to_string();
    assert!(err.contains("scripts/fetch-model.sh"), "{err}");
    match WhisperEngine::load(&WhisperConfig::new(&missing, "x")) {
        Err(e) => assert!(
            !e.is_transient() && e.to_string().contains("model.bin"),
            "{e}"
        ),
        Ok(_) => panic!("loaded a model from a missing folder"),
    }
}
