//! One recording session: from the INVITE to the spooled recording (the
//! flow of the module docs).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ezk_sip_types::Name;
use insights_core::domain::{
    Direction, MediaStream, Participant, ParticipantId, ParticipantRole, Recording, RecordingId,
    RecordingKind, RecordingStatus, StreamId, TenantId, normalize_phone,
};
use rand::Rng;
use recorder::{CallRecorder, PcmFrame, PushOutcome, Side};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metadata::{self, Metadata};
use super::sdp::{self, Accepted, Offer};
use super::{Dialog, Inner, PortLease, PortPool, Reply, lock, rtp, sip};
use crate::spool::{NewRecording, NewStream, SpoolError, SpoolRecording, SpoolStream};

const CONTENT_TYPE: &str = "audio/ogg";
/// How often the recorder completes its Ogg pages (as the Teams ingest).
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// RFC 3261 timers T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// A final non-2xx answer to the INVITE.
struct Refusal {
    code: u16,
    /// The problem, for the reason phrase and `Warning` (no personal data).
    why: Option<String>,
    extra: Vec<(&'static str, String)>,
}

fn refuse(code: u16, why: impl Into<String>) -> Refusal {
    Refusal {
        code,
        why: Some(why.into()),
        extra: Vec::new(),
    }
}

/// Everything the INVITE gave us, checked.
struct Checked {
    tenant: TenantId,
    offer: Offer,
    accepted: Vec<Accepted>,
    metadata: Metadata,
}

/// Entry point from the SIP side: a new INVITE (no To tag, no dialog).
pub(super) async fn invite(
    inner: Arc<Inner>,
    req: sip::Request,
    reply: Reply,
    from: SocketAddr,
    local: SocketAddr,
) {
    let to_tag = format!("{:016x}", rand::rng().random::<u64>());
    let trying = sip::response(&req.headers, 100, None, None, &[], None);
    let dialog = Arc::new(Mutex::new(Dialog {
        invite_cseq: req.cseq,
        invite_branch: req.branch.clone(),
        to_tag: to_tag.clone(),
        last_invite_response: trying.clone(),
        answered: false,
        acked: Arc::new(tokio::sync::Notify::new()),
        acked_flag: false,
        cancel: CancellationToken::new(),
        bye: CancellationToken::new(),
        answer_sdp: None,
    }));
    lock(&inner.dialogs).insert(req.call_id.clone(), dialog.clone());
    reply.send(trying).await;
    inner.sessions.fetch_add(1, Ordering::SeqCst);
    metrics::gauge!("insights_siprec_sessions_active").increment(1.0);
    tokio::spawn(async move {
        let call_id = req.call_id.clone();
        let outcome = run(&inner, req, &reply, from, local, &dialog, &to_tag).await;
        metrics::counter!("insights_siprec_sessions_total", "outcome" => outcome).increment(1);
        metrics::gauge!("insights_siprec_sessions_active").decrement(1.0);
        inner.sessions.fetch_sub(1, Ordering::SeqCst);
        // Kept a while for retransmissions and late ACKs, then forgotten.
        let inner2 = inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(super::TRANSACTION_LIFE).await;
            let mut d = lock(&inner2.dialogs);
            if d.get(&call_id).is_some_and(|x| Arc::ptr_eq(x, &dialog)) {
                d.remove(&call_id);
            }
        });
    });
}

async fn send_final(
    reply: &Reply,
    req: &sip::Request,
    dialog: &Arc<Mutex<Dialog>>,
    to_tag: &str,
    r: Refusal,
) {
    metrics::counter!("insights_siprec_responses_total", "code" => r.code.to_string()).increment(1);
    let mut extra = r.extra;
    let phrase = r.why.as_ref().map(|w| {
        extra.push((
            "Warning",
            format!("399 insights \"{}\"", w.replace('"', "'")),
        ));
        format!("{} ({w})", sip::reason(r.code))
    });
    let bytes = sip::response(
        &req.headers,
        r.code,
        phrase.as_deref(),
        Some(to_tag),
        &extra,
        None,
    );
    lock(dialog).last_invite_response = bytes.clone();
    reply.send(bytes).await;
}

