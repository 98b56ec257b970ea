//! The two-party call layout: one two-channel Ogg Opus stream, caller
//! left, callee right.

use std::io::Write;

use crate::encoder::OpusOggEncoder;
use crate::timeline::{ClockStats, LaneSlot, LaneStart, LaneStats, PushOutcome, Timeline};
use crate::{FRAME_SAMPLES, Frame, PcmFrame, RecorderConfig, RecorderError, Result};

/// A side of a two-party call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The calling party: left channel (channel 0).
    Caller,
    /// The called party: right channel (channel 1).
    Callee,
}

impl Side {
    /// The channel index: 0 for the caller, 1 for the callee.
    pub fn channel(self) -> usize {
        match self {
            Self::Caller => 0,
            Self::Callee => 1,
        }
    }
}

/// What a finished call recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSummary {
    /// Length of the stream in milliseconds.
    pub duration_ms: u64,
    /// Counters of the caller's frames.
    pub caller: LaneStats,
    /// Counters of the callee's frames.
    pub callee: LaneStats,
    /// Counters of the clock.
    pub clock: ClockStats,
}

/// Records a two-party call into ONE two-channel Ogg Opus stream: the
/// caller's frames only ever reach channel 0 (left), the callee's only
/// channel 1 (right). Both sides share one [`Timeline`], so the channels
/// are sample-aligned; a side without a frame for a slot is silent there.
///
/// The channels are coded as [`RecorderConfig::call_layout`] says:
/// [`crate::Layout::DualMono`] by default (two independent mono Opus streams,
/// mapping family 1), so not even the codec can carry one side's voice
/// into the other's channel.
///
/// More sources than the two sides (a participant added to a SIPREC
/// call) get lanes of their own ([`CallRecorder::add_lane`]) that are
/// mixed into their side's channel: the layout stays two channels.
pub struct CallRecorder<W: Write> {
    timeline: Timeline<Frame>,
    out: OpusOggEncoder<W>,
    stereo: Vec<i16>,
    /// The side (channel) of every lane; lanes 0 and 1 are the caller's
    /// and the callee's.
    sides: Vec<Side>,
}

impl<W: Write> CallRecorder<W> {
    /// Starts the recording into `out`. `start_ticks` (100 ns ticks of the
    /// media clock) is the call's slot 0; frames before it are dropped.
    /// `None` starts at the first frame.
    pub fn new(out: W, config: &RecorderConfig, start_ticks: Option<i64>) -> Result<Self> {
        if config.call_layout.channels() != 2 {
            return Err(RecorderError::Config(
                "a call is recorded into two channels".into(),
            ));
        }
        let mut timeline = Timeline::new(config.timeline.clone(), start_ticks)?;
        timeline.add_lane(LaneStart::Now);
        timeline.add_lane(LaneStart::Now);
        let out = OpusOggEncoder::new(out, config.call_layout, &config.encoder, &config.ogg)?;
        Ok(Self {
            timeline,
            out,
            stereo: vec![0; 2 * FRAME_SAMPLES],
            sides: vec![Side::Caller, Side::Callee],
        })
    }

    /// Pushes one 20 ms frame of one side.
    pub fn push(&mut self, side: Side, frame: PcmFrame<'_>) -> Result<PushOutcome> {
        self.push_lane(side.channel(), frame)
    }

    /// Adds a source mixed into `side`'s channel from the current
    /// release point on; returns its lane for [`Self::push_lane`].
    pub fn add_lane(&mut self, side: Side) -> usize {
        self.sides.push(side);
        self.timeline.add_lane(LaneStart::Now)
    }

    /// Pushes one 20 ms frame of a lane (0: caller, 1: callee, then the
    /// lanes of [`Self::add_lane`]).
    pub fn push_lane(&mut self, lane: usize, frame: PcmFrame<'_>) -> Result<PushOutcome> {
        let payload = frame.payload()?;
        let Self {
            timeline,
            out,
            stereo,
            sides,
        } = self;
        timeline.push(lane, frame.seq, frame.ticks, payload, &mut |_, lanes| {
            emit(out, stereo, sides, lanes)
        })
    }

    /// Moves the clock without a frame; see [`Timeline::advance_to`].
    pub fn advance_to(&mut self, ticks: i64) -> Result<bool> {
        let Self {
            timeline,
            out,
            stereo,
            sides,
        } = self;
        timeline.advance_to(ticks, &mut |_, lanes| emit(out, stereo, sides, lanes))
    }

    /// Completes the current Ogg page and flushes the output: call about
    /// once a second (see [`crate::OggOpusWriter::flush_page`]).
    pub fn flush_page(&mut self) -> Result<()> {
        self.out.flush_page()
    }

    /// Counters so far.
    pub fn summary(&self) -> CallSummary {
        CallSummary {
            duration_ms: self.out.samples() * 1000 / u64::from(crate::SAMPLE_RATE),
            caller: self.timeline.lane_stats(0).unwrap_or_default(),
            callee: self.timeline.lane_stats(1).unwrap_or_default(),
            clock: self.timeline.clock_stats(),
        }
    }

    /// The output writer.
    pub fn get_ref(&self) -> &W {
        self.out.ogg().get_ref()
    }

    /// Releases everything held, writes the final page and returns the
    /// writer with the summary.
    pub fn finish(mut self) -> Result<(W, CallSummary)> {
        let Self {
            timeline,
            out,
            stereo,
            sides,
        } = &mut self;
        timeline.flush(&mut |_, lanes| emit(out, stereo, sides, lanes))?;
        let summary = self.summary();
        Ok((self.out.finish()?, summary))
    }
}

fn emit<W: Write>(
    out: &mut OpusOggEncoder<W>,
    stereo: &mut [i16],
    sides: &[Side],
    lanes: &mut [LaneSlot<Frame>],
) -> Result<()> {
    if lanes.len() < 2 || lanes.len() != sides.len() {
        return Err(RecorderError::InvalidFrame(
            "a call has a side per lane".into(),
        ));
    }
    if !lanes.iter().any(LaneSlot::is_audio) {
        return out.write_silence();
    }
    stereo.fill(0);
    for (lane, side) in lanes.iter().zip(sides) {
        if let LaneSlot::Audio(frame) = lane {
            let ch = side.channel();
            for (i, &s) in frame.iter().enumerate() {
                stereo[2 * i + ch] = stereo[2 * i + ch].saturating_add(s);
            }
        }
    }
    out.write_frame(stereo)
}
