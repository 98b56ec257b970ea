//! Media ingest: the WebSocket protocol by which the media adapter streams
//! a call's audio to the gateway.
//!
//! Teams delivers call media only to its Windows/.NET media library, so a
//! thin adapter runs beside it and forwards the audio; this module owns our
//! side of that link. [`protocol`] defines the messages (the wire format is
//! documented there and in the README).
//!
//! # Route and state
//!
//! `GET /media/v1/calls/{call_id}` ([`MEDIA_PATH`]), a WebSocket upgrade.
//! Mount it with [`mount`] (state included) or, with a
//! `web::Data<IngestState>` already in the app data, with [`configure`].
//! [`IngestState::new`] takes the call registry (of the webhook's
//! [`crate::webhook::GatewayState`]), the spool, the metadata store, the
//! adapter token and the recorder settings.
//!
//! **Auth:** `Authorization: Bearer <token>`, compared in constant time
//! with `gateway.media_token` (see
//! `insights_core::config::GatewaySettings::media_token`). Missing or
//! wrong → **401** before the upgrade.
//!
//! # One connection, step by step
//!
//! 1. `hello`: protocol, encoding and mode are checked (`bad-request`).
//! 2. The call must be live in the registry (`unknown-call`); an adapter
//!    that connects while the answer is still in flight waits up to 5 s.
//!    A call the tenant's recording policy excludes is refused
//!    (`not-recorded`): nothing of it is ever spooled.
//! 3. Spool room is checked without reserving (`spool-full`; the same
//!    rule as [`Spool::begin`]).
//! 4. `registry.begin_recording` reports `recording` to Teams and waits
//!    for the acknowledgement (`recording-failed`, and `failed` is
//!    reported).
//!
//!    Wherever recording cannot proceed (steps 3-5, a lost connection,
//!    the node shutting down), what Teams is told follows the tenant's
//!    failure mode: `required` reports `failed` (Teams blocks or ends the
//!    call), `best-effort` reports `notRecording` (the call goes on
//!    unrecorded); both raise the `recording-failure` alert
//!    ([`crate::calls::CallRegistry::recording_cannot_proceed`]).
//!    A **standby leg** (a meeting another leg records, see
//!    `crate::calls`) gets `ready` now and persists nothing: its audio is
//!    held in memory (the last `calls::STANDBY_BUFFER`) until the leg
//!    takes the meeting over, then steps 5-6 follow and what it held
//!    since its recording's start is replayed first; a standby that ends
//!    as one gets `closed` and Teams `notRecording`.
//! 5. Only then is the spool entry created ([`Spool::begin`]); if the
//!    spool filled up in between, `failed` is reported and the adapter
//!    gets `spool-full`. So no spool entry — let alone a media byte —
//!    exists before Teams acknowledged `recording`.
//! 6. `ready`; audio messages are processed one at a time (the next
//!    WebSocket frame is read only after the previous one went through
//!    the recorder into the spool's buffers: backpressure, no queue).
//!    Every second the recorder completes its Ogg pages, so the spool's
//!    durability tick (≤ 1 s) sees the audio. Meanwhile the session
//!    polls the recording's pause state in the metadata store (`pause`
//!    module): while paused nothing is written, Teams is told
//!    `notRecording`, and `recording` again before media resumes.
//! 7. `end`: the recorder finishes, the `MediaStream` rows are stored,
//!    the status becomes `spooled`, the spool entry is finished (the
//!    uploader takes it from there), `notRecording` is reported and the
//!    adapter gets `closed`.
//! 8. Socket lost (or 60 s without any message, or a broken message)
//!    before `end`: the recorder finishes what it holds, the spool entry
//!    is synced and closed as **partial**, status `spooled`, and `failed`
//!    is reported to Teams if the call is still going on.
//!
//! # Layouts (fixed at step 5: the spool fixes the stream count)
//!
//! * **Two-party call** (`RecordingKind::Call`), PCM: ONE stream, the
//!   recorder's two-channel Ogg Opus file. Left = the roster member with
//!   role `caller`, right = everyone else (the callee, and whoever the
//!   call is transferred/forwarded to). One `MediaStream` row, track 0,
//!   no participant (it holds both).
//! * **Meeting** (`RecordingKind::Meeting`), PCM: stream 0 = the mix;
//!   streams 1..=n = one per roster member present at `hello`; then
//!   [`IngestConfig::spare_streams`] spare streams (default 4) taken by
//!   participants who start speaking later, in order of their first
//!   audio. A participant beyond that, and audio whose source is not
//!   bound to anyone, is **recorded in the mix only** (counted in
//!   `insights_ingest_mix_only_frames_total`). `MediaStream` rows are
//!   stored for the mix and every stream actually used, with `start_ms`
//!   from the recorder (offset from the recording start). Unused spare
//!   streams stay empty.
//! * **Opus** (`encoding: opus`, one 20 ms mono packet per buffer):
//!   a two-party call is stored **without re-encoding**: the two sides'
//!   packets are muxed into the same stereo layout (one multistream
//!   packet per 20 ms, the caller's packet in self-delimiting framing,
//!   see `recorder::passthrough`), gaps filled with packets of digital
//!   silence. In a meeting each source's packets are decoded (the mix
//!   needs PCM) and recorded as PCM would be.
//!
//! # Source ids
//!
//! A buffer's source id is looked up in the roster's audio `sourceId`s
//! and in the adapter's `source` bindings (which name a Graph participant
//! id). An unknown id triggers a roster refresh (at most every 200 ms).
//! Still unknown: in a call its audio is **dropped** (never guessed onto a
//! side; counted `reason="unbound-source"`), in a meeting it goes to the
//! mix only.
//!
//! # Metrics
//!
//! `insights_ingest_frames_received_total`,
//! `insights_ingest_frames_dropped_total{reason}` (duplicate, conflict,
//! late, inactive, unbound-source, invalid),
//! `insights_ingest_mix_only_frames_total`,
//! `insights_ingest_sessions_total{outcome}`, and the gauge
//! `insights_ingest_sessions_active`. `insights_calls_active` is the
//! spool's (live entries).
//!
//! Logs carry call, recording and participant ids only: no names,
//! numbers or UPNs; audio is only ever written through the spool.