/// Runs the session; returns the outcome for the metrics.
async fn run(
    inner: &Arc<Inner>,
    req: sip::Request,
    reply: &Reply,
    from: SocketAddr,
    local: SocketAddr,
    dialog: &Arc<Mutex<Dialog>>,
    to_tag: &str,
) -> &'static str {
    let checked = match check(inner, &req, from) {
        Ok(c) => c,
        Err(r) => {
            tracing::warn!(
                code = r.code,
                why = r.why.as_deref().unwrap_or(""),
                "SIPREC INVITE refused"
            );
            send_final(reply, &req, dialog, to_tag, r).await;
            return "refused";
        }
    };
    let media_ip = inner.cfg.media_address.unwrap_or(local.ip());
    let Some((lease, sockets)) =
        PortPool::allocate(&inner.ports, local.ip(), checked.accepted.len())
    else {
        tracing::error!("no free RTP ports in siprec.rtp_ports");
        let mut r = refuse(503, "no free RTP ports");
        r.extra.push(("Retry-After", "30".into()));
        send_final(reply, &req, dialog, to_tag, r).await;
        return "refused";
    };
    let cancelled = || lock(dialog).cancel.is_cancelled();
    if cancelled() {
        send_final(reply, &req, dialog, to_tag, refuse(487, "cancelled")).await;
        return "cancelled";
    }
    // The recording, with its parties, before anything is spooled.
    let started_at = insights_core::domain::now();
    let mut recording = Recording::new(
        checked.tenant,
        RecordingKind::Call,
        Direction::Unknown,
        started_at,
    );
    recording.external_call_id = Some(format!("siprec:{}", req.call_id));
    recording.participants = parties(&checked.metadata);
    let (tenant, recording_id) = (checked.tenant, recording.id);
    if let Err(e) = inner.store.insert_recording(tenant, &recording).await {
        tracing::error!(error = %e, "cannot store the SIPREC recording");
        send_final(
            reply,
            &req,
            dialog,
            to_tag,
            refuse(500, "recording metadata unavailable"),
        )
        .await;
        return "failed";
    }
    let fail = |code: &'static str| {
        let store = inner.store.clone();
        async move {
            if let Err(e) = store
                .update_recording_status(
                    tenant,
                    recording_id,
                    RecordingStatus::Failed,
                    Some(insights_core::domain::now()),
                    Some(code),
                )
                .await
            {
                tracing::error!(%recording_id, error = %e, "cannot mark the recording failed");
            }
        }
    };
    if cancelled() {
        fail("cancelled").await;
        send_final(reply, &req, dialog, to_tag, refuse(487, "cancelled")).await;
        return "cancelled";
    }
    let stream_id = StreamId::new();
    let spooled = match inner
        .spool
        .begin(NewRecording {
            tenant_id: tenant,
            recording_id,
            started_at,
            participants: recording.participants.iter().map(|p| p.id).collect(),
            streams: vec![NewStream {
                stream_id,
                participant_id: None,
                content_type: CONTENT_TYPE.into(),
            }],
        })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let (code, why) = match e {
                SpoolError::Full { .. } => ("refused:spool-full", "the spool is full"),
                other => {
                    tracing::error!(%recording_id, error = %other, "cannot spool the SIPREC call");
                    ("refused:spool-failed", "cannot spool the call")
                }
            };
            fail(code).await;
            let mut r = refuse(503, why);
            r.extra.push(("Retry-After", "60".into()));
            send_final(reply, &req, dialog, to_tag, r).await;
            return "refused";
        }
    };
    let rec =
        match spooled.stream(0).map_err(|e| e.to_string()).and_then(|s| {
            CallRecorder::new(s, &inner.cfg.recorder, None).map_err(|e| e.to_string())
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%recording_id, error = %e, "cannot start the recorder");
                fail("recorder-failed").await;
                drop(spooled);
                send_final(reply, &req, dialog, to_tag, refuse(500, "recorder failed")).await;
                return "failed";
            }
        };
    if cancelled() {
        drop(rec);
        drop(spooled);
        fail("cancelled").await;
        send_final(reply, &req, dialog, to_tag, refuse(487, "cancelled")).await;
        return "cancelled";
    }
    // 200 OK with the answer.
    let answer = checked
        .offer
        .answer(media_ip, &lease.ports, rand::rng().random::<u32>().into());
    let ok = sip::response(
        &req.headers,
        200,
        None,
        Some(to_tag),
        &[
            ("Contact", super::contact(local, reply)),
            ("Allow", sip::ALLOW.to_owned()),
            ("Supported", "siprec".to_owned()),
        ],
        Some(("application/sdp", answer.as_bytes())),
    );
    {
        let mut d = lock(dialog);
        d.last_invite_response = ok.clone();
        d.answered = true;
        d.answer_sdp = Some(answer.into_bytes());
    }
    metrics::counter!("insights_siprec_responses_total", "code" => "200").increment(1);
    reply.send(ok.clone()).await;
    if !reply.reliable() {
        tokio::spawn(retransmit(reply.clone(), ok, dialog.clone()));
    }
    tracing::info!(%recording_id, tenant = %tenant, streams = checked.accepted.len(), "SIPREC session answered");
    // Sides: the stream the caller sends goes left.
    let sides = sides(&checked.accepted, &checked.metadata);
    let mut live = Live {
        inner: inner.clone(),
        tenant,
        recording_id,
        started_at,
        answered: Instant::now(),
        stream_id,
        row_stored: false,
        first_audio_ms: None,
        rec: Some(rec),
        spooled: Some(spooled),
        streams: checked
            .accepted
            .iter()
            .zip(sides)
            .map(|(a, side)| {
                (
                    rtp::Stream::new(a.codec, a.payload_type, a.dtmf_payload_type),
                    side,
                )
            })
            .collect(),
    };
    let bye = lock(dialog).bye.clone();
    let ended = live.pump(sockets, &lease, &bye).await;
    drop(lease);
    match ended {
        Ended::Bye => match live.finish().await {
            Ok(()) => "completed",
            Err(e) => {
                tracing::error!(%recording_id, error = %e, "cannot close the SIPREC recording");
                "failed"
            }
        },
        Ended::RtpTimeout | Ended::Broken(_) => {
            let code = match &ended {
                Ended::Broken(why) => {
                    tracing::error!(%recording_id, %why, "SIPREC media failed: closing as partial");
                    "partial:recorder-failed"
                }
                _ => {
                    tracing::warn!(%recording_id, "no RTP for siprec.rtp_timeout: closing as partial");
                    "rtp-timeout"
                }
            };
            live.abandon(code).await;
            send_bye(&req, reply, local, to_tag).await;
            lock(dialog).bye.cancel();
            if code == "rtp-timeout" {
                "rtp-timeout"
            } else {
                "failed"
            }
        }
    }
}

