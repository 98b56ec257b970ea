//! One recording session: from the INVITE to the spooled recording (the
//! flow of the module docs).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ezk_sip_types::{Method, Name};
use insights_core::domain::{
    AuditAction, DecidedBy, Direction, MediaStream, NewAuditEvent, Participant, ParticipantId,
    ParticipantRole, PolicyDecision, PolicyParty, Recording, RecordingId, RecordingKind,
    RecordingPolicy, RecordingStatus, StreamId, TenantId, decide_recording, normalize_phone,
};
use rand::Rng;
use recorder::{CallRecorder, PcmFrame, PushOutcome, Side};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
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
    /// The negotiated session interval (RFC 4028), if any.
    timer: Option<Duration>,
}

/// An in-dialog offer and/or metadata (re-INVITE, UPDATE) for the
/// session to apply; `done` gets the SDP answer (the current one when
/// there was no offer).
pub(crate) struct Update {
    offer: Option<Offer>,
    metadata: Option<Metadata>,
    timer: Option<Duration>,
    done: oneshot::Sender<Result<String, Refusal>>,
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
        updates: None,
        reinvite: None,
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
    let checked = match check(inner, &req, from, reply.tls()) {
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
    // The tenant's recording policy (issue 17 §1), before anything is
    // stored or a port is opened.
    let decision = match policy_decision(inner, checked.tenant, &checked.metadata).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(tenant = %checked.tenant, error = %e, "cannot read the recording policy");
            let mut r = refuse(500, "recording policy unavailable");
            r.extra.push(("Retry-After", "30".into()));
            send_final(reply, &req, dialog, to_tag, r).await;
            return "failed";
        }
    };
    if !decision.record {
        let ctx = Answering {
            req: &req,
            reply,
            local,
            dialog,
            to_tag,
        };
        return not_recorded(inner, ctx, checked, decision, media_ip).await;
    }
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
    if let Some(ext) = extension_attribute(&checked.metadata) {
        recording.attributes.insert(EXTENSIONS.to_owned(), ext);
    }
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
    let sdp_session: u64 = rand::rng().random::<u32>().into();
    let ports: Vec<(usize, u16)> = checked
        .accepted
        .iter()
        .zip(&lease.ports)
        .map(|(a, p)| (a.index, *p))
        .collect();
    let answer = checked.offer.answer(media_ip, &ports, sdp_session, 1);
    let mut extra = vec![
        ("Contact", super::contact(local, reply)),
        ("Allow", sip::ALLOW.to_owned()),
        ("Supported", "siprec, timer".to_owned()),
    ];
    extra.extend(timer_headers(checked.timer));
    let ok = sip::response(
        &req.headers,
        200,
        None,
        Some(to_tag),
        &extra,
        Some(("application/sdp", answer.as_bytes())),
    );
    let (updates_tx, updates) = mpsc::channel::<Update>(8);
    {
        let mut d = lock(dialog);
        d.last_invite_response = ok.clone();
        d.answered = true;
        d.answer_sdp = Some(answer.clone().into_bytes());
        d.updates = Some(updates_tx);
    }
    metrics::counter!("insights_siprec_responses_total", "code" => "200").increment(1);
    reply.send(ok.clone()).await;
    if !reply.reliable() {
        tokio::spawn(retransmit(reply.clone(), ok, dialog.clone()));
    }
    tracing::info!(%recording_id, tenant = %tenant, streams = checked.accepted.len(), "SIPREC session answered");
    // Sides: the stream the caller sends goes left; streams beyond the
    // first two get lanes of their own, mixed into their sender's side.
    let sides = sides(&checked.accepted, &checked.metadata);
    let mut rec = rec;
    let slots: Vec<Slot> = checked
        .accepted
        .iter()
        .zip(sides)
        .zip(&lease.ports)
        .enumerate()
        .map(|(i, ((a, side), port))| Slot {
            mline: a.index,
            port: *port,
            rtp: rtp::Stream::new(a.codec, a.payload_type, a.dtmf_payload_type),
            lane: if i < 2 {
                side.channel()
            } else {
                rec.add_lane(side)
            },
            held: a.held,
            label: a.label.clone(),
        })
        .collect();
    let mut slots = slots;
    for (slot, a) in slots.iter_mut().zip(&checked.accepted) {
        slot.rtp.set_srtp(a.srtp.as_ref());
    }
    let party_ids = recording
        .participants
        .iter()
        .zip(&checked.metadata.participants)
        .map(|(p, m)| (m.id.clone(), p.id))
        .collect();
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
        slots,
        offer: checked.offer,
        metadata: checked.metadata,
        party_ids,
        leases: vec![lease],
        media_ip,
        bind_ip: local.ip(),
        sdp_session,
        sdp_version: 1,
        answer,
        timer: checked.timer,
        refreshed: Instant::now(),
        dialog: dialog.clone(),
        media: None,
        answer_ms: (insights_core::domain::now() - started_at)
            .num_milliseconds()
            .max(0),
        dtmf: Vec::new(),
    };
    let bye = lock(dialog).bye.clone();
    let ended = live.pump(sockets, &bye, updates).await;
    lock(dialog).updates = None;
    live.leases.clear();
    match ended {
        Ended::Bye => match live.finish().await {
            Ok(()) => "completed",
            Err(e) => {
                tracing::error!(%recording_id, error = %e, "cannot close the SIPREC recording");
                "failed"
            }
        },
        Ended::RtpTimeout | Ended::SessionExpired | Ended::Broken(_) => {
            let (code, reason) = match &ended {
                Ended::Broken(why) => {
                    tracing::error!(%recording_id, %why, "SIPREC media failed: closing as partial");
                    ("partial:recorder-failed", "Recorder failed")
                }
                Ended::SessionExpired => {
                    tracing::warn!(%recording_id, "SIPREC session not refreshed (RFC 4028): closing as partial");
                    ("session-expired", "Session expired")
                }
                _ => {
                    tracing::warn!(%recording_id, "no RTP for siprec.rtp_timeout: closing as partial");
                    ("rtp-timeout", "RTP timeout")
                }
            };
            live.abandon(code).await;
            send_bye(&req, reply, local, to_tag, reason).await;
            lock(dialog).bye.cancel();
            match code {
                "rtp-timeout" | "session-expired" => code,
                _ => "failed",
            }
        }
    }
}

