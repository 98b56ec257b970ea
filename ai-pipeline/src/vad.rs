//! Voice-activity segmentation: cuts one participant's 16 kHz mono audio
//! into [`Utterance`]s for a speech-to-text engine.
//!
//! Energy based with an adaptive threshold. Each 20 ms frame's level (dBFS)
//! is compared with the local noise floor: a low percentile of the frame
//! levels in the 5 s before or after it, so the threshold follows a line
//! whose noise changes during an hour-long call. A frame is speech when it is `snr_db` above
//! that floor (and above an absolute minimum, so digital silence and very
//! quiet hiss never count); speech continues while frames stay within
//! `hysteresis_db` of the threshold, and ends after `hangover_ms` of quiet.
//! Stretches with less than `min_speech_ms` of active frames (clicks,
//! coughs) are dropped; the rest get `pad_ms` of context on both sides
//! and are split at their quietest frame when longer than
//! `max_utterance_ms`, which stays below Whisper's 30 s window.
//!
//! Why not a model-based VAD (Silero, WebRTC's GMM)? The per-participant
//! channels we cut are clean close-talk audio where energy works well, and
//! this needs no model download, no extra native build and runs at
//! hundreds of times real time.

use crate::stt::{STT_SAMPLE_RATE, Utterance};

/// Tuning of [`split`]. The defaults suit close-talk call and meeting audio.
#[derive(Clone, Debug, PartialEq)]
pub struct VadOptions {
    /// Analysis frame length, ms.
    pub frame_ms: u32,
    /// How far above the local noise floor a frame must be to start speech, dB.
    pub snr_db: f32,
    /// Speech goes on while frames stay within this much below the start
    /// threshold, dB.
    pub hysteresis_db: f32,
    /// Absolute minimum start threshold, dBFS (RMS of a full-scale sine is
    /// -3 dBFS).
    pub min_level_dbfs: f32,
    /// Percentile (0..100) of frame levels taken as the noise floor.
    pub noise_percentile: f32,
    /// Length of the windows before and after each second that the noise
    /// floor is estimated over, ms.
    pub noise_window_ms: u32,
    /// Quiet time after which an utterance ends (pauses inside a sentence
    /// shorter than this do not split it), ms.
    pub hangover_ms: u32,
    /// Utterances with less active speech than this are dropped, ms.
    pub min_speech_ms: u32,
    /// Context kept before and after each utterance, ms.
    pub pad_ms: u32,
    /// Longest utterance, padding included, ms. Longer speech is split at
    /// its quietest frame. Keep it below 30 000 (Whisper's window).
    pub max_utterance_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        VadOptions {
            frame_ms: 20,
            snr_db: 10.0,
            hysteresis_db: 4.0,
            min_level_dbfs: -55.0,
            noise_percentile: 10.0,
            noise_window_ms: 5_000,
            hangover_ms: 400,
            min_speech_ms: 120,
            pad_ms: 200,
            max_utterance_ms: 28_000,
        }
    }
}

/// Level of digital silence, dBFS (keeps the arithmetic finite).
const FLOOR_DBFS: f32 = -120.0;

