//! The frame timeline: turns frames that arrive with jitter, gaps,
//! duplicates and reordering into a gap-free sequence of 20 ms slots.
//!
//! A [`Timeline`] has one clock and any number of *lanes* (one per
//! participant or call side); all lanes are released slot by slot in
//! lockstep, so lanes recorded into one file (stereo call) or mixed
//! (meeting) stay sample-aligned. [`Track`] is the one-lane convenience.
//! The rules are documented in the crate documentation ("Timeline
//! rules") and pinned by the tests below.

use std::collections::VecDeque;

use crate::{RecorderError, TICKS_PER_FRAME};

/// How many emitted slots per lane remember the sequence number of the
/// frame they carried, to tell a duplicate from a late frame.
const RECENT: usize = 64;

/// Timeline settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Slots a frame may arrive after a later one and still be put in
    /// order (default 3 = 60 ms). This is also the delay before a slot is
    /// released, and bounds the frames held per lane.
    pub reorder_window: u32,
    /// Largest forward jump of the clock, in slots, that is filled with
    /// silence (default 45 000 = 15 minutes). A larger jump is a
    /// discontinuity.
    pub max_gap: u32,
    /// Slots behind the release point within which a frame counts as
    /// *late* (dropped). A frame further back means the source clock
    /// stepped back: a discontinuity (default 50 = 1 s).
    pub late_horizon: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            reorder_window: 3,
            max_gap: 45_000,
            late_horizon: 50,
        }
    }
}

impl TimelineConfig {
    fn check(&self) -> Result<(), RecorderError> {
        if self.reorder_window > 50 {
            return Err(RecorderError::Config(format!(
                "reorder window of {} frames exceeds 1 s",
                self.reorder_window
            )));
        }
        if self.max_gap == 0 || self.late_horizon == 0 {
            return Err(RecorderError::Config(
                "max_gap and late_horizon must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// What happened to one pushed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Placed in its slot, in order.
    Accepted,
    /// Placed in its slot although a frame with a later slot came first.
    Reordered,
    /// Dropped: the same frame (sequence number) is already in its slot.
    Duplicate,
    /// Dropped: a different frame already holds the slot (timestamps
    /// closer than 20 ms, e.g. jitter); the first one wins.
    Conflict,
    /// Dropped: its slot was already released (later than the reorder
    /// window allows).
    Late,
    /// Dropped: the lane does not cover the slot (before the
    /// participant's start or after they left).
    Inactive,
    /// Held as a *candidate*: the timestamp is out of range (a jump
    /// beyond `max_gap`, or back beyond `late_horizon`). If the next
    /// out-of-range frame agrees with it, the clock re-anchors and both
    /// are placed; otherwise it is dropped and counted `out_of_range`.
    Suspect,
    /// Confirmed a clock discontinuity: the clock re-anchored so that this
    /// frame and the candidate continue right after the newest slot.
    Reanchored,
}

/// Counters of one lane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Frames pushed.
    pub frames_in: u64,
    /// Frames placed (including reordered ones).
    pub accepted: u64,
    /// Frames placed out of arrival order.
    pub reordered: u64,
    /// Frames dropped as duplicates.
    pub duplicates: u64,
    /// Frames dropped because their slot was taken by another frame.
    pub conflicts: u64,
    /// Frames dropped as later than the reorder window.
    pub late: u64,
    /// Frames dropped outside the lane's span.
    pub inactive: u64,
    /// Slots emitted with audio.
    pub audio_slots: u64,
    /// Slots emitted as silence (gaps).
    pub silence_slots: u64,
}

impl LaneStats {
    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.duplicates + self.conflicts + self.late + self.inactive
    }
}

/// Counters of the clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockStats {
    /// Clock discontinuities (re-anchorings).
    pub discontinuities: u64,
    /// Isolated frames with out-of-range timestamps, dropped.
    pub out_of_range: u64,
}

/// A lane's content for one released slot.
#[derive(Debug, PartialEq, Eq)]
pub enum LaneSlot<P> {
    /// The lane does not cover this slot.
    Inactive,
    /// No frame arrived for this slot: a gap.
    Silence,
    /// The frame for this slot.
    Audio(P),
}

impl<P> LaneSlot<P> {
    /// Whether the slot carries audio.
    pub fn is_audio(&self) -> bool {
        matches!(self, Self::Audio(_))
    }
}

/// Where a new lane begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneStart {
    /// At the current release point: the next slot not yet released.
    Now,
    /// At the slot of this timestamp (100 ns ticks), or at the release
    /// point if that slot was already released.
    At(i64),
}

