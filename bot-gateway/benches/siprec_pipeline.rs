//! How many concurrent SIPREC two-stream G.711 sessions one core records
//! through the recording server's media path, against raw G.711 decoding
//! plus libopus encoding of the same audio in the same run (issue 16 §4).
//!
//! `cargo bench -p bot-gateway --bench siprec_pipeline`
//!
//! Per session (two streams, `SECONDS` of speech each, PCMU in 20 ms RTP
//! packets), interleaved:
//!
//! * (a) raw: both streams' G.711 bytes decoded (µ-law, 8 → 16 kHz as
//!   the server does) and encoded by two mono `opus::Encoder`s at the
//!   recorder's settings. Nothing else.
//! * (b) ours: the RTP packets sent over loopback UDP by a sender thread
//!   (the SBC; its CPU counts in process time only), received from two
//!   sockets, `siprec::rtp::Stream::push` (RTP parsing, sequence and
//!   timestamp tracking, G.711 decoding, 20 ms framing) →
//!   `CallRecorder::push_lane` (the jitter buffer/timeline, stereo Opus)
//!   → the real encrypted `Spool`, Ogg pages flushed every 250 ms and
//!   `SpoolRecording::sync()` (seal + append + fsync) every spool fsync
//!   interval of audio, then `finish_blocking()`: the session task's
//!   per-packet work (`session.rs`, `Live::packet`) without SIP.
//!
//! Thread CPU is the receiving thread's; process CPU adds the sender
//! thread and the spool's durability thread. Wall time is given too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bot_gateway::siprec::rtp;
use bot_gateway::spool::{Spool, SpoolConfig};
use common::{Cost, FLUSH_MS, FRAME_MS, Res, measure, new_recording};
use insights_core::crypto::{KeyProvider, LocalKeyFile};
use insights_core::domain::TenantId;
use recorder::{CallRecorder, EncoderConfig, PcmFrame, RecorderConfig, SAMPLE_RATE};

const SECONDS: usize = 60;
const SESSIONS: usize = 12;
/// Packets in flight between the sender and the receiver (well inside
/// the default socket buffers).
const WINDOW: usize = 32;

/// 16 kHz speech → 8 kHz µ-law, as an SBC sends it.
fn pcmu(speech16k: &[i16]) -> Vec<u8> {
    speech16k
        .chunks(2)
        .map(|c| {
            rtp::ulaw_encode(((i32::from(c[0]) + i32::from(*c.get(1).unwrap_or(&c[0]))) / 2) as i16)
        })
        .collect()
}

/// (a): G.711 decoded to 16 kHz (the server's interpolation) and encoded
/// by one mono libopus encoder per stream.
fn raw(streams: [&[u8]; 2], config: &EncoderConfig) -> Res<()> {
    let mut total = 0;
    for bytes in streams {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(config.bitrate_per_channel as i32))?;
        enc.set_complexity(i32::from(config.complexity))?;
        let mut out = [0u8; 1500];
        let mut prev = 0i16;
        let mut pcm = [0i16; 320];
        for frame in bytes.chunks_exact(160) {
            for (i, &b) in frame.iter().enumerate() {
                let s = rtp::ulaw(b);
                pcm[2 * i] = ((i32::from(prev) + i32::from(s)) / 2) as i16;
                pcm[2 * i + 1] = s;
                prev = s;
            }
            total += enc.encode(&pcm, &mut out)?;
        }
    }
    black_box(total);
    Ok(())
}

/// The session's RTP: (stream, packet) in sending order.
fn packets(streams: [&[u8]; 2]) -> Vec<(usize, Vec<u8>)> {
    let frames = streams[0].len().min(streams[1].len()) / 160;
    let mut out = Vec::with_capacity(2 * frames);
    for k in 0..frames {
        for (i, s) in streams.iter().enumerate() {
            out.push((
                i,
                rtp::build(
                    0,
                    (1000 * (i + 1) + k) as u16,
                    (k * 160) as u32,
                    0x1111 * (i as u32 + 1),
                    &s[k * 160..(k + 1) * 160],
                ),
            ));
        }
    }
    out
}