/// Cuts `samples` (16 kHz mono, -1.0..=1.0) into utterances. `start_ms`
/// is the offset of `samples[0]` in the recording; every utterance carries
/// its own offset. Utterances are in order and never overlap.
pub fn split(samples: &[f32], start_ms: i64, opts: &VadOptions) -> Vec<Utterance> {
    let rate = STT_SAMPLE_RATE as usize;
    let frame_len = (rate * opts.frame_ms.max(1) as usize / 1000).max(1);
    let n_frames = samples.len() / frame_len;
    if n_frames == 0 {
        return Vec::new();
    }
    let ms_to_frames = |ms: u32| (ms / opts.frame_ms.max(1)) as usize;

    let levels: Vec<f32> = samples
        .chunks_exact(frame_len)
        .map(|frame| {
            let energy = frame
                .iter()
                .map(|&s| f64::from(s) * f64::from(s))
                .sum::<f64>()
                / frame_len as f64;
            let db = 10.0 * energy.max(1e-30).log10();
            (db as f32).max(FLOOR_DBFS)
        })
        .collect();
    let thresholds = start_thresholds(&levels, opts, ms_to_frames(opts.noise_window_ms));

    // Raw speech regions in frames: [start, end) plus their active frame count.
    let hangover = ms_to_frames(opts.hangover_ms).max(1);
    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut current: Option<(usize, usize, usize)> = None; // start, last active, active count
    for (i, (&level, &threshold)) in levels.iter().zip(&thresholds).enumerate() {
        match current.as_mut() {
            None => {
                if level >= threshold {
                    current = Some((i, i, 1));
                }
            }
            Some((start, last, active)) => {
                if level >= threshold - opts.hysteresis_db {
                    *last = i;
                    *active += 1;
                } else if i - *last > hangover {
                    if *active >= ms_to_frames(opts.min_speech_ms) {
                        regions.push((*start, *last + 1));
                    }
                    current = None;
                }
            }
        }
    }
    if let Some((start, last, active)) = current
        && active >= ms_to_frames(opts.min_speech_ms)
    {
        regions.push((start, last + 1));
    }

    // Split regions longer than the maximum (leaving room for padding).
    let pad = ms_to_frames(opts.pad_ms);
    let max_frames = ms_to_frames(opts.max_utterance_ms)
        .saturating_sub(2 * pad)
        .max(1);
    let mut pieces = Vec::new();
    for (start, end) in regions {
        split_long(&levels, start, end, max_frames, &mut pieces);
    }

    // Pad, never past a neighbour's padding or the signal's ends.
    let mut utterances = Vec::with_capacity(pieces.len());
    for (k, &(start, end)) in pieces.iter().enumerate() {
        let lower = if k == 0 {
            0
        } else {
            // Halfway between the previous piece's end and this start.
            let prev_end = pieces[k - 1].1;
            prev_end + (start - prev_end) / 2
        };
        let upper = match pieces.get(k + 1) {
            Some(&(next_start, _)) => end + (next_start - end) / 2,
            None => n_frames,
        };
        let from = start.saturating_sub(pad).max(lower) * frame_len;
        let to = ((end + pad).min(upper) * frame_len).min(samples.len());
        let offset_ms = (from as i64 * 1000) / rate as i64;
        utterances.push(Utterance {
            start_ms: start_ms + offset_ms,
            samples: samples[from..to].to_vec(),
        });
    }
    utterances
}

/// The start threshold of every frame: the local noise floor plus the
/// margin, at least the absolute minimum. Floors are estimated once per
/// second of frames over the `window` frames before and after it; each
/// frame takes the one of the two nearer to its own level, so a change of
/// line noise is followed at once instead of looking like speech until a
/// centred window has moved past it.
fn start_thresholds(levels: &[f32], opts: &VadOptions, window: usize) -> Vec<f32> {
    let block = (1000 / opts.frame_ms.max(1) as usize).max(1);
    let window = window.max(block);
    let percentile = opts.noise_percentile.clamp(0.0, 100.0) / 100.0;
    let mut scratch: Vec<f32> = Vec::new();
    let mut floor = |range: &[f32]| {
        scratch.clear();
        scratch.extend_from_slice(range);
        let k = ((scratch.len() - 1) as f32 * percentile).round() as usize;
        let (_, noise, _) = scratch.select_nth_unstable_by(k, f32::total_cmp);
        *noise
    };
    let mut out = Vec::with_capacity(levels.len());
    for block_start in (0..levels.len()).step_by(block) {
        let block_end = (block_start + block).min(levels.len());
        let past = floor(&levels[block_end.saturating_sub(window)..block_end]);
        let future = floor(&levels[block_start..(block_start + window).min(levels.len())]);
        for &level in &levels[block_start..block_end] {
            let noise = if (level - past).abs() <= (level - future).abs() {
                past
            } else {
                future
            };
            out.push((noise + opts.snr_db).max(opts.min_level_dbfs));
        }
    }
    out
}