/// Trunk, extension, body, SDP and metadata, and capacity.
fn check(inner: &Inner, req: &sip::Request, from: SocketAddr) -> Result<Checked, Refusal> {
    let user = req.uri_user.as_deref();
    let trunk = inner.cfg.trunks.iter().find(|t| {
        t.sources.iter().any(|c| c.contains(from.ip()))
            && t.request_user.as_deref().is_none_or(|u| Some(u) == user)
    });
    let Some(trunk) = trunk else {
        return Err(refuse(403, "no SIPREC trunk for this source"));
    };
    if !req.lists(&Name::REQUIRE, "siprec") {
        let mut r = refuse(421, "Require: siprec missing");
        r.extra.push(("Require", "siprec".into()));
        return Err(r);
    }
    let ctype = req
        .header(&Name::CONTENT_TYPE)
        .ok_or_else(|| refuse(400, "INVITE without a body"))?;
    let (mt, boundary) = sip::media_type(ctype);
    if mt != "multipart/mixed" {
        return Err(refuse(
            400,
            "a SIPREC INVITE body must be multipart/mixed (SDP and metadata)",
        ));
    }
    let boundary = boundary.ok_or_else(|| refuse(400, "malformed multipart body: no boundary"))?;
    let parts = sip::multipart(&req.body, &boundary)
        .map_err(|e| refuse(400, format!("malformed multipart body: {e}")))?;
    let mut sdp_part = None;
    let mut md_part = None;
    for p in &parts {
        let is_md = matches!(
            p.content_type.as_str(),
            "application/rs-metadata+xml" | "application/rs-metadata"
        ) || p.disposition.as_deref() == Some("recording-session");
        if p.content_type == "application/sdp" {
            if sdp_part.is_some() {
                return Err(refuse(400, "more than one SDP body part"));
            }
            sdp_part = Some(p);
        } else if is_md {
            if md_part.is_some() {
                return Err(refuse(400, "more than one metadata body part"));
            }
            md_part = Some(p);
        }
    }
    let sdp_part = sdp_part.ok_or_else(|| refuse(400, "no application/sdp body part"))?;
    let md_part = md_part.ok_or_else(|| {
        refuse(
            400,
            "no recording metadata body part (application/rs-metadata+xml)",
        )
    })?;
    let offer =
        sdp::parse(&sdp_part.body).map_err(|e| refuse(400, format!("malformed SDP: {e}")))?;
    let metadata = metadata::parse(&md_part.body)
        .map_err(|e| refuse(400, format!("malformed metadata: {e}")))?;
    let accepted = offer.accepted();
    if accepted.is_empty() {
        return Err(refuse(488, offer.refusal()));
    }
    if inner.sessions.load(Ordering::SeqCst) > inner.cfg.max_sessions {
        let mut r = refuse(503, "session limit reached");
        r.extra.push(("Retry-After", "30".into()));
        return Err(r);
    }
    if !crate::ingest::spool_has_room(&inner.spool) {
        let mut r = refuse(503, "the spool is full");
        r.extra.push(("Retry-After", "60".into()));
        return Err(r);
    }
    Ok(Checked {
        tenant: trunk.tenant,
        offer,
        accepted,
        metadata,
    })
}

