//! How many concurrent real-time streams one core records, against plain
//! libopus on the same audio with the same settings in the same run.
//!
//! `cargo bench -p recorder --bench pipeline`
//!
//! * (a) baseline: `opus::Encoder::encode` of 20 ms frames, nothing else.
//! * (b) ours, one mono stream (a meeting participant): frames with
//!   sequence numbers and jittered 100 ns timestamps → timeline →
//!   encoder → Ogg pages (flushed once a second) → `EnvelopeWriter`
//!   (AES-256-GCM, 1 KiB chunks so a chunk completes within a second of
//!   audio) → `io::sink()`, which stands in for the spool (built
//!   elsewhere; its fsync is not measured here).
//! * (b2) ours, a two-party call: both sides through `CallRecorder` into
//!   one two-channel stream, against two baseline encodes.
//! * (c) Opus pass-through: the adapter's packets (encoded before the
//!   clock starts) → timeline → Ogg → envelope → sink.
//!
//! Times are CPU time of the benchmark thread (so other work on the
//! machine does not count against us). Every case runs once per round,
//! interleaved; after a warm-up round the best of `ROUNDS` counts. The
//! quality columns compare the decoded stream with the input: segmental
//! SNR (a waveform measure; SILK is a waveform-matching coder) and
//! log-spectral distance (what the spectrum keeps). Neither is a
//! listening test; they show what a complexity step buys or loses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use cpu_time::ThreadTime;

use insights_core::crypto::DataKey;
use insights_core::crypto::envelope::{EnvelopeWriter, Header};
use insights_core::domain::{KeyId, TenantId};
use recorder::{
    CallRecorder, EncoderConfig, FRAME_SAMPLES, Layout, OggOptions, OpusOggEncoder,
    OpusPassthrough, PcmFrame, RecorderConfig, SAMPLE_RATE, Side, TimelineConfig, Track,
};
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn Error>>;

const SECONDS: usize = 60;
const ROUNDS: usize = 5;
const CHUNK: u32 = 1024;
const BITRATE: u32 = 24_000;