/// What answering the INVITE needs.
struct Answering<'a> {
    req: &'a sip::Request,
    reply: &'a Reply,
    local: SocketAddr,
    dialog: &'a Arc<Mutex<Dialog>>,
    to_tag: &'a str,
}

/// The audit actor of the recording server's own decisions (as the
/// Teams side's).
const ACTOR: &str = "gateway";

/// The address of an AoR the policy's domain rules compare:
/// `user@host` without scheme, parameters or port.
fn address_of(aor: &str) -> Option<String> {
    let a = aor.trim().trim_start_matches('<').trim_end_matches('>');
    let lower = a.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("sips:")
        .or_else(|| lower.strip_prefix("sip:"))?;
    let rest = rest.split([';', '?', '>']).next()?;
    let (user, host) = rest.rsplit_once('@')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!user.is_empty() && !host.is_empty()).then(|| format!("{user}@{host}"))
}

/// The tenant's recording policy applied to the metadata's parties
/// ([`decide_recording`], the one function the Teams side calls too):
/// their numbers (E.164) and SIP addresses.
async fn policy_decision(
    inner: &Inner,
    tenant: TenantId,
    md: &Metadata,
) -> insights_core::store::StoreResult<PolicyDecision> {
    let policy = inner
        .store
        .recording_policy(tenant)
        .await?
        .unwrap_or_else(|| RecordingPolicy::default_for(tenant));
    let facts: Vec<PolicyParty> = md
        .participants
        .iter()
        .map(|p| {
            let mut f = PolicyParty::default();
            if let Some(aor) = &p.aor {
                f.numbers.extend(phone_of(aor));
                f.addresses.extend(address_of(aor));
            }
            f
        })
        .collect();
    let decision = decide_recording(&policy, &facts);
    let by = match decision.by {
        DecidedBy::Rule { list, .. } => list.as_str(),
        DecidedBy::NotIncluded => "include-only",
        DecidedBy::RecordAll => "record-all",
    };
    let outcome = if decision.record {
        "recorded"
    } else {
        "not-recorded"
    };
    metrics::counter!("insights_siprec_policy_decisions_total", "decision" => outcome, "by" => by)
        .increment(1);
    Ok(decision)
}

