//! The recorder: turns the audio frames of a Teams call or meeting into
//! Ogg Opus streams, and decodes audio back.
//!
//! A pure library: no network, no files, no spool or fsync policy. Every
//! stream is written into any [`std::io::Write`] — in production an
//! `insights_core::crypto::EnvelopeWriter` over the spool file, so media
//! is encrypted before it touches a disk.
//!
//! ```text
//! adapter frames ──▶ Timeline (order, gaps, duplicates) ──▶ OpusEncoder ──▶ OggOpusWriter ──▶ W: Write
//!  (seq, 100 ns ticks,        one lane per side/participant        16 kHz VoIP   RFC 7845 pages    (envelope → spool)
//!   20 ms s16le 16 kHz)
//! ```
//!
//! Everything is synchronous: `push` encodes and writes what the timeline
//! releases before it returns, so a slow writer (disk) blocks the caller —
//! that is the backpressure; nothing queues up in between. Per stream the
//! recorder holds at most the reorder window (4 frames of 640 bytes), one
//! Ogg page (≤ 51 packets, a few KB) and the libopus state; frames arrive
//! as `&[i16]` ([`PcmFrame`]; [`frame_from_s16le`] reads the wire format).
//!
//! # Layouts
//!
//! * **Two-party call** ([`CallRecorder`]): ONE two-channel stream, caller
//!   left (channel 0), callee right (channel 1). Each side's frames only
//!   ever reach its own channel. The channels are coded as **two
//!   uncoupled mono Opus streams** in one Ogg stream (channel mapping
//!   family 1, 2 streams, 0 coupled, map `[0, 1]`), not as one coupled
//!   stereo stream (family 0): joint stereo coding shares bits and
//!   mid/side prediction between the channels, and in our measurement
//!   the caller's voice reached the callee channel at about −50 dB at
//!   complexity 0; with uncoupled streams nothing of one side can reach
//!   the other (−80 dB and below is codec noise of the channel's own
//!   signal). Test `coupled_stereo_also_works_but_leaks_more_than_dual_mono`
//!   keeps that measured; opusinfo/opusdec accept the streams, and family 1
//!   (up to 8 channels) is what Chromium and Firefox decode for
//!   multichannel Opus. Coupled stereo remains available
//!   ([`RecorderConfig::call_layout`], [`Layout::CoupledStereo`]).
//! * **Meeting** ([`MeetingRecorder`]): one mono stream per participant
//!   plus one mono mixed stream for playback. Participants are
//!   identified by an opaque [`ParticipantKey`] (mapping Teams'
//!   active-speaker ids and roster ids to keys is the gateway's job).
//!   *Alignment uses a start offset, not leading silence*: a
//!   participant's stream begins at the 20 ms slot they joined
//!   ([`MeetingRecorder::add_participant`] returns the offset, to be
//!   stored as `MediaStream.start_ms`) and is gap-free from there to
//!   their leave or the meeting's end; sample `n` of the stream plays at
//!   `start_ms + n/16` ms of the meeting. The mixed stream starts at the
//!   meeting start. The mix is the sum of the slot's frames, exact up to
//!   0.75 full scale and soft-clipped above ([`mix::Mixer`]).
//!   *Unmixed buffers*: Teams delivers up to four active speakers per
//!   20 ms, each tagged with an active-speaker id; push each as "frame of
//!   participant X at timestamp T" ([`MeetingRecorder::push`], or
//!   [`MeetingRecorder::push_unmixed`] for a buffer set). A participant
//!   without a frame in a slot is silent there; after three silent frames
//!   the encoder repeats its last silence packet instead of running, so
//!   silent participants cost next to nothing.
//! * **Opus pass-through** ([`OpusPassthrough`]): when the adapter sends
//!   20 ms mono Opus packets, they are ordered by the same timeline and
//!   stored without re-encoding (gaps become packets of digital silence).
//!   One mono stream per source; a two-party call's two packet streams
//!   become one two-channel call stream of the PCM path's layout
//!   ([`CallPassthrough`]: per 20 ms one multistream packet, the
//!   caller's packet in self-delimiting framing, RFC 6716 appendix B).
//!
//! # Timeline rules
//!
//! Frames carry a sequence number and a timestamp in 100 ns ticks (Teams'
//! unit). [`Timeline`] (several lanes sharing one clock; [`Track`] is the
//! one-lane form) applies these rules, each pinned by a unit test in
//! `timeline.rs`:
//!
//! 1. **The timestamp decides the slot**: slot = round((ticks − origin) /
//!    20 ms), so timestamps may jitter by ±10 ms. The origin is the
//!    call's/meeting's start if given (ticks of the *media* clock),
//!    otherwise the first frame. The sequence number only tells a
//!    duplicate from a different frame.
//! 2. **Release after the reorder window**: the clock is the newest slot
//!    seen on any lane; every slot at least `reorder_window` (default 3 =
//!    60 ms) behind it is released, for all lanes at once, in order. So
//!    the output is gap-free and the lanes stay sample-aligned; the
//!    recorder's latency is 60 ms.
//! 3. **Gaps become silence**: a released slot without a frame is
//!    [`LaneSlot::Silence`]; nothing is buffered for it.
//! 4. **Reordering within the window is repaired** (counted `reordered`).
//! 5. **Duplicates are dropped**: a frame for a slot that holds (or, for
//!    the last 64 slots, held) the frame with the same sequence number
//!    (`duplicates`); a *different* frame for a taken slot is dropped too,
//!    the first wins (`conflicts`).
//! 6. **Late frames are dropped**: a frame for an already released slot
//!    (`late`), up to `late_horizon` (default 50 slots = 1 s) behind.
//! 7. **Gaps up to `max_gap`** (default 45 000 slots = 15 minutes) are
//!    filled with silence, keeping the recording aligned with the media
//!    clock (e.g. a participant silent for minutes in unmixed mode).
//! 8. **Clock discontinuities**: a frame more than `max_gap` ahead, or
//!    more than `late_horizon` behind, is held as a *suspect*. If the next
//!    out-of-range frame (any lane) agrees with it (within the window),
//!    the source clock really jumped: the clock re-anchors so both frames
//!    continue right after the newest slot, with no silence for the jump
//!    (`discontinuities`). A suspect that is not confirmed is dropped
//!    (`out_of_range`), so one corrupt timestamp can neither insert
//!    minutes of silence nor shift the timeline.
//! 9. **Memory per lane is bounded** by the window: at most
//!    `reorder_window + 1` frames (640 bytes each) plus one suspect per
//!    timeline. A gap of any length costs no memory.
//! 10. **Moving the clock without frames**: [`Timeline::advance_to`]
//!     (e.g. from the gateway's wall-clock timer while nobody speaks)
//!     releases silence up to a timestamp, within `max_gap`.
//!
//! Clock drift between the sender's sample clock and its timestamps is
//! not corrected: a frame that drifts onto a taken slot is a conflict,
//! one that drifts past a slot leaves 20 ms of silence.
//!
//! # Ogg Opus details (RFC 7845, RFC 7587 framing of RFC 6716 packets)
//!
//! * Page 0 carries `OpusHead` alone (BOS): version 1, channel count,
//!   **pre-skip = the encoder's lookahead in 48 kHz samples** (312 =
//!   6.5 ms for 16 kHz VoIP), input sample rate 16 000, output gain 0,
//!   mapping family 0 (mono, coupled stereo) or 1 (calls, see above).
//! * Page 1 carries `OpusTags` alone: vendor string `Insights recorder
//!   (libopus x.y)` and **no user comments** — names and numbers never go
//!   into media files.
//! * Audio pages: the granule position of a page is the number of 48 kHz
//!   samples decoded up to the last packet completed on it, pre-skip
//!   included. At the end the encoder is fed silence until its lookahead
//!   is out, a partial last frame is zero-padded, and the **final page's
//!   granule is end-trimmed** to `pre_skip + 3 × input samples`, so the
//!   decoded stream is exactly as long as the input. The final page has
//!   EOS. Serial numbers are random.
//! * **Page policy**: a page completes after 50 packets (1 s), or on
//!   [`OggOpusWriter::flush_page`] (via the recorders' `flush_page`),
//!   which writes every packet but the newest — that one (20 ms) is held
//!   so the final page can carry EOS and the trimmed granule. Call
//!   `flush_page` about once a second and sync the file: a crash then
//!   loses at most the last second. Note for the spool: an
//!   `EnvelopeWriter` only writes a chunk once it is full, so the chunk
//!   size bounds what is durable too; a mono stream produces about
//!   3 KB/s, so chunks of 1–2 KiB keep "durable within a second" true
//!   (64 KiB chunks would hold ~20 s in memory).
//! * Pages are built by the `ogg` crate (lacing, CRC-32); the tests check
//!   them with an independent parser and bitwise CRC, and with `opusinfo`
//!   and `opusdec` when installed.
//!
//! # Encoder and the choice of complexity
//!
//! [`OpusEncoder`]: libopus at 16 kHz, `Application::Voip`, VBR,
//! 24 kbit/s per channel, 20 ms frames (320 samples per channel).
//! **Default complexity: 1** ([`encoder::DEFAULT_COMPLEXITY`]), measured
//! with `benches/pipeline.rs` (60 s of espeak-ng speech, release build,
//! one core):
//!
//! | complexity | libopus alone | our pipeline (timeline → Opus → Ogg → AES-GCM envelope) | two-party calls | LSD | seg. SNR |
//! |---|---|---|---|---|---|
//! | 0 | 636× real time | 623 streams/core | 308 | 5.8 dB | 8.7 dB |
//! | **1** | 591× | **580** streams/core | **288** | 5.8 dB | 8.6 dB |
//! | 2–3 | 296–325× | 296–324 | 145–161 | 5.7 dB | 8.8 dB |
//! | 4–5 | 224× | 223 | 110 | 4.7 dB | 9.0 dB |
//! | 8–10 | 155× | 154 | 77 | 4.2 dB | 9.0 dB |
//!
//! (Thread CPU time, best of 5; LSD = log-spectral distance to the
//! input, lower is better; bit rates 20–22 kbit/s at all complexities.)
//! The issue's goal is ≥ 500 streams (250 two-party calls) per core at
//! ≤ 1.25× the cost of raw libopus. The pipeline adds 0–2 % to libopus at
//! every complexity, so the codec alone decides: only complexities 0 and
//! 1 reach 500. Between them, 1 uses the better pitch estimator and a
//! higher LPC order for ~8 % more CPU, at the same bit rate and spectral
//! distance, so 1 it is. What complexity ≥ 4 buys is a finer spectral
//! envelope (log-spectral distance 5.8 → 4.7 dB; higher LPC and
//! noise-shaping orders) at 2.6× the CPU; waveform SNR barely moves, and
//! at complexity 1 the speech stays wideband (8 kHz audio bandwidth) and
//! intelligible — it is the setting low-power VoIP devices use. A
//! deployment that needs fewer than ~100 calls per core can set 5.
//! Complexities 2–3 add a delayed-decision quantizer that halves speed for
//! no measurable gain. The Opus pass-through path ([`OpusPassthrough`])
//! sustains about 70 000 streams per core (the goal is 2 000).
//!
//! # Decoding
//!
//! * [`decode_ogg_opus`]: any Ogg Opus stream of mapping family 0 or 1 →
//!   PCM per channel at 8–48 kHz, honouring pre-skip, output gain and end
//!   trimming (used by tests; the AI pipeline will use it too).
//! * [`decode_file`] / [`decode_reader`] / [`decode_bytes`]: imports.
//!   WAV (PCM, float, ADPCM), FLAC, MP3 (and MP1/2), Ogg Vorbis, AIFF, CAF,
//!   MP4/M4A (AAC, ALAC) and MKV/WebM through `symphonia` 0.6, and Ogg
//!   Opus through our decoder → 16 kHz mono s16 (channels averaged,
//!   resampled with `rubato`'s FFT resampler, its delay trimmed). The
//!   content decides the format; the extension is only a hint.