/// The phone number in an AoR: `tel:` URIs, and `sip:` users that are
/// numbers (`sip:+4930123@host;user=phone`).
fn phone_of(aor: &str) -> Option<String> {
    let a = aor.trim().trim_start_matches('<').trim_end_matches('>');
    let lower = a.to_ascii_lowercase();
    if lower.starts_with("tel:") {
        return normalize_phone(&a[4..]);
    }
    let rest = a
        .strip_prefix("sip:")
        .or_else(|| a.strip_prefix("sips:"))
        .or_else(|| lower.starts_with("sip:").then(|| &a[4..]))?;
    let user = rest.split('@').next()?.split(';').next()?;
    if user.len() < 3
        || !user
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.() ".contains(c))
    {
        return None;
    }
    normalize_phone(user)
}

/// The recording's parties from the metadata: the first participant is
/// the caller, the second the callee, anyone else an attendee.
fn parties(md: &Metadata) -> Vec<Participant> {
    md.participants
        .iter()
        .enumerate()
        .map(|(i, p)| Participant {
            id: ParticipantId::new(),
            role: match i {
                0 => ParticipantRole::Caller,
                1 => ParticipantRole::Callee,
                _ => ParticipantRole::Attendee,
            },
            display_name: p.name.clone(),
            phone_number: p.aor.as_deref().and_then(phone_of),
            uri: p.aor.clone(),
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: Some(0),
            left_ms: None,
        })
        .collect()
}