/// A session the tenant's policy excludes: audited
/// (`recording-not-recorded`), then answered `200` with every stream
/// `a=inactive` so the client sends no media; no recording row, no
/// spool entry, no port. The dialog lives until BYE (or its session
/// timer runs out), in-dialog offers answered inactive too.
async fn not_recorded(
    inner: &Arc<Inner>,
    a: Answering<'_>,
    checked: Checked,
    decision: PolicyDecision,
    media_ip: std::net::IpAddr,
) -> &'static str {
    let event = NewAuditEvent {
        actor: ACTOR.into(),
        action: AuditAction::RecordingNotRecorded,
        recording_id: None,
        target: Some(format!("siprec:{}", a.req.call_id)),
        reason: None,
        source: None,
        details: serde_json::json!({
            "decision": "not-recorded",
            "by": decision.by.name(),
            "rule_id": decision.by.rule_id(),
            "source": "siprec",
        }),
    };
    // Audited before the answer: a failure is a 500 and the client may
    // try again.
    if let Err(e) = inner.store.append_audit(checked.tenant, event).await {
        tracing::error!(tenant = %checked.tenant, error = %e, "cannot audit the policy decision");
        send_final(
            a.reply,
            a.req,
            a.dialog,
            a.to_tag,
            refuse(500, "cannot audit the policy decision"),
        )
        .await;
        return "failed";
    }
    tracing::info!(
        tenant = %checked.tenant,
        by = %decision.by.name(),
        rule_id = ?decision.by.rule_id(),
        "recording policy: SIPREC session not recorded; streams answered inactive"
    );
    let sdp_session: u64 = rand::rng().random::<u32>().into();
    let mut version = 1;
    let mut answer = checked
        .offer
        .answer_inactive(media_ip, sdp_session, version);
    let mut extra = vec![
        ("Contact", super::contact(a.local, a.reply)),
        ("Allow", sip::ALLOW.to_owned()),
        ("Supported", "siprec, timer".to_owned()),
    ];
    extra.extend(timer_headers(checked.timer));
    let ok = sip::response(
        &a.req.headers,
        200,
        None,
        Some(a.to_tag),
        &extra,
        Some(("application/sdp", answer.as_bytes())),
    );
    let (updates_tx, mut updates) = mpsc::channel::<Update>(8);
    {
        let mut d = lock(a.dialog);
        d.last_invite_response = ok.clone();
        d.answered = true;
        d.answer_sdp = Some(answer.clone().into_bytes());
        d.updates = Some(updates_tx);
    }
    metrics::counter!("insights_siprec_responses_total", "code" => "200").increment(1);
    a.reply.send(ok.clone()).await;
    if !a.reply.reliable() {
        tokio::spawn(retransmit(a.reply.clone(), ok, a.dialog.clone()));
    }
    let bye = lock(a.dialog).bye.clone();
    let mut timer = checked.timer;
    let mut refreshed = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ended = loop {
        tokio::select! {
            _ = bye.cancelled() => break "not-recorded",
            Some(u) = updates.recv() => {
                if let Some(o) = &u.offer {
                    if o.accepted().is_empty() {
                        let _ = u.done.send(Err(refuse(488, o.refusal())));
                        continue;
                    }
                    version += 1;
                    answer = o.answer_inactive(media_ip, sdp_session, version);
                    lock(a.dialog).answer_sdp = Some(answer.clone().into_bytes());
                }
                timer = u.timer;
                refreshed = Instant::now();
                let _ = u.done.send(Ok(answer.clone()));
            }
            _ = tick.tick() => {
                if let Some(t) = timer {
                    let grace = (t / 3).min(Duration::from_secs(32));
                    if refreshed.elapsed() > t - grace {
                        send_bye(a.req, a.reply, a.local, a.to_tag, "Session expired").await;
                        break "session-expired";
                    }
                }
            }
        }
    };
    lock(a.dialog).updates = None;
    lock(a.dialog).bye.cancel();
    ended
}

/// Trunk, extension, body, SDP and metadata, and capacity.
fn check(
    inner: &Inner,
    req: &sip::Request,
    from: SocketAddr,
    tls: Option<&super::TlsPeer>,
) -> Result<Checked, Refusal> {
    let user = req.uri_user.as_deref();
    let fingerprint = tls.and_then(|t| t.fingerprint.as_deref());
    let trunk = inner.cfg.trunks.iter().find(|t| {
        (t.sources.is_empty() || t.sources.iter().any(|c| c.contains(from.ip())))
            && (t.fingerprints.is_empty()
                || fingerprint.is_some_and(|f| t.fingerprints.iter().any(|x| x == f)))
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
    if sip::media_type(ctype).0 != "multipart/mixed" {
        return Err(refuse(
            400,
            "a SIPREC INVITE body must be multipart/mixed (SDP and metadata)",
        ));
    }
    let (sdp_part, md_part) = body_parts(req)?;
    let sdp_part = sdp_part.ok_or_else(|| refuse(400, "no application/sdp body part"))?;
    let md_part = md_part.ok_or_else(|| {
        refuse(
            400,
            "no recording metadata body part (application/rs-metadata+xml)",
        )
    })?;
    let offer = sdp::parse(&sdp_part).map_err(|e| refuse(400, format!("malformed SDP: {e}")))?;
    let metadata =
        metadata::parse(&md_part).map_err(|e| refuse(400, format!("malformed metadata: {e}")))?;
    let timer = session_timer(inner, req)?;
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
        timer,
    })
}

