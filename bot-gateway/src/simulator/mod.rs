//! The call simulator: plays a whole Teams compliance-recording call
//! against a running gateway, as Microsoft Graph Communications and the
//! media adapter would. `insights simulate-call` is a thin CLI over it;
//! tests and demos use it.
//!
//! # What a simulated call does
//!
//! 1. **Invite.** `POST <gateway>/api/calls` with a `commsNotifications`
//!    batch holding the `created` notification of a policy-based
//!    recording invite (`applicationMetadata.botData.inviteReasons =
//!    ["PolicyBasedRecording"]`, `tenantId` = the directory tenant,
//!    `callChainId`, `incomingContext`). The first participant is the
//!    recorded user: the invite's `source` and observed participant.
//!    * a **call** (default): they are the `caller`; the second
//!      participant is the `callee` (`botData.otherSideUser`); more
//!      participants join through the roster (attendees);
//!    * a **meeting** (`meeting = true`): `meetingInfo.organizer` is the
//!      recorded user and `chatInfo.threadId` is set; everyone else is an
//!      attendee.
//!
//!    Every request carries `Authorization: Bearer <token>` minted with the
//!    simulator signing key ([`crate::auth::simulator`]), which a gateway
//!    trusts only with `gateway.trust_simulator_key = true` (off by
//!    default). Any non-2xx answer stops the run.
//! 2. **State and roster.** `establishing`, `established`, then one roster
//!    update listing the bot and every participant, each with one audio
//!    media stream whose `sourceId` is `100 + index`.
//! 3. **Media.** The simulator opens `GET /media/v1/calls/{call_id}` as a
//!    WebSocket with `Authorization: Bearer <media adapter token>` and
//!    speaks [`crate::ingest::protocol`]: `hello` (`pcm16`; mode
//!    `per-participant` for calls, `unmixed` for meetings), one `source`
//!    binding per participant (source id → Graph participant id), then
//!    waits for `ready` (`refused` ends the run with its code). Audio goes
//!    out as 20 ms frames: sequence numbers from 0, +1 per message;
//!    timestamps in 100 ns ticks from the wall clock at the start of
//!    streaming, +200 000 per 20 ms instant.
//!    * `per-participant`: every 20 ms, one message per participant whose
//!      audio has not ended (silence included), in participant order;
//!    * `unmixed`: every 20 ms, one message with the buffers of the (at
//!      most four loudest) participants that are not silent in that
//!      instant ([`is_voiced`]), as Teams' unmixed audio carries active
//!      speakers only; an instant with nobody speaking sends nothing.
//!
//!    Pacing: instant `k` is sent at `start + k × 20 ms / speed`; `speed`
//!    0 sends as fast as the gateway takes it. Each send is awaited, so
//!    the gateway's backpressure slows the simulator down. In a meeting,
//!    each participant but the recorded user leaves (roster `deleted`) as
//!    their audio ends.
//! 4. **Hang-up.** `end`, wait for `closed`, then the `deleted`
//!    notification with `resultInfo` code 200, subcode 0 (a normal
//!    hang-up). The hang-up is also posted when the media phase failed
//!    (refused, socket lost), so the gateway is not left with a live call.
//!
//! Errors are values ([`SimError`]), each with a message that says what
//! failed and where; the run never panics.

mod media;
mod notify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use insights_core::domain::normalize_phone;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::{SimulatorKey, SimulatorKeyError};
use crate::ingest::protocol::RefusalCode;
use crate::webhook::CALLBACK_PATH;

pub use media::is_voiced;

/// Samples in one 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
/// 20 ms in 100 ns ticks.
pub const FRAME_TICKS: i64 = 200_000;
/// The audio `sourceId` of the first participant; the others follow.
pub const FIRST_SOURCE_ID: u32 = 100;
/// Where the gateway keeps the media adapter token by default, under the
/// data dir.
pub const MEDIA_TOKEN_FILE: &str = "keys/media-adapter.token";
/// The ingest route; `{call_id}` is appended.
pub const MEDIA_PATH: &str = "/media/v1/calls/";

