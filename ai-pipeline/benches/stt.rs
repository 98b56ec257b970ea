//! Speed and accuracy of the offline engine against the reference
//! implementation, faster-whisper, on the same audio in the same run:
//!
//!     cargo bench -p ai-pipeline --features whisper --bench stt
//!
//! The audio is the accuracy test's ten espeak-ng sentences, twice, with
//! 1.2 s pauses (≈ 1 min 50 s). Both sides use the same CTranslate2 model
//! folder (INSIGHTS_STT__MODEL_DIR or the fetch-model.sh default), int8,
//! the same beam size (STT_BENCH_BEAM, default 5) and threads (all cores).
//! faster-whisper is installed at the version pinned in
//! benches/requirements.txt into a venv in the user's cache. Prints each
//! side's real-time factor (processing time / audio time, lower is
//! faster), word error rate and the speed ratio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/speech/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ai_pipeline::stt::Recognized;
use ai_pipeline::vad::{VadOptions, split};
use ai_pipeline::whisper::{Batching, WhisperConfig, WhisperEngine};
use support::{SENTENCES, conversation, model_dir, normalise, word_errors};

fn write_wav(path: &Path, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// The faster-whisper venv, created or updated from requirements.txt.
fn reference_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let venv = cache.join("insights/bench-venv");
    let python = venv.join("bin/python");
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let current = std::fs::read(&stamp).ok() == std::fs::read(&requirements).ok();
    if !python.exists() || !current {
        eprintln!("installing faster-whisper into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(ok.success(), "python3 -m venv failed");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(ok.success(), "pip install of faster-whisper failed");
        std::fs::copy(&requirements, &stamp).unwrap();
    }
    python
}

struct Row {
    name: String,
    elapsed_s: f64,
    wer: f64,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us too:
    // only the real bench run does the work.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let beam: usize = std::env::var("STT_BENCH_BEAM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = model_dir();
    let sentences: Vec<&str> = SENTENCES.iter().chain(SENTENCES).copied().collect();
    let (audio, _) = conversation(&sentences, 1200);
    let audio_s = audio.len() as f64 / 16_000.0;
    let reference = normalise(&sentences.join(" "));
    let wer =
        |text: &str| word_errors(&reference, &normalise(text)) as f64 / reference.len() as f64;
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("bench.wav");
    write_wav(&wav, &audio);

    println!(
        "audio: {audio_s:.1} s, {} words; model {}; beam {beam}; {threads} threads; int8",
        reference.len(),
        dir.display()
    );
    let mut rows = Vec::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for batching in [Batching::Pack, Batching::Window] {
        let mut config = WhisperConfig::new(&dir, "whisper-tiny.en");
        config.beam_size = beam;
        config.threads = threads;
        config.batching = batching;
        let engine = WhisperEngine::load(&config).unwrap();
        let started = Instant::now();
        let utterances = split(&audio, 0, &VadOptions::default());
        let results = rt
            .block_on(ai_pipeline::stt::SpeechToText::transcribe(
                &engine, utterances,
            ))
            .unwrap();
        let elapsed_s = started.elapsed().as_secs_f64();
        let text: Vec<String> = results
            .into_iter()
            .flatten()
            .map(|r: Recognized| r.text)
            .collect();
        rows.push(Row {
            name: format!("insights ({batching:?})"),
            elapsed_s,
            wer: wer(&text.join(" ")),
        });
    }

    let python = reference_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/faster_whisper_bench.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&dir)
        .arg(&wav)
        .arg(beam.to_string())
        .arg(threads.to_string())
        .arg("int8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "faster-whisper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        rows.push(Row {
            name: v["mode"].as_str().unwrap().to_string(),
            elapsed_s: v["elapsed_s"].as_f64().unwrap(),
            wer: wer(v["text"].as_str().unwrap()),
        });
    }

    println!(
        "{:<28} {:>9} {:>7} {:>7}",
        "implementation", "time (s)", "RTF", "WER"
    );
    for r in &rows {
        println!(
            "{:<28} {:>9.2} {:>7.3} {:>6.1}%",
            r.name,
            r.elapsed_s,
            r.elapsed_s / audio_s,
            r.wer * 100.0
        );
    }
    let ours = rows
        .iter()
        .take(2)
        .min_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s))
        .unwrap();
    let theirs = rows
        .iter()
        .skip(2)
        .min_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s))
        .unwrap();
    println!(
        "fastest insights ({}) vs fastest faster-whisper ({}): RTF {:.3} vs {:.3}, {:.2}x the speed; WER {:.1}% vs {:.1}%",
        ours.name,
        theirs.name,
        ours.elapsed_s / audio_s,
        theirs.elapsed_s / audio_s,
        theirs.elapsed_s / ours.elapsed_s,
        ours.wer * 100.0,
        theirs.wer * 100.0
    );
}
