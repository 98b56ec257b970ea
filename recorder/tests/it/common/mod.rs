//! Signals and measurements shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::f64::consts::PI;

pub const RATE: f64 = 16_000.0;
pub const FRAME: usize = 320;
pub const TICKS: i64 = 200_000;

/// A deterministic "speech-like" test signal: a tone at `freq` Hz with a
/// syllable envelope (bursts of 120–280 ms with 40–160 ms pauses, raised-
/// cosine edges) drawn from a small LCG seeded by `seed`.
pub fn burst_tone(freq: f64, seconds: f64, seed: u64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * RATE) as usize;
    let mut env = vec![0.0f64; n];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |lo: usize, hi: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + ((state >> 33) as usize % (hi - lo))
    };
    let mut i = next(0, 800);
    while i < n {
        let on = next(1920, 4480); // 120..280 ms
        let off = next(640, 2560); // 40..160 ms
        let ramp = 160; // 10 ms
        for k in 0..on.min(n - i) {
            let edge = (k.min(on - 1 - k) as f64 / ramp as f64).min(1.0);
            env[i + k] = 0.5 - 0.5 * (PI * edge).cos();
        }
        i += on + off;
    }
    (0..n)
        .map(|k| {
            let t = k as f64 / RATE;
            (amplitude * env[k] * (2.0 * PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// A continuous tone.
pub fn tone(freq: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * RATE) as usize;
    (0..n)
        .map(|k| (amplitude * (2.0 * PI * freq * k as f64 / RATE).sin()).round() as i16)
        .collect()
}

/// Pearson correlation of two equally long signals.
pub fn pearson(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let mb = b.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa.sqrt() * sbb.sqrt()).max(1e-9)
}

/// RMS envelope over 10 ms windows.
pub fn envelope(x: &[i16]) -> Vec<i16> {
    x.chunks(160)
        .map(|c| {
            let e = c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64;
            e.sqrt().round() as i16
        })
        .collect()
}

/// Power of `freq` in `x` (Goertzel), per sample.
pub fn tone_power(x: &[i16], freq: f64) -> f64 {
    let w = 2.0 * PI * freq / RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p / (x.len() as f64).powi(2)
}

/// Power ratio in dB (10·log10(a/b)).
pub fn db(a: f64, b: f64) -> f64 {
    10.0 * (a.max(1e-12) / b.max(1e-12)).log10()
}

/// RMS of a signal.
pub fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// A deterministic pseudo-random generator (64-bit LCG).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

/// One frame as the adapter would send it.
#[derive(Clone, Debug)]
pub struct Sent {
    /// Which source (side / participant index).
    pub source: usize,
    pub seq: u64,
    pub ticks: i64,
    pub slot: i64,
    /// Sort key: when it arrives (in slots, fractional).
    pub arrival: f64,
    pub pcm: Vec<i16>,
}

/// What the faults did to one source.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub lost: usize,
    pub late: usize,
    pub duplicated: usize,
    pub reordered: usize,
}

/// Turns a signal into the frames an adapter would send, with faults:
/// frames for which `send(slot)` is false are not sent at all (silence
/// in unmixed mode); `lost` are never delivered, `late` arrive 6 slots
/// late (beyond the 3-slot window, so dropped), some are duplicated and
/// some swapped with their successor (reordered within the window).
/// Timestamps jitter by ±5 ms. Returns the frames and the signal the
/// recording must contain (zeros where nothing usable arrived).
pub fn adapter_frames(
    source: usize,
    signal: &[i16],
    first_slot: i64,
    rng: &mut Lcg,
    send: impl Fn(i64, &[i16]) -> bool,
    faults: &mut Faults,
) -> (Vec<Sent>, Vec<i16>) {
    let mut expected = signal.to_vec();
    let mut out = Vec::new();
    for (i, pcm) in signal.chunks_exact(FRAME).enumerate() {
        let slot = first_slot + i as i64;
        if !send(slot, pcm) {
            expected[i * FRAME..(i + 1) * FRAME].fill(0);
            continue;
        }
        let seq = slot as u64;
        let ticks = slot * TICKS + rng.range(-50_000, 50_000);
        let mut arrival = slot as f64 + 0.1 * source as f64;
        if rng.chance(0.02) {
            faults.lost += 1;
            expected[i * FRAME..(i + 1) * FRAME].fill(0);
            continue;
        }
        if rng.chance(0.01) {
            faults.late += 1;
            expected[i * FRAME..(i + 1) * FRAME].fill(0);
            arrival += 6.5;
        } else if rng.chance(0.05) {
            faults.reordered += 1;
            arrival += 1.5; // after its successor, within the window
        }
        let frame = Sent {
            source,
            seq,
            ticks,
            slot,
            arrival,
            pcm: pcm.to_vec(),
        };
        if rng.chance(0.03) {
            faults.duplicated += 1;
            let mut dup = frame.clone();
            dup.arrival += 0.7;
            out.push(dup);
        }
        out.push(frame);
    }
    (out, expected)
}

/// Sorts frames of all sources into arrival order.
pub fn arrival_order(mut frames: Vec<Sent>) -> Vec<Sent> {
    frames.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
    frames
}
