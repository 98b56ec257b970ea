//! One media connection: the flow of [`super`]'s module docs.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use futures::StreamExt;
use insights_core::domain::{
    MediaStream, ParticipantId, ParticipantRole, Recording, RecordingKind, RecordingStatus,
    StreamId,
};
use recorder::passthrough::DEFAULT_PASSTHROUGH_PRE_SKIP;
use recorder::{
    CallPassthrough, CallRecorder, MeetingRecorder, PacketDecoder, ParticipantKey, PcmFrame,
    PushOutcome, Side, frame_from_s16le,
};
use tokio::time::Instant;

use super::IngestState;
use super::protocol::{AudioMessage, Control, Encoding, PROTOCOL, RefusalCode};
use crate::calls::{
    CallInfo, FailureReason, RecordingError, RecordingHandle, RosterMember, Unrecorded,
};
use crate::spool::{NewRecording, NewStream, SpoolError, SpoolRecording, SpoolStream};

/// How often the recorder completes its Ogg pages. Durability budget
/// after a crash (issue: at most 1 s of audio lost): ≤ 80 ms held by the
/// recorder (reorder window + newest packet) + this interval (plus
/// [`FLUSH_GRACE`] when the audio stalls) + the spool's seal-and-fsync
/// tick (500 ms default) ≈ 0.88 s. Each extra page costs ~30 bytes.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How much later than [`FLUSH_EVERY`] the fallback timer completes the
/// pages when no message came (a flowing call flushes from its
/// messages, every 20 ms, without a timer wake-up).
const FLUSH_GRACE: Duration = Duration::from_millis(50);
/// Least time between two roster refreshes for unknown sources.
const REFRESH_EVERY: Duration = Duration::from_millis(200);
/// How long an adapter may wait for the call's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);
const CONTENT_TYPE: &str = "audio/ogg";

/// Where a recorder stream goes: a spool stream, or nowhere (a
/// participant recorded in the mix only).
pub(crate) enum Out {
    Spool(SpoolStream),
    Discard,
}

