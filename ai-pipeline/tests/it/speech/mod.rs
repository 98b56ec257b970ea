//! Shared by the accuracy test and the benchmark: the model folder, test
//! speech from espeak-ng, and the word error rate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// Ordinary business speech, no numbers or names (they have several
/// correct spellings).
pub const SENTENCES: &[&str] = &[
    "Please send the quarterly report to the finance team before the end of the week.",
    "We agreed to move the product launch to the beginning of next month.",
    "The customer asked for a refund because the delivery arrived late.",
    "Can you schedule a meeting with the marketing department tomorrow morning?",
    "I will review the contract and share my comments this afternoon.",
    "Our main priority is to reduce costs without hurting customer service.",
    "The new pricing model has been approved by the management board.",
    "Let us discuss the budget for the training program at the next meeting.",
    "Thank you for joining the call, I will send the summary by email.",
    "The project is on track, but we need more people in the support team.",
];

/// The model folder: INSIGHTS_STT__MODEL_DIR, else where
/// scripts/fetch-model.sh puts Whisper tiny.en. Panics with the fix when
/// the model is missing (the suite never skips silently).
pub fn model_dir() -> PathBuf {
    let dir = match std::env::var_os("INSIGHTS_STT__MODEL_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("insights/models/whisper-tiny.en")
        }
    };
    assert!(
        dir.join("model.bin").is_file(),
        "no Whisper model in {}: run scripts/fetch-model.sh (scripts/test.sh does) \
         or set INSIGHTS_STT__MODEL_DIR",
        dir.display()
    );
    dir
}

/// `text` spoken by espeak-ng (en-us, 150 words/min), as 16 kHz mono f32
/// resampled by the recorder's importer.
pub fn speak(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("raw.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng is needed (scripts/test.sh installs it)");
    assert!(status.success(), "espeak-ng failed");
    let pcm = recorder::import::decode_file(&wav).unwrap();
    pcm.samples
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect()
}

/// A "call": every sentence spoken, separated by `pause_ms` of quiet
/// line noise. Returns the audio and each sentence's span in ms.
pub fn conversation(sentences: &[&str], pause_ms: usize) -> (Vec<f32>, Vec<(i64, i64)>) {
    let pause = pause_ms * 16;
    let mut audio = Vec::new();
    let mut spans = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut hiss = |n: usize, out: &mut Vec<f32>| {
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.push(((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 0.001);
        }
    };
    hiss(pause, &mut audio);
    for s in sentences {
        let speech = speak(s);
        let start = (audio.len() / 16) as i64;
        audio.extend_from_slice(&speech);
        spans.push((start, (audio.len() / 16) as i64));
        hiss(pause, &mut audio);
    }
    (audio, spans)
}

/// Lower case, letters, digits and apostrophes only, one space between words.
pub fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Word-level edit distance (substitutions + deletions + insertions).
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

/// Word error rate of hypotheses against references, pairwise.
pub fn wer(references: &[&str], hypotheses: &[String]) -> f64 {
    let mut errors = 0;
    let mut words = 0;
    for (r, h) in references.iter().zip(hypotheses) {
        let r = normalise(r);
        errors += word_errors(&r, &normalise(h));
        words += r.len();
    }
    errors as f64 / words.max(1) as f64
}
