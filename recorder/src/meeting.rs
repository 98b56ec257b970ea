//! The meeting layout: one mono Ogg Opus stream per participant plus a
//! mixed mono stream for playback.

use std::io::Write;

use crate::encoder::{Layout, OpusOggEncoder};
use crate::mix::Mixer;
use crate::timeline::{ClockStats, LaneSlot, LaneStart, LaneStats, PushOutcome, Timeline};
use crate::{FRAME_MS, Frame, PcmFrame, RecorderConfig, RecorderError, Result, SAMPLE_RATE};

/// Opaque participant identity inside one recorder. Mapping Teams'
/// active-speaker ids and roster entries to keys is the gateway's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub u32);

impl std::fmt::Display for ParticipantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "participant #{}", self.0)
    }
}

/// Where a participant's track begins relative to the meeting start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackStart {
    /// First 20 ms slot of the track.
    pub slot: i64,
    /// The same in milliseconds: what `MediaStream.start_ms` stores.
    pub start_ms: i64,
}

/// One participant's finished stream.
#[derive(Debug)]
pub struct ParticipantTrack<W> {
    /// Whose track it is.
    pub key: ParticipantKey,
    /// The writer the stream went to.
    pub output: W,
    /// Offset of the track's first sample from the meeting start.
    pub start_ms: i64,
    /// Length of the track.
    pub duration_ms: u64,
    /// Frame counters.
    pub stats: LaneStats,
}

/// Everything a finished meeting recording produced.
#[derive(Debug)]
pub struct MeetingOutput<W> {
    /// The mixed playback stream (starts at the meeting start).
    pub mix: W,
    /// Length of the mixed stream (= of the meeting).
    pub duration_ms: u64,
    /// Every participant track, in the order they were finished.
    pub tracks: Vec<ParticipantTrack<W>>,
    /// Clock counters.
    pub clock: ClockStats,
}

struct Member<W: Write> {
    key: ParticipantKey,
    start_ms: i64,
    encoder: Option<OpusOggEncoder<W>>,
    left: bool,
}

/// Records a meeting: every participant into their own mono stream,
/// all of them aligned to the meeting start, plus a mixed stream.
///
/// * **Alignment: start offset, not leading silence.** A participant's
///   stream begins at the slot they joined ([`MeetingRecorder::add_participant`])
///   and its offset from the meeting start is returned
///   ([`TrackStart::start_ms`], stored as `MediaStream.start_ms`). From
///   there on it is gap-free to the slot they left or the meeting ended:
///   sample `n` of the track is at `start_ms + n / 16` ms of the meeting.
///   The mixed stream starts at the meeting start.
/// * **Unmixed buffers:** Teams delivers up to four active speakers per
///   20 ms, each tagged with an active-speaker id; the gateway maps the id
///   to a [`ParticipantKey`] and pushes "frame of speaker X at timestamp
///   T" ([`MeetingRecorder::push`], or [`MeetingRecorder::push_unmixed`]
///   for a whole buffer set). Participants without a frame in a slot are
///   silent there; silence is nearly free to encode.
/// * **Mix:** the sum of all participants' frames of a slot with a soft
///   clip above 0.75 full scale ([`crate::mix::Mixer`]).
pub struct MeetingRecorder<W: Write> {
    timeline: Timeline<Frame>,
    members: Vec<Member<W>>,
    mix: OpusOggEncoder<W>,
    mixer: Mixer,
    finished: Vec<ParticipantTrack<W>>,
    config: RecorderConfig,
    leaving: usize,
}

impl<W: Write> MeetingRecorder<W> {
    /// Starts a meeting recording; the mixed stream goes to `mix_out`.
    /// `start_ticks` (100 ns ticks of the media clock) is the meeting's
    /// slot 0, or the first frame's timestamp if `None`.
    pub fn new(mix_out: W, config: &RecorderConfig, start_ticks: Option<i64>) -> Result<Self> {
        let timeline = Timeline::new(config.timeline.clone(), start_ticks)?;
        let mix = OpusOggEncoder::new(mix_out, Layout::Mono, &config.encoder, &config.ogg)?;
        Ok(Self {
            timeline,
            members: Vec::new(),
            mix,
            mixer: Mixer::default(),
            finished: Vec::new(),
            config: config.clone(),
            leaving: 0,
        })
    }

    /// Adds a participant whose stream goes to `out`, starting at
    /// `joined_ticks` (or now, if `None` or already released). A key that
    /// is still in the meeting is refused; a key that left may join again
    /// with a new stream.
    pub fn add_participant(
        &mut self,
        key: ParticipantKey,
        out: W,
        joined_ticks: Option<i64>,
    ) -> Result<TrackStart> {
        if self.member(key).is_some() {
            return Err(RecorderError::Config(format!("{key} is already recording")));
        }
        let encoder =
            OpusOggEncoder::new(out, Layout::Mono, &self.config.encoder, &self.config.ogg)?;
        let lane = self
            .timeline
            .add_lane(joined_ticks.map_or(LaneStart::Now, LaneStart::At));
        let slot = self.timeline.lane_start(lane).unwrap_or(0);
        let start_ms = slot * i64::from(FRAME_MS);
        debug_assert_eq!(lane, self.members.len());
        self.members.push(Member {
            key,
            start_ms,
            encoder: Some(encoder),
            left: false,
        });
        Ok(TrackStart { slot, start_ms })
    }

