//! What the ingest benchmarks share: the adapter's messages for the same
//! audio, plain libopus as the baseline, and the in-process pipeline
//! (messages → recorder or pass-through → the real spool) that both
//! `ingest_pipeline` and `gateway_e2e` measure.

// Each bench uses a subset.
#![allow(dead_code)]

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cpu_time::{ProcessTime, ThreadTime};

use bot_gateway::ingest::protocol::{AudioMessage, Buffer, Encoding};
use bot_gateway::spool::{NewRecording, NewStream, Spool};
use insights_core::domain::{ParticipantId, RecordingId, StreamId, TenantId};
use recorder::passthrough::DEFAULT_PASSTHROUGH_PRE_SKIP;
use recorder::{
    CallPassthrough, CallRecorder, EncoderConfig, FRAME_SAMPLES, Layout, OpusEncoder, PcmFrame,
    RecorderConfig, SAMPLE_RATE, Side, frame_from_s16le,
};

pub type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The CPU of one measured run: the calling thread's, the process's, and
/// wall time.
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub thread: Duration,
    pub process: Duration,
    pub wall: Duration,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Self) {
        self.thread += o.thread;
        self.process += o.process;
        self.wall += o.wall;
    }
}

/// Runs `f` and returns what it cost.
pub fn measure(f: impl FnOnce() -> Res<()>) -> Res<Cost> {
    let (t, p, w) = (ThreadTime::now(), ProcessTime::now(), Instant::now());
    f()?;
    Ok(Cost {
        thread: t.elapsed(),
        process: p.elapsed(),
        wall: w.elapsed(),
    })
}

pub const FRAME_MS: usize = 20;
/// The ingest flushes Ogg pages every 250 ms.
pub const FLUSH_MS: usize = 250;
pub const CALLER: u32 = 1;
pub const CALLEE: u32 = 2;

/// Timestamp of frame `i` in 100 ns ticks, with a deterministic ±3 ms
/// jitter (as in the recorder bench).
pub fn ticks(i: usize) -> i64 {
    i as i64 * 200_000 + ((i * 7919) % 61) as i64 * 1000 - 30_000
}

/// The adapter's side: one `insights-media/1` binary frame per 20 ms with
/// one PCM buffer per party.
pub fn adapter_messages(a: &[i16], b: &[i16]) -> Res<Vec<Vec<u8>>> {
    let bytes = |f: &[i16]| f.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>();
    a.chunks_exact(FRAME_SAMPLES)
        .zip(b.chunks_exact(FRAME_SAMPLES))
        .enumerate()
        .map(|(i, (fa, fb))| {
            Ok(AudioMessage {
                encoding: Encoding::Pcm16,
                sequence: i as u64,
                timestamp: ticks(i),
                buffers: vec![
                    Buffer {
                        source_id: CALLER,
                        payload: bytes(fa),
                    },
                    Buffer {
                        source_id: CALLEE,
                        payload: bytes(fb),
                    },
                ],
            }
            .encode()?)
        })
        .collect()
}

/// The adapter's side with Opus: each party's speech encoded by its own
/// mono encoder at the recorder's settings, one message per 20 ms.
pub fn adapter_opus_messages(a: &[i16], b: &[i16], config: &EncoderConfig) -> Res<Vec<Vec<u8>>> {
    let mut enc_a = OpusEncoder::new(Layout::Mono, config)?;
    let mut enc_b = OpusEncoder::new(Layout::Mono, config)?;
    a.chunks_exact(FRAME_SAMPLES)
        .zip(b.chunks_exact(FRAME_SAMPLES))
        .enumerate()
        .map(|(i, (fa, fb))| {
            Ok(AudioMessage {
                encoding: Encoding::Opus,
                sequence: i as u64,
                timestamp: ticks(i),
                buffers: vec![
                    Buffer {
                        source_id: CALLER,
                        payload: enc_a.encode(fa)?.to_vec(),
                    },
                    Buffer {
                        source_id: CALLEE,
                        payload: enc_b.encode(fb)?.to_vec(),
                    },
                ],
            }
            .encode()?)
        })
        .collect()
}