#![forbid(unsafe_code)]

pub mod call;
pub mod decode;
pub mod encoder;
pub mod import;
pub mod meeting;
pub mod mix;
pub mod ogg_opus;
pub mod passthrough;
pub mod stream_decode;
pub mod test_signal;
pub mod timeline;

pub use call::{CallRecorder, CallSummary, Side};
pub use decode::{DecodedOpus, PacketDecoder, decode_ogg_opus};
pub use encoder::{EncoderConfig, Layout, OpusEncoder, OpusOggEncoder};
pub use import::{Pcm16k, decode_bytes, decode_file, decode_reader};
pub use meeting::{MeetingOutput, MeetingRecorder, ParticipantKey, ParticipantTrack, TrackStart};
pub use ogg_opus::{ChannelMapping, OggOptions, OggOpusWriter, OpusHead};
pub use passthrough::{CallPassthrough, OpusPassthrough};
pub use stream_decode::OpusStream;
pub use timeline::{
    ClockStats, LaneSlot, LaneStart, LaneStats, PushOutcome, Timeline, TimelineConfig, Track,
};

/// Sample rate of recorded PCM (Teams delivers 16 kHz).
pub const SAMPLE_RATE: u32 = 16_000;
/// Opus' reference rate: granule positions and pre-skip count 48 kHz samples.
pub const OPUS_RATE: u32 = 48_000;
/// Frame length in milliseconds.
pub const FRAME_MS: u32 = 20;
/// Samples per channel in one 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
/// One frame in Teams' 100 ns ticks.
pub const TICKS_PER_FRAME: i64 = 200_000;

