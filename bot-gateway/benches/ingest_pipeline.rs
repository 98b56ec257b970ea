//! How many concurrent real-time two-party calls one core records through
//! the real gateway path, against plain libopus on the same audio with the
//! same settings in the same run.
//!
//! `cargo bench -p bot-gateway --bench ingest_pipeline`
//!
//! Per call (two parties, `SECONDS` of speech each), interleaved:
//!
//! * (a) baseline: two mono `opus::Encoder`s (16 kHz, VoIP, 24 kbit/s,
//!   the recorder's default complexity, 20 ms frames) encode both sides'
//!   PCM, nothing else.
//! * (b) ours: `insights-media/1` audio messages (one per 20 ms, one
//!   buffer per party; encoded by the "adapter" before the clock starts)
//!   → `AudioMessage::decode` → `frame_from_s16le` → `CallRecorder`
//!   (default `RecorderConfig`: stereo of two mono Opus streams) → a real
//!   `Spool` in a temporary directory (`SpoolStream` as the recorder's
//!   `io::Write`), `flush_page()` every 250 ms of audio as the ingest
//!   does, then `finish_blocking()` (last records, fsync, read-back check,
//!   journal). The spool's durability thread runs on its own wall-clock
//!   tick (500 ms), so at faster than real time it sees few ticks.
//! * (b+) ours with real-time durability: as (b), plus `SpoolRecording::sync()`
//!   (seal + append + fsync) every `fsync_interval` of *audio* on the bench
//!   thread: the work the durability thread does for this call when it
//!   runs in real time.
//!
//! Opus pass-through (the adapter sends 20 ms Opus packets; the same
//! speech, encoded by the "adapter" before the clock starts):
//!
//! * (c) raw floor: the packets' bytes appended to a plain file, fsync'd
//!   every 500 ms of audio: what storing them costs with no ordering, no
//!   Ogg and no encryption.
//! * (d) ours: `insights-media/1` Opus messages → `AudioMessage::decode`
//!   → `CallPassthrough` (timeline, self-delimiting mux into the stereo
//!   call layout, Ogg) → the real spool with `sync()` every 500 ms of
//!   audio, as (b+).
//!
//! Thread CPU time is the benchmark thread's; process CPU time adds the
//! spool's durability thread and the blocking pool (entry creation), so
//! sealing and fsync on other threads are counted. Wall time is given
//! too: fsync waits for the disk without using CPU.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bot_gateway::spool::{Spool, SpoolConfig};
use common::{
    Cost, FLUSH_MS, FRAME_MS, Res, adapter_messages, adapter_opus_messages, baseline, measure,
    ours, ours_opus,
};
use insights_core::crypto::{KeyProvider, LocalKeyFile};
use insights_core::domain::TenantId;
use recorder::{FRAME_SAMPLES, RecorderConfig, SAMPLE_RATE};