/// (a): plain libopus, one mono encoder per party.
pub fn baseline(a: &[i16], b: &[i16], config: &EncoderConfig) -> Res<()> {
    let mut total = 0;
    for pcm in [a, b] {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(config.bitrate_per_channel as i32))?;
        enc.set_complexity(i32::from(config.complexity))?;
        let mut out = [0u8; 1500];
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            total += enc.encode(frame, &mut out)?;
        }
    }
    black_box(total);
    Ok(())
}

/// A two-party recording with one stream (the stereo call file).
pub fn new_recording(tenant: TenantId) -> NewRecording {
    NewRecording {
        tenant_id: tenant,
        recording_id: RecordingId::new(),
        started_at: chrono::Utc::now(),
        participants: vec![ParticipantId::new(), ParticipantId::new()],
        streams: vec![NewStream {
            stream_id: StreamId::new(),
            participant_id: None,
            content_type: "audio/ogg".into(),
        }],
    }
}

pub fn side(source: u32) -> Side {
    if source == CALLER {
        Side::Caller
    } else {
        Side::Callee
    }
}

/// Whether the ingest completes its Ogg pages after message `i`.
fn flush_after(i: usize) -> bool {
    ((i + 1) * FRAME_MS) / FLUSH_MS != (i * FRAME_MS) / FLUSH_MS
}

/// (b) / (b+): messages → decode → `CallRecorder` → spool, with
/// `SpoolRecording::sync()` every `sync_every` messages if given.
pub fn ours(
    rt: &tokio::runtime::Runtime,
    spool: &Spool,
    tenant: TenantId,
    messages: &[Vec<u8>],
    config: &RecorderConfig,
    sync_every: Option<usize>,
) -> Res<()> {
    let spooled = rt.block_on(spool.begin(new_recording(tenant)))?;
    let mut rec = CallRecorder::new(spooled.stream(0)?, config, None)?;
    for (i, bytes) in messages.iter().enumerate() {
        let m = AudioMessage::decode(bytes)?;
        for buf in &m.buffers {
            let frame = frame_from_s16le(&buf.payload)?;
            rec.push(
                side(buf.source_id),
                PcmFrame {
                    seq: m.sequence,
                    ticks: m.timestamp,
                    pcm: &frame,
                },
            )?;
        }
        if flush_after(i) {
            rec.flush_page()?;
        }
        if let Some(n) = sync_every
            && (i + 1) % n == 0
        {
            spooled.sync()?;
        }
    }
    let (_, summary) = rec.finish()?;
    black_box(summary);
    spooled.finish_blocking()?;
    Ok(())
}

/// (d): Opus messages → decode → `CallPassthrough` → spool, with
/// `sync()` every `sync_every` messages.
pub fn ours_opus(
    rt: &tokio::runtime::Runtime,
    spool: &Spool,
    tenant: TenantId,
    messages: &[Vec<u8>],
    config: &RecorderConfig,
    sync_every: usize,
) -> Res<()> {
    let spooled = rt.block_on(spool.begin(new_recording(tenant)))?;
    let mut rec = CallPassthrough::new(
        spooled.stream(0)?,
        &config.timeline,
        &config.ogg,
        DEFAULT_PASSTHROUGH_PRE_SKIP,
        None,
    )?;
    for (i, bytes) in messages.iter().enumerate() {
        let m = AudioMessage::decode(bytes)?;
        for buf in &m.buffers {
            rec.push(side(buf.source_id), m.sequence, m.timestamp, &buf.payload)?;
        }
        if flush_after(i) {
            rec.flush_page()?;
        }
        if (i + 1) % sync_every == 0 {
            spooled.sync()?;
        }
    }
    let (_, summary) = rec.finish()?;
    black_box(summary);
    spooled.finish_blocking()?;
    Ok(())
}