/// (b): RTP over loopback UDP → `rtp::Stream` → `CallRecorder` → spool.
fn ours(
    rt: &tokio::runtime::Runtime,
    spool: &Spool,
    tenant: TenantId,
    packets: &Arc<Vec<(usize, Vec<u8>)>>,
    config: &RecorderConfig,
    sync_every: usize,
) -> Res<()> {
    let rx = [
        UdpSocket::bind("127.0.0.1:0")?,
        UdpSocket::bind("127.0.0.1:0")?,
    ];
    let to = [rx[0].local_addr()?, rx[1].local_addr()?];
    let (credit_tx, credit_rx) = mpsc::sync_channel::<usize>(4);
    let sending = packets.clone();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        for chunk in sending.chunks(WINDOW) {
            for (i, p) in chunk {
                s.send_to(p, to[*i])?;
            }
            // Wait until the receiver has taken them.
            if credit_rx.recv().is_err() {
                break;
            }
        }
        Ok(())
    });
    let spooled = rt.block_on(spool.begin(new_recording(tenant)))?;
    let mut rec = CallRecorder::new(spooled.stream(0)?, config, None)?;
    let mut streams = [
        rtp::Stream::new(rtp::Codec::Pcmu, 0, None),
        rtp::Stream::new(rtp::Codec::Pcmu, 0, None),
    ];
    let mut buf = [0u8; 2048];
    let started = Instant::now();
    let frames_per_flush = FLUSH_MS / FRAME_MS;
    let mut audio_frames = 0usize;
    for chunk in packets.chunks(WINDOW) {
        for (i, _) in chunk {
            let n = rx[*i].recv(&mut buf)?;
            let now = started.elapsed().as_nanos() as i64 / 100;
            for f in streams[*i].push(&buf[..n], now) {
                rec.push_lane(
                    *i,
                    PcmFrame {
                        seq: f.seq,
                        ticks: f.ticks,
                        pcm: &f.pcm,
                    },
                )?;
            }
            if *i == 1 {
                audio_frames += 1;
                if audio_frames.is_multiple_of(frames_per_flush) {
                    rec.flush_page()?;
                }
                if audio_frames.is_multiple_of(sync_every) {
                    spooled.sync()?;
                }
            }
        }
        let _ = credit_tx.send(chunk.len());
    }
    drop(credit_tx);
    sender.join().map_err(|_| "sender panicked")??;
    for (i, s) in streams.iter_mut().enumerate() {
        for f in s.finish() {
            rec.push_lane(
                i,
                PcmFrame {
                    seq: f.seq,
                    ticks: f.ticks,
                    pcm: &f.pcm,
                },
            )?;
        }
        assert_eq!(s.stats.lost, 0, "RTP lost on loopback");
    }
    let (_, summary) = rec.finish()?;
    black_box(summary);
    spooled.finish_blocking()?;
    Ok(())
}

fn main() -> Res<()> {
    let (speech, source) = recorder::test_signal::speech(SECONDS)?;
    let shift = (7.3 * f64::from(SAMPLE_RATE)) as usize;
    let other: Vec<i16> = speech[shift..]
        .iter()
        .chain(&speech[..shift])
        .copied()
        .collect();
    let (a, b) = (pcmu(&speech), pcmu(&other));
    let session_s = (a.len() / 160) as f64 * 0.02;
    let pkts = Arc::new(packets([&a, &b]));
    let config = RecorderConfig::default();

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

    println!("SIPREC media pipeline benchmark");
    println!(
        "input: {SESSIONS} sessions x 2 PCMU streams x {session_s:.0} s, 20 ms RTP packets ({source})"
    );
    println!(
        "settings: Opus VoIP, {} kbit/s per channel, complexity {}, 20 ms frames; Ogg pages every {FLUSH_MS} ms; spool fsync every {} ms of audio",
        config.encoder.bitrate_per_channel / 1000,
        config.encoder.complexity,
        fsync_interval.as_millis()
    );
    println!("libopus: {}", opus::version());
    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "dev (unoptimised)"
        } else {
            "optimised (bench/release)"
        }
    );
    println!();

    let mut cost = [Cost::default(); 2];
    for round in 0..=SESSIONS {
        let t = [
            measure(|| raw([&a, &b], &config.encoder))?,
            measure(|| ours(&rt, &spool, tenant, &pkts, &config, sync_every))?,
        ];
        if round > 0 {
            for (c, t) in cost.iter_mut().zip(t) {
                *c += t;
            }
        }
    }
    spool.shutdown();

    let audio = session_s * SESSIONS as f64;
    let per_core = |d: Duration| audio / d.as_secs_f64();
    let base = cost[0].thread.as_secs_f64();
    println!(
        "sessions/core = seconds of two-stream session audio per CPU second = concurrent real-time sessions per core"
    );
    println!(
        "{:<46} | {:>9} | {:>9} | {:>8} | {:>15} | {:>15} | {:>7} | {:>7}",
        "path",
        "thread s",
        "process s",
        "wall s",
        "sessions/core T",
        "sessions/core P",
        "T/(a)",
        "P/(a)"
    );
    for (name, c) in [
        "(a) raw: G.711 decode + 2 libopus encoders",
        "(b) ours: UDP -> RTP -> recorder -> spool",
    ]
    .iter()
    .zip(&cost)
    {
        println!(
            "{name:<46} | {:>9.3} | {:>9.3} | {:>8.3} | {:>15.0} | {:>15.0} | {:>7.3} | {:>7.3}",
            c.thread.as_secs_f64(),
            c.process.as_secs_f64(),
            c.wall.as_secs_f64(),
            per_core(c.thread),
            per_core(c.process),
            c.thread.as_secs_f64() / base,
            c.process.as_secs_f64() / base,
        );
    }
    let ours_t = per_core(cost[1].thread);
    let ratio = cost[1].thread.as_secs_f64() / base;
    println!();
    println!(
        "goal >= 250 sessions per core at the default complexity: {ours_t:.0} [(b) thread CPU; {:.0} with the sender and durability thread] -> {}",
        per_core(cost[1].process),
        if ours_t >= 250.0 { "met" } else { "NOT met" }
    );
    println!(
        "goal <= 1.2x raw: {ratio:.3}x [(b)/(a) thread CPU; {:.3}x process CPU] -> {}",
        cost[1].process.as_secs_f64() / base,
        if ratio <= 1.2 { "met" } else { "NOT met" }
    );
    Ok(())
}