/// Which side each accepted stream records: the side of its sender
/// (metadata), else by m-line order. Streams beyond two are not recorded.
fn sides(accepted: &[Accepted], md: &Metadata) -> Vec<Option<Side>> {
    let by_sender: Vec<Option<Side>> = accepted
        .iter()
        .map(|a| {
            let who = md.sender_of_label(a.label.as_deref()?)?;
            Some(if who == 0 { Side::Caller } else { Side::Callee })
        })
        .collect();
    let distinct = by_sender.iter().take(2).flatten().count() == accepted.len().min(2)
        && !(accepted.len() >= 2 && by_sender[0] == by_sender[1]);
    accepted
        .iter()
        .enumerate()
        .map(|(i, _)| match i {
            0 | 1 if distinct => by_sender[i],
            0 => Some(Side::Caller),
            1 => Some(Side::Callee),
            _ => None,
        })
        .collect()
}

async fn retransmit(reply: Reply, ok: Vec<u8>, dialog: Arc<Mutex<Dialog>>) {
    let mut wait = T1;
    let started = Instant::now();
    let acked = lock(&dialog).acked.clone();
    while started.elapsed() < 64 * T1 {
        tokio::select! {
            _ = acked.notified() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        {
            let d = lock(&dialog);
            if d.acked_flag || d.bye.is_cancelled() {
                return;
            }
        }
        reply.send(ok.clone()).await;
        wait = (wait * 2).min(T2);
    }
    tracing::warn!("no ACK for the SIPREC 200 OK");
}

/// A BYE to the recording client (after an RTP timeout); not retried.
async fn send_bye(req: &sip::Request, reply: &Reply, local: SocketAddr, to_tag: &str) {
    let target = req
        .header(&Name::CONTACT)
        .and_then(|c| {
            let c = c.trim();
            match (c.find('<'), c.find('>')) {
                (Some(a), Some(b)) if a < b => Some(c[a + 1..b].to_owned()),
                _ => c.split(';').next().map(|s| s.trim().to_owned()),
            }
        })
        .filter(|t| t.starts_with("sip"))
        .unwrap_or_else(|| "sip:src@invalid".to_owned());
    let (Some(their_from), Some(their_to)) = (req.header(&Name::FROM), req.header(&Name::TO))
    else {
        return;
    };
    let transport = if reply.reliable() { "TCP" } else { "UDP" };
    let branch = format!("z9hG4bK{:016x}", rand::rng().random::<u64>());
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {their_to};tag={to_tag}\r\nTo: {their_from}\r\nCall-ID: {}\r\n\
CSeq: 1 BYE\r\nReason: SIP;cause=408;text=\"RTP timeout\"\r\nContent-Length: 0\r\n\r\n",
        req.call_id
    );
    reply.send(bye.into_bytes()).await;
}

enum Ended {
    Bye,
    RtpTimeout,
    Broken(String),
}

struct Live {
    inner: Arc<Inner>,
    tenant: TenantId,
    recording_id: RecordingId,
    started_at: chrono::DateTime<chrono::Utc>,
    answered: Instant,
    stream_id: StreamId,
    row_stored: bool,
    first_audio_ms: Option<i64>,
    rec: Option<CallRecorder<SpoolStream>>,
    spooled: Option<SpoolRecording>,
    /// Per accepted m-line: its RTP state and the side it records (None:
    /// received and counted, not recorded).
    streams: Vec<(rtp::Stream, Option<Side>)>,
}