    /// Ends a participant's stream after the newest slot. The stream is
    /// completed once that slot is released; collect it with
    /// [`MeetingRecorder::take_finished`] (or from [`MeetingRecorder::finish`]).
    pub fn remove_participant(&mut self, key: ParticipantKey) -> Result<()> {
        let lane = self
            .member(key)
            .ok_or(RecorderError::UnknownParticipant(key.0))?;
        self.timeline.end_lane(lane)?;
        self.members[lane].left = true;
        self.leaving += 1;
        self.collect_finished()
    }

    /// Participant streams completed so far (participants who left).
    pub fn take_finished(&mut self) -> Vec<ParticipantTrack<W>> {
        std::mem::take(&mut self.finished)
    }

    /// Pushes one 20 ms frame of participant `key`.
    /// Frames of a participant who left are still placed if their slot
    /// is before the leave; later ones count as `inactive`.
    pub fn push(&mut self, key: ParticipantKey, frame: PcmFrame<'_>) -> Result<PushOutcome> {
        let lane = self
            .members
            .iter()
            .rposition(|m| m.key == key && m.encoder.is_some())
            .ok_or(RecorderError::UnknownParticipant(key.0))?;
        let payload = frame.payload()?;
        let Self {
            timeline,
            members,
            mix,
            mixer,
            ..
        } = self;
        let outcome = timeline.push(lane, frame.seq, frame.ticks, payload, &mut |_, lanes| {
            emit(members, mix, mixer, lanes)
        })?;
        if self.leaving > 0 {
            self.collect_finished()?;
        }
        Ok(outcome)
    }

    /// Pushes one unmixed buffer set: the frames of up to four active
    /// speakers sharing a sequence number and timestamp. Returns one
    /// outcome per speaker.
    pub fn push_unmixed(
        &mut self,
        seq: u64,
        ticks: i64,
        speakers: &[(ParticipantKey, &[i16])],
    ) -> Result<Vec<PushOutcome>> {
        speakers
            .iter()
            .map(|&(key, pcm)| self.push(key, PcmFrame { seq, ticks, pcm }))
            .collect()
    }

    /// Moves the clock without a frame; see [`Timeline::advance_to`].
    pub fn advance_to(&mut self, ticks: i64) -> Result<bool> {
        let Self {
            timeline,
            members,
            mix,
            mixer,
            ..
        } = self;
        let moved = timeline.advance_to(ticks, &mut |_, lanes| emit(members, mix, mixer, lanes))?;
        if self.leaving > 0 {
            self.collect_finished()?;
        }
        Ok(moved)
    }

    /// Completes the current Ogg page of every stream and flushes them.
    pub fn flush_pages(&mut self) -> Result<()> {
        self.mix.flush_page()?;
        for m in &mut self.members {
            if let Some(enc) = &mut m.encoder {
                enc.flush_page()?;
            }
        }
        Ok(())
    }

    /// Counters of a participant still in the meeting.
    pub fn participant_stats(&self, key: ParticipantKey) -> Option<LaneStats> {
        self.member(key)
            .and_then(|lane| self.timeline.lane_stats(lane))
    }

    /// Clock counters.
    pub fn clock_stats(&self) -> ClockStats {
        self.timeline.clock_stats()
    }

    /// Releases everything held, completes every stream and returns them.
    pub fn finish(mut self) -> Result<MeetingOutput<W>> {
        let Self {
            timeline,
            members,
            mix,
            mixer,
            ..
        } = &mut self;
        timeline.flush(&mut |_, lanes| emit(members, mix, mixer, lanes))?;
        for lane in 0..self.members.len() {
            if !self.members[lane].left {
                self.timeline.end_lane(lane)?;
                self.members[lane].left = true;
                self.leaving += 1;
            }
        }
        self.collect_finished()?;
        let duration_ms = samples_to_ms(self.mix.samples());
        Ok(MeetingOutput {
            mix: self.mix.finish()?,
            duration_ms,
            tracks: self.finished,
            clock: self.timeline.clock_stats(),
        })
    }

    fn member(&self, key: ParticipantKey) -> Option<usize> {
        self.members.iter().rposition(|m| m.key == key && !m.left)
    }

    /// Completes the streams of participants whose last slot is out.
    fn collect_finished(&mut self) -> Result<()> {
        for lane in 0..self.members.len() {
            let m = &mut self.members[lane];
            if !m.left || !self.timeline.lane_done(lane) {
                continue;
            }
            let Some(encoder) = m.encoder.take() else {
                continue;
            };
            self.leaving = self.leaving.saturating_sub(1);
            let duration_ms = samples_to_ms(encoder.samples());
            let output = encoder.finish()?;
            self.finished.push(ParticipantTrack {
                key: m.key,
                output,
                start_ms: m.start_ms,
                duration_ms,
                stats: self.timeline.lane_stats(lane).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

fn samples_to_ms(samples: u64) -> u64 {
    samples * 1000 / u64::from(SAMPLE_RATE)
}

fn emit<W: Write>(
    members: &mut [Member<W>],
    mix: &mut OpusOggEncoder<W>,
    mixer: &mut Mixer,
    lanes: &mut [LaneSlot<Frame>],
) -> Result<()> {
    mixer.clear();
    for (member, lane) in members.iter_mut().zip(lanes.iter()) {
        let Some(encoder) = &mut member.encoder else {
            continue;
        };
        match lane {
            LaneSlot::Inactive => {}
            LaneSlot::Silence => encoder.write_silence()?,
            LaneSlot::Audio(frame) => {
                encoder.write_frame(&frame[..])?;
                mixer.add(frame);
            }
        }
    }
    if mixer.inputs() == 0 {
        mix.write_silence()
    } else {
        mix.write_frame(&mixer.output()[..])
    }
}
