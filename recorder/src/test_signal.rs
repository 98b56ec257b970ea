//! Speech for benchmarks and tests: espeak-ng when installed, else a
//! deterministic speech-like signal, so measurements run on any machine
//! and say which input they used.

use std::process::Command;

use crate::{Result, SAMPLE_RATE};

/// `seconds` of 16 kHz mono speech and a description of its source:
/// espeak-ng (decoded and resampled by our own importer) if installed,
/// else [`synthetic_speech`]; repeated to the requested length.
pub fn speech(seconds: usize) -> Result<(Vec<i16>, String)> {
    let text = "The quarterly figures were discussed in detail. Please confirm the \
                transfer of twelve thousand four hundred euros to the account we agreed on \
                yesterday, and send the signed contract before Friday afternoon. \
                I will call you back after the meeting with the compliance team.";
    let dir = std::env::temp_dir().join(format!("insights-speech-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let wav = dir.join("speech.wav");
    let spoken = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .output();
    let decoded = match spoken {
        Ok(out) if out.status.success() => Some(crate::decode_file(&wav)),
        _ => None,
    };
    let _ = std::fs::remove_dir_all(&dir);
    let (base, source) = match decoded {
        Some(pcm) => (
            pcm?.samples,
            "espeak-ng, resampled by recorder::decode_file".to_string(),
        ),
        None => (
            synthetic_speech(20.0),
            "synthetic: pulse train through formant filters (espeak-ng not installed)".to_string(),
        ),
    };
    let want = seconds * SAMPLE_RATE as usize;
    let mut out = Vec::with_capacity(want);
    while out.len() < want && !base.is_empty() {
        let n = (want - out.len()).min(base.len());
        out.extend_from_slice(&base[..n]);
    }
    Ok((out, source))
}

/// A deterministic speech-like signal: a glottal pulse train with a
/// wandering pitch through three formant resonators that move per
/// syllable, with syllable envelopes and pauses.
pub fn synthetic_speech(seconds: f64) -> Vec<i16> {
    let rate = f64::from(SAMPLE_RATE);
    let n = (seconds * rate) as usize;
    let vowels = [
        [730.0, 1090.0, 2440.0],
        [270.0, 2290.0, 3010.0],
        [530.0, 1840.0, 2480.0],
        [570.0, 840.0, 2410.0],
        [300.0, 870.0, 2240.0],
    ];
    let mut state = [[0.0f64; 2]; 3];
    let mut phase = 0.0;
    let mut out = Vec::with_capacity(n);
    let syllable = (0.22 * rate) as usize;
    for k in 0..n {
        let s = k / syllable;
        let pos = (k % syllable) as f64 / syllable as f64;
        let pause = s % 7 == 6;
        let env = if pause {
            0.0
        } else {
            (std::f64::consts::PI * pos).sin().powf(0.6)
        };
        let pitch = 110.0 + 25.0 * ((k as f64 / rate) * 1.3).sin() + 10.0 * (s % 3) as f64;
        phase += pitch / rate;
        let excitation = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        };
        let formants = vowels[s % vowels.len()];
        let mut y = 0.0;
        for (f, st) in formants.iter().zip(state.iter_mut()) {
            let r: f64 = 0.97;
            let c = 2.0 * r * (2.0 * std::f64::consts::PI * f / rate).cos();
            let v = excitation + c * st[0] - r * r * st[1];
            st[1] = st[0];
            st[0] = v;
            y += v;
        }
        out.push((y * env * 900.0).clamp(-32_000.0, 32_000.0) as i16);
    }
    out
}