#[derive(Debug)]
struct Held<P> {
    slot: i64,
    seq: u64,
    payload: P,
}

#[derive(Debug)]
struct Lane<P> {
    start: i64,
    /// First slot no longer covered, once the lane has ended.
    end: Option<i64>,
    /// Frames waiting for release, sorted by slot, all at or after the
    /// release point.
    held: VecDeque<Held<P>>,
    /// `(slot, seq)` of recently emitted audio slots, indexed by slot.
    recent: [(i64, u64); RECENT],
    stats: LaneStats,
}

impl<P> Lane<P> {
    fn covers(&self, slot: i64) -> bool {
        slot >= self.start && self.end.is_none_or(|end| slot < end)
    }
}

#[derive(Debug)]
struct Candidate<P> {
    lane: usize,
    raw: i64,
    seq: u64,
    payload: P,
}

/// A multi-lane frame timeline; see the module docs.
///
/// Frames are pushed with a sequence number and a timestamp in 100 ns
/// ticks. Whenever the clock (the newest slot seen on any lane, or set
/// by [`Timeline::advance_to`]) moves forward, every slot older than the
/// reorder window is released through the `sink` callback, in order, once
/// for all lanes: `sink(slot, lanes)` gets a [`LaneSlot`] per lane
/// (indexed like the lanes). Memory per lane is bounded by the reorder
/// window: at most `reorder_window + 1` frames are held.
#[derive(Debug)]
pub struct Timeline<P> {
    config: TimelineConfig,
    /// Timestamp of slot 0.
    origin: Option<i64>,
    /// Correction added to raw slots after discontinuities.
    offset: i64,
    /// Newest slot the clock has reached.
    newest: Option<i64>,
    /// Next slot to release; all earlier ones were released.
    released: i64,
    candidate: Option<Candidate<P>>,
    lanes: Vec<Lane<P>>,
    scratch: Vec<LaneSlot<P>>,
    stats: ClockStats,
}

impl<P> Timeline<P> {
    /// A timeline whose slot 0 starts at `origin` (100 ns ticks of the
    /// media clock), or at the first frame's timestamp if `None`.
    pub fn new(config: TimelineConfig, origin: Option<i64>) -> Result<Self, RecorderError> {
        config.check()?;
        Ok(Self {
            config,
            origin,
            offset: 0,
            newest: None,
            released: 0,
            candidate: None,
            lanes: Vec::new(),
            scratch: Vec::new(),
            stats: ClockStats::default(),
        })
    }

    /// Adds a lane and returns its index. A lane starting at a timestamp
    /// before any frame sets the origin if none was given.
    pub fn add_lane(&mut self, start: LaneStart) -> usize {
        let start = match start {
            LaneStart::Now => self.released,
            LaneStart::At(ticks) => {
                let origin = *self.origin.get_or_insert(ticks);
                (raw_slot(origin, ticks) + self.offset).max(self.released)
            }
        };
        self.lanes.push(Lane {
            start,
            end: None,
            held: VecDeque::new(),
            recent: [(i64::MIN, 0); RECENT],
            stats: LaneStats::default(),
        });
        self.lanes.len() - 1
    }

    /// Ends a lane after the newest slot of the clock: it is released
    /// normally up to there (held frames included) and is
    /// [`LaneSlot::Inactive`] afterwards. Returns the end slot.
    pub fn end_lane(&mut self, lane: usize) -> Result<i64, RecorderError> {
        let end = self
            .newest
            .map_or(self.released, |n| n + 1)
            .max(self.released);
        let l = self.lane_mut(lane)?;
        let end = *l.end.get_or_insert(end.max(l.start));
        Ok(end)
    }

    /// Whether every slot of an ended lane has been released.
    pub fn lane_done(&self, lane: usize) -> bool {
        self.lanes
            .get(lane)
            .and_then(|l| l.end)
            .is_some_and(|end| self.released >= end)
    }

    /// First slot of a lane.
    pub fn lane_start(&self, lane: usize) -> Option<i64> {
        self.lanes.get(lane).map(|l| l.start)
    }

    /// Number of lanes.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Counters of a lane.
    pub fn lane_stats(&self, lane: usize) -> Option<LaneStats> {
        self.lanes.get(lane).map(|l| l.stats)
    }

