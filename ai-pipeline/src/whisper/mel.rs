//! Whisper's log-mel front end: 25 ms Hann windows every 10 ms (n_fft 400,
//! hop 160, centred with reflection padding), power spectrum, Slaney mel
//! filters, log10, clamped to 8 below the window's maximum, scaled to
//! about -1..1 — the same features OpenAI's and faster-whisper's feature
//! extractors compute, so the model sees what it was trained on (silence
//! padding included).

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// FFT size, samples.
pub const N_FFT: usize = 400;
/// Hop between frames, samples.
pub const HOP: usize = 160;
/// Frames in a 30 s window.
pub const FRAMES: usize = 3000;
const BINS: usize = N_FFT / 2 + 1;

/// One mel filter: its first non-zero FFT bin and the weights from there.
struct Filter {
    first: usize,
    weights: Vec<f32>,
}

/// Computes `[n_mels, 3000]` features of one 30 s window.
pub struct LogMel {
    n_mels: usize,
    filters: Vec<Filter>,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl LogMel {
    pub fn new(n_mels: usize) -> Self {
        let bank = mel_spec::mel::mel(16_000.0, N_FFT, n_mels, None, None, false, true);
        let filters = bank
            .rows()
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(0);
                Filter {
                    first,
                    weights: row
                        .iter()
                        .skip(first)
                        .take(last + 1 - first)
                        .map(|&w| w as f32)
                        .collect(),
                }
            })
            .collect();
        // Periodic Hann window, as torch.hann_window(400).
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        LogMel {
            n_mels,
            filters,
            window,
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Writes the features of `audio` (at most 30 s; the rest of the
    /// window is silence) into `out`, row-major `[n_mels][3000]`.
    pub fn compute(&self, audio: &[f32], out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.n_mels * FRAMES);
        let len = audio.len().min(FRAMES * HOP);
        // Sample i of the zero-padded window, reflected at the start
        // (torch.stft(center=True, pad_mode="reflect")); the end is
        // silence, whose reflection is silence too.
        let sample = |i: isize| -> f32 {
            let i = i.unsigned_abs();
            if i < len { audio[i] } else { 0.0 }
        };
        let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
        let mut scratch = vec![Complex32::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [0f32; BINS];
        let mut max = f32::NEG_INFINITY;
        for t in 0..FRAMES {
            let start = (t * HOP) as isize - (N_FFT / 2) as isize;
            let silent = start >= len as isize;
            if silent {
                power.fill(0.0);
            } else {
                for (k, c) in buf.iter_mut().enumerate() {
                    *c = Complex32::new(sample(start + k as isize) * self.window[k], 0.0);
                }
                self.fft.process_with_scratch(&mut buf, &mut scratch);
                for (p, c) in power.iter_mut().zip(&buf) {
                    *p = c.norm_sqr();
                }
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let energy: f32 = filter
                    .weights
                    .iter()
                    .zip(&power[filter.first..])
                    .map(|(w, p)| w * p)
                    .sum();
                let v = energy.max(1e-10).log10();
                max = max.max(v);
                out[m * FRAMES + t] = v;
            }
        }
        let floor = max - 8.0;
        for v in out.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_up_its_mel_band_and_silence_sits_at_the_floor() {
        let mel = LogMel::new(80);
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mut out = vec![0.0; 80 * FRAMES];
        mel.compute(&tone, &mut out);
        let at = |m: usize, t: usize| out[m * FRAMES + t];
        // Frame 50 (0.5 s) is inside the tone: the loudest band is the one
        // around 1 kHz (mel band ~ 22 of 80 for 0-8 kHz Slaney).
        let loudest = (0..80)
            .max_by(|&a, &b| at(a, 50).total_cmp(&at(b, 50)))
            .unwrap_or(0);
        assert!((18..=26).contains(&loudest), "band {loudest}");
        // After the tone (2 s on) everything is at the floor: max - 8, scaled.
        let max = out.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - 2.0; // (x - 8 + 4) / 4 = (x + 4) / 4 - 2
        assert!((at(10, 200) - floor).abs() < 1e-5);
        assert!((at(79, 2999) - floor).abs() < 1e-5);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
