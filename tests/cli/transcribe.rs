//! `insights transcribe FILE [--json]` through the real binary, on speech
//! that espeak-ng makes here (no committed audio).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::insights;

/// The model folder the suite uses (scripts/test.sh exports it; the
/// default is where scripts/fetch-model.sh puts it).
fn model_dir() -> PathBuf {
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
        "no Whisper model in {}: run scripts/fetch-model.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// Two sentences with a long pause between them, as espeak-ng's own
/// 22.05 kHz WAV (the command resamples).
fn speech(dir: &Path) -> PathBuf {
    let wav = dir.join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-m", "-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(
            "<speak>Please send the quarterly report to the finance team.\
             <break time=\"2000ms\"/>The meeting is moved to next week.</speak>",
        )
        .status()
        .expect("espeak-ng is needed (scripts/test.sh installs it)");
    assert!(status.success());
    wav
}

fn words(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect()
}

#[test]
fn transcribe_prints_timed_lines_and_json_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wav = speech(dir.path());
    let model = model_dir();
    let wav_s = wav.to_str().unwrap();

    let out = insights(dir.path(), &["transcribe", wav_s])
        .env("INSIGHTS_STT__MODEL_DIR", &model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty(), "no transcript: {stderr}");
    for line in &lines {
        // [mm:ss.s → mm:ss.s] text
        let (times, text) = line.split_once("] ").unwrap_or_else(|| panic!("{line}"));
        let (from, to) = times.trim_start_matches('[').split_once(" → ").unwrap();
        assert!(from.len() == 7 && to.len() == 7 && from <= to, "{line}");
        assert!(!text.trim().is_empty(), "{line}");
    }
    let all = words(&stdout);
    assert!(all.contains("quarterly report"), "{stdout}");
    assert!(all.contains("finance team"), "{stdout}");
    assert!(all.contains("next week"), "{stdout}");
    // The transcript is never logged.
    assert!(!words(&stderr).contains("quarterly"), "{stderr}");

    let out = insights(dir.path(), &["transcribe", "--json", wav_s])
        .env("INSIGHTS_STT__MODEL_DIR", &model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["engine"], "local:whisper-tiny.en");
    let segments = v["segments"].as_array().unwrap();
    assert!(segments.len() >= 2, "the pause splits the sentences: {v}");
    let mut last_end = 0;
    for s in segments {
        let (start, end) = (
            s["start_ms"].as_i64().unwrap(),
            s["end_ms"].as_i64().unwrap(),
        );
        assert!(start >= last_end && start <= end, "{v}");
        assert!(end <= v["duration_ms"].as_i64().unwrap(), "{v}");
        let c = s["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{v}");
        last_end = end;
    }
    // The second sentence starts after the first one's pause.
    let second = segments
        .iter()
        .find(|s| words(s["text"].as_str().unwrap()).contains("meeting"))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(second["start_ms"].as_i64().unwrap() > 3_000, "{v}");
}

#[test]
fn transcribe_without_a_model_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let wav = speech(dir.path());
    let out = insights(dir.path(), &["transcribe", wav.to_str().unwrap()])
        .env("INSIGHTS_STT__MODEL_DIR", dir.path().join("no-model"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/fetch-model.sh"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A file that is not audio is a clear error too.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"not audio at all").unwrap();
    let out = insights(dir.path(), &["transcribe", junk.to_str().unwrap()])
        .env("INSIGHTS_STT__MODEL_DIR", model_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot decode"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