fn main() -> Res<()> {
    let (speech, source) = recorder::test_signal::speech(SECONDS)?;
    // The callee: the same speech shifted by 7.3 s, so the two sides differ.
    let shift = (7.3 * f64::from(SAMPLE_RATE)) as usize;
    let other: Vec<i16> = speech[shift..]
        .iter()
        .chain(&speech[..shift])
        .copied()
        .collect();
    let frames = speech.len() / FRAME_SAMPLES;
    let audio_s = frames as f64 * 0.02;
    let key = DataKey::generate(KeyId::new());

    println!("recorder pipeline benchmark");
    println!("input: {audio_s:.0} s of 16 kHz mono speech ({source})");
    println!(
        "settings: Opus VoIP, {} kbit/s per channel, 20 ms frames; envelope chunks {CHUNK} B; best of {ROUNDS} rounds",
        BITRATE / 1000
    );
    println!("libopus: {}", opus::version());
    println!(
        "x RT = seconds of audio per CPU second of one core (thread CPU time) = concurrent real-time streams per core"
    );
    println!();
    println!(
        "{:>3} | {:>7} | {:>7} | {:>16} | {:>16} | {:>7} | {:>14} | {:>14} | {:>6} | {:>10} | {:>6}",
        "cx",
        "segSNR",
        "LSD",
        "(a) libopus x RT",
        "(b) ours x RT",
        "(b)/(a)",
        "(a) 2x mono",
        "(b2) call x RT",
        "b2/a2",
        "calls/core",
        "kbit/s"
    );
    let mut chosen = None;
    for complexity in [0u8, 1, 2, 3, 4, 5, 8, 10] {
        let config = EncoderConfig {
            bitrate_per_channel: BITRATE,
            complexity,
        };
        let mut best = [Duration::MAX; 4];
        let mut bytes = 0;
        for round in 0..=ROUNDS {
            let t = [
                timed(|| baseline(&speech, &config).map(|_| ()))?,
                timed(|| ours_mono(&speech, &config, &key).map(|n| bytes = n))?,
                timed(|| {
                    baseline(&speech, &config)?;
                    baseline(&other, &config).map(|_| ())
                })?,
                timed(|| ours_call(&speech, &other, &config, &key).map(|_| ()))?,
            ];
            if round > 0 {
                for (b, t) in best.iter_mut().zip(t) {
                    *b = (*b).min(t);
                }
            }
        }
        let x = |d: Duration| audio_s / d.as_secs_f64();
        let (snr, lsd) = quality(&speech, &config)?;
        let kbps = bytes as f64 * 8.0 / audio_s / 1000.0;
        let ratio = best[1].as_secs_f64() / best[0].as_secs_f64();
        let ratio_call = best[3].as_secs_f64() / best[2].as_secs_f64();
        println!(
            "{complexity:>3} | {snr:>4.1} dB | {lsd:>4.2} dB | {:>16.0} | {:>16.0} | {ratio:>7.3} | {:>14.0} | {:>14.0} | {ratio_call:>6.3} | {:>10.0} | {kbps:>6.1}",
            x(best[0]),
            x(best[1]),
            x(best[2]),
            x(best[3]),
            x(best[3]),
        );
        if complexity == recorder::encoder::DEFAULT_COMPLEXITY {
            chosen = Some((x(best[1]), ratio, x(best[3]), ratio_call));
        }
    }

    // (c) pass-through.
    let packets = encode_packets(&speech)?;
    let mut best = [Duration::MAX; 2];
    for round in 0..=ROUNDS {
        let t = [
            timed(|| passthrough(&packets, &key, CHUNK).map(|_| ()))?,
            timed(|| passthrough(&packets, &key, 64 * 1024).map(|_| ()))?,
        ];
        if round > 0 {
            for (b, t) in best.iter_mut().zip(t) {
                *b = (*b).min(t);
            }
        }
    }
    let x = |d: Duration| audio_s / d.as_secs_f64();
    println!();
    println!(
        "(c) Opus pass-through (timeline -> Ogg -> envelope -> sink): {:.0} streams/core with 1 KiB chunks, {:.0} with 64 KiB chunks",
        x(best[0]),
        x(best[1])
    );
    println!("    (sink = io::sink(), standing in for the spool)");
    println!();
    if let Some((mono, ratio, call, ratio_call)) = chosen {
        let c = recorder::encoder::DEFAULT_COMPLEXITY;
        println!("default complexity {c}:");
        println!(
            "  goal >= 500 streams/core into encrypted Opus: {mono:.0} mono streams/core, {:.0} call streams/core ({call:.0} calls) -> {}",
            2.0 * call,
            verdict(mono >= 500.0 && 2.0 * call >= 500.0)
        );
        println!(
            "  goal <= 1.25x raw libopus cost: {ratio:.3}x (mono), {ratio_call:.3}x (call) -> {}",
            verdict(ratio <= 1.25 && ratio_call <= 1.25)
        );
        println!(
            "  goal >= 2000 streams/core for pass-through: {:.0} -> {}",
            x(best[0]),
            verdict(x(best[0]) >= 2000.0)
        );
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// CPU time of this thread spent in `f`: other processes on the machine
/// (parallel builds) do not inflate it the way they inflate wall time.
fn timed(f: impl FnOnce() -> Res<()>) -> Res<Duration> {
    let start = ThreadTime::now();
    f()?;
    Ok(start.elapsed())
}

/// (a): plain libopus.
fn baseline(pcm: &[i16], config: &EncoderConfig) -> Res<usize> {
    let mut enc = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
    enc.set_bitrate(opus::Bitrate::Bits(config.bitrate_per_channel as i32))?;
    enc.set_complexity(i32::from(config.complexity))?;
    let mut out = [0u8; 1500];
    let mut total = 0;
    for frame in pcm.chunks_exact(FRAME_SAMPLES) {
        total += enc.encode(frame, &mut out)?;
    }
    Ok(black_box(total))
}

fn envelope(key: &DataKey, chunk: u32) -> Res<EnvelopeWriter<std::io::Sink>> {
    let header = Header::new(TenantId::new(), Uuid::now_v7(), key.id).with_chunk_size(chunk)?;
    Ok(EnvelopeWriter::new(std::io::sink(), key, &header)?)
}

/// Timestamp of frame `i`, with a deterministic ±3 ms jitter.
fn ticks(i: usize) -> i64 {
    i as i64 * 200_000 + ((i * 7919) % 61) as i64 * 1000 - 30_000
}

/// (b): timeline -> encoder -> Ogg -> envelope -> sink, one mono stream.
fn ours_mono(pcm: &[i16], config: &EncoderConfig, key: &DataKey) -> Res<u64> {
    let out = envelope(key, CHUNK)?;
    let mut enc = OpusOggEncoder::new(out, Layout::Mono, config, &OggOptions::default())?;
    let mut track = Track::new(TimelineConfig::default(), Some(0))?;
    for (i, frame) in pcm.chunks_exact(FRAME_SAMPLES).enumerate() {
        let payload: [i16; FRAME_SAMPLES] = frame.try_into()?;
        track.push(i as u64, ticks(i), payload, &mut |_, f| match f {
            Some(f) => enc.write_frame(&f),
            None => enc.write_silence(),
        })?;
        if i % 50 == 49 {
            enc.flush_page()?;
        }
    }
    track.flush(&mut |_, f| match f {
        Some(f) => enc.write_frame(&f),
        None => enc.write_silence(),
    })?;
    let envelope = enc.finish()?;
    let n = envelope.plaintext_len();
    envelope.finish()?;
    Ok(n)
}

/// (b2): both sides of a call -> CallRecorder -> envelope -> sink.
fn ours_call(a: &[i16], b: &[i16], config: &EncoderConfig, key: &DataKey) -> Res<()> {
    let out = envelope(key, CHUNK)?;
    let rc = RecorderConfig {
        encoder: config.clone(),
        ..Default::default()
    };
    let mut rec = CallRecorder::new(out, &rc, Some(0))?;
    for (i, (fa, fb)) in a
        .chunks_exact(FRAME_SAMPLES)
        .zip(b.chunks_exact(FRAME_SAMPLES))
        .enumerate()
    {
        let seq = i as u64;
        rec.push(
            Side::Caller,
            PcmFrame {
                seq,
                ticks: ticks(i),
                pcm: fa,
            },
        )?;
        rec.push(
            Side::Callee,
            PcmFrame {
                seq,
                ticks: ticks(i) + 3_000,
                pcm: fb,
            },
        )?;
        if i % 50 == 49 {
            rec.flush_page()?;
        }
    }
    let (envelope, _) = rec.finish()?;
    envelope.finish()?;
    Ok(())
}

fn encode_packets(pcm: &[i16]) -> Res<Vec<Vec<u8>>> {
    let mut enc = recorder::OpusEncoder::new(Layout::Mono, &EncoderConfig::default())?;
    Ok(pcm
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| enc.encode(f).map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()?)
}

/// (c): packets -> timeline -> Ogg -> envelope -> sink.
fn passthrough(packets: &[Vec<u8>], key: &DataKey, chunk: u32) -> Res<()> {
    let out = envelope(key, chunk)?;
    let mut pt = OpusPassthrough::new(
        out,
        &TimelineConfig::default(),
        &OggOptions::default(),
        312,
        Some(0),
    )?;
    for (i, p) in packets.iter().enumerate() {
        pt.push(i as u64, ticks(i), p)?;
        if i % 50 == 49 {
            pt.flush_page()?;
        }
    }
    pt.finish()?.finish()?;
    Ok(())
}

/// Quality proxies of the decoded baseline stream against the input, over
/// active 20 ms segments: segmental SNR (each segment clamped to
/// -10..35 dB; higher is better) and log-spectral distance (RMS over
/// 50 Hz bins up to 7 kHz of the dB difference of Hann-windowed power
/// spectra; lower is better).
fn quality(pcm: &[i16], config: &EncoderConfig) -> Res<(f64, f64)> {
    let mut enc = OpusOggEncoder::new(Vec::new(), Layout::Mono, config, &OggOptions::default())?;
    enc.write_pcm(pcm)?;
    let bytes = enc.finish()?;
    let d = recorder::decode_ogg_opus(Cursor::new(bytes), SAMPLE_RATE)?;
    let out = &d.channels[0];
    let n = FRAME_SAMPLES;
    let bins = 140; // 50 Hz .. 7 kHz
    let window: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let twiddle: Vec<(f64, f64)> = (1..=bins)
        .flat_map(|k| {
            (0..n).map(move |i| {
                let a = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                (a.cos(), a.sin())
            })
        })
        .collect();
    let power = |x: &[i16]| -> Vec<f64> {
        (0..bins)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, &s) in x.iter().enumerate() {
                    let v = f64::from(s) * window[i];
                    let (c, si) = twiddle[k * n + i];
                    re += v * c;
                    im -= v * si;
                }
                re * re + im * im + 1e4
            })
            .collect()
    };
    let (mut snr, mut lsd, mut count) = (0.0, 0.0, 0);
    for (x, y) in pcm.chunks_exact(n).zip(out.chunks_exact(n)) {
        let sig: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum();
        if sig < 1e4 * n as f64 {
            continue;
        }
        let noise: f64 = x
            .iter()
            .zip(y)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        snr += (10.0 * (sig / noise.max(1.0)).log10()).clamp(-10.0, 35.0);
        let (px, py) = (power(x), power(y));
        let d2: f64 = px
            .iter()
            .zip(&py)
            .map(|(a, b)| (10.0 * (a / b).log10()).powi(2))
            .sum::<f64>()
            / bins as f64;
        lsd += d2.sqrt();
        count += 1;
    }
    let count = f64::from(count.max(1));
    Ok((snr / count, lsd / count))
}
