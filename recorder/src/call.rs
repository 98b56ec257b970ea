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
pub struct CallRecorder<W: Write> {
    timeline: Timeline<Frame>,
    out: OpusOggEncoder<W>,
    stereo: Vec<i16>,
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
        })
    }

    /// Pushes one 20 ms frame of one side.
    pub fn push(&mut self, side: Side, frame: PcmFrame<'_>) -> Result<PushOutcome> {
        let payload = frame.payload()?;
        let Self {
            timeline,
            out,
            stereo,
        } = self;
        timeline.push(
            side.channel(),
            frame.seq,
            frame.ticks,
            payload,
            &mut |_, lanes| emit(out, stereo, lanes),
        )
    }

    /// Moves the clock without a frame; see [`Timeline::advance_to`].
    pub fn advance_to(&mut self, ticks: i64) -> Result<bool> {
        let Self {
            timeline,
            out,
            stereo,
        } = self;
        timeline.advance_to(ticks, &mut |_, lanes| emit(out, stereo, lanes))
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
        } = &mut self;
        timeline.flush(&mut |_, lanes| emit(out, stereo, lanes))?;
        let summary = self.summary();
        Ok((self.out.finish()?, summary))
    }
}

fn emit<W: Write>(
    out: &mut OpusOggEncoder<W>,
    stereo: &mut [i16],
    lanes: &mut [LaneSlot<Frame>],
) -> Result<()> {
    let [left, right] = lanes else {
        return Err(RecorderError::InvalidFrame("a call has two lanes".into()));
    };
    if !left.is_audio() && !right.is_audio() {
        return out.write_silence();
    }
    for (ch, lane) in [(0, &*left), (1, &*right)] {
        match lane {
            LaneSlot::Audio(frame) => {
                for (i, &s) in frame.iter().enumerate() {
                    stereo[2 * i + ch] = s;
                }
            }
            _ => {
                for i in 0..FRAME_SAMPLES {
                    stereo[2 * i + ch] = 0;
                }
            }
        }
    }
    out.write_frame(stereo)
}