/// One participant of a simulated call.
#[derive(Clone)]
pub struct SimParticipant {
    /// Display name.
    pub name: String,
    /// An E.164 number (`+4930…`, a PSTN party) or a UPN (`a@b.c`, a Teams
    /// user).
    pub identity: String,
    /// The Entra object id of a Teams user. `None`: derived from the UPN
    /// (stable across runs). Give the directory's id so the gateway links
    /// the participant to the tenant's directory user.
    pub object_id: Option<String>,
    /// 16 kHz mono PCM.
    pub pcm: Vec<i16>,
}

impl std::fmt::Debug for SimParticipant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimParticipant")
            .field("samples", &self.pcm.len())
            .finish_non_exhaustive()
    }
}

/// How callback tokens are obtained.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// Minted per request with the simulator key at `key_path` (created if
    /// missing), for `audience` (the gateway's `gateway.audience()`).
    SimulatorKey { key_path: PathBuf, audience: String },
    /// A fixed bearer token.
    Bearer(String),
}

/// A call to play.
#[derive(Clone, Debug)]
pub struct SimulatedCall {
    /// Base URL of the gateway (`http://host:port`); a trailing
    /// `/api/calls` is accepted and stripped.
    pub gateway_url: String,
    /// The customer's Entra tenant id the notifications carry.
    pub directory_tenant_id: Uuid,
    /// A meeting instead of a 1:1 call.
    pub meeting: bool,
    /// The first is the recorded user.
    pub participants: Vec<SimParticipant>,
    /// 1 = real time, 2 = twice as fast, 0 = as fast as possible.
    pub speed: f64,
    /// How the media adapter sends audio: PCM, or Opus packets (20 ms,
    /// 16 kHz mono, 24 kbit/s VoIP, as a .NET adapter would produce
    /// with libopus).
    pub encoding: crate::ingest::protocol::Encoding,
    pub token_source: TokenSource,
    /// Bearer token of the media WebSocket.
    pub media_token: String,
    /// The Graph call id (default: a new UUID).
    pub call_id: String,
    /// How long to wait for `ready` and `closed`.
    pub control_timeout: Duration,
    /// Per-request timeout of notification POSTs.
    pub request_timeout: Duration,
    /// Indexes of participants (in a meeting) whose audio source Teams
    /// does not attribute: no `sourceId` in the roster, no `source`
    /// binding, so the gateway records their voice in the mix only.
    pub mix_only: Vec<usize>,
    /// The `callChainId` of the invite (default: a new UUID). Legs of one
    /// meeting (one per recorded user, possibly on different gateway
    /// nodes) share it.
    pub chain_id: Option<String>,
    /// The index of the participant this leg records (the invite's
    /// source; default 0). In a meeting participant 0 organises it.
    pub recorded_user: usize,
}

impl SimulatedCall {
    /// A call with a fresh call id and default timeouts.
    pub fn new(
        gateway_url: impl Into<String>,
        directory_tenant_id: Uuid,
        participants: Vec<SimParticipant>,
        token_source: TokenSource,
        media_token: impl Into<String>,
    ) -> Self {
        Self {
            gateway_url: gateway_url.into(),
            directory_tenant_id,
            meeting: false,
            participants,
            speed: 1.0,
            encoding: crate::ingest::protocol::Encoding::Pcm16,
            token_source,
            media_token: media_token.into(),
            call_id: Uuid::new_v4().to_string(),
            control_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            mix_only: Vec::new(),
            chain_id: None,
            recorded_user: 0,
        }
    }
}

/// One participant as the simulator presented them.
#[derive(Clone, Debug)]
pub struct SimParticipantReport {
    /// Graph participant id (roster `id`, `source.participant_id`).
    pub participant_id: String,
    /// Audio `sourceId`.
    pub source_id: u32,
    /// 20 ms frames of this participant's audio.
    pub frames: u64,
}