/// An SDP body and a metadata body, either possibly absent.
type BodyParts = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The SDP and the metadata of a request's body: a `multipart/mixed`
/// with either or both, or one of them alone (in-dialog requests).
fn body_parts(req: &sip::Request) -> Result<BodyParts, Refusal> {
    let Some(ctype) = req.header(&Name::CONTENT_TYPE) else {
        return Ok((None, None));
    };
    if req.body.is_empty() {
        return Ok((None, None));
    }
    let is_md = |ct: &str, disposition: Option<&str>| {
        matches!(
            ct,
            "application/rs-metadata+xml" | "application/rs-metadata"
        ) || disposition == Some("recording-session")
    };
    let (mt, boundary) = sip::media_type(ctype);
    if mt == "application/sdp" {
        return Ok((Some(req.body.to_vec()), None));
    }
    let disposition = req.header(&Name::CONTENT_DISPOSITION).map(|d| {
        d.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    if is_md(&mt, disposition.as_deref()) {
        return Ok((None, Some(req.body.to_vec())));
    }
    if mt != "multipart/mixed" {
        let mut r = refuse(
            415,
            "the body must be SDP, recording metadata or multipart/mixed",
        );
        r.extra.push((
            "Accept",
            "application/sdp, application/rs-metadata+xml, multipart/mixed".into(),
        ));
        return Err(r);
    }
    let boundary = boundary.ok_or_else(|| refuse(400, "malformed multipart body: no boundary"))?;
    let parts = sip::multipart(&req.body, &boundary)
        .map_err(|e| refuse(400, format!("malformed multipart body: {e}")))?;
    let mut sdp_part = None;
    let mut md_part = None;
    for p in parts {
        if p.content_type == "application/sdp" {
            if sdp_part.is_some() {
                return Err(refuse(400, "more than one SDP body part"));
            }
            sdp_part = Some(p.body);
        } else if is_md(&p.content_type, p.disposition.as_deref()) {
            if md_part.is_some() {
                return Err(refuse(400, "more than one metadata body part"));
            }
            md_part = Some(p.body);
        }
    }
    Ok((sdp_part, md_part))
}

/// Session timers (RFC 4028): the interval a request asks for, when the
/// recording client can refresh (`Supported`/`Require: timer`); shorter
/// than `min_se` gets 422 with our `Min-SE`. `None`: no session timer.
fn session_timer(inner: &Inner, req: &sip::Request) -> Result<Option<Duration>, Refusal> {
    let Some(v) = req.header(&Name::SESSION_EXPIRES) else {
        return Ok(None);
    };
    let secs = sip::session_expires(v).map_err(|e| refuse(400, e))?;
    if !(req.lists(&Name::SUPPORTED, "timer") || req.lists(&Name::REQUIRE, "timer")) {
        return Ok(None);
    }
    if secs < inner.cfg.min_se {
        let mut r = refuse(422, "Session-Expires below our Min-SE");
        r.extra.push(("Min-SE", inner.cfg.min_se.to_string()));
        return Err(r);
    }
    Ok(Some(Duration::from_secs(secs)))
}

/// The headers of a 2xx that runs a session timer: the client refreshes.
fn timer_headers(timer: Option<Duration>) -> Vec<(&'static str, String)> {
    match timer {
        Some(t) => vec![
            ("Session-Expires", format!("{};refresher=uac", t.as_secs())),
            ("Require", "timer".into()),
        ],
        None => Vec::new(),
    }
}

/// A re-INVITE or UPDATE in an answered dialog: the body parsed, handed
/// to the session, and answered with what it made of it.
pub(super) async fn in_dialog(
    inner: Arc<Inner>,
    req: sip::Request,
    reply: Reply,
    local: SocketAddr,
    dialog: Arc<Mutex<Dialog>>,
) {
    let is_invite = req.method == Method::INVITE;
    let (tag, tx) = {
        let d = lock(&dialog);
        (d.to_tag.clone(), d.updates.clone())
    };
    let result = async {
        let (sdp_part, md_part) = body_parts(&req)?;
        let offered = sdp_part.is_some();
        let offer = sdp_part
            .map(|b| sdp::parse(&b))
            .transpose()
            .map_err(|e| refuse(400, format!("malformed SDP: {e}")))?;
        let metadata = md_part
            .map(|b| metadata::parse(&b))
            .transpose()
            .map_err(|e| refuse(400, format!("malformed metadata: {e}")))?;
        let timer = session_timer(&inner, &req)?;
        let tx = tx.ok_or_else(|| refuse(481, "no such session"))?;
        let (done, answer) = oneshot::channel();
        tx.send(Update {
            offer,
            metadata,
            timer,
            done,
        })
        .await
        .map_err(|_| refuse(481, "the session has ended"))?;
        let answer = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .map_err(|_| refuse(500, "the session did not answer"))?
            .map_err(|_| refuse(481, "the session has ended"))??;
        Ok::<_, Refusal>((answer, offered, timer))
    }
    .await;
    let bytes = match result {
        Ok((answer, offered, timer)) => {
            let mut extra = vec![
                ("Contact", super::contact(local, &reply)),
                ("Allow", sip::ALLOW.to_owned()),
                ("Supported", "siprec, timer".to_owned()),
            ];
            extra.extend(timer_headers(timer));
            let body = (is_invite || offered).then_some(("application/sdp", answer.as_bytes()));
            sip::response(&req.headers, 200, None, Some(&tag), &extra, body)
        }
        Err(r) => {
            tracing::warn!(
                code = r.code,
                why = r.why.as_deref().unwrap_or(""),
                "SIPREC in-dialog request refused"
            );
            let mut extra = r.extra;
            let phrase = r.why.as_ref().map(|w| {
                extra.push((
                    "Warning",
                    format!("399 insights \"{}\"", w.replace('"', "'")),
                ));
                format!("{} ({w})", sip::reason(r.code))
            });
            sip::response(
                &req.headers,
                r.code,
                phrase.as_deref(),
                Some(&tag),
                &extra,
                None,
            )
        }
    };
    if is_invite {
        lock(&dialog).reinvite = Some((req.cseq, bytes.clone()));
        reply.send(bytes).await;
    } else {
        super::respond_and_remember(&inner, &req, &reply, bytes).await;
    }
}

/// The recording attribute holding the metadata's extension data.
const EXTENSIONS: &str = "siprec.extensions";
/// The recording attribute holding the DTMF events.
const DTMF: &str = "dtmf";
/// DTMF events stored per recording.
const MAX_DTMF: usize = 1000;

/// The metadata's extension data as `{namespace: {element: text}}`.
fn extension_attribute(md: &Metadata) -> Option<serde_json::Value> {
    if md.extensions.is_empty() {
        return None;
    }
    let mut by_ns = serde_json::Map::new();
    for (ns, local, v) in &md.extensions {
        if let serde_json::Value::Object(m) = by_ns
            .entry(ns.clone())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
        {
            m.insert(local.clone(), serde_json::Value::String(v.clone()));
        }
    }
    Some(serde_json::Value::Object(by_ns))
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

/// The side of a stream's sender: the caller (first participant) left,
/// anyone else right; the right side when the metadata does not say.
fn side_of(label: Option<&str>, md: &Metadata) -> Side {
    match label.and_then(|l| md.sender_of_label(l)) {
        Some(0) => Side::Caller,
        _ => Side::Callee,
    }
}

/// Which side each accepted stream records: the side of its sender
/// (metadata), else by m-line order for the first two; streams beyond
/// two are mixed into their sender's side ([`side_of`]).
fn sides(accepted: &[Accepted], md: &Metadata) -> Vec<Side> {
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
        .map(|(i, a)| match (i, distinct) {
            (0 | 1, true) => by_sender[i].unwrap_or(Side::Callee),
            (0, false) => Side::Caller,
            (1, false) => Side::Callee,
            _ => side_of(a.label.as_deref(), md),
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

/// A BYE to the recording client (after an RTP timeout or an expired
/// session); not retried.
async fn send_bye(
    req: &sip::Request,
    reply: &Reply,
    local: SocketAddr,
    to_tag: &str,
    reason: &str,
) {
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
    let transport = reply.transport().to_ascii_uppercase();
    let branch = format!("z9hG4bK{:016x}", rand::rng().random::<u64>());
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {their_to};tag={to_tag}\r\nTo: {their_from}\r\nCall-ID: {}\r\n\
CSeq: 1 BYE\r\nReason: SIP;cause=408;text=\"{reason}\"\r\nContent-Length: 0\r\n\r\n",
        req.call_id
    );
    reply.send(bye.into_bytes()).await;
}

enum Ended {
    Bye,
    RtpTimeout,
    /// RFC 4028: no refresh within the session interval.
    SessionExpired,
    Broken(String),
}

/// One accepted m-line of the session.
struct Slot {
    /// Its index in the offers.
    mline: usize,
    port: u16,
    rtp: rtp::Stream,
    /// The recorder lane: 0 caller, 1 callee, more mixed into a side.
    lane: usize,
    /// The client sends nothing on it for now (hold).
    held: bool,
    /// Its SDP label (the DTMF events name it).
    label: Option<String>,
}

/// The session's media reader: datagrams of slot `i` arrive as `i`.
///
/// One task reads all the session's sockets, one datagram from each
/// ready socket in turn: the streams of a call reach the recorder
/// interleaved as they arrived, also when the task ran late and every
/// socket holds a backlog. (A task per socket drains its own socket in
/// bursts when scheduled; under load one stream then runs ahead of the
/// other by more than the reorder window, and the recorder drops the
/// other's frames as late.)
struct Media {
    add: mpsc::UnboundedSender<(usize, UdpSocket)>,
    stop: CancellationToken,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Datagrams read from the session's sockets before the reader yields.
const READ_BUDGET: usize = 256;

impl Media {
    fn start(tx: mpsc::Sender<(usize, Vec<u8>, Instant)>) -> Media {
        let (add, added) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let reader = tokio::spawn(read_fair(tx, added, stop.clone()));
        Media {
            add,
            stop,
            readers: vec![reader],
        }
    }

    fn spawn_reader(&mut self, i: usize, s: UdpSocket) {
        let _ = self.add.send((i, s));
    }
}

async fn read_fair(
    tx: mpsc::Sender<(usize, Vec<u8>, Instant)>,
    mut added: mpsc::UnboundedReceiver<(usize, UdpSocket)>,
    stop: CancellationToken,
) {
    let mut socks: Vec<(usize, UdpSocket)> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        // Round-robin over the ready sockets until all are drained.
        let mut budget = READ_BUDGET;
        loop {
            let mut got = false;
            for (i, s) in &socks {
                // WouldBlock, or an ICMP error of an earlier send: next.
                if let Ok((n, _)) = s.try_recv_from(&mut buf) {
                    got = true;
                    budget = budget.saturating_sub(1);
                    if tx
                        .send((*i, buf[..n].to_vec(), Instant::now()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if !got || budget == 0 {
                break;
            }
        }
        if budget == 0 {
            tokio::task::yield_now().await;
            continue;
        }
        let any_readable = async {
            if socks.is_empty() {
                std::future::pending::<()>().await;
            } else {
                let _ =
                    futures::future::select_all(socks.iter().map(|(_, s)| Box::pin(s.readable())))
                        .await;
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            a = added.recv() => match a {
                Some(x) => socks.push(x),
                None => return,
            },
            _ = any_readable => {}
        }
    }
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
    slots: Vec<Slot>,
    /// The last offer applied, and the session's metadata so far.
    offer: Offer,
    metadata: Metadata,
    /// Metadata participant id → the recording's party.
    party_ids: Vec<(String, ParticipantId)>,
    leases: Vec<PortLease>,
    media_ip: std::net::IpAddr,
    bind_ip: std::net::IpAddr,
    sdp_session: u64,
    sdp_version: u64,
    /// The current SDP answer.
    answer: String,
    /// Session interval (RFC 4028) and the last refresh.
    timer: Option<Duration>,
    refreshed: Instant,
    dialog: Arc<Mutex<Dialog>>,
    media: Option<Media>,
    /// Milliseconds from the recording's start to the answer (the
    /// session clock's zero).
    answer_ms: i64,
    /// DTMF events, stored as the `dtmf` attribute at the end.
    dtmf: Vec<serde_json::Value>,
}

impl Live {
    fn ticks_now(&self) -> i64 {
        self.answered.elapsed().as_nanos() as i64 / 100
    }

    async fn pump(
        &mut self,
        sockets: Vec<UdpSocket>,
        bye: &CancellationToken,
        mut updates: mpsc::Receiver<Update>,
    ) -> Ended {
        let (tx, mut rx) = mpsc::channel::<(usize, Vec<u8>, Instant)>(1024);
        let mut media = Media::start(tx);
        for (i, s) in sockets.into_iter().enumerate() {
            media.spawn_reader(i, s);
        }
        self.media = Some(media);
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
                Some(u) = updates.recv() => {
                    let result = self.apply(u.offer, u.metadata, u.timer).await;
                    if result.is_ok() {
                        // A refresh also restarts the wait for RTP.
                        last_rtp = Instant::now();
                    }
                    let _ = u.done.send(result);
                }
                _ = flush.tick() => {
                    // All streams on hold: nothing is expected, and the
                    // recording's clock runs on in silence.
                    if self.slots.iter().all(|s| s.held) {
                        last_rtp = Instant::now();
                        let now = self.ticks_now();
                        if let Some(r) = &mut self.rec
                            && let Err(e) = r.advance_to(now)
                        {
                            break Ended::Broken(e.to_string());
                        }
                    }
                    if let Some(r) = &mut self.rec
                        && let Err(e) = r.flush_page()
                    {
                        break Ended::Broken(e.to_string());
                    }
                    if last_rtp.elapsed() > timeout {
                        break Ended::RtpTimeout;
                    }
                    if let Some(t) = self.timer {
                        // RFC 4028 §10: the side that does not refresh
                        // ends the session shortly before it expires.
                        let grace = (t / 3).min(Duration::from_secs(32));
                        if self.refreshed.elapsed() > t - grace {
                            break Ended::SessionExpired;
                        }
                    }
                }
            }
        };
        if let Some(mut m) = self.media.take() {
            m.stop.cancel();
            for r in m.readers.drain(..) {
                let _ = r.await;
            }
        }
        // Packets already read are recorded too.
        while let Ok((i, data, at)) = rx.try_recv() {
            if self.packet(i, &data, at).await.is_err() {
                break;
            }
        }
        ended
    }

    /// An in-dialog offer and/or metadata: new streams get ports and
    /// lanes, held streams are silent until they resume (re-anchored),
    /// codec changes apply to the next packets; joined and departed
    /// participants update the recording's parties. Returns the answer.
    async fn apply(
        &mut self,
        offer: Option<Offer>,
        metadata: Option<Metadata>,
        timer: Option<Duration>,
    ) -> Result<String, Refusal> {
        // Check the offer before anything changes.
        let mut new_ports: Vec<(usize, PortLease, UdpSocket)> = Vec::new();
        let accepted = match &offer {
            Some(o) => {
                if o.media.len() < self.offer.media.len() {
                    return Err(refuse(
                        488,
                        "an m-line was removed (RFC 3264: set its port to 0)",
                    ));
                }
                let accepted = o.accepted();
                if accepted.is_empty() {
                    return Err(refuse(488, o.refusal()));
                }
                let mut prefer = self.slots.iter().map(|s| s.port).max();
                for a in &accepted {
                    if self.slots.iter().any(|s| s.mline == a.index) {
                        continue;
                    }
                    let got = prefer
                        .and_then(|p| p.checked_add(2))
                        .and_then(|p| PortPool::allocate_at(&self.inner.ports, self.bind_ip, p))
                        .or_else(|| PortPool::allocate(&self.inner.ports, self.bind_ip, 1));
                    let Some((lease, mut sockets)) = got else {
                        tracing::error!("no free RTP ports in siprec.rtp_ports");
                        let mut r = refuse(503, "no free RTP ports");
                        r.extra.push(("Retry-After", "30".into()));
                        return Err(r);
                    };
                    prefer = lease.ports.first().copied();
                    let Some(sock) = sockets.pop() else {
                        return Err(refuse(500, "no RTP socket"));
                    };
                    new_ports.push((a.index, lease, sock));
                }
                Some(accepted)
            }
            None => None,
        };
        if let Some(md) = metadata {
            self.update_parties(md).await;
        }
        if let (Some(o), Some(accepted)) = (offer, accepted) {
            for slot in &mut self.slots {
                match accepted.iter().find(|a| a.index == slot.mline) {
                    Some(a) => {
                        if slot.rtp.codec() != (a.codec, a.payload_type, a.dtmf_payload_type) {
                            slot.rtp
                                .renegotiate(a.codec, a.payload_type, a.dtmf_payload_type);
                        }
                        slot.rtp.set_srtp(a.srtp.as_ref());
                        if slot.held && !a.held {
                            slot.rtp.resume();
                        }
                        slot.held = a.held;
                    }
                    // No longer offered (port 0, or nothing we record).
                    None => slot.held = true,
                }
            }
            for (mline, lease, sock) in new_ports {
                let Some(a) = accepted.iter().find(|a| a.index == mline) else {
                    continue;
                };
                let side = side_of(a.label.as_deref(), &self.metadata);
                let Some(rec) = &mut self.rec else {
                    return Err(refuse(500, "recorder gone"));
                };
                let lane = if self.slots.iter().any(|s| s.lane == side.channel()) {
                    rec.add_lane(side)
                } else {
                    side.channel()
                };
                let i = self.slots.len();
                let mut stream = rtp::Stream::new(a.codec, a.payload_type, a.dtmf_payload_type);
                stream.set_srtp(a.srtp.as_ref());
                self.slots.push(Slot {
                    mline,
                    port: lease.ports[0],
                    rtp: stream,
                    lane,
                    held: a.held,
                    label: a.label.clone(),
                });
                if let Some(m) = &mut self.media {
                    m.spawn_reader(i, sock);
                }
                self.leases.push(lease);
            }
            self.offer = o;
            self.sdp_version += 1;
            let ports: Vec<(usize, u16)> = self.slots.iter().map(|s| (s.mline, s.port)).collect();
            self.answer =
                self.offer
                    .answer(self.media_ip, &ports, self.sdp_session, self.sdp_version);
            lock(&self.dialog).answer_sdp = Some(self.answer.clone().into_bytes());
            tracing::info!(
                recording_id = %self.recording_id,
                streams = self.slots.len(),
                held = self.slots.iter().filter(|s| s.held).count(),
                "SIPREC session updated"
            );
        }
        // RFC 4028: every re-INVITE/UPDATE refreshes; without
        // Session-Expires it turns the timer off.
        self.timer = timer;
        self.refreshed = Instant::now();
        Ok(self.answer.clone())
    }

    /// Metadata of a re-INVITE or UPDATE: who joined (an attendee, or
    /// `redirected-to` when someone left in the same update: a transfer)
    /// and who left.
    async fn update_parties(&mut self, md: Metadata) {
        let had = extension_attribute(&self.metadata);
        let (joined, left) = self.metadata.merge(md);
        let now = extension_attribute(&self.metadata);
        if let Some(ext) = now.filter(|n| Some(n) != had.as_ref()) {
            self.store_attribute(EXTENSIONS, ext).await;
        }
        let now_ms = (insights_core::domain::now() - self.started_at)
            .num_milliseconds()
            .max(0);
        for &i in &left {
            let id = &self.metadata.participants[i].id;
            let Some((_, pid)) = self.party_ids.iter().find(|(m, _)| m == id) else {
                continue;
            };
            if let Err(e) = self
                .inner
                .store
                .update_participant_presence(
                    self.tenant,
                    self.recording_id,
                    *pid,
                    false,
                    Some(now_ms),
                )
                .await
            {
                tracing::error!(recording_id = %self.recording_id, error = %e, "cannot store a party's leaving");
            }
        }
        for &i in &joined {
            let p = &self.metadata.participants[i];
            let party = Participant {
                id: ParticipantId::new(),
                role: if left.is_empty() {
                    ParticipantRole::Attendee
                } else {
                    ParticipantRole::RedirectedTo
                },
                display_name: p.name.clone(),
                phone_number: p.aor.as_deref().and_then(phone_of),
                uri: p.aor.clone(),
                email: None,
                directory_user_id: None,
                recorded_user: false,
                joined_ms: Some(now_ms),
                left_ms: None,
            };
            match self
                .inner
                .store
                .add_participant(self.tenant, self.recording_id, &party)
                .await
            {
                Ok(()) => self.party_ids.push((p.id.clone(), party.id)),
                Err(e) => {
                    tracing::error!(recording_id = %self.recording_id, error = %e, "cannot store a joining party");
                }
            }
        }
        if !joined.is_empty() || !left.is_empty() {
            tracing::info!(
                recording_id = %self.recording_id,
                joined = joined.len(),
                left = left.len(),
                "SIPREC participants changed"
            );
        }
    }

    async fn packet(&mut self, i: usize, data: &[u8], at: Instant) -> Result<(), String> {
        let ticks = at.saturating_duration_since(self.answered).as_nanos() as i64 / 100;
        let Some(slot) = self.slots.get_mut(i) else {
            return Ok(());
        };
        let stream = &mut slot.rtp;
        let before = stream.stats;
        let frames = stream.push(data, ticks);
        let after = stream.stats;
        let lane = slot.lane;
        for e in stream.take_events() {
            if self.dtmf.len() < MAX_DTMF {
                self.dtmf.push(serde_json::json!({
                    "at_ms": self.answer_ms + e.ticks.max(0) / 10_000,
                    "digit": e.digit,
                    "duration_ms": e.duration_ms,
                    "stream": slot.label,
                }));
            }
        }
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
        self.push(lane, frames)?;
        if !self.row_stored && self.first_audio_ms.is_some() {
            self.store_row().await;
        }
        Ok(())
    }

    fn push(&mut self, lane: usize, frames: Vec<rtp::Frame>) -> Result<(), String> {
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
                .push_lane(
                    lane,
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

    async fn store_attribute(&mut self, name: &str, value: serde_json::Value) {
        let attrs = std::collections::BTreeMap::from([(name.to_owned(), value)]);
        if let Err(e) = self
            .inner
            .store
            .merge_recording_attributes(self.tenant, self.recording_id, &attrs)
            .await
        {
            tracing::error!(recording_id = %self.recording_id, error = %e, attribute = name, "cannot store a recording attribute");
        }
    }

    /// Releases what the streams hold and finishes the recorder.
    async fn finish_recorder(&mut self) -> Result<(), String> {
        let mut held = Vec::new();
        for slot in &mut self.slots {
            let frames = slot.rtp.finish();
            let st = slot.rtp.stats;
            metrics::counter!("insights_siprec_rtp_lost_total").increment(st.lost);
            tracing::info!(
                recording_id = %self.recording_id,
                packets = st.packets,
                lost = st.lost,
                duplicates = st.duplicates,
                dtmf = st.dtmf,
                ignored = st.ignored,
                ssrc_changes = st.ssrc_changes,
                srtp_failures = st.srtp_failures,
                "SIPREC stream ended"
            );
            held.push((slot.lane, frames));
        }
        for (lane, frames) in held {
            self.push(lane, frames)?;
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
        if !self.dtmf.is_empty() {
            let events = serde_json::Value::Array(std::mem::take(&mut self.dtmf));
            self.store_attribute(DTMF, events).await;
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
                    held: false,
                    srtp: None,
                })
                .collect()
        };
        // Label 2 is sent by the second participant (callee).
        assert_eq!(
            sides(&acc(&["2", "1"]), &md),
            vec![Side::Callee, Side::Caller]
        );
        assert_eq!(
            sides(&acc(&["x", "y", "z"]), &md),
            vec![Side::Caller, Side::Callee, Side::Callee]
        );
        // A third stream sent by the caller is mixed into the left.
        assert_eq!(
            sides(&acc(&["2", "x", "1"]), &md),
            vec![Side::Caller, Side::Callee, Side::Caller]
        );
        let parties = parties(&md);
        assert_eq!(parties[0].role, ParticipantRole::Caller);
        assert_eq!(parties[0].phone_number.as_deref(), Some("+14255550100"));
        assert_eq!(parties[0].display_name.as_deref(), Some("Bob & Co"));
        assert_eq!(parties[1].uri.as_deref(), Some("tel:+44-20-7946-0958"));
    }
}