/// Pushes `[start, end)` as pieces of at most `max_frames`, cutting each
/// too-long stretch at its quietest frame in the second half of the
/// allowed length (so pieces are neither tiny nor cut mid-word when a
/// pause exists).
fn split_long(
    levels: &[f32],
    mut start: usize,
    end: usize,
    max_frames: usize,
    out: &mut Vec<(usize, usize)>,
) {
    while end - start > max_frames {
        let search_from = start + max_frames / 2;
        let search_to = start + max_frames;
        let cut = (search_from..search_to)
            .min_by(|&a, &b| levels[a].total_cmp(&levels[b]).then(b.cmp(&a)))
            .unwrap_or(search_to);
        out.push((start, cut));
        start = cut;
    }
    if end > start {
        out.push((start, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: usize = STT_SAMPLE_RATE as usize;

    /// A deterministic white-noise generator (xorshift), amplitude in -1..1.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    fn db_to_amp(db: f32) -> f32 {
        10f32.powf(db / 20.0)
    }

    /// `secs` of white noise at `level_db` dBFS RMS (uniform noise has
    /// RMS = amplitude / sqrt(3)).
    fn noise(secs: f32, level_db: f32, seed: u64) -> Vec<f32> {
        let amp = db_to_amp(level_db) * 3f32.sqrt();
        let mut rng = Noise(seed | 1);
        (0..(secs * RATE as f32) as usize)
            .map(|_| rng.next() * amp)
            .collect()
    }

    /// Adds a 440 Hz tone at `level_db` dBFS RMS from `from_s` to `to_s`.
    fn add_tone(signal: &mut [f32], from_s: f32, to_s: f32, level_db: f32) {
        let amp = db_to_amp(level_db) * 2f32.sqrt();
        let from = (from_s * RATE as f32) as usize;
        let to = ((to_s * RATE as f32) as usize).min(signal.len());
        for (i, s) in signal[from..to].iter_mut().enumerate() {
            *s += amp * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / RATE as f32).sin();
        }
    }

    fn end_ms(u: &Utterance) -> i64 {
        u.start_ms + u.duration_ms()
    }

    #[test]
    fn digital_silence_has_no_speech() {
        assert!(split(&vec![0.0; RATE * 5], 0, &VadOptions::default()).is_empty());
        assert!(split(&[], 0, &VadOptions::default()).is_empty());
        assert!(split(&[0.5; 100], 0, &VadOptions::default()).is_empty());
    }

    #[test]
    fn a_steady_noise_floor_has_no_speech() {
        for level in [-70.0, -45.0, -25.0] {
            let signal = noise(20.0, level, 7);
            let found = split(&signal, 0, &VadOptions::default());
            assert!(found.is_empty(), "noise at {level} dBFS gave {found:?}");
        }
    }

    #[test]
    fn tone_bursts_become_padded_utterances_at_the_right_times() {
        let mut signal = noise(10.0, -60.0, 3);
        add_tone(&mut signal, 1.0, 2.5, -20.0);
        add_tone(&mut signal, 5.0, 7.0, -20.0);
        let opts = VadOptions::default();
        let found = split(&signal, 60_000, &opts);
        assert_eq!(
            found.len(),
            2,
            "{:?}",
            found
                .iter()
                .map(|u| (u.start_ms, end_ms(u)))
                .collect::<Vec<_>>()
        );
        let pad = i64::from(opts.pad_ms);
        let expect = [(61_000, 62_500), (65_000, 67_000)];
        for (u, (from, to)) in found.iter().zip(expect) {
            assert!(
                (u.start_ms - (from - pad)).abs() <= 40,
                "start {} vs {}",
                u.start_ms,
                from - pad
            );
            assert!(
                (end_ms(u) - (to + pad)).abs() <= 40,
                "end {} vs {}",
                end_ms(u),
                to + pad
            );
            // The samples are the recording's own samples at that offset.
            let first = ((u.start_ms - 60_000) as usize) * RATE / 1000;
            assert_eq!(u.samples[..100], signal[first..first + 100]);
        }
    }

    #[test]
    fn the_threshold_adapts_to_a_loud_noise_floor() {
        // A noisy line at -30 dBFS with speech 15 dB above it.
        let mut signal = noise(12.0, -30.0, 11);
        add_tone(&mut signal, 4.0, 6.0, -15.0);
        let found = split(&signal, 0, &VadOptions::default());
        assert_eq!(found.len(), 1);
        assert!(
            (found[0].start_ms - 3_800).abs() <= 40,
            "{}",
            found[0].start_ms
        );
        assert!(
            (end_ms(&found[0]) - 6_200).abs() <= 40,
            "{}",
            end_ms(&found[0])
        );
    }

    #[test]
    fn the_floor_follows_a_change_of_line_noise() {
        // Quiet first half, noisy second half; a burst in each half.
        let mut signal = noise(40.0, -65.0, 5);
        let loud = noise(40.0, -35.0, 9);
        signal[20 * RATE..].copy_from_slice(&loud[20 * RATE..]);
        add_tone(&mut signal, 8.0, 9.0, -40.0);
        add_tone(&mut signal, 30.0, 31.0, -20.0);
        let found = split(&signal, 0, &VadOptions::default());
        let times: Vec<_> = found.iter().map(|u| (u.start_ms, end_ms(u))).collect();
        assert_eq!(found.len(), 2, "{times:?}");
        assert!((found[0].start_ms - 7_800).abs() <= 40, "{times:?}");
        assert!((found[1].start_ms - 29_800).abs() <= 40, "{times:?}");
    }

    #[test]
    fn clicks_are_dropped_and_short_pauses_do_not_split() {
        let mut signal = noise(8.0, -60.0, 13);
        add_tone(&mut signal, 1.0, 1.04, -10.0); // a 40 ms click
        add_tone(&mut signal, 3.0, 4.0, -20.0);
        add_tone(&mut signal, 4.2, 5.0, -20.0); // 200 ms pause: same utterance
        let found = split(&signal, 0, &VadOptions::default());
        assert_eq!(
            found.len(),
            1,
            "{:?}",
            found.iter().map(|u| u.start_ms).collect::<Vec<_>>()
        );
        assert!((found[0].start_ms - 2_800).abs() <= 40);
        assert!((end_ms(&found[0]) - 5_200).abs() <= 40);
    }

    #[test]
    fn long_speech_is_split_below_the_maximum_at_quiet_points() {
        // 70 s of talking without a pause: 300 ms "syllables" 100 ms apart.
        let mut signal = noise(72.0, -60.0, 17);
        let mut t = 1.0;
        while t < 71.0 {
            add_tone(&mut signal, t, t + 0.3, -20.0);
            t += 0.4;
        }
        let opts = VadOptions::default();
        let found = split(&signal, 0, &opts);
        assert!(found.len() >= 3, "{}", found.len());
        for u in &found {
            assert!(
                u.duration_ms() <= i64::from(opts.max_utterance_ms),
                "{}",
                u.duration_ms()
            );
        }
        // Contiguous coverage of the speech, in order, no overlap.
        for pair in found.windows(2) {
            assert_eq!(end_ms(&pair[0]), pair[1].start_ms);
        }
        assert!((found[0].start_ms - 800).abs() <= 40);
        assert!((end_ms(&found[found.len() - 1]) - 71_100).abs() <= 40);
        // The cuts fall between syllables, not mid-tone.
        for u in &found[..found.len() - 1] {
            let in_cycle = (end_ms(u) - 1_000) % 400;
            assert!((300..400).contains(&in_cycle), "cut at {} ms", end_ms(u));
        }
    }

    #[test]
    fn neighbours_padding_never_overlaps() {
        let mut signal = noise(6.0, -60.0, 19);
        add_tone(&mut signal, 1.0, 2.0, -20.0);
        add_tone(&mut signal, 2.5, 3.5, -20.0); // 500 ms gap < 2 × pad + hangover
        let opts = VadOptions {
            hangover_ms: 300,
            ..VadOptions::default()
        };
        let found = split(&signal, 0, &opts);
        assert_eq!(found.len(), 2);
        assert!(end_ms(&found[0]) <= found[1].start_ms);
    }
}