/// What a finished run did.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub call_id: String,
    /// From the gateway's `ready`/`closed`.
    pub recording_id: String,
    /// Audio messages (WebSocket binary frames) sent.
    pub messages_sent: u64,
    /// 20 ms buffers sent (one per participant and instant in
    /// `per-participant` mode).
    pub frames_sent: u64,
    /// Length of the call's audio (the longest participant).
    pub audio_duration: Duration,
    /// Wall-clock time of the media phase.
    pub streaming_time: Duration,
    /// When the last audio message was sent (before `end`): where the
    /// gateway's time to store the recording starts.
    pub last_audio_sent_at: std::time::Instant,
    /// In input order.
    pub participants: Vec<SimParticipantReport>,
}

/// Why a simulated call failed. Messages name no participant data.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation: {0}")]
    Invalid(String),
    #[error("cannot read audio {path}: {reason}")]
    Audio { path: PathBuf, reason: String },
    #[error(transparent)]
    Key(#[from] SimulatorKeyError),
    #[error("gateway unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the gateway refused the simulator's credentials for {what} (HTTP 401{}); {}",
        code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        unauthorized_hint(code.as_deref())
    )]
    Unauthorized {
        what: &'static str,
        code: Option<String>,
    },
    #[error("the gateway answered {what} with HTTP {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Http {
        what: &'static str,
        status: u16,
        code: Option<String>,
    },
    #[error("the gateway refused the call's media: {} ({message})", refusal_code(*.code))]
    Refused { code: RefusalCode, message: String },
    #[error("media protocol error: {0}")]
    Protocol(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// What to do about a refused simulator token.
fn unauthorized_hint(code: Option<&str>) -> &'static str {
    match code {
        Some("token-untrusted-simulator") => {
            "the gateway does not trust the simulator key: `gateway.trust_simulator_key` is false (the default). For a local test or demo gateway without `gateway.app_id`, start it with `INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY=true` (or `trust_simulator_key = true` under [gateway]); never in production"
        }
        _ => {
            "is `gateway.trust_simulator_key` on (INSIGHTS_GATEWAY__TRUST_SIMULATOR_KEY=true) and the gateway's data dir / audience used?"
        }
    }
}

/// The wire name of a refusal code (`spool-full`, …).
pub fn refusal_code(code: RefusalCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}

/// A participant's identity as the notifications carry it.
#[derive(Clone)]
pub(crate) enum Identity {
    User { object_id: String },
    Phone(String),
}

/// A participant as presented in the call.
#[derive(Clone)]
pub(crate) struct Party {
    pub name: String,
    pub identity: Identity,
    pub participant_id: String,
    pub source_id: u32,
    /// Listed without an audio source (see [`SimulatedCall::mix_only`]).
    pub mix_only: bool,
}