    /// Counters of the clock.
    pub fn clock_stats(&self) -> ClockStats {
        self.stats
    }

    /// The next slot to be released (= number of slots released so far).
    pub fn released(&self) -> i64 {
        self.released
    }

    /// The newest slot the clock reached, if any.
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    /// Frames currently held for reordering (all lanes).
    pub fn held(&self) -> usize {
        self.lanes.iter().map(|l| l.held.len()).sum::<usize>()
            + usize::from(self.candidate.is_some())
    }

    fn lane_mut(&mut self, lane: usize) -> Result<&mut Lane<P>, RecorderError> {
        self.lanes
            .get_mut(lane)
            .ok_or_else(|| RecorderError::InvalidFrame(format!("no lane {lane}")))
    }

    /// Pushes one frame of `lane`; releases whatever became ready through
    /// `sink`. The only errors are an unknown lane and errors of `sink`.
    pub fn push<E>(
        &mut self,
        lane: usize,
        seq: u64,
        ticks: i64,
        payload: P,
        sink: &mut impl FnMut(i64, &mut [LaneSlot<P>]) -> Result<(), E>,
    ) -> Result<PushOutcome, E>
    where
        E: From<RecorderError>,
    {
        if lane >= self.lanes.len() {
            return Err(RecorderError::InvalidFrame(format!("no lane {lane}")).into());
        }
        self.lanes[lane].stats.frames_in += 1;
        let origin = *self.origin.get_or_insert(ticks);
        let raw = raw_slot(origin, ticks);
        let slot = raw + self.offset;
        let newest = self.newest.unwrap_or(self.released - 1);
        let window = i64::from(self.config.reorder_window);
        let in_range = slot >= self.released - i64::from(self.config.late_horizon)
            && slot <= newest + i64::from(self.config.max_gap);
        if !in_range {
            return self.suspect(lane, raw, seq, payload, sink);
        }
        if let Some(c) = self.candidate.take() {
            // An in-range frame: the candidate was an isolated outlier.
            self.stats.out_of_range += 1;
            drop(c);
        }
        let outcome = self.place(lane, slot, seq, payload);
        if slot > newest {
            self.newest = Some(slot);
            self.release_through(slot - window, sink)?;
        }
        Ok(outcome)
    }

    /// Handles an out-of-range frame: keeps it as the candidate, or
    /// re-anchors the clock if it agrees with the candidate.
    fn suspect<E>(
        &mut self,
        lane: usize,
        raw: i64,
        seq: u64,
        payload: P,
        sink: &mut impl FnMut(i64, &mut [LaneSlot<P>]) -> Result<(), E>,
    ) -> Result<PushOutcome, E>
    where
        E: From<RecorderError>,
    {
        let window = i64::from(self.config.reorder_window);
        let agrees = self
            .candidate
            .as_ref()
            .is_some_and(|c| (raw - c.raw).abs() <= window + 1);
        if !agrees {
            if self.candidate.is_some() {
                self.stats.out_of_range += 1;
            }
            self.candidate = Some(Candidate {
                lane,
                raw,
                seq,
                payload,
            });
            return Ok(PushOutcome::Suspect);
        }
        let Some(c) = self.candidate.take() else {
            return Ok(PushOutcome::Suspect);
        };
        // Re-anchor: the earlier of the two lands right after the newest
        // slot (no silence is inserted for the jump).
        let newest = self.newest.unwrap_or(self.released - 1);
        self.offset = newest + 1 - raw.min(c.raw);
        self.stats.discontinuities += 1;
        let c_slot = c.raw + self.offset;
        let slot = raw + self.offset;
        self.place(c.lane, c_slot, c.seq, c.payload);
        self.place(lane, slot, seq, payload);
        let top = c_slot.max(slot);
        self.newest = Some(top);
        self.release_through(top - window, sink)?;
        Ok(PushOutcome::Reanchored)
    }

