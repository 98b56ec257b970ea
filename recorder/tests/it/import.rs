//! Imports: WAV (written here with `hound`), FLAC, MP3 and Ogg Vorbis
//! (checked-in fixtures, see `tests/fixtures/README.md`) and Ogg Opus
//! (written by our own encoder) decode to 16 kHz mono.
//!
//! The reference is the same two tones computed at 16 kHz and averaged
//! (the downmix). Lossless inputs must match it closely after
//! resampling (correlation ≥ 0.99); lossy ones ≥ 0.95 after finding
//! their codec delay (at most 5 ms), which is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::f64::consts::PI;
use std::path::Path;

use common::*;
use recorder::*;

/// The fixtures' content at 16 kHz, downmixed: (sin 440 + sin 1000)/2 at
/// -6 dB.
fn reference(seconds: f64) -> Vec<i16> {
    let a = 10f64.powf(-6.0 / 20.0);
    (0..(seconds * RATE).round() as usize)
        .map(|k| {
            let t = k as f64 / RATE;
            let s = a * ((2.0 * PI * 440.0 * t).sin() + (2.0 * PI * 1000.0 * t).sin()) / 2.0;
            (s * 32768.0).round() as i16
        })
        .collect()
}

/// Best correlation within ±`max_lag` samples, and the lag.
fn best_correlation(x: &[i16], r: &[i16], max_lag: usize) -> (f64, i64) {
    let mut best = (f64::MIN, 0);
    for lag in -(max_lag as i64)..=max_lag as i64 {
        let (a, b) = if lag >= 0 {
            (&x[lag as usize..], r)
        } else {
            (x, &r[(-lag) as usize..])
        };
        let n = a.len().min(b.len());
        // Ignore the edges (fades of codecs and resamplers).
        let c = pearson(&a[400..n - 400], &b[400..n - 400]);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

fn check(label: &str, pcm: &Pcm16k, seconds: f64, min_corr: f64, max_lag: usize) {
    check_len(label, pcm, seconds, min_corr, max_lag, 40.0)
}

fn check_len(
    label: &str,
    pcm: &Pcm16k,
    seconds: f64,
    min_corr: f64,
    max_lag: usize,
    max_ms_off: f64,
) {
    let r = reference(seconds);
    let diff_ms = (pcm.samples.len() as f64 - r.len() as f64).abs() / 16.0;
    let (c, lag) = best_correlation(&pcm.samples, &r, max_lag);
    println!(
        "{label}: {} Hz x{} -> {} samples ({:.1} ms off), correlation {c:.4} at lag {lag}",
        pcm.source_rate,
        pcm.source_channels,
        pcm.samples.len(),
        diff_ms
    );
    assert!(
        diff_ms <= max_ms_off,
        "{label}: duration off by {diff_ms} ms"
    );
    assert!(c >= min_corr, "{label}: correlation {c}");
}

fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f64, float: bool) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let a = 10f64.powf(-6.0 / 20.0);
    for k in 0..(seconds * f64::from(rate)).round() as usize {
        let t = k as f64 / f64::from(rate);
        let (l, r) = (
            (2.0 * PI * 440.0 * t).sin() * a,
            (2.0 * PI * 1000.0 * t).sin() * a,
        );
        let frame: Vec<f64> = if channels == 1 {
            vec![(l + r) / 2.0]
        } else {
            vec![l, r]
        };
        for s in frame {
            if float {
                w.write_sample(s as f32).unwrap();
            } else {
                w.write_sample((s * 32768.0).round() as i16).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn wav_at_any_rate_and_layout_decodes_to_16k_mono() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, channels, float) in [
        (16_000, 1, false),
        (8_000, 1, false),
        (44_100, 2, false),
        (48_000, 2, true),
        (22_050, 2, false),
    ] {
        let path = dir.path().join(format!("t_{rate}_{channels}_{float}.wav"));
        write_wav(&path, rate, channels, 1.0, float);
        let pcm = decode_file(&path).unwrap();
        assert_eq!(pcm.source_rate, rate);
        assert_eq!(pcm.source_channels, usize::from(channels));
        // Lossless and aligned: no lag allowed.
        let min = if rate == 8_000 { 0.98 } else { 0.99 };
        check(
            &format!("WAV {rate} Hz x{channels} float={float}"),
            &pcm,
            1.0,
            min,
            0,
        );
        assert_eq!(pcm.samples.len(), 16_000, "exact length after resampling");
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn flac_decodes() {
    let pcm = decode_file(fixture("two_tones_22k_stereo.flac")).unwrap();
    assert_eq!((pcm.source_rate, pcm.source_channels), (22_050, 2));
    check("FLAC", &pcm, 0.5, 0.99, 0);
}

#[test]
fn mp3_decodes() {
    let pcm = decode_file(fixture("two_tones_44k_stereo.mp3")).unwrap();
    assert_eq!((pcm.source_rate, pcm.source_channels), (44_100, 2));
    // SoX writes no gapless (LAME/Xing) tag, so the encoder's padding at
    // the end (about 48 ms here) is part of the file for every decoder.
    check_len("MP3", &pcm, 0.5, 0.95, 80, 60.0);
}

#[test]
fn ogg_vorbis_decodes() {
    let pcm = decode_file(fixture("two_tones_48k_stereo.ogg")).unwrap();
    assert_eq!((pcm.source_rate, pcm.source_channels), (48_000, 2));
    check("Ogg Vorbis", &pcm, 0.5, 0.95, 80);
}

#[test]
fn content_decides_not_the_extension() {
    let bytes = std::fs::read(fixture("two_tones_22k_stereo.flac")).unwrap();
    let pcm = decode_bytes(bytes, Some("mp3")).unwrap();
    check("FLAC named .mp3", &pcm, 0.5, 0.99, 0);
}

#[test]
fn ogg_opus_imports_through_our_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.opus");
    let mut enc = OpusOggEncoder::new(
        std::fs::File::create(&path).unwrap(),
        Layout::CoupledStereo,
        &EncoderConfig::default(),
        &OggOptions::default(),
    )
    .unwrap();
    let r = reference(1.0);
    let stereo: Vec<i16> = r.iter().flat_map(|&s| [s, s]).collect();
    enc.write_pcm(&stereo).unwrap();
    enc.finish().unwrap();
    let pcm = decode_file(&path).unwrap();
    assert_eq!((pcm.source_rate, pcm.source_channels), (16_000, 2));
    assert_eq!(pcm.samples.len(), 16_000);
    check("Ogg Opus", &pcm, 1.0, 0.95, 0);
}

#[test]
fn garbage_is_a_clear_error() {
    let err = decode_bytes(b"this is not audio at all, just text".repeat(50), None).unwrap_err();
    assert!(matches!(err, RecorderError::Import(_)), "{err}");
    let err = decode_bytes(Vec::new(), Some("wav")).unwrap_err();
    assert!(matches!(err, RecorderError::Import(_)), "{err}");
}