/// Decodes an audio file (WAV, FLAC, MP3, Ogg, …) to 16 kHz mono PCM
/// with the recorder's import.
pub fn load_audio(path: &Path) -> Result<Vec<i16>, SimError> {
    recorder::import::decode_file(path)
        .map(|p| p.samples)
        .map_err(|e| SimError::Audio {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// A stable Entra-like object id for a UPN without a directory entry.
pub fn object_id_for_upn(upn: &str) -> String {
    let d = Sha256::digest(format!("insights-simulator:{}", upn.to_ascii_lowercase()));
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// Parses `NAME:NUMBER_OR_UPN:FILE` (the CLI's `--participant`).
pub fn parse_participant_spec(spec: &str) -> Result<(String, String, PathBuf), SimError> {
    let mut it = spec.splitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(name), Some(id), Some(file))
            if !name.trim().is_empty() && !id.trim().is_empty() && !file.is_empty() =>
        {
            Ok((
                name.trim().to_owned(),
                id.trim().to_owned(),
                PathBuf::from(file),
            ))
        }
        _ => Err(SimError::Invalid(
            "a participant is NAME:NUMBER_OR_UPN:FILE (e.g. 'Alice:alice@contoso.com:alice.wav')"
                .into(),
        )),
    }
}

fn identity_of(p: &SimParticipant, index: usize) -> Result<Identity, SimError> {
    let id = p.identity.trim();
    if id.contains('@') {
        let object_id = p.object_id.clone().unwrap_or_else(|| object_id_for_upn(id));
        return Ok(Identity::User { object_id });
    }
    match normalize_phone(id) {
        Some(n) if id.starts_with('+') => Ok(Identity::Phone(n)),
        _ => Err(SimError::Invalid(format!(
            "participant {} : the identity must be an E.164 number (+…) or a UPN (user@domain)",
            index + 1
        ))),
    }
}

/// The gateway's endpoints.
struct Endpoints {
    callback: String,
    media_base: String,
}

fn endpoints(gateway_url: &str) -> Result<Endpoints, SimError> {
    let mut url = url::Url::parse(gateway_url.trim())
        .map_err(|e| SimError::Invalid(format!("gateway URL `{gateway_url}`: {e}")))?;
    let ws_scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => {
            return Err(SimError::Invalid(format!(
                "gateway URL scheme `{other}`: use http:// or https://"
            )));
        }
    };
    let path = url.path().trim_end_matches('/');
    let base = path.strip_suffix(CALLBACK_PATH).unwrap_or(path).to_owned();
    url.set_path(&base);
    url.set_query(None);
    url.set_fragment(None);
    let http_base = url.as_str().trim_end_matches('/').to_owned();
    let callback = format!("{http_base}{CALLBACK_PATH}");
    let rest = http_base
        .split_once("://")
        .map(|(_, r)| r.to_owned())
        .unwrap_or_default();
    Ok(Endpoints {
        callback,
        media_base: format!("{ws_scheme}://{rest}{MEDIA_PATH}"),
    })
}

enum Minter {
    Key(SimulatorKey, String),
    Bearer(String),
}

impl Minter {
    fn token(&self, tenant: Uuid) -> Result<String, SimError> {
        match self {
            Minter::Key(k, audience) => Ok(k.mint(
                audience,
                tenant,
                crate::auth::simulator::SIMULATOR_TOKEN_TTL,
            )?),
            Minter::Bearer(t) => Ok(t.clone()),
        }
    }
}

/// Posts notifications to the webhook.
pub(crate) struct Notifier {
    http: reqwest::Client,
    url: String,
    minter: Minter,
    tenant: Uuid,
}

impl Notifier {
    pub(crate) async fn post(&self, what: &'static str, items: Vec<Value>) -> Result<(), SimError> {
        let token = self.minter.token(self.tenant)?;
        let res = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&notify::batch(items))
            .send()
            .await
            .map_err(|e| SimError::Unreachable {
                url: self.url.clone(),
                reason: error_chain(&e),
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let code = res
            .json::<Value>()
            .await
            .ok()
            .and_then(|b| b.get("code").and_then(Value::as_str).map(str::to_owned));
        tracing::warn!(
            what,
            status = status.as_u16(),
            "gateway refused a notification"
        );
        Err(if status == StatusCode::UNAUTHORIZED {
            SimError::Unauthorized { what, code }
        } else {
            SimError::Http {
                what,
                status: status.as_u16(),
                code,
            }
        })
    }
}

/// The error and its sources on one line (reqwest hides the cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl SimulatedCall {
    fn validate(&self) -> Result<Vec<Party>, SimError> {
        if self.participants.len() < 2 {
            return Err(SimError::Invalid(
                "a call needs at least two participants".into(),
            ));
        }
        if self.participants.len() > 200 {
            return Err(SimError::Invalid("at most 200 participants".into()));
        }
        if !self.speed.is_finite() || self.speed < 0.0 {
            return Err(SimError::Invalid(
                "speed must be 0 (as fast as possible) or positive".into(),
            ));
        }
        if self.participants.iter().all(|p| p.pcm.is_empty()) {
            return Err(SimError::Invalid("no participant has any audio".into()));
        }
        if self.recorded_user >= self.participants.len() {
            return Err(SimError::Invalid(
                "the recorded user must be one of the participants".into(),
            ));
        }
        if self.call_id.trim().is_empty() || self.call_id.contains(['/', '?', '#']) {
            return Err(SimError::Invalid("bad call id".into()));
        }
        self.participants
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Party {
                    name: p.name.clone(),
                    identity: identity_of(p, i)?,
                    participant_id: Uuid::new_v4().to_string(),
                    source_id: FIRST_SOURCE_ID + i as u32,
                    mix_only: self.meeting && self.mix_only.contains(&i),
                })
            })
            .collect()
    }

    /// Plays the call. See the module docs for the sequence.
    pub async fn run(&self) -> Result<SimReport, SimError> {
        let parties = self.validate()?;
        let ep = endpoints(&self.gateway_url)?;
        let minter = match &self.token_source {
            TokenSource::SimulatorKey { key_path, audience } => {
                Minter::Key(SimulatorKey::load_or_create(key_path)?, audience.clone())
            }
            TokenSource::Bearer(t) => Minter::Bearer(t.clone()),
        };
        let http = insights_http::ClientOptions::new(Duration::from_secs(5))
            .timeout(self.request_timeout)
            .follow_redirects()
            .build()
            .map_err(|e| SimError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let notifier = Notifier {
            http,
            url: ep.callback.clone(),
            minter,
            tenant: self.directory_tenant_id,
        };
        let tenant = self.directory_tenant_id.to_string();
        let call_id = self.call_id.as_str();
        let chain_id = self
            .chain_id
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());

        tracing::info!(call_id, meeting = self.meeting, "simulated call: invite");
        notifier
            .post(
                "the invite",
                vec![notify::invite(
                    call_id,
                    &chain_id,
                    &tenant,
                    self.meeting,
                    &parties,
                    self.recorded_user,
                )],
            )
            .await?;
        notifier
            .post(
                "the establishing state",
                vec![notify::state(call_id, "establishing")],
            )
            .await?;
        notifier
            .post(
                "the established state",
                vec![notify::state(call_id, "established")],
            )
            .await?;
        let mut everyone = vec![notify::bot_participant(&Uuid::new_v4().to_string())];
        everyone.extend(parties.iter().map(|p| notify::participant(p, &tenant)));
        notifier
            .post("the roster", vec![notify::roster(call_id, everyone)])
            .await?;

        let media = media::stream(self, &ep.media_base, &parties, &notifier, &tenant).await;
        // Hang up even when the media failed, so no call is left dangling
        // on the gateway; the media error is the one reported.
        let hangup = notifier
            .post("the hang-up", vec![notify::deleted(call_id, 200, 0)])
            .await;
        let media = media?;
        hangup?;
        tracing::info!(
            call_id,
            frames = media.frames_sent,
            "simulated call: finished"
        );
        Ok(media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_gateway_url() {
        let e = endpoints("http://127.0.0.1:8080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.callback, "http://127.0.0.1:8080/api/calls");
        assert_eq!(e.media_base, "ws://127.0.0.1:8080/media/v1/calls/");
        let e =
            endpoints("https://rec.example.com/gw/api/calls/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.callback, "https://rec.example.com/gw/api/calls");
        assert_eq!(e.media_base, "wss://rec.example.com/gw/media/v1/calls/");
        assert!(endpoints("ftp://x").is_err());
        assert!(endpoints("not a url").is_err());
    }

    #[test]
    fn participant_specs_and_identities() {
        let (n, i, f) = parse_participant_spec("Alice Keller:alice@contoso.example:/tmp/a:b.wav")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (n.as_str(), i.as_str(), f),
            (
                "Alice Keller",
                "alice@contoso.example",
                PathBuf::from("/tmp/a:b.wav")
            )
        );
        assert!(parse_participant_spec("Alice:alice.wav").is_err());
        assert!(parse_participant_spec(":+49301234:a.wav").is_err());
        let p = |id: &str| SimParticipant {
            name: "x".into(),
            identity: id.into(),
            object_id: None,
            pcm: vec![],
        };
        assert!(
            matches!(identity_of(&p("+49 30 1234567"), 0), Ok(Identity::Phone(n)) if n == "+49301234567")
        );
        assert!(
            matches!(identity_of(&p("A@B.example"), 0), Ok(Identity::User { object_id }) if object_id == object_id_for_upn("a@b.example"))
        );
        assert!(identity_of(&p("alice"), 0).is_err());
        assert_eq!(refusal_code(RefusalCode::SpoolFull), "spool-full");
    }
}