    /// Puts an in-range frame into its lane.
    fn place(&mut self, lane: usize, slot: i64, seq: u64, payload: P) -> PushOutcome {
        let released = self.released;
        let newest = self.newest;
        let l = &mut self.lanes[lane];
        if !l.covers(slot) {
            l.stats.inactive += 1;
            return PushOutcome::Inactive;
        }
        if slot < released {
            let (s, q) = l.recent[slot.rem_euclid(RECENT as i64) as usize];
            if s == slot {
                if q == seq {
                    l.stats.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                l.stats.conflicts += 1;
                return PushOutcome::Conflict;
            }
            l.stats.late += 1;
            return PushOutcome::Late;
        }
        // Insert sorted; the deque is at most reorder_window + 1 long.
        let pos = l.held.partition_point(|h| h.slot < slot);
        if let Some(h) = l.held.get(pos)
            && h.slot == slot
        {
            if h.seq == seq {
                l.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            l.stats.conflicts += 1;
            return PushOutcome::Conflict;
        }
        l.held.insert(pos, Held { slot, seq, payload });
        l.stats.accepted += 1;
        if newest.is_some_and(|n| slot < n) {
            l.stats.reordered += 1;
            PushOutcome::Reordered
        } else {
            PushOutcome::Accepted
        }
    }

    /// Moves the clock to `ticks` without a frame (e.g. from a wall-clock
    /// timer while nobody speaks), releasing what became ready. Returns
    /// `false` (and does nothing) if `ticks` is not ahead of the clock or
    /// jumps beyond `max_gap`.
    pub fn advance_to<E>(
        &mut self,
        ticks: i64,
        sink: &mut impl FnMut(i64, &mut [LaneSlot<P>]) -> Result<(), E>,
    ) -> Result<bool, E> {
        let origin = *self.origin.get_or_insert(ticks);
        let slot = raw_slot(origin, ticks) + self.offset;
        let newest = self.newest.unwrap_or(self.released - 1);
        if slot <= newest || slot > newest + i64::from(self.config.max_gap) {
            return Ok(false);
        }
        self.newest = Some(slot);
        self.release_through(slot - i64::from(self.config.reorder_window), sink)?;
        Ok(true)
    }

    /// Releases every slot up to the newest (nothing more is waited
    /// for) and drops a pending candidate. Pushing afterwards works, but
    /// frames for released slots are late.
    pub fn flush<E>(
        &mut self,
        sink: &mut impl FnMut(i64, &mut [LaneSlot<P>]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.candidate.take().is_some() {
            self.stats.out_of_range += 1;
        }
        if let Some(newest) = self.newest {
            self.release_through(newest, sink)?;
        }
        Ok(())
    }

    /// Releases slots `released ..= last`.
    fn release_through<E>(
        &mut self,
        last: i64,
        sink: &mut impl FnMut(i64, &mut [LaneSlot<P>]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut result = Ok(());
        while self.released <= last {
            let slot = self.released;
            scratch.clear();
            for l in &mut self.lanes {
                let out = if !l.covers(slot) {
                    LaneSlot::Inactive
                } else if l.held.front().is_some_and(|h| h.slot == slot) {
                    match l.held.pop_front() {
                        Some(h) => {
                            l.recent[slot.rem_euclid(RECENT as i64) as usize] = (slot, h.seq);
                            l.stats.audio_slots += 1;
                            LaneSlot::Audio(h.payload)
                        }
                        None => LaneSlot::Silence,
                    }
                } else {
                    l.stats.silence_slots += 1;
                    LaneSlot::Silence
                };
                scratch.push(out);
            }
            self.released += 1;
            if let Err(e) = sink(slot, &mut scratch) {
                result = Err(e);
                break;
            }
        }
        scratch.clear();
        self.scratch = scratch;
        result
    }
}

/// Slot index of `ticks` relative to `origin`, rounded to the nearest
/// 20 ms (so timestamps may jitter by up to ±10 ms).
fn raw_slot(origin: i64, ticks: i64) -> i64 {
    let delta = i128::from(ticks) - i128::from(origin) + i128::from(TICKS_PER_FRAME / 2);
    let slot = delta.div_euclid(i128::from(TICKS_PER_FRAME));
    i64::try_from(slot).unwrap_or(if slot < 0 { i64::MIN / 4 } else { i64::MAX / 4 })
}

/// One frame timeline for a single source: a [`Timeline`] with one lane
/// that starts at slot 0.
#[derive(Debug)]
pub struct Track<P> {
    inner: Timeline<P>,
}

impl<P> Track<P> {
    /// A track whose slot 0 starts at `origin` ticks, or at the first
    /// frame if `None`.
    pub fn new(config: TimelineConfig, origin: Option<i64>) -> Result<Self, RecorderError> {
        let mut inner = Timeline::new(config, origin)?;
        inner.add_lane(LaneStart::Now);
        Ok(Self { inner })
    }

    /// Pushes a frame; every released slot goes to `sink(slot, frame)`,
    /// with `None` for silence.
    pub fn push<E>(
        &mut self,
        seq: u64,
        ticks: i64,
        payload: P,
        sink: &mut impl FnMut(i64, Option<P>) -> Result<(), E>,
    ) -> Result<PushOutcome, E>
    where
        E: From<RecorderError>,
    {
        self.inner.push(0, seq, ticks, payload, &mut |slot, lanes| {
            sink(slot, take_audio(lanes))
        })
    }

    /// See [`Timeline::advance_to`].
    pub fn advance_to<E>(
        &mut self,
        ticks: i64,
        sink: &mut impl FnMut(i64, Option<P>) -> Result<(), E>,
    ) -> Result<bool, E> {
        self.inner
            .advance_to(ticks, &mut |slot, lanes| sink(slot, take_audio(lanes)))
    }

    /// Releases everything held (end of stream).
    pub fn flush<E>(
        &mut self,
        sink: &mut impl FnMut(i64, Option<P>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.inner
            .flush(&mut |slot, lanes| sink(slot, take_audio(lanes)))
    }

    /// The lane counters.
    pub fn stats(&self) -> LaneStats {
        self.inner.lane_stats(0).unwrap_or_default()
    }

    /// The clock counters.
    pub fn clock_stats(&self) -> ClockStats {
        self.inner.clock_stats()
    }

    /// Frames held for reordering.
    pub fn held(&self) -> usize {
        self.inner.held()
    }

    /// The next slot to be released.
    pub fn released(&self) -> i64 {
        self.inner.released()
    }
}

fn take_audio<P>(lanes: &mut [LaneSlot<P>]) -> Option<P> {
    match lanes
        .first_mut()
        .map(|l| std::mem::replace(l, LaneSlot::Inactive))
    {
        Some(LaneSlot::Audio(p)) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const T: i64 = TICKS_PER_FRAME;

    /// A one-lane track of `u64` payloads (the sequence number) that
    /// records what it emits: `Some(seq)` or `None` for silence.
    struct Probe {
        track: Track<u64>,
        out: Vec<(i64, Option<u64>)>,
    }

    impl Probe {
        fn new() -> Self {
            Self::with(TimelineConfig::default())
        }
        fn with(config: TimelineConfig) -> Self {
            Self {
                track: Track::new(config, Some(0)).unwrap(),
                out: Vec::new(),
            }
        }
        /// Pushes frame `seq` at `slot` (ticks = slot · 20 ms + jitter).
        fn push_at(&mut self, seq: u64, ticks: i64) -> PushOutcome {
            let out = &mut self.out;
            self.track
                .push(seq, ticks, seq, &mut |slot, p| {
                    out.push((slot, p));
                    Ok::<_, RecorderError>(())
                })
                .unwrap()
        }
        fn push(&mut self, seq: u64, slot: i64) -> PushOutcome {
            self.push_at(seq, slot * T)
        }
        fn flush(&mut self) -> &[(i64, Option<u64>)] {
            let out = &mut self.out;
            self.track
                .flush(&mut |slot, p| {
                    out.push((slot, p));
                    Ok::<_, RecorderError>(())
                })
                .unwrap();
            &self.out
        }
        /// The emitted payloads, which must cover consecutive slots from 0.
        fn emitted(&mut self) -> Vec<Option<u64>> {
            self.flush();
            for (i, (slot, _)) in self.out.iter().enumerate() {
                assert_eq!(*slot, i as i64, "slots are consecutive from 0");
            }
            self.out.iter().map(|(_, p)| *p).collect()
        }
    }

    #[test]
    fn in_order_frames_pass_through_gap_free() {
        let mut p = Probe::new();
        for i in 0..10 {
            assert_eq!(p.push(i, i as i64), PushOutcome::Accepted);
        }
        assert_eq!(p.emitted(), (0..10).map(Some).collect::<Vec<_>>());
        let s = p.track.stats();
        assert_eq!(
            (s.frames_in, s.accepted, s.audio_slots, s.silence_slots),
            (10, 10, 10, 0)
        );
    }

    #[test]
    fn release_waits_for_the_reorder_window_only() {
        let mut p = Probe::new();
        p.push(0, 0);
        p.push(1, 1);
        p.push(2, 2);
        assert!(p.out.is_empty(), "slots within the window are held");
        p.push(3, 3);
        assert_eq!(p.out, vec![(0, Some(0))]);
        assert_eq!(p.track.held(), 3);
    }

    #[test]
    fn gaps_become_silence() {
        let mut p = Probe::new();
        p.push(0, 0);
        p.push(1, 1);
        p.push(2, 5); // slots 2, 3, 4 missing
        p.push(3, 6);
        assert_eq!(
            p.emitted(),
            vec![Some(0), Some(1), None, None, None, Some(2), Some(3)]
        );
        assert_eq!(p.track.stats().silence_slots, 3);
    }

    #[test]
    fn leading_gap_from_a_given_origin_is_silence() {
        let mut p = Probe::new(); // origin 0
        p.push(7, 4);
        assert_eq!(p.emitted(), vec![None, None, None, None, Some(7)]);
    }

    #[test]
    fn duplicates_are_dropped_while_held_and_after_release() {
        let mut p = Probe::new();
        p.push(0, 0);
        assert_eq!(p.push(0, 0), PushOutcome::Duplicate);
        for i in 1..8 {
            p.push(i, i as i64);
        }
        // Slot 0 was released long ago: still recognised as a duplicate.
        assert_eq!(p.push(0, 0), PushOutcome::Duplicate);
        assert_eq!(p.emitted(), (0..8).map(Some).collect::<Vec<_>>());
        assert_eq!(p.track.stats().duplicates, 2);
    }

    #[test]
    fn a_second_frame_for_a_taken_slot_is_a_conflict_first_wins() {
        let mut p = Probe::new();
        p.push(0, 0);
        assert_eq!(p.push_at(99, 5 * T / 100), PushOutcome::Conflict); // +1 ms
        assert_eq!(p.emitted(), vec![Some(0)]);
        assert_eq!(p.track.stats().conflicts, 1);
    }

    #[test]
    fn reordering_within_the_window_is_repaired() {
        let mut p = Probe::new();
        p.push(0, 0);
        p.push(2, 2);
        assert_eq!(p.push(1, 1), PushOutcome::Reordered);
        assert_eq!(p.push(4, 4), PushOutcome::Accepted);
        assert_eq!(p.push(3, 3), PushOutcome::Reordered);
        p.push(7, 7);
        assert_eq!(p.push(5, 5), PushOutcome::Reordered); // 2 slots late: still inside
        p.push(6, 6);
        assert_eq!(p.emitted(), (0..8).map(Some).collect::<Vec<_>>());
        assert_eq!(p.track.stats().reordered, 4);
    }

    #[test]
    fn later_than_the_window_is_dropped_and_counted_late() {
        let mut p = Probe::new();
        for i in [0, 1, 2, 3, 5, 6, 7, 8] {
            p.push(i, i as i64);
        }
        // Slot 4 was released as silence when slot 7 arrived.
        assert_eq!(p.push(4, 4), PushOutcome::Late);
        assert_eq!(
            p.emitted(),
            vec![
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                None,
                Some(5),
                Some(6),
                Some(7),
                Some(8)
            ]
        );
        assert_eq!(p.track.stats().late, 1);
    }

    #[test]
    fn a_zero_window_releases_at_once() {
        let mut p = Probe::with(TimelineConfig {
            reorder_window: 0,
            ..Default::default()
        });
        p.push(0, 0);
        assert_eq!(p.out, vec![(0, Some(0))]);
        p.push(2, 2);
        assert_eq!(p.push(1, 1), PushOutcome::Late);
    }

    #[test]
    fn timestamps_round_to_the_nearest_slot() {
        let mut p = Probe::new();
        p.push_at(0, 0);
        p.push_at(1, T + T / 2 - 1); // 29.99 ms -> slot 1
        p.push_at(2, 2 * T - T / 2); // 30 ms -> slot 2 (round half up)
        p.push_at(3, 3 * T + 9 * T / 20); // +9 ms jitter
        assert_eq!(p.emitted(), vec![Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut p = Probe::new();
        for i in 0..10_000u64 {
            // Reverse pairs, so something is always held out of order.
            let slot = (i ^ 1) as i64;
            p.push(i, slot);
            assert!(p.track.held() <= 4, "held {} at {i}", p.track.held());
        }
        // Nothing is buffered for a gap, however long.
        p.push(10_000, 40_000);
        assert!(p.track.held() <= 4);
    }

    #[test]
    fn a_gap_up_to_max_gap_is_filled_with_silence() {
        let mut p = Probe::with(TimelineConfig {
            max_gap: 100,
            ..Default::default()
        });
        p.push(0, 0);
        assert_eq!(p.push(1, 100), PushOutcome::Accepted);
        let out = p.emitted();
        assert_eq!(out.len(), 101);
        assert!(out[1..100].iter().all(Option::is_none));
        assert_eq!(p.track.clock_stats().discontinuities, 0);
    }

    #[test]
    fn a_forward_jump_beyond_max_gap_is_a_discontinuity_once_confirmed() {
        let mut p = Probe::with(TimelineConfig {
            max_gap: 100,
            ..Default::default()
        });
        p.push(0, 0);
        p.push(1, 1);
        assert_eq!(p.push(2, 5_000), PushOutcome::Suspect);
        assert_eq!(p.push(3, 5_001), PushOutcome::Reanchored);
        p.push(4, 5_002);
        // No silence for the jump: the frames continue at slot 2.
        assert_eq!(
            p.emitted(),
            vec![Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
        assert_eq!(p.track.clock_stats().discontinuities, 1);
    }

    #[test]
    fn an_isolated_wild_timestamp_is_dropped() {
        let mut p = Probe::with(TimelineConfig {
            max_gap: 100,
            ..Default::default()
        });
        p.push(0, 0);
        assert_eq!(p.push(1, 1_000_000), PushOutcome::Suspect);
        assert_eq!(p.push(2, 1), PushOutcome::Accepted);
        p.push(3, 2);
        assert_eq!(p.emitted(), vec![Some(0), Some(2), Some(3)]);
        let c = p.track.clock_stats();
        assert_eq!((c.out_of_range, c.discontinuities), (1, 0));
        // Two wild frames that disagree are both dropped.
        let mut p = Probe::new();
        p.push(0, 0);
        assert_eq!(p.push(1, 10_000_000), PushOutcome::Suspect);
        assert_eq!(p.push(2, 20_000_000), PushOutcome::Suspect);
        assert_eq!(p.push(3, 1), PushOutcome::Accepted);
        assert_eq!(p.track.clock_stats().out_of_range, 2);
    }

    #[test]
    fn a_clock_step_back_beyond_the_late_horizon_re_anchors() {
        let mut p = Probe::new();
        for i in 0..200 {
            p.push(i, i as i64);
        }
        // The source clock restarts at 0.
        assert_eq!(p.push(200, 0), PushOutcome::Suspect);
        assert_eq!(p.push(201, 1), PushOutcome::Reanchored);
        p.push(202, 2);
        let out = p.emitted();
        assert_eq!(out.len(), 203);
        assert!(out.iter().enumerate().all(|(i, s)| *s == Some(i as u64)));
        assert_eq!(p.track.clock_stats().discontinuities, 1);
    }

    #[test]
    fn a_small_step_back_is_late_not_a_discontinuity() {
        let mut p = Probe::new();
        for i in (0..100).filter(|&i| i != 60) {
            p.push(i, i as i64);
        }
        // 39 slots behind the release point: late, not a clock step.
        assert_eq!(p.push(60, 60), PushOutcome::Late);
        assert_eq!(p.track.clock_stats().discontinuities, 0);
    }

    #[test]
    fn advance_to_moves_the_clock_without_frames() {
        let mut p = Probe::new();
        p.push(0, 0);
        let out = &mut p.out;
        let moved = p
            .track
            .advance_to(10 * T, &mut |slot, f| {
                out.push((slot, f));
                Ok::<_, RecorderError>(())
            })
            .unwrap();
        assert!(moved);
        // Slots up to 10 - window are out, as silence after the frame.
        assert_eq!(p.out.len(), 8);
        assert_eq!(p.out[0], (0, Some(0)));
        assert!(p.out[1..].iter().all(|(_, f)| f.is_none()));
        // Backwards or too far: ignored.
        let out = &mut p.out;
        let mut sink = |slot, f| {
            out.push((slot, f));
            Ok::<_, RecorderError>(())
        };
        assert!(!p.track.advance_to(5 * T, &mut sink).unwrap());
        assert!(!p.track.advance_to(10_000_000 * T, &mut sink).unwrap());
    }

    #[test]
    fn lanes_are_released_in_lockstep_and_only_within_their_span() {
        let mut tl: Timeline<u64> = Timeline::new(TimelineConfig::default(), Some(0)).unwrap();
        let a = tl.add_lane(LaneStart::Now);
        let b = tl.add_lane(LaneStart::At(3 * T));
        assert_eq!(tl.lane_start(b), Some(3));
        let mut rows: Vec<(i64, Vec<LaneSlot<u64>>)> = Vec::new();
        let mut sink = |slot: i64, lanes: &mut [LaneSlot<u64>]| {
            let row = lanes
                .iter_mut()
                .map(|l| std::mem::replace(l, LaneSlot::Inactive))
                .collect();
            rows.push((slot, row));
            Ok::<_, RecorderError>(())
        };
        for s in 0..6u64 {
            tl.push(a, s, s as i64 * T, s, &mut sink).unwrap();
        }
        // A frame of b before its start is dropped as inactive.
        assert_eq!(
            tl.push(b, 100, T, 100, &mut sink).unwrap(),
            PushOutcome::Inactive
        );
        tl.push(b, 104, 4 * T, 104, &mut sink).unwrap();
        let end = tl.end_lane(a).unwrap();
        assert_eq!(end, 6);
        tl.push(b, 107, 7 * T, 107, &mut sink).unwrap();
        // A frame of a after its end is dropped as inactive.
        assert_eq!(
            tl.push(a, 7, 7 * T, 7, &mut sink).unwrap(),
            PushOutcome::Inactive
        );
        tl.flush(&mut sink).unwrap();
        assert!(tl.lane_done(a));
        assert!(!tl.lane_done(b));
        use LaneSlot::*;
        let expect = vec![
            (0, vec![Audio(0), Inactive]),
            (1, vec![Audio(1), Inactive]),
            (2, vec![Audio(2), Inactive]),
            (3, vec![Audio(3), Silence]),
            (4, vec![Audio(4), Audio(104)]),
            (5, vec![Audio(5), Silence]),
            (6, vec![Inactive, Silence]),
            (7, vec![Inactive, Audio(107)]),
        ];
        assert_eq!(rows, expect);
        assert_eq!(tl.lane_stats(b).map(|s| s.inactive), Some(1));
        assert_eq!(tl.lane_stats(a).map(|s| s.inactive), Some(1));
    }

    #[test]
    fn random_abuse_never_panics_and_keeps_the_invariants() {
        // Wild timestamps, duplicates, reordering, three lanes, lanes
        // ending: slots come out consecutive, each lane's frames at most
        // once, and memory stays bounded.
        let mut state = 0x1234_5678_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut tl: Timeline<u64> = Timeline::new(
            TimelineConfig {
                max_gap: 500,
                ..Default::default()
            },
            None,
        )
        .unwrap();
        for _ in 0..3 {
            tl.add_lane(LaneStart::Now);
        }
        let mut expected_slot = 0i64;
        let mut seen = std::collections::HashSet::new();
        let mut sink = |slot: i64, lanes: &mut [LaneSlot<u64>]| {
            assert_eq!(slot, expected_slot);
            expected_slot += 1;
            for (i, l) in lanes.iter().enumerate() {
                if let LaneSlot::Audio(seq) = l {
                    assert!(seen.insert((i, *seq)), "frame {seq} of lane {i} twice");
                }
            }
            Ok::<_, RecorderError>(())
        };
        let mut last: Option<(usize, u64, i64)> = None;
        for i in 0..20_000i64 {
            let r = next() % 1000;
            // Every 7th push repeats the previous frame exactly.
            let (lane, seq, ticks) = match last {
                Some(frame) if r % 7 == 0 => frame,
                _ => {
                    let ticks = match r {
                        0 => i64::MAX,
                        1 => i64::MIN,
                        2 => (next() as i64) << 20,
                        3..=10 => (i - 200) * T,
                        11..=60 => (i - (next() % 8) as i64) * T,
                        _ => i * T + (next() % 100_000) as i64,
                    };
                    ((next() % 3) as usize, i as u64, ticks)
                }
            };
            last = Some((lane, seq, ticks));
            tl.push(lane, seq, ticks, seq, &mut sink).unwrap();
            assert!(tl.held() <= 3 * 5 + 1, "held {}", tl.held());
            if i == 15_000 {
                tl.end_lane(1).unwrap();
            }
        }
        tl.flush(&mut sink).unwrap();
        assert_eq!(tl.released(), expected_slot);
        let c = tl.clock_stats();
        assert!(c.out_of_range > 0 && c.discontinuities > 0, "{c:?}");
    }

    #[test]
    fn invalid_settings_are_refused() {
        for config in [
            TimelineConfig {
                reorder_window: 51,
                ..Default::default()
            },
            TimelineConfig {
                max_gap: 0,
                ..Default::default()
            },
        ] {
            assert!(Timeline::<u64>::new(config, None).is_err());
        }
    }
}