/// One frame of PCM as the timeline stores it.
pub type Frame = [i16; FRAME_SAMPLES];

/// Errors of the recorder.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// libopus refused an operation.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The output (or input) failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame or packet of the wrong shape.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// A frame for a participant the recorder does not know.
    #[error("unknown participant #{0}")]
    UnknownParticipant(u32),
    /// Not a valid Ogg Opus stream.
    #[error("invalid Ogg Opus stream: {0}")]
    InvalidStream(String),
    /// An import could not be decoded.
    #[error("import: {0}")]
    Import(String),
    /// A setting or argument out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The audio is longer than the caller allows (see
    /// [`stream_decode::OpusStream`]).
    #[error("the audio is longer than the maximum of {max_secs} s")]
    TooLong { max_secs: u64 },
}

impl From<ogg::OggReadError> for RecorderError {
    fn from(e: ogg::OggReadError) -> Self {
        match e {
            ogg::OggReadError::ReadError(io) => Self::Io(io),
            other => Self::InvalidStream(other.to_string()),
        }
    }
}

/// Result of the recorder (`RecorderError` by default).
pub type Result<T, E = RecorderError> = std::result::Result<T, E>;

/// One 20 ms frame of 16 kHz mono s16 PCM as delivered by the media
/// adapter.
#[derive(Clone, Copy, Debug)]
pub struct PcmFrame<'a> {
    /// Sequence number from the adapter (identifies duplicates).
    pub seq: u64,
    /// Capture timestamp in 100 ns ticks of the media clock.
    pub ticks: i64,
    /// 320 samples.
    pub pcm: &'a [i16],
}

