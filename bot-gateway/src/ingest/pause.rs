//! Pause and resume of a live recording, as the media side applies them.
//!
//! The API node that took the request may be another process, so the
//! request comes through the metadata store: the recording's open gap
//! (`RecordingGapStore`, table `recording_gaps`). Every live session
//! polls it ([`POLL_EVERY`]) from its message loop:
//!
//! * a gap that wants the recording paused: media stops at once (every
//!   frame from then on is dropped, nothing is written, not even
//!   silence), the gap's effective start is stored, and Teams is told
//!   `notRecording`;
//! * a resume asked for: Teams is told `recording` first and, once Graph
//!   acknowledged it (media may not be persisted before), media is
//!   written again and the gap is closed at that moment. A refused
//!   report is tried again at the next poll; the call stays paused.
//!
//! The recorder's timeline fills a gap in the frames' timestamps with
//! silence, so after a resume the timestamps are shifted to continue
//! right after the last frame written before the pause: the stored audio
//! holds no slot at all for the paused interval, which is known only
//! from the gap's metadata (its wall-clock start and end).
//!
//! Status reports go one at a time, in order (a resume's `recording`
//! never overtakes the pause's `notRecording`).

use insights_core::domain::GapId;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use super::IngestState;
use crate::calls::{RecordingError, RecordingHandle};

/// How often a live session looks for a pause or resume.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(200);
/// Recordings paused and resumed, by `event` (`paused`, `resumed`).
const PAUSES_METRIC: &str = "insights_recording_pauses_total";

/// A status report in flight.
enum Report {
    Paused(JoinHandle<Result<(), RecordingError>>),
    Resumed(JoinHandle<Result<(), RecordingError>>),
}

/// One session's pause state.
pub(crate) struct Pause {
    /// Media off: every frame is dropped.
    paused: bool,
    /// The gap being applied.
    gap: Option<GapId>,
    report: Option<Report>,
    next_poll: Instant,
    /// Ticks subtracted from every frame's timestamp (the paused
    /// intervals), and the newest shifted timestamp passed on.
    shift: i64,
    newest: Option<i64>,
    /// Re-align the timestamps at the next frame (after a resume).
    realign: bool,
}

impl Pause {
    pub(crate) fn new() -> Self {
        Self {
            paused: false,
            gap: None,
            report: None,
            next_poll: Instant::now(),
            shift: 0,
            newest: None,
            realign: false,
        }
    }

    /// Whether media is off now.
    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// A written frame's timestamp: shifted so that the audio after a
    /// resume continues right after the last frame before the pause.
    pub(crate) fn ticks(&mut self, ticks: i64) -> i64 {
        if std::mem::take(&mut self.realign)
            && let Some(newest) = self.newest
        {
            self.shift = ticks - (newest + recorder::TICKS_PER_FRAME);
        }
        let t = ticks - self.shift;
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        t
    }