mod pause;
pub mod protocol;
mod session;
mod standby;

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};
use insights_core::config::Secret;
use insights_core::domain::TenantId;
use insights_core::store::MetadataStore;
use recorder::RecorderConfig;
use sha2::{Digest, Sha256};

use crate::calls::{CallAdmission, CallRegistry};
use crate::spool::Spool;

/// The media route.
pub const MEDIA_PATH: &str = "/media/v1/calls/{call_id}";

/// Calls refused for want of spool room, counted where the refusal is
/// decided: at the invite (admission) or when the media session opens.
const CALLS_REFUSED_METRIC: &str = "insights_ingest_calls_refused_total";

/// Tunables of the ingest.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Recorder settings (Opus, timeline, pages).
    pub recorder: RecorderConfig,
    /// Extra streams reserved in a meeting's spool entry for participants
    /// who are not in the roster at `hello`.
    pub spare_streams: usize,
    /// Time for the `hello`.
    pub hello_timeout: std::time::Duration,
    /// A connection without any message for this long is treated as lost.
    pub idle_timeout: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            recorder: RecorderConfig::default(),
            spare_streams: 4,
            hello_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Everything the media route needs; share it as `web::Data<IngestState>`.
pub struct IngestState {
    pub registry: Arc<CallRegistry>,
    pub spool: Spool,
    pub store: Arc<dyn MetadataStore>,
    pub config: IngestConfig,
    token_digest: [u8; 32],
}

impl IngestState {
    /// The state of the media route; `token` is the adapter token.
    pub fn new(
        registry: Arc<CallRegistry>,
        spool: Spool,
        store: Arc<dyn MetadataStore>,
        token: &Secret,
        config: IngestConfig,
    ) -> Self {
        Self {
            registry,
            spool,
            store,
            config,
            token_digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Whether an `Authorization` header value carries the adapter token
    /// (constant time: both sides are hashed, the digests compared with
    /// a full XOR fold).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        }) else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        got.iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Admission control backed by the spool: a new call is refused (not
/// answered, stored as failed with `refused:spool-full`) when the spool
/// could not take one more call now. The check reserves nothing; the
/// media connection checks again and the spool itself has the last word.
pub struct SpoolAdmission {
    spool: Spool,
}

impl SpoolAdmission {
    pub fn new(spool: Spool) -> Self {
        Self { spool }
    }
}

/// Whether the spool has room for one more call, by [`Spool::begin`]'s
/// rule (`used + reserved + call_reserve_bytes <= quota_bytes`).
pub fn spool_has_room(spool: &Spool) -> bool {
    let cfg = spool.config();
    let reserve = cfg.call_reserve_bytes;
    let reserved: u64 = spool
        .entries()
        .iter()
        .filter(|e| e.journal.state == crate::spool::journal::EntryState::Live)
        .map(|e| reserve.saturating_sub(e.media_bytes))
        .sum();
    spool
        .used_bytes()
        .saturating_add(reserved)
        .saturating_add(reserve)
        <= cfg.quota_bytes
}

impl CallAdmission for SpoolAdmission {
    fn admit(&self, tenant: TenantId) -> Result<(), String> {
        if spool_has_room(&self.spool) {
            Ok(())
        } else {
            metrics::counter!(CALLS_REFUSED_METRIC, "code" => "spool-full").increment(1);
            tracing::warn!(tenant_id = %tenant, "spool full: new call refused");
            Err("spool-full".into())
        }
    }
}

/// Registers the media route; `web::Data<IngestState>` must be in the app
/// data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(MEDIA_PATH).route(web::get().to(media)));
}

/// Registers the state and the media route.
pub fn mount(state: web::Data<IngestState>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.app_data(state.clone());
        configure(cfg);
    }
}

async fn media(
    req: HttpRequest,
    body: web::Payload,
    call_id: web::Path<String>,
    state: web::Data<IngestState>,
) -> Result<HttpResponse, actix_web::Error> {
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.authorized(authorization) {
        metrics::counter!("insights_ingest_auth_failures_total").increment(1);
        tracing::warn!(
            call_id = %call_id,
            missing = authorization.is_none(),
            "media connection refused: bad adapter token"
        );
        return Ok(HttpResponse::Unauthorized()
            .insert_header((WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({
                "code": "media-token-invalid",
                "title": "the media adapter token is missing or wrong",
            })));
    }
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(protocol::MAX_MESSAGE.max(64 * 1024))
        .aggregate_continuations()
        .max_continuation_size(protocol::MAX_MESSAGE.max(64 * 1024));
    let state = state.into_inner();
    let call_id = call_id.into_inner();
    actix_web::rt::spawn(async move {
        session::run(state, call_id, ws, stream).await;
    });
    Ok(response)
}