impl PcmFrame<'_> {
    fn payload(&self) -> Result<Frame> {
        self.pcm.try_into().map_err(|_| {
            RecorderError::InvalidFrame(format!(
                "a frame has {FRAME_SAMPLES} samples, got {}",
                self.pcm.len()
            ))
        })
    }
}

/// Reads one frame of s16le PCM as the adapter sends it on the wire
/// (640 bytes: 320 little-endian 16-bit samples).
pub fn frame_from_s16le(bytes: &[u8]) -> Result<Frame> {
    if bytes.len() != 2 * FRAME_SAMPLES {
        return Err(RecorderError::InvalidFrame(format!(
            "a 20 ms s16le frame has {} bytes, got {}",
            2 * FRAME_SAMPLES,
            bytes.len()
        )));
    }
    let mut frame = [0i16; FRAME_SAMPLES];
    for (s, b) in frame.iter_mut().zip(bytes.chunks_exact(2)) {
        *s = i16::from_le_bytes([b[0], b[1]]);
    }
    Ok(frame)
}

/// All settings of a recorder.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Opus settings.
    pub encoder: EncoderConfig,
    /// Timeline rules.
    pub timeline: TimelineConfig,
    /// Page policy.
    pub ogg: OggOptions,
    /// How a call's two channels are coded (default [`Layout::DualMono`]).
    pub call_layout: Layout,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderConfig::default(),
            timeline: TimelineConfig::default(),
            ogg: OggOptions::default(),
            call_layout: Layout::DualMono,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn s16le_frames_are_read_little_endian() {
        let mut bytes = vec![0u8; 640];
        bytes[0..2].copy_from_slice(&(-2i16).to_le_bytes());
        bytes[638..640].copy_from_slice(&12345i16.to_le_bytes());
        let frame = frame_from_s16le(&bytes).unwrap();
        assert_eq!((frame[0], frame[1], frame[319]), (-2, 0, 12345));
        assert!(frame_from_s16le(&bytes[..639]).is_err());
        let pcm = PcmFrame {
            seq: 0,
            ticks: 0,
            pcm: &frame,
        };
        assert_eq!(pcm.payload().unwrap(), frame);
        assert!(
            PcmFrame {
                seq: 0,
                ticks: 0,
                pcm: &frame[..300]
            }
            .payload()
            .is_err()
        );
    }
}