const SECONDS: usize = 60;
const CALLS: usize = 20;

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
    let call_s = frames as f64 * 0.02;
    let messages = adapter_messages(&speech, &other)?;
    let config = RecorderConfig::default();
    let opus_messages = adapter_opus_messages(&speech, &other, &config.encoder)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let keys: Arc<dyn KeyProvider> =
        Arc::new(LocalKeyFile::open(dir.path().join("keys/kek.json"))?);
    let tenant = TenantId::new();
    rt.block_on(keys.ensure_kek(tenant))?;
    let cfg = SpoolConfig::in_dir(dir.path().join("spool"));
    let fsync_interval = cfg.fsync_interval;
    let spool = rt.block_on(Spool::open(cfg, keys))?;
    let sync_every = (fsync_interval.as_millis() as usize / FRAME_MS).max(1);

    println!("gateway ingest pipeline benchmark");
    println!(
        "input: {CALLS} two-party calls x {call_s:.0} s of 16 kHz mono speech per party ({source})"
    );
    println!(
        "settings: Opus VoIP, {} kbit/s per channel, complexity {}, 20 ms frames; Ogg pages flushed every {FLUSH_MS} ms; spool fsync interval {} ms",
        config.encoder.bitrate_per_channel / 1000,
        config.encoder.complexity,
        fsync_interval.as_millis()
    );
    println!("libopus: {}", opus::version());
    println!("spool: {} (temporary directory)", dir.path().display());
    println!();

    let one = |cost: &mut [Cost; 3], count: bool| -> Res<()> {
        let t = [
            measure(|| baseline(&speech, &other, &config.encoder))?,
            measure(|| ours(&rt, &spool, tenant, &messages, &config, None))?,
            measure(|| ours(&rt, &spool, tenant, &messages, &config, Some(sync_every)))?,
        ];
        if count {
            for (c, t) in cost.iter_mut().zip(t) {
                *c += t;
            }
        }
        Ok(())
    };
    let mut cost = [Cost::default(); 3];
    one(&mut cost, false)?; // warm-up
    for _ in 0..CALLS {
        one(&mut cost, true)?;
    }
    // Opus pass-through: (c) raw floor, (d) ours, interleaved.
    let raw_file = dir.path().join("raw.opus");
    let mut pt = [Cost::default(); 2];
    for round in 0..=CALLS {
        let t = [
            measure(|| raw_append(&raw_file, &opus_messages, sync_every))?,
            measure(|| ours_opus(&rt, &spool, tenant, &opus_messages, &config, sync_every))?,
        ];
        if round > 0 {
            for (c, t) in pt.iter_mut().zip(t) {
                *c += t;
            }
        }
    }
    let spooled_bytes = spool.used_bytes();
    let entries = spool.finished().len();
    spool.shutdown();

    let audio = call_s * CALLS as f64;
    let x = |d: Duration| audio / d.as_secs_f64();
    let base = cost[0].thread.as_secs_f64();
    println!(
        "calls/core = seconds of two-party call audio per CPU second = concurrent real-time two-party calls per core (streams = 2x)"
    );
    println!();
    println!(
        "{:<44} | {:>9} | {:>9} | {:>8} | {:>12} | {:>12} | {:>7} | {:>7}",
        "path", "thread s", "process s", "wall s", "calls/core T", "calls/core P", "T/(a)", "P/(a)"
    );
    let names = [
        "(a) libopus, 2 mono encoders",
        "(b) ours: msgs->recorder->spool",
        "(b+) ours + sync() every 500 ms of audio",
    ];
    for (name, c) in names.iter().zip(&cost) {
        println!(
            "{name:<44} | {:>9.3} | {:>9.3} | {:>8.3} | {:>12.0} | {:>12.0} | {:>7.3} | {:>7.3}",
            c.thread.as_secs_f64(),
            c.process.as_secs_f64(),
            c.wall.as_secs_f64(),
            x(c.thread),
            x(c.process),
            c.thread.as_secs_f64() / base,
            c.process.as_secs_f64() / base,
        );
    }
    let durability = |a: Duration, b: Duration| b.as_secs_f64() - a.as_secs_f64();
    println!();
    println!(
        "real-time durability (b+ minus b): {:+.3} s thread CPU, {:+.3} s process CPU, {:+.3} s wall over {CALLS} calls ({} syncs per call)",
        durability(cost[1].thread, cost[2].thread),
        durability(cost[1].process, cost[2].process),
        durability(cost[1].wall, cost[2].wall),
        frames / sync_every
    );
    println!(
        "spool after the run: {entries} finished entries, {:.1} MiB",
        spooled_bytes as f64 / 1024.0 / 1024.0
    );
    println!();
    // The honest figure: process CPU with real-time durability.
    let ours_calls = x(cost[2].process);
    let ratio = cost[2].process.as_secs_f64() / base;
    println!(
        "goal >= 250 concurrent two-party calls (500 streams) per core into encrypted Opus: {ours_calls:.0} calls ({:.0} streams) per core [(b+), process CPU] -> {}",
        2.0 * ours_calls,
        verdict(ours_calls >= 250.0)
    );
    println!(
        "goal <= 1.25x raw libopus cost of the same settings: {ratio:.3}x [(b+) process CPU / (a)] ({:.3}x thread CPU) -> {}",
        cost[2].thread.as_secs_f64() / base,
        verdict(ratio <= 1.25)
    );

    println!();
    println!("Opus pass-through (adapter sends 20 ms Opus packets; no re-encoding)");
    println!(
        "{:<44} | {:>9} | {:>9} | {:>8} | {:>14} | {:>14} | {:>7}",
        "path", "thread s", "process s", "wall s", "streams/core T", "streams/core P", "P/(c)"
    );
    let streams = |d: Duration| 2.0 * audio / d.as_secs_f64();
    let raw = pt[0].process.as_secs_f64();
    for (name, c) in [
        "(c) raw: packets -> file, fsync / 500 ms",
        "(d) ours: msgs->pass-through->spool+sync",
    ]
    .iter()
    .zip(&pt)
    {
        println!(
            "{name:<44} | {:>9.3} | {:>9.3} | {:>8.3} | {:>14.0} | {:>14.0} | {:>7.3}",
            c.thread.as_secs_f64(),
            c.process.as_secs_f64(),
            c.wall.as_secs_f64(),
            streams(c.thread),
            streams(c.process),
            c.process.as_secs_f64() / raw,
        );
    }
    let pt_streams = streams(pt[1].process);
    println!();
    println!(
        "goal >= 2,000 concurrent streams per core with Opus input: {pt_streams:.0} streams ({:.0} two-party calls) per core [(d), process CPU] -> {}",
        pt_streams / 2.0,
        verdict(pt_streams >= 2000.0)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// (c): the Opus payloads appended to a plain file, fsync'd every
/// `sync_every` messages and at the end.
fn raw_append(path: &std::path::Path, messages: &[Vec<u8>], sync_every: usize) -> Res<()> {
    use std::io::Write;
    let file = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::new(file);
    for (i, bytes) in messages.iter().enumerate() {
        // The payloads sit after the 24-byte header and 6 bytes per buffer.
        w.write_all(&bytes[24..])?;
        if (i + 1) % sync_every == 0 {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
    }
    w.flush()?;
    w.get_ref().sync_all()?;
    Ok(())
}