impl Live {
    async fn pump(
        &mut self,
        sockets: Vec<UdpSocket>,
        _lease: &PortLease,
        bye: &CancellationToken,
    ) -> Ended {
        let (tx, mut rx) = mpsc::channel::<(usize, Vec<u8>, Instant)>(1024);
        let stop = CancellationToken::new();
        let mut readers = Vec::new();
        for (i, s) in sockets.into_iter().enumerate() {
            let tx = tx.clone();
            let stop = stop.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    let n = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = s.recv_from(&mut buf) => match r {
                            Ok((n, _)) => n,
                            Err(_) => continue,
                        },
                    };
                    if tx
                        .send((i, buf[..n].to_vec(), Instant::now()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rtp = Instant::now();
        let timeout = self.inner.cfg.rtp_timeout;
        let ended = loop {
            tokio::select! {
                _ = bye.cancelled() => break Ended::Bye,
                m = rx.recv() => {
                    let Some((i, data, at)) = m else { break Ended::Broken("media sockets closed".into()) };
                    last_rtp = at;
                    if let Err(e) = self.packet(i, &data, at).await {
                        break Ended::Broken(e);
                    }
                }
                _ = flush.tick() => {
                    if let Some(r) = &mut self.rec
                        && let Err(e) = r.flush_page()
                    {
                        break Ended::Broken(e.to_string());
                    }
                    if last_rtp.elapsed() > timeout {
                        break Ended::RtpTimeout;
                    }
                }
            }
        };
        stop.cancel();
        for r in readers {
            let _ = r.await;
        }
        // Packets already read are recorded too.
        while let Ok((i, data, at)) = rx.try_recv() {
            if self.packet(i, &data, at).await.is_err() {
                break;
            }
        }
        ended
    }

    async fn packet(&mut self, i: usize, data: &[u8], at: Instant) -> Result<(), String> {
        let ticks = at.saturating_duration_since(self.answered).as_nanos() as i64 / 100;
        let Some((stream, side)) = self.streams.get_mut(i) else {
            return Ok(());
        };
        let before = stream.stats;
        let frames = stream.push(data, ticks);
        let after = stream.stats;
        metrics::counter!("insights_siprec_rtp_packets_total")
            .increment(after.packets - before.packets);
        if after.dtmf > before.dtmf {
            metrics::counter!("insights_siprec_rtp_ignored_total", "reason" => "dtmf").increment(1);
        }
        if after.duplicates > before.duplicates {
            metrics::counter!("insights_siprec_rtp_ignored_total", "reason" => "duplicate")
                .increment(1);
        }
        if after.ignored > before.ignored {
            metrics::counter!("insights_siprec_rtp_ignored_total", "reason" => "other")
                .increment(1);
        }
        let Some(side) = *side else {
            return Ok(());
        };
        self.push(side, frames)?;
        if !self.row_stored && self.first_audio_ms.is_some() {
            self.store_row().await;
        }
        Ok(())
    }

    fn push(&mut self, side: Side, frames: Vec<rtp::Frame>) -> Result<(), String> {
        let Some(rec) = &mut self.rec else {
            return Err("recorder gone".into());
        };
        for f in frames {
            if self.first_audio_ms.is_none() {
                self.first_audio_ms = Some(
                    (insights_core::domain::now() - self.started_at)
                        .num_milliseconds()
                        .max(0),
                );
            }
            let outcome = rec
                .push(
                    side,
                    PcmFrame {
                        seq: f.seq,
                        ticks: f.ticks,
                        pcm: &f.pcm,
                    },
                )
                .map_err(|e| e.to_string())?;
            if matches!(outcome, PushOutcome::Late | PushOutcome::Conflict) {
                metrics::counter!("insights_siprec_rtp_ignored_total", "reason" => "late")
                    .increment(1);
            }
        }
        Ok(())
    }

    async fn store_row(&mut self) {
        let row = MediaStream {
            id: self.stream_id,
            participant_id: None,
            track: 0,
            media_type: "audio".into(),
            codec: "opus".into(),
            sample_rate: 48_000,
            start_ms: self.first_audio_ms.unwrap_or(0),
        };
        match self
            .inner
            .store
            .add_stream(self.tenant, self.recording_id, &row)
            .await
        {
            Ok(()) => self.row_stored = true,
            Err(e) => {
                tracing::error!(recording_id = %self.recording_id, error = %e, "cannot store the media stream row");
            }
        }
    }

    /// Releases what the streams hold and finishes the recorder.
    async fn finish_recorder(&mut self) -> Result<(), String> {
        let mut held = Vec::new();
        for (s, side) in &mut self.streams {
            let frames = s.finish();
            let st = s.stats;
            metrics::counter!("insights_siprec_rtp_lost_total").increment(st.lost);
            tracing::info!(
                recording_id = %self.recording_id,
                packets = st.packets,
                lost = st.lost,
                duplicates = st.duplicates,
                dtmf = st.dtmf,
                ignored = st.ignored,
                ssrc_changes = st.ssrc_changes,
                "SIPREC stream ended"
            );
            if let Some(side) = side {
                held.push((*side, frames));
            }
        }
        for (side, frames) in held {
            self.push(side, frames)?;
        }
        if let Some(rec) = self.rec.take() {
            let (_, summary) = rec.finish().map_err(|e| e.to_string())?;
            tracing::info!(
                recording_id = %self.recording_id,
                duration_ms = summary.duration_ms,
                caller_dropped = summary.caller.dropped(),
                callee_dropped = summary.callee.dropped(),
                "SIPREC recorder finished"
            );
        }
        if !self.row_stored {
            self.store_row().await;
        }
        Ok(())
    }

    async fn set_status(&mut self, code: Option<&str>) {
        if let Err(e) = self
            .inner
            .store
            .update_recording_status(
                self.tenant,
                self.recording_id,
                RecordingStatus::Spooled,
                Some(insights_core::domain::now()),
                code,
            )
            .await
        {
            tracing::error!(recording_id = %self.recording_id, error = %e, "cannot set the recording spooled");
        }
    }

    /// BYE: everything recorded, the entry finished for the uploader.
    async fn finish(&mut self) -> Result<(), String> {
        self.finish_recorder().await?;
        let spooled = self.spooled.take().ok_or("spool entry gone")?;
        spooled.finish().await.map_err(|e| e.to_string())?;
        self.set_status(None).await;
        tracing::info!(recording_id = %self.recording_id, "SIPREC recording spooled");
        Ok(())
    }

    /// RTP timeout or a broken recorder: what is held is written, made
    /// durable and the entry closed as partial; `code` is stored as the
    /// recording's result code.
    async fn abandon(&mut self, code: &str) {
        if let Err(e) = self.finish_recorder().await {
            tracing::error!(recording_id = %self.recording_id, error = %e, "recorder failed at the end");
        }
        if let Some(spooled) = self.spooled.take() {
            let synced = tokio::task::spawn_blocking(move || {
                let r = spooled.sync();
                drop(spooled); // unfinished: closed as partial by the spool
                r
            })
            .await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::error!(recording_id = %self.recording_id, "cannot sync the partial recording");
            }
        }
        self.set_status(Some(code)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_from_tel_and_numeric_sip_users() {
        assert_eq!(
            phone_of("tel:+44-20-7946-0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            phone_of("sip:+14255550100@pbx.example.com;user=phone").as_deref(),
            Some("+14255550100")
        );
        assert_eq!(
            phone_of("<sip:0049301234567@h>").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(phone_of("sip:alice@example.com"), None);
        assert_eq!(phone_of("sips:12@x"), None);
    }

    #[test]
    fn sides_follow_the_sender_else_the_order() {
        let md = metadata::parse(metadata::tests::RFC.as_bytes()).unwrap_or_default();
        let acc = |labels: &[&str]| -> Vec<Accepted> {
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| Accepted {
                    index: i,
                    label: Some((*l).to_owned()),
                    payload_type: 0,
                    codec: rtp::Codec::Pcmu,
                    dtmf_payload_type: None,
                })
                .collect()
        };
        // Label 2 is sent by the second participant (callee).
        assert_eq!(
            sides(&acc(&["2", "1"]), &md),
            vec![Some(Side::Callee), Some(Side::Caller)]
        );
        assert_eq!(
            sides(&acc(&["x", "y", "z"]), &md),
            vec![Some(Side::Caller), Some(Side::Callee), None]
        );
        let parties = parties(&md);
        assert_eq!(parties[0].role, ParticipantRole::Caller);
        assert_eq!(parties[0].phone_number.as_deref(), Some("+14255550100"));
        assert_eq!(parties[0].display_name.as_deref(), Some("Bob & Co"));
        assert_eq!(parties[1].uri.as_deref(), Some("tel:+44-20-7946-0958"));
    }
}