    /// Looks for a pause or resume when it is time to (see the module
    /// docs); never fails the session: store and Graph errors are logged
    /// and tried again at the next poll.
    pub(crate) async fn poll(&mut self, state: &IngestState, handle: &RecordingHandle) {
        let now = Instant::now();
        if now < self.next_poll {
            return;
        }
        self.next_poll = now + POLL_EVERY;
        let (call_id, recording_id) = (&handle.call_id, handle.recording_id);
        match self.report.take() {
            Some(Report::Paused(task)) if task.is_finished() => match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%call_id, %recording_id, error = %e, "notRecording not acknowledged for the pause");
                }
                Err(e) => tracing::warn!(%call_id, error = %e, "pause report task failed"),
            },
            Some(Report::Resumed(task)) if task.is_finished() => {
                match task.await {
                    Ok(Ok(())) => self.resumed(state, handle).await,
                    Ok(Err(e)) => {
                        tracing::warn!(%call_id, %recording_id, error = %e, "recording not acknowledged: still paused");
                    }
                    Err(e) => tracing::warn!(%call_id, error = %e, "resume report task failed"),
                }
                return;
            }
            Some(r) => {
                // Still waiting for Graph.
                self.report = Some(r);
                return;
            }
            None => {}
        }
        let gap = match state
            .store
            .current_recording_gap(handle.tenant_id, recording_id)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%call_id, %recording_id, error = %e, "cannot read the pause state");
                return;
            }
        };
        match gap {
            Some(g) if !self.paused && g.wants_paused() => {
                // Media off first, then the record and Teams.
                self.paused = true;
                self.gap = Some(g.id);
                let at = insights_core::domain::now();
                if let Err(e) = state
                    .store
                    .mark_gap_started(handle.tenant_id, g.id, at)
                    .await
                {
                    tracing::warn!(%call_id, %recording_id, gap_id = %g.id, error = %e, "cannot store the pause start");
                }
                metrics::counter!(PAUSES_METRIC, "event" => "paused").increment(1);
                tracing::info!(%call_id, %recording_id, gap_id = %g.id, "recording paused: no media is written");
                self.report = Some(Report::Paused(handle.report_pause(false)));
            }
            Some(g) if !self.paused && !g.wants_paused() => {
                // Resumed before it was applied: nothing was paused.
                if let Err(e) = state
                    .store
                    .close_recording_gap(
                        handle.tenant_id,
                        recording_id,
                        insights_core::domain::now(),
                    )
                    .await
                {
                    tracing::warn!(%call_id, %recording_id, gap_id = %g.id, error = %e, "cannot close the unapplied pause");
                }
            }
            Some(g) if self.paused && !g.wants_paused() => {
                self.report = Some(Report::Resumed(handle.report_pause(true)));
            }
            None if self.paused => {
                // Closed elsewhere (it cannot stay paused without a gap).
                self.report = Some(Report::Resumed(handle.report_pause(true)));
            }
            _ => {}
        }
    }

    /// Teams acknowledged `recording`: media on, the gap closed now.
    async fn resumed(&mut self, state: &IngestState, handle: &RecordingHandle) {
        self.paused = false;
        self.realign = true;
        let gap = self.gap.take();
        let at = insights_core::domain::now();
        if let Err(e) = state
            .store
            .close_recording_gap(handle.tenant_id, handle.recording_id, at)
            .await
        {
            tracing::warn!(call_id = %handle.call_id, recording_id = %handle.recording_id, error = %e, "cannot store the pause end");
        }
        metrics::counter!(PAUSES_METRIC, "event" => "resumed").increment(1);
        tracing::info!(call_id = %handle.call_id, recording_id = %handle.recording_id, gap_id = ?gap, "recording resumed");
        // The next poll may come at once (a pause right after).
        self.next_poll = Instant::now();
    }

    /// The session ends: a gap still open (paused, or asked for and not
    /// applied yet) ends with the media.
    pub(crate) async fn end(&mut self, state: &IngestState, handle: &RecordingHandle) {
        // A report in flight finishes on its own.
        self.report = None;
        match state
            .store
            .close_recording_gap(
                handle.tenant_id,
                handle.recording_id,
                insights_core::domain::now(),
            )
            .await
        {
            Ok(true) => {
                tracing::info!(call_id = %handle.call_id, recording_id = %handle.recording_id, "the media ended paused: gap closed");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(call_id = %handle.call_id, recording_id = %handle.recording_id, error = %e, "cannot close the gap");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: i64 = recorder::TICKS_PER_FRAME;

    #[test]
    fn after_a_resume_the_frames_continue_right_after_the_last_one_written() {
        let mut p = Pause::new();
        let t0 = 7_000_000_000;
        // Written before the pause: unshifted.
        for k in 0..50 {
            assert_eq!(p.ticks(t0 + k * F), t0 + k * F);
        }
        // 400 frames (8 s) paused (dropped by the session), then resumed:
        // the next frame takes the slot after frame 49.
        p.realign = true;
        assert_eq!(p.ticks(t0 + 450 * F), t0 + 50 * F);
        // A second party's frame with the same timestamp: the same slot.
        assert_eq!(p.ticks(t0 + 450 * F), t0 + 50 * F);
        assert_eq!(p.ticks(t0 + 451 * F), t0 + 51 * F);
        // A second pause adds to the shift.
        p.realign = true;
        assert_eq!(p.ticks(t0 + 600 * F), t0 + 52 * F);
        assert_eq!(p.ticks(t0 + 601 * F), t0 + 53 * F);
    }

    #[test]
    fn a_pause_before_any_audio_shifts_nothing() {
        let mut p = Pause::new();
        p.realign = true;
        assert_eq!(p.ticks(123 * F), 123 * F);
        assert_eq!(p.ticks(124 * F), 124 * F);
    }
}