impl Write for Out {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Out::Spool(s) => s.write(data),
            Out::Discard => Ok(data.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Refusal(RefusalCode, String);

pub(crate) async fn run(
    state: Arc<IngestState>,
    call_id: String,
    mut ws: Session,
    mut stream: AggregatedMessageStream,
) {
    metrics::gauge!("insights_ingest_sessions_active").increment(1.0);
    let outcome = match start(&state, &call_id, &mut ws, &mut stream).await {
        Err(Refusal(code, message)) => {
            tracing::warn!(%call_id, code = ?code, %message, "media refused");
            let _ = ws.text(Control::Refused { code, message }.encode()).await;
            let _ = ws.close(None).await;
            "refused"
        }
        Ok(None) => "gone",
        Ok(Some(mut rec)) => {
            let ended = rec.pump(&mut ws, &mut stream, &state).await;
            let recording_id = rec.handle.recording_id.to_string();
            match ended {
                Ok(()) => match rec.finish(&state).await {
                    Ok(()) => {
                        let _ = ws.text(Control::Closed { recording_id }.encode()).await;
                        let _ = ws.close(None).await;
                        "closed"
                    }
                    Err(e) => {
                        tracing::error!(%call_id, error = %e, "cannot close the recording");
                        let _ = ws.close(None).await;
                        "failed"
                    }
                },
                Err(why) => {
                    tracing::warn!(%call_id, %recording_id, %why, "media ended without `end`: closing as partial");
                    rec.abandon(&state).await;
                    let _ = ws.close(None).await;
                    "partial"
                }
            }
        }
    };
    metrics::counter!("insights_ingest_sessions_total", "outcome" => outcome).increment(1);
    metrics::gauge!("insights_ingest_sessions_active").decrement(1.0);
}

/// Steps 1-6: `Ok(None)` when the adapter went away before `hello`.
async fn start(
    state: &Arc<IngestState>,
    call_id: &str,
    ws: &mut Session,
    stream: &mut AggregatedMessageStream,
) -> Result<Option<Live>, Refusal> {
    let bad = |m: String| Refusal(RefusalCode::BadRequest, m);
    // 1. hello
    let first = loop {
        match tokio::time::timeout(state.config.hello_timeout, stream.next()).await {
            Err(_) => return Err(bad("no hello in time".into())),
            Ok(None | Some(Err(_)) | Some(Ok(AggregatedMessage::Close(_)))) => return Ok(None),
            Ok(Some(Ok(AggregatedMessage::Text(t)))) => break t,
            Ok(Some(Ok(AggregatedMessage::Ping(p)))) => {
                let _ = ws.pong(&p).await;
            }
            Ok(Some(Ok(AggregatedMessage::Pong(_)))) => {}
            Ok(Some(Ok(AggregatedMessage::Binary(_)))) => {
                return Err(bad("audio before hello".into()));
            }
        }
    };
    let (encoding, _mode) = match Control::decode(&first) {
        Ok(Control::Hello {
            protocol,
            encoding,
            mode,
        }) => {
            if protocol != PROTOCOL {
                return Err(bad(format!(
                    "unsupported protocol; this gateway speaks {PROTOCOL}"
                )));
            }
            (encoding, mode)
        }
        Ok(_) => return Err(bad("the first message must be hello".into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    // 2. the call
    let unknown = || Refusal(RefusalCode::UnknownCall, "no live call with this id".into());
    let waited = Instant::now();
    let info = loop {
        let Some(info) = state.registry.call_info(call_id).await else {
            let unrecorded = state.registry.unrecorded(call_id).await;
            if let Some((_, false)) = unrecorded
                && waited.elapsed() <= ANSWER_WAIT
            {
                // Refused once Teams was told the call's status.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            return Err(match unrecorded.map(|(u, _)| u) {
                Some(Unrecorded::Policy) => Refusal(
                    RefusalCode::NotRecorded,
                    "the recording policy excludes this call".into(),
                ),
                Some(Unrecorded::CannotProceed(FailureReason::SpoolFull)) => {
                    Refusal(RefusalCode::SpoolFull, "the spool is full".into())
                }
                Some(Unrecorded::CannotProceed(_)) => Refusal(
                    RefusalCode::RecordingFailed,
                    "recording could not begin".into(),
                ),
                None => unknown(),
            });
        };
        if info.state.is_over() {
            return Err(unknown());
        }
        if info.answered {
            break info;
        }
        if waited.elapsed() > ANSWER_WAIT {
            return Err(Refusal(
                RefusalCode::UnknownCall,
                "the call was not answered".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A standby leg's recording is not stored (yet): read it after.
    let mut recording = if info.standby {
        None
    } else {
        Some(read_recording(state, &info).await?)
    };
    // 3. spool room (the spool decides again in step 5)
    if !info.standby && !super::spool_has_room(&state.spool) {
        metrics::counter!(super::CALLS_REFUSED_METRIC, "code" => "spool-full").increment(1);
        if let Err(e) = state
            .registry
            .recording_cannot_proceed(call_id, FailureReason::SpoolFull)
            .await
        {
            tracing::warn!(%call_id, error = %e, "cannot report the recording status");
        }
        return Err(Refusal(RefusalCode::SpoolFull, "the spool is full".into()));
    }
    // 4. recording status, acknowledged before anything is spooled
    let handle = match state.registry.begin_recording(call_id).await {
        Ok(h) => h,
        Err(e) => {
            let code = match e {
                RecordingError::UnknownCall(_) | RecordingError::CallEnded(_) => {
                    RefusalCode::UnknownCall
                }
                _ => RefusalCode::RecordingFailed,
            };
            if code == RefusalCode::RecordingFailed
                && let Err(e) = state
                    .registry
                    .recording_cannot_proceed(call_id, FailureReason::StatusNotAcknowledged)
                    .await
            {
                tracing::debug!(%call_id, error = %e, "cannot report the recording status");
            }
            return Err(Refusal(code, e.to_string()));
        }
    };
    // 4b. a standby leg holds the media in memory until it takes over
    let mut info = info;
    let mut replay = None;
    if handle.standby {
        let ready = Control::Ready {
            recording_id: handle.recording_id.to_string(),
        };
        if ws.text(ready.encode()).await.is_err() {
            return Ok(None);
        }
        tracing::info!(%call_id, recording_id = %handle.recording_id, "media ingest ready: standby leg");
        match super::standby::hold(state, &handle, encoding, ws, stream).await {
            super::standby::Held::Over => return Ok(None),
            super::standby::Held::Promoted {
                started_at,
                audio,
                sources,
            } => {
                info = state
                    .registry
                    .call_info(call_id)
                    .await
                    .ok_or_else(unknown)?;
                let mut r = read_recording(state, &info).await?;
                r.started_at = started_at;
                recording = Some(r);
                replay = Some((audio, sources));
            }
        }
    }
    let Some(recording) = recording else {
        return Err(unknown());
    };
    // 5. the spool entry
    let layout = Layout::plan(&recording, &info, state.config.spare_streams);
    let new = NewRecording {
        tenant_id: info.tenant_id,
        recording_id: info.recording_id,
        started_at: recording.started_at,
        participants: info.participants.iter().map(|m| m.participant_id).collect(),
        streams: layout
            .streams
            .iter()
            .map(|(id, p)| NewStream {
                stream_id: *id,
                participant_id: *p,
                content_type: CONTENT_TYPE.into(),
            })
            .collect(),
    };
    let spooled = match state.spool.begin(new).await {
        Ok(s) => s,
        Err(e) => {
            // Nothing was spooled: the recording ends `failed`.
            let reason = match &e {
                SpoolError::Full { .. } => FailureReason::SpoolFull,
                SpoolError::Crypto(_) => FailureReason::KeyService,
                SpoolError::Closed => FailureReason::Shutdown,
                _ => FailureReason::SpoolError,
            };
            if let Err(e) = handle.fail_before_media(reason).await {
                tracing::warn!(%call_id, error = %e, "cannot report the recording status");
            }
            return Err(match e {
                SpoolError::Full { .. } => {
                    Refusal(RefusalCode::SpoolFull, "the spool is full".into())
                }
                other => {
                    tracing::error!(%call_id, error = %other, "cannot spool the call");
                    Refusal(RefusalCode::RecordingFailed, "cannot spool the call".into())
                }
            });
        }
    };
    let live = match Live::new(state, info, recording, layout, handle, spooled, encoding) {
        Ok(l) => l,
        Err((e, handle)) => {
            tracing::error!(%call_id, error = %e, "cannot start the recorder");
            if let Err(e) = handle.fail(FailureReason::Recorder).await {
                tracing::warn!(%call_id, error = %e, "cannot report the recording status");
            }
            return Err(Refusal(
                RefusalCode::RecordingFailed,
                "recorder failed".into(),
            ));
        }
    };
    if let Some((audio, sources)) = replay {
        // Promoted: the adapter was told `ready` long ago; what the
        // standby held since the recording's start goes in first.
        let mut live = live;
        if let Err(e) = live.replay(state, audio, sources).await {
            tracing::error!(%call_id, error = %e, "cannot replay the standby's media");
            live.abandon(state).await;
            return Ok(None);
        }
        return Ok(Some(live));
    }
    // 6. ready
    if ws
        .text(
            Control::Ready {
                recording_id: live.handle.recording_id.to_string(),
            }
            .encode(),
        )
        .await
        .is_err()
    {
        // Gone already: the (empty) entry is closed as partial.
        let mut live = live;
        live.abandon(state).await;
        return Ok(None);
    }
    tracing::info!(%call_id, recording_id = %live.handle.recording_id, kind = live.layout.kind.as_str(), streams = live.layout.streams.len(), "media ingest ready");
    Ok(Some(live))
}

/// The leg's stored recording.
async fn read_recording(state: &IngestState, info: &CallInfo) -> Result<Recording, Refusal> {
    state
        .store
        .get_recording(info.tenant_id, info.recording_id)
        .await
        .map_err(|e| {
            tracing::error!(call_id = %info.call_id, error = %e, "cannot read the recording");
            Refusal(
                RefusalCode::RecordingFailed,
                "recording metadata unavailable".into(),
            )
        })
}

/// The streams of the spool entry.
struct Layout {
    kind: RecordingKind,
    /// (stream id, participant) per spool stream; 0 is the primary.
    streams: Vec<(StreamId, Option<ParticipantId>)>,
}

impl Layout {
    fn plan(recording: &Recording, info: &CallInfo, spare: usize) -> Layout {
        let mut streams = vec![(StreamId::new(), None)];
        if recording.kind == RecordingKind::Meeting {
            for m in info.participants.iter().filter(|m| m.present) {
                streams.push((StreamId::new(), Some(m.participant_id)));
            }
            for _ in 0..spare {
                streams.push((StreamId::new(), None));
            }
        }
        Layout {
            kind: recording.kind,
            streams,
        }
    }
}

enum Rec {
    Call(Box<CallRecorder<Out>>),
    /// A call sent as Opus packets: stored without re-encoding.
    CallOpus(Box<CallPassthrough<Out>>),
    Meeting(Box<MeetingState>),
}

struct MeetingState {
    rec: MeetingRecorder<Out>,
    /// Participant → recorder key.
    keys: HashMap<ParticipantId, ParticipantKey>,
    /// Per key: its spool stream index (None: mix only) and start.
    tracks: Vec<(Option<usize>, Option<ParticipantId>, i64)>,
    /// Spool stream indexes reserved for participants by id.
    reserved: HashMap<ParticipantId, usize>,
    next_spare: usize,
    unattributed: ParticipantKey,
    /// Opus input: one decoder per source id (the mix needs PCM).
    decoders: HashMap<u32, PacketDecoder>,
    /// Tracks started since their `MediaStream` rows were last stored:
    /// (spool stream index, participant, start ms from the recorder).
    started: Vec<(usize, ParticipantId, i64)>,
}

struct Live {
    handle: RecordingHandle,
    encoding: Encoding,
    spooled: Option<SpoolRecording>,
    layout: Layout,
    rec: Option<Rec>,
    roster: Vec<RosterMember>,
    /// Source id → participant.
    sources: HashMap<u32, ParticipantId>,
    /// `source` bindings whose Graph participant id is not in the roster yet.
    pending: HashMap<u32, String>,
    last_refresh: Option<Instant>,
    /// Wall time of the first audio, ms after the recording start.
    origin_ms: Option<i64>,
    /// Streams whose `MediaStream` row is stored. Rows are stored as soon
    /// as a stream's start is known (its first audio), so a recording
    /// recovered after a crash still has them.
    rows_stored: HashSet<StreamId>,
    /// The primary stream's row is among them (checked per message).
    primary_row_stored: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    /// `insights_ingest_frames_received_total`, looked up once per
    /// session rather than once per frame.
    frames_received: metrics::Counter,
    /// Pause and resume (see [`super::pause`]).
    pause: super::pause::Pause,
}

impl Live {
    fn new(
        state: &IngestState,
        info: CallInfo,
        recording: Recording,
        layout: Layout,
        handle: RecordingHandle,
        spooled: SpoolRecording,
        encoding: Encoding,
    ) -> Result<Live, (String, RecordingHandle)> {
        let cfg = &state.config.recorder;
        let stream = |i: usize| spooled.stream(i).map(Out::Spool);
        let built: Result<Rec, String> = (|| {
            let primary = stream(0).map_err(|e| e.to_string())?;
            Ok(match layout.kind {
                RecordingKind::Meeting => {
                    let mut rec =
                        MeetingRecorder::new(primary, cfg, None).map_err(|e| e.to_string())?;
                    let unattributed = ParticipantKey(0);
                    rec.add_participant(unattributed, Out::Discard, None)
                        .map_err(|e| e.to_string())?;
                    let reserved = layout
                        .streams
                        .iter()
                        .enumerate()
                        .filter_map(|(i, (_, p))| p.map(|p| (p, i)))
                        .collect::<HashMap<_, _>>();
                    let next_spare = 1 + reserved.len();
                    Rec::Meeting(Box::new(MeetingState {
                        rec,
                        keys: HashMap::new(),
                        tracks: vec![(None, None, 0)],
                        reserved,
                        next_spare,
                        unattributed,
                        decoders: HashMap::new(),
                        started: Vec::new(),
                    }))
                }
                _ if encoding == Encoding::Opus => Rec::CallOpus(Box::new(
                    CallPassthrough::new(
                        primary,
                        &cfg.timeline,
                        &cfg.ogg,
                        DEFAULT_PASSTHROUGH_PRE_SKIP,
                        None,
                    )
                    .map_err(|e| e.to_string())?,
                )),
                _ => Rec::Call(Box::new(
                    CallRecorder::new(primary, cfg, None).map_err(|e| e.to_string())?,
                )),
            })
        })();
        let rec = match built {
            Ok(r) => r,
            Err(e) => return Err((e, handle)),
        };
        let mut live = Live {
            handle,
            encoding,
            spooled: Some(spooled),
            layout,
            rec: Some(rec),
            roster: Vec::new(),
            sources: HashMap::new(),
            pending: HashMap::new(),
            last_refresh: None,
            origin_ms: None,
            rows_stored: HashSet::new(),
            primary_row_stored: false,
            started_at: recording.started_at,
            frames_received: metrics::counter!("insights_ingest_frames_received_total"),
            pause: super::pause::Pause::new(),
        };
        live.apply_roster(info.participants);
        Ok(live)
    }

    fn apply_roster(&mut self, roster: Vec<RosterMember>) {
        for m in &roster {
            for s in &m.audio_source_ids {
                if let Ok(id) = s.trim().parse::<u32>() {
                    self.sources.insert(id, m.participant_id);
                }
            }
        }
        let mut bound = Vec::new();
        for (source, graph_id) in &self.pending {
            if let Some(m) = roster
                .iter()
                .find(|m| m.graph_participant_ids.iter().any(|g| g == graph_id))
            {
                bound.push((*source, m.participant_id));
            }
        }
        for (source, pid) in bound {
            self.pending.remove(&source);
            self.sources.insert(source, pid);
        }
        self.roster = roster;
    }

    async fn refresh(&mut self, state: &IngestState, force: bool) {
        if !force
            && self
                .last_refresh
                .is_some_and(|t| t.elapsed() < REFRESH_EVERY)
        {
            return;
        }
        self.last_refresh = Some(Instant::now());
        if let Some(info) = state.registry.call_info(&self.handle.call_id).await {
            self.apply_roster(info.participants);
        }
    }

    /// A promoted standby's held media: the adapter's `source` bindings,
    /// then the audio from the recording's start, timed by its arrival.
    async fn replay(
        &mut self,
        state: &IngestState,
        audio: std::collections::VecDeque<(chrono::DateTime<chrono::Utc>, AudioMessage)>,
        sources: Vec<(u32, String)>,
    ) -> Result<(), String> {
        for (source_id, participant_id) in sources {
            self.pending.insert(source_id, participant_id);
            self.sources.remove(&source_id);
        }
        self.refresh(state, true).await;
        if let Some((first, _)) = audio.front() {
            self.origin_ms = Some((*first - self.started_at).num_milliseconds().max(0));
        }
        for (_, m) in audio {
            self.audio(m, state).await?;
        }
        Ok(())
    }

    /// Reads and applies messages until `end` (`Ok`) or the connection
    /// is lost or broken (`Err(why)`).
    async fn pump(
        &mut self,
        ws: &mut Session,
        stream: &mut AggregatedMessageStream,
        state: &IngestState,
    ) -> Result<(), String> {
        // Pages are completed from the message path once `FLUSH_EVERY`
        // has passed, so a flowing call costs no timer wake-ups; the
        // timer (a little later) completes them when the audio stalls,
        // and checks the idle timeout.
        let idle = state.config.idle_timeout;
        let mut last_message = Instant::now();
        let mut next_flush = last_message + FLUSH_EVERY;
        let fallback = tokio::time::sleep_until(next_flush + FLUSH_GRACE);
        tokio::pin!(fallback);
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                () = &mut fallback => {
                    self.pause.poll(state, &self.handle).await;
                    self.flush_pages()?;
                    let now = Instant::now();
                    next_flush = now + FLUSH_EVERY;
                    fallback.as_mut().reset(next_flush + FLUSH_GRACE);
                    if now.duration_since(last_message) > idle {
                        return Err("idle timeout".into());
                    }
                    continue;
                }
            };
            last_message = Instant::now();
            self.pause.poll(state, &self.handle).await;
            if last_message >= next_flush {
                self.flush_pages()?;
                next_flush = last_message + FLUSH_EVERY;
                fallback.as_mut().reset(next_flush + FLUSH_GRACE);
            }
            match msg {
                None => return Err("connection closed".into()),
                Some(Err(e)) => return Err(format!("websocket error: {e}")),
                Some(Ok(AggregatedMessage::Close(_))) => {
                    return Err("closed by the adapter".into());
                }
                Some(Ok(AggregatedMessage::Ping(p))) => {
                    let _ = ws.pong(&p).await;
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Text(t))) => match Control::decode(&t) {
                    Ok(Control::End) => return Ok(()),
                    Ok(Control::Source {
                        source_id,
                        participant_id,
                    }) => {
                        self.pending.insert(source_id, participant_id);
                        self.sources.remove(&source_id);
                        self.refresh(state, true).await;
                    }
                    Ok(_) => return Err("unexpected control message".into()),
                    Err(e) => return Err(e.to_string()),
                },
                Some(Ok(AggregatedMessage::Binary(b))) => match AudioMessage::decode(&b) {
                    Ok(m) => self.audio(m, state).await?,
                    Err(e) => {
                        metrics::counter!("insights_ingest_frames_dropped_total", "reason" => "invalid")
                            .increment(1);
                        return Err(format!("bad audio message: {e}"));
                    }
                },
            }
        }
    }

    fn flush_pages(&mut self) -> Result<(), String> {
        match &mut self.rec {
            Some(Rec::Call(r)) => r.flush_page().map_err(|e| e.to_string()),
            Some(Rec::CallOpus(r)) => r.flush_page().map_err(|e| e.to_string()),
            Some(Rec::Meeting(m)) => m.rec.flush_pages().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    async fn audio(&mut self, m: AudioMessage, state: &IngestState) -> Result<(), String> {
        if m.encoding != self.encoding {
            return Err("audio encoding differs from the hello".into());
        }
        if self.pause.paused() {
            // Nothing of a paused interval is written, not even silence.
            metrics::counter!("insights_ingest_frames_dropped_total", "reason" => "paused")
                .increment(m.buffers.len() as u64);
            return Ok(());
        }
        let ticks = self.pause.ticks(m.timestamp);
        if self.origin_ms.is_none() {
            self.origin_ms = Some(
                (insights_core::domain::now() - self.started_at)
                    .num_milliseconds()
                    .max(0),
            );
        }
        self.frames_received.increment(m.buffers.len() as u64);
        for buf in &m.buffers {
            let pcm_frame = match m.encoding {
                Encoding::Pcm16 => Some(frame_from_s16le(&buf.payload).map_err(|e| e.to_string())?),
                Encoding::Opus => None,
            };
            let mut who = self.sources.get(&buf.source_id).copied();
            if who.is_none() {
                self.refresh(state, false).await;
                who = self.sources.get(&buf.source_id).copied();
            }
            let side = |p: ParticipantId, roster: &[RosterMember]| {
                let caller = roster
                    .iter()
                    .any(|x| x.participant_id == p && x.role == ParticipantRole::Caller);
                if caller { Side::Caller } else { Side::Callee }
            };
            let unbound = || {
                metrics::counter!("insights_ingest_frames_dropped_total", "reason" => "unbound-source")
                    .increment(1);
            };
            let outcome = match &mut self.rec {
                Some(Rec::Call(r)) => {
                    let (Some(p), Some(frame)) = (who, &pcm_frame) else {
                        unbound();
                        continue;
                    };
                    let pcm = PcmFrame {
                        seq: m.sequence,
                        ticks,
                        pcm: frame,
                    };
                    r.push(side(p, &self.roster), pcm)
                        .map_err(|e| e.to_string())?
                }
                Some(Rec::CallOpus(r)) => {
                    let Some(p) = who else {
                        unbound();
                        continue;
                    };
                    r.push(side(p, &self.roster), m.sequence, ticks, &buf.payload)
                        .map_err(|e| e.to_string())?
                }
                Some(Rec::Meeting(ms)) => {
                    let key = match who {
                        Some(p) => ms.key_for(p, &self.spooled)?,
                        None => ms.unattributed,
                    };
                    if key == ms.unattributed {
                        metrics::counter!("insights_ingest_mix_only_frames_total").increment(1);
                    }
                    let frame: &[i16] = match &pcm_frame {
                        Some(f) => f,
                        None => {
                            let dec = match ms.decoders.entry(buf.source_id) {
                                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                                std::collections::hash_map::Entry::Vacant(v) => {
                                    v.insert(PacketDecoder::new().map_err(|e| e.to_string())?)
                                }
                            };
                            dec.decode(&buf.payload).map_err(|e| e.to_string())?
                        }
                    };
                    let pcm = PcmFrame {
                        seq: m.sequence,
                        ticks,
                        pcm: frame,
                    };
                    ms.rec.push(key, pcm).map_err(|e| e.to_string())?
                }
                None => return Err("recorder gone".into()),
            };
            count(outcome);
        }
        let started = match &self.rec {
            Some(Rec::Meeting(ms)) => !ms.started.is_empty(),
            _ => false,
        };
        if !self.primary_row_stored || started {
            self.store_started_rows(state).await;
        }
        Ok(())
    }

    /// The `MediaStream` row of stream `i`.
    fn row(&self, i: usize, participant_id: Option<ParticipantId>, start_ms: i64) -> MediaStream {
        MediaStream {
            id: self.layout.streams[i].0,
            participant_id,
            track: i as i32,
            media_type: "audio".into(),
            codec: "opus".into(),
            sample_rate: 48_000,
            start_ms: self.origin_ms.unwrap_or(0) + start_ms,
        }
    }

    /// Stores the rows of streams that started since the last call: the
    /// primary stream at the first audio, a meeting track when its
    /// participant first speaks.
    async fn store_started_rows(&mut self, state: &IngestState) {
        let mut rows = Vec::new();
        if !self.rows_stored.contains(&self.layout.streams[0].0) {
            rows.push(self.row(0, None, 0));
        }
        if let Some(Rec::Meeting(ms)) = &mut self.rec {
            let started = std::mem::take(&mut ms.started);
            for (i, p, start_ms) in started {
                rows.push(self.row(i, Some(p), start_ms));
            }
        }
        if !rows.is_empty() {
            self.store_rows(state, &rows, false).await;
        }
    }

    /// Step 7.
    async fn finish(&mut self, state: &IngestState) -> Result<(), String> {
        self.pause.end(state, &self.handle).await;
        let rows = self.finish_recorder()?;
        self.store_rows(state, &rows, true).await;
        let Some(spooled) = self.spooled.take() else {
            return Err("spool entry gone".into());
        };
        spooled.finish().await.map_err(|e| e.to_string())?;
        if let Err(e) = self.handle.stop().await {
            tracing::debug!(call_id = %self.handle.call_id, error = %e, "notRecording not reported");
        }
        tracing::info!(call_id = %self.handle.call_id, recording_id = %self.handle.recording_id, "media closed and spooled");
        Ok(())
    }

    /// Step 8: finish what the recorder holds, make it durable, close the
    /// entry as partial, report `failed` if the call goes on.
    async fn abandon(&mut self, state: &IngestState) {
        self.pause.end(state, &self.handle).await;
        let rows = match self.finish_recorder() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(call_id = %self.handle.call_id, error = %e, "recorder failed at the end");
                Vec::new()
            }
        };
        self.store_rows(state, &rows, !rows.is_empty()).await;
        if let Some(spooled) = self.spooled.take() {
            let synced = tokio::task::spawn_blocking(move || {
                let r = spooled.sync();
                drop(spooled); // unfinished: closed as partial by the spool
                r
            })
            .await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::error!(call_id = %self.handle.call_id, "cannot sync the partial recording");
            }
        }
        let live = state
            .registry
            .call_info(&self.handle.call_id)
            .await
            .is_some_and(|c| !c.state.is_over());
        if live && let Err(e) = self.handle.fail(FailureReason::MediaLost).await {
            tracing::warn!(call_id = %self.handle.call_id, error = %e, "cannot report the failed recording");
        }
    }

    /// Finishes the recorder; returns the `MediaStream` rows to store.
    fn finish_recorder(&mut self) -> Result<Vec<MediaStream>, String> {
        let rec = self.rec.take();
        let row = |i: usize, participant_id: Option<ParticipantId>, start_ms: i64| {
            self.row(i, participant_id, start_ms)
        };
        match rec {
            None => Ok(Vec::new()),
            Some(Rec::CallOpus(r)) => {
                let (_, summary) = r.finish().map_err(|e| e.to_string())?;
                tracing::info!(
                    call_id = %self.handle.call_id,
                    duration_ms = summary.duration_ms,
                    caller_dropped = summary.caller.dropped(),
                    callee_dropped = summary.callee.dropped(),
                    "call pass-through finished"
                );
                Ok(vec![row(0, None, 0)])
            }
            Some(Rec::Call(r)) => {
                let (_, summary) = r.finish().map_err(|e| e.to_string())?;
                tracing::info!(
                    call_id = %self.handle.call_id,
                    duration_ms = summary.duration_ms,
                    caller_dropped = summary.caller.dropped(),
                    callee_dropped = summary.callee.dropped(),
                    "call recorder finished"
                );
                Ok(vec![row(0, None, 0)])
            }
            Some(Rec::Meeting(ms)) => {
                let out = ms.rec.finish().map_err(|e| e.to_string())?;
                let mut rows = vec![row(0, None, 0)];
                for t in &out.tracks {
                    if let Some((Some(i), p, _)) = ms.tracks.get(t.key.0 as usize) {
                        rows.push(row(*i, *p, t.start_ms));
                    }
                }
                tracing::info!(
                    call_id = %self.handle.call_id,
                    duration_ms = out.duration_ms,
                    tracks = rows.len() - 1,
                    "meeting recorder finished"
                );
                Ok(rows)
            }
        }
    }

    async fn store_rows(&mut self, state: &IngestState, rows: &[MediaStream], spooled: bool) {
        let (tenant, id) = (self.handle.tenant_id, self.handle.recording_id);
        for r in rows {
            if self.rows_stored.contains(&r.id) {
                continue;
            }
            match state.store.add_stream(tenant, id, r).await {
                Ok(()) => {
                    self.rows_stored.insert(r.id);
                    if r.id == self.layout.streams[0].0 {
                        self.primary_row_stored = true;
                    }
                }
                Err(e) => {
                    tracing::error!(recording_id = %id, stream_id = %r.id, error = %e, "cannot store the media stream row");
                }
            }
        }
        if spooled
            && let Err(e) = state
                .store
                .update_recording_status(tenant, id, RecordingStatus::Spooled, None, None)
                .await
        {
            tracing::error!(recording_id = %id, error = %e, "cannot set the recording spooled");
        }
    }
}

impl MeetingState {
    /// The recorder key of a participant, adding them (with their
    /// reserved stream, a spare one, or the mix only) at their first audio.
    fn key_for(
        &mut self,
        p: ParticipantId,
        spooled: &Option<SpoolRecording>,
    ) -> Result<ParticipantKey, String> {
        if let Some(k) = self.keys.get(&p) {
            return Ok(*k);
        }
        let Some(spooled) = spooled else {
            return Err("spool entry gone".into());
        };
        let index = match self.reserved.get(&p) {
            Some(i) => Some(*i),
            None if self.next_spare < spooled.stream_count() => {
                self.next_spare += 1;
                Some(self.next_spare - 1)
            }
            None => None,
        };
        let out = match index {
            Some(i) => Out::Spool(spooled.stream(i).map_err(|e| e.to_string())?),
            None => {
                tracing::warn!(participant_id = %p, "no stream left: participant recorded in the mix only");
                Out::Discard
            }
        };
        let key = ParticipantKey(u32::try_from(self.tracks.len()).unwrap_or(u32::MAX));
        let start = self
            .rec
            .add_participant(key, out, None)
            .map_err(|e| e.to_string())?;
        self.tracks.push((index, Some(p), start.start_ms));
        if let Some(i) = index {
            self.started.push((i, p, start.start_ms));
        }
        self.keys.insert(p, key);
        Ok(key)
    }
}

fn count(outcome: PushOutcome) {
    let reason = match outcome {
        PushOutcome::Duplicate => "duplicate",
        PushOutcome::Conflict => "conflict",
        PushOutcome::Late => "late",
        PushOutcome::Inactive => "inactive",
        _ => return,
    };
    metrics::counter!("insights_ingest_frames_dropped_total", "reason" => reason).increment(1);
}
