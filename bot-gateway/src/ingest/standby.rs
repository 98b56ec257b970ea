//! A standby leg's media: a meeting another leg records.
//!
//! Every bot leg of a meeting receives the meeting's audio. A standby leg
//! (see `calls::registry::claims`) has reported `recording` like the
//! primary, but persists nothing: its audio messages are held in memory,
//! the last [`STANDBY_BUFFER`] of them, and dropped as they age. Every
//! 250 ms it asks the registry whether the leg took the meeting over
//! (its primary's node was lost, or the primary leg ended while the
//! meeting goes on). Then its recording is stored, starting shortly before
//! the interval no node held the meeting, and the session goes on as a
//! primary's: the spool entry is created and what it holds from the
//! recording's start on is replayed into it before the live audio.
//!
//! If the leg ends first (`end`, or the connection goes), nothing was
//! written anywhere: the adapter gets `closed` and Teams `notRecording`.

use std::collections::VecDeque;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::time::Instant;

use super::IngestState;
use super::protocol::{AudioMessage, Control, Encoding};
use crate::calls::{RecordingHandle, STANDBY_BUFFER, StandbyState};

/// How often a standby asks whether it took over.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// At most this many audio messages are held (a bound besides time).
const MAX_HELD: usize = 8 * 50 * 16;

/// How holding the meeting ended.
pub(super) enum Held {
    /// The leg took over: its recording starts at `started_at`; `audio`
    /// holds what arrived since then (with its arrival time), `sources`
    /// the `source` bindings the adapter sent.
    Promoted {
        started_at: DateTime<Utc>,
        audio: VecDeque<(DateTime<Utc>, AudioMessage)>,
        sources: Vec<(u32, String)>,
    },
    /// The leg ended as a standby; the connection is closed.
    Over,
}

/// Holds the meeting's audio until the leg takes over or ends.
pub(super) async fn hold(
    state: &IngestState,
    handle: &RecordingHandle,
    encoding: Encoding,
    ws: &mut Session,
    stream: &mut AggregatedMessageStream,
) -> Held {
    let call_id = handle.call_id.as_str();
    let mut audio: VecDeque<(DateTime<Utc>, AudioMessage)> = VecDeque::new();
    let mut sources = Vec::new();
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let keep = chrono::Duration::from_std(STANDBY_BUFFER).unwrap_or(chrono::Duration::MAX);
    let mut last_message = Instant::now();
    let lost = loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = poll.tick() => {
                match state.registry.standby_state(call_id).await {
                    StandbyState::Standby | StandbyState::Gone => {}
                    StandbyState::Promoted { started_at } => {
                        while audio.front().is_some_and(|(at, _)| *at < started_at) {
                            audio.pop_front();
                        }
                        tracing::info!(%call_id, recording_id = %handle.recording_id, replayed = audio.len(), "standby leg took over: its media is persisted from now on");
                        return Held::Promoted { started_at, audio, sources };
                    }
                }
                if last_message.elapsed() > state.config.idle_timeout {
                    break "idle timeout";
                }
                continue;
            }
        };
        last_message = Instant::now();
        match msg {
            None | Some(Err(_)) => break "connection lost",
            Some(Ok(AggregatedMessage::Close(_))) => break "closed by the adapter",
            Some(Ok(AggregatedMessage::Ping(p))) => {
                let _ = ws.pong(&p).await;
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            Some(Ok(AggregatedMessage::Text(t))) => match Control::decode(&t) {
                Ok(Control::End) => {
                    let _ = ws
                        .text(
                            Control::Closed {
                                recording_id: handle.recording_id.to_string(),
                            }
                            .encode(),
                        )
                        .await;
                    let _ = ws.clone().close(None).await;
                    if let Err(e) = handle.stop().await {
                        tracing::debug!(%call_id, error = %e, "notRecording not reported");
                    }
                    tracing::info!(%call_id, "standby leg's media ended; nothing of it was persisted");
                    return Held::Over;
                }
                Ok(Control::Source {
                    source_id,
                    participant_id,
                }) => sources.push((source_id, participant_id)),
                Ok(_) => break "unexpected control message",
                Err(_) => break "bad control message",
            },
            Some(Ok(AggregatedMessage::Binary(b))) => match AudioMessage::decode(&b) {
                Ok(m) if m.encoding == encoding => {
                    let at = insights_core::domain::now();
                    audio.push_back((at, m));
                    while audio.len() > MAX_HELD
                        || audio.front().is_some_and(|(t, _)| at - *t > keep)
                    {
                        audio.pop_front();
                    }
                }
                _ => break "bad audio message",
            },
        }
    };
    tracing::warn!(%call_id, why = lost, "standby leg's media ended without `end`; nothing of it was persisted");
    let _ = ws.clone().close(None).await;
    let live = state
        .registry
        .call_info(call_id)
        .await
        .is_some_and(|c| !c.state.is_over());
    if live && let Err(e) = handle.fail(crate::calls::FailureReason::MediaLost).await {
        tracing::warn!(%call_id, error = %e, "cannot report the failed recording");
    }
    Held::Over
}
