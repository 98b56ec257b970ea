//! The SIPREC Session Recording Server (RFC 7866 / RFC 7865): SBCs acting
//! as Session Recording Clients fork their calls' media here, and the
//! recordings go through the same encrypted spool, uploader, custody
//! manifest and metadata as Teams recordings.
//!
//! # Configuration (`[siprec]`, see `insights_core::config::SiprecSettings`)
//!
//! Off unless `listen` names addresses (`udp:ADDR:PORT`, `tcp:ADDR:PORT`,
//! `tls:ADDR:PORT`, or `ADDR:PORT` for UDP and TCP). TLS listeners use
//! `tls_cert_file`/`tls_key_file` and ask for a client certificate
//! (`tls.rs`: checked against `tls_client_ca_file` when set); its SHA-256
//! fingerprint can choose the trunk (`cert_fingerprints`). A gateway
//! node ([`SiprecServer::start`] from `insights serve`/`insights
//! gateway`) opens them at start-up and stops
//! with an error if one cannot be opened or a trunk names an unknown
//! tenant.
//!
//! # The SIP side
//!
//! SIP messages are parsed with `ezk-sip-types` (request line, compact
//! and folded headers, typed Via/CSeq/From/To); the transport (UDP
//! datagrams, TCP framed by Content-Length) and the small UAS transaction
//! layer are here:
//!
//! * **INVITE** (no To tag): `100 Trying` at once, then
//!   * a trunk must match (source address/CIDR, TLS client-certificate
//!     fingerprint and Request-URI user, as far as it names them), else
//!     **403** and nothing is stored;
//!   * `Require: siprec` must be present, else **421** naming it;
//!   * the body must be `multipart/mixed` with one `application/sdp` part
//!     and the metadata (`application/rs-metadata+xml`, or the older
//!     `application/rs-metadata`, or any part with `Content-Disposition:
//!     recording-session`): anything malformed gets **400** whose reason
//!     phrase (and `Warning`) names the problem, and nothing is stored;
//!   * SDP that offers nothing we can record gets **488** (SRTP needs a
//!     usable SDES `a=crypto`: AES_CM_128_HMAC_SHA1_80 or _32);
//!   * the node's session limit (`max_sessions`), a full spool or no free
//!     RTP ports get **503** with `Retry-After`;
//!   * the tenant's recording policy
//!     ([`insights_core::domain::decide_recording`], as for Teams calls)
//!     on the metadata's numbers and SIP addresses: a session it excludes
//!     is audited (`recording-not-recorded`) and answered **200** with
//!     every stream `a=inactive` (port 9): no row, no spool entry, no port;
//!   * then the recording is stored (status `recording`, parties from the
//!     metadata), its spool entry created, and **200 OK** carries the SDP
//!     answer: every offered m-line in order, an accepted one `recvonly`
//!     on its own RTP port (ports `p`, `p+2`, … consecutive), `a=label`
//!     kept, any other with port 0. Over UDP the 200 is retransmitted
//!     (T1 doubling to T2) until the ACK.
//! * **CANCEL** before the answer: 200 to the CANCEL, **487** to the
//!   INVITE; a recording already stored ends `failed` (`cancelled`).
//! * **BYE**: 200, the recording is finished and spooled.
//! * **re-INVITE** / **UPDATE** in a dialog (`session::in_dialog`): the
//!   body (multipart, or SDP or metadata alone) goes to the session,
//!   which applies it — holds (`inactive`/`recvonly`: answered
//!   `inactive`, silence on the timeline, the stream re-anchored when it
//!   resumes), codec changes, new m-lines (a port each, a recorder lane
//!   mixed into the sender's side), metadata updates (parties joining,
//!   leaving, `redirected-to` for a transfer) — and a **200** carries the
//!   new answer; every one refreshes the session timer. **INFO**: 200;
//!   **OPTIONS** (keep-alive): 200; anything naming an unknown dialog:
//!   **481**; other methods: 405.
//! * **Session timers** (RFC 4028): `Session-Expires` from a client with
//!   `Supported: timer` is granted with `refresher=uac` (below
//!   `min_se`: **422** with `Min-SE`; a retry in the same call starts a
//!   new session); without a refresh the session is closed as partial
//!   (`session-expired`) with a BYE shortly before it expires.
//! * A retransmitted request gets the response it got before.
//!
//! # Media
//!
//! One UDP socket per accepted m-line; RTP per stream ([`rtp`]), SRTP
//! (SDES keys from `a=crypto`, `webrtc-srtp`; keys never logged or
//! stored) authenticated and decrypted first: PCMU,
//! PCMA, G.722 and Opus decoded (G.722 with `audio-codec`, Opus with
//! libopus at 16 kHz on its 48 kHz clock), `telephone-event`
//! kept as DTMF events (the recording's `dtmf` attribute, written at the
//! end; digits never logged) and never stored as audio; the metadata's
//! extension data becomes the `siprec.extensions` attribute;
//! reordering and duplicates handled by the recorder's timeline (the
//! jitter buffer), gaps silent. A two-party call's two streams become the
//! Teams recorder's two-channel Ogg Opus layout (`recorder::CallRecorder`):
//! the caller's stream left, the other right. A stream goes to the side of
//! the participant who sends it (metadata `send`); the caller is the first
//! participant the metadata lists (SBCs list the calling party first);
//! without associations the first m-line is the caller's. Further
//! streams get recorder lanes of their own, mixed into their sender's
//! side (`recorder::CallRecorder::add_lane`).
//!
//! No RTP on any stream for `rtp_timeout` (default 30 s) after the first
//! packet (or after the answer): the recording is closed as partial with
//! result code `rtp-timeout`, and a BYE is sent to the recording client.
//!
//! # Privacy
//!
//! Logs carry recording and tenant ids, response codes and parser
//! problems only; never URIs, numbers, names, SDP or metadata.
//!
//! # Metrics
//!
//! `insights_siprec_requests_total{method}`,
//! `insights_siprec_responses_total{code}` (final responses to INVITEs),
//! `insights_siprec_sessions_total{outcome}` (`completed`, `rtp-timeout`,
//! `session-expired`, `failed`), gauge `insights_siprec_sessions_active`,
//! `insights_siprec_rtp_packets_total`, `insights_siprec_rtp_lost_total`,
//! `insights_siprec_rtp_ignored_total{reason}` (`dtmf`, `duplicate`,
//! `other`), `insights_siprec_policy_decisions_total{decision,by}`.

pub mod metadata;
pub mod rtp;
pub mod sdp;
mod session;
pub mod sip;
mod tls;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ezk_sip_types::Method;
use insights_core::config::{Cidr, SiprecSettings};
use insights_core::domain::TenantId;
use insights_core::store::MetadataStore;
use recorder::RecorderConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;

/// How long a completed transaction's response is kept for
/// retransmissions (64 × T1).
const TRANSACTION_LIFE: Duration = Duration::from_secs(32);

/// Why the recording server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiprecError {
    #[error("[siprec] {0}")]
    Config(String),
    #[error("[siprec] cannot listen on {transport}:{addr}: {source}")]
    Listen {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[siprec] trunk tenant `{0}` does not exist (insights admin tenant add)")]
    UnknownTenant(String),
    #[error("[siprec] cannot read the tenants: {0}")]
    Store(String),
}

/// A trunk with its tenant resolved.
#[derive(Clone, Debug)]
pub(crate) struct Trunk {
    pub tenant: TenantId,
    pub sources: Vec<Cidr>,
    pub request_user: Option<String>,
    /// SHA-256 client-certificate fingerprints (lower-case hex); empty:
    /// any (or no) certificate.
    pub fingerprints: Vec<String>,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub rtp_timeout: Duration,
    pub media_address: Option<IpAddr>,
    pub max_sessions: usize,
    /// Smallest Session-Expires accepted (RFC 4028), seconds.
    pub min_se: u64,
    pub trunks: Vec<Trunk>,
    pub recorder: RecorderConfig,
}

/// What a TLS connection proved about its client.
pub(crate) struct TlsPeer {
    /// SHA-256 of the client certificate (hex), if one was presented.
    pub fingerprint: Option<String>,
}

/// Where a response goes: the datagram's source, or the TCP/TLS
/// connection (with what its handshake proved, over TLS).
#[derive(Clone)]
pub(crate) enum Reply {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>, Option<Arc<TlsPeer>>),
}

impl Reply {
    pub async fn send(&self, bytes: Vec<u8>) {
        match self {
            Reply::Udp(s, to) => {
                if let Err(e) = s.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, "cannot send a SIP datagram");
                }
            }
            Reply::Tcp(tx, _) => {
                let _ = tx.send(bytes).await;
            }
        }
    }

    pub fn reliable(&self) -> bool {
        matches!(self, Reply::Tcp(..))
    }

    /// The TLS connection's client, when the request came over TLS.
    pub fn tls(&self) -> Option<&TlsPeer> {
        match self {
            Reply::Tcp(_, t) => t.as_deref(),
            Reply::Udp(..) => None,
        }
    }

    /// The transport's name in Via/Contact (`udp`, `tcp`, `tls`).
    pub fn transport(&self) -> &'static str {
        match self {
            Reply::Udp(..) => "udp",
            Reply::Tcp(_, None) => "tcp",
            Reply::Tcp(_, Some(_)) => "tls",
        }
    }
}

/// A dialog's state, shared between the SIP side and its session task.
pub(crate) struct Dialog {
    pub invite_cseq: u32,
    pub invite_branch: String,
    pub to_tag: String,
    /// The last response to the INVITE (retransmissions get it again).
    pub last_invite_response: Vec<u8>,
    pub answered: bool,
    pub acked: Arc<tokio::sync::Notify>,
    pub acked_flag: bool,
    pub cancel: CancellationToken,
    /// BYE (or shutdown) ends the session.
    pub bye: CancellationToken,
    pub answer_sdp: Option<Vec<u8>>,
    /// The session's inbox for in-dialog offers and metadata (re-INVITE,
    /// UPDATE), from the answer on.
    pub updates: Option<mpsc::Sender<session::Update>>,
    /// The last re-INVITE's CSeq and response (empty while it is being
    /// applied), for its retransmissions.
    pub reinvite: Option<(u32, Vec<u8>)>,
}

/// Ports handed out by [`PortPool`]; returned when dropped.
pub(crate) struct PortLease {
    pub ports: Vec<u16>,
    pool: Arc<Mutex<PortPool>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut p = lock(&self.pool);
        for port in &self.ports {
            p.in_use.remove(port);
        }
    }
}

pub(crate) struct PortPool {
    lo: u16,
    hi: u16,
    next: u16,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// The even port `port` of the range, when free (a stream added by a
    /// re-INVITE continues its session's run of ports).
    pub fn allocate_at(
        pool: &Arc<Mutex<PortPool>>,
        ip: IpAddr,
        port: u16,
    ) -> Option<(PortLease, Vec<UdpSocket>)> {
        let mut p = lock(pool);
        if !port.is_multiple_of(2) || port < p.lo || port > p.hi || p.in_use.contains(&port) {
            return None;
        }
        let sock = std::net::UdpSocket::bind(SocketAddr::new(ip, port))
            .and_then(|s| s.set_nonblocking(true).map(|_| s))
            .and_then(UdpSocket::from_std)
            .ok()?;
        p.in_use.insert(port);
        Some((
            PortLease {
                ports: vec![port],
                pool: pool.clone(),
            },
            vec![sock],
        ))
    }

    /// `n` sockets on consecutive even ports `p, p+2, …` of the range.
    pub fn allocate(
        pool: &Arc<Mutex<PortPool>>,
        ip: IpAddr,
        n: usize,
    ) -> Option<(PortLease, Vec<UdpSocket>)> {
        let mut p = lock(pool);
        let lo = p.lo + (p.lo & 1);
        let count = u32::from(p.hi.saturating_sub(lo)) / 2 + 1;
        let need = 2 * (n as u32).saturating_sub(1);
        let start = (u32::from(p.next.max(lo) - lo) / 2) % count;
        for attempt in 0..count {
            let base = u32::from(lo) + 2 * ((start + attempt) % count);
            if base + need > u32::from(p.hi) {
                continue;
            }
            let ports: Vec<u16> = (0..n as u32).map(|i| (base + 2 * i) as u16).collect();
            if ports.iter().any(|x| p.in_use.contains(x)) {
                continue;
            }
            let mut sockets = Vec::new();
            for port in &ports {
                let bound = std::net::UdpSocket::bind(SocketAddr::new(ip, *port))
                    .and_then(|s| s.set_nonblocking(true).map(|_| s))
                    .and_then(UdpSocket::from_std);
                match bound {
                    Ok(s) => sockets.push(s),
                    Err(_) => break,
                }
            }
            if sockets.len() != n {
                continue;
            }
            for x in &ports {
                p.in_use.insert(*x);
            }
            let next = base + need + 2;
            p.next = if next > u32::from(p.hi) {
                lo
            } else {
                next as u16
            };
            return Some((
                PortLease {
                    ports,
                    pool: pool.clone(),
                },
                sockets,
            ));
        }
        None
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared state of the server.
pub(crate) struct Inner {
    pub cfg: Config,
    pub store: Arc<dyn MetadataStore>,
    pub spool: Spool,
    pub dialogs: Mutex<HashMap<String, Arc<Mutex<Dialog>>>>,
    /// Responses of completed non-INVITE transactions, for retransmissions.
    pub completed: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    pub ports: Arc<Mutex<PortPool>>,
    pub sessions: std::sync::atomic::AtomicUsize,
    pub stop: CancellationToken,
    /// The listeners' tasks.
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The running recording server.
pub struct SiprecServer {
    inner: Arc<Inner>,
    addrs: Vec<(&'static str, SocketAddr)>,
}

impl SiprecServer {
    /// Opens the listeners of `[siprec]`; `Ok(None)` when it is off.
    /// Every listener and every trunk's tenant must be valid, or this
    /// fails (start-up stops: nothing is recorded half-configured).
    pub async fn start(
        settings: &SiprecSettings,
        store: Arc<dyn MetadataStore>,
        spool: Spool,
    ) -> Result<Option<SiprecServer>, SiprecError> {
        if !settings.enabled() {
            return Ok(None);
        }
        settings
            .validate()
            .map_err(|e| SiprecError::Config(e.to_string()))?;
        let listeners = settings
            .listeners()
            .map_err(|e| SiprecError::Config(e.to_string()))?;
        let ports = settings
            .rtp_port_range()
            .map_err(|e| SiprecError::Config(e.to_string()))?;
        if settings.media_address.is_none()
            && let Some(l) = listeners.iter().find(|l| l.addr.ip().is_unspecified())
        {
            return Err(SiprecError::Config(format!(
                "listener {} is on an unspecified address: set siprec.media_address \
                 (the address SBCs send RTP to)",
                l.addr
            )));
        }
        let mut trunks = Vec::new();
        for t in &settings.trunks {
            let tenant = match store.tenant_by_name(t.tenant.trim()).await {
                Ok(x) => x.id,
                Err(insights_core::store::StoreError::NotFound) => {
                    return Err(SiprecError::UnknownTenant(t.tenant.clone()));
                }
                Err(e) => return Err(SiprecError::Store(e.to_string())),
            };
            trunks.push(Trunk {
                tenant,
                sources: t.source_ranges(),
                request_user: t.request_user.clone(),
                fingerprints: t.fingerprints(),
            });
        }
        let mut recorder = RecorderConfig::default();
        // RTP crosses networks: a wider reorder window than the adapter
        // link's (5 frames = 100 ms of jitter).
        recorder.timeline.reorder_window = 5;
        let inner = Arc::new(Inner {
            cfg: Config {
                rtp_timeout: settings.rtp_timeout(),
                media_address: settings.media_address,
                max_sessions: settings.max_sessions,
                min_se: settings.min_se,
                trunks,
                recorder,
            },
            store,
            spool,
            dialogs: Mutex::new(HashMap::new()),
            completed: Mutex::new(HashMap::new()),
            ports: Arc::new(Mutex::new(PortPool {
                lo: ports.0,
                hi: ports.1,
                next: ports.0,
                in_use: HashSet::new(),
            })),
            sessions: std::sync::atomic::AtomicUsize::new(0),
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        });
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) if listeners.iter().any(|l| l.tls) => {
                Some(tokio_rustls::TlsAcceptor::from(
                    tls::server_config(cert, key, settings.tls_client_ca_file.as_deref())
                        .map_err(SiprecError::Config)?,
                ))
            }
            _ => None,
        };
        let mut addrs = Vec::new();
        for l in listeners {
            if l.tls {
                let sock =
                    TcpListener::bind(l.addr)
                        .await
                        .map_err(|source| SiprecError::Listen {
                            transport: "tls",
                            addr: l.addr,
                            source,
                        })?;
                let Some(acceptor) = tls.clone() else {
                    return Err(SiprecError::Config(
                        "a tls: listener needs tls_cert_file and tls_key_file".into(),
                    ));
                };
                let local = sock.local_addr().unwrap_or(l.addr);
                addrs.push(("tls", local));
                lock(&inner.tasks).push(tokio::spawn(serve_tcp(
                    inner.clone(),
                    sock,
                    local,
                    Some(acceptor),
                )));
            } else if l.tcp {
                let sock =
                    TcpListener::bind(l.addr)
                        .await
                        .map_err(|source| SiprecError::Listen {
                            transport: "tcp",
                            addr: l.addr,
                            source,
                        })?;
                let local = sock.local_addr().unwrap_or(l.addr);
                addrs.push(("tcp", local));
                lock(&inner.tasks).push(tokio::spawn(serve_tcp(inner.clone(), sock, local, None)));
            } else {
                let sock = UdpSocket::bind(l.addr)
                    .await
                    .map_err(|source| SiprecError::Listen {
                        transport: "udp",
                        addr: l.addr,
                        source,
                    })?;
                let local = sock.local_addr().unwrap_or(l.addr);
                addrs.push(("udp", local));
                lock(&inner.tasks).push(tokio::spawn(serve_udp(
                    inner.clone(),
                    Arc::new(sock),
                    local,
                )));
            }
        }
        lock(&inner.tasks).push(tokio::spawn(prune(inner.clone())));
        for (t, a) in &addrs {
            tracing::info!(transport = t, addr = %a, "SIPREC recording server listening");
        }
        Ok(Some(SiprecServer { inner, addrs }))
    }

    /// The bound listeners (`udp`/`tcp`, address).
    pub fn local_addrs(&self) -> &[(&'static str, SocketAddr)] {
        &self.addrs
    }

    /// Stops listening and ends every live session cleanly (their
    /// recordings are finished and spooled), waiting for them.
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        for d in lock(&self.inner.dialogs).values() {
            lock(d).bye.cancel();
        }
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .inner
            .sessions
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            if Instant::now() > deadline {
                tracing::warn!("SIPREC sessions did not end in 20 s");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn prune(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tick.tick() => {
                lock(&inner.completed).retain(|_, (at, _)| at.elapsed() < TRANSACTION_LIFE);
            }
        }
    }
}

async fn serve_udp(inner: Arc<Inner>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; sip::MAX_MESSAGE];
    loop {
        let (n, from) = tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "SIP UDP receive failed");
                    continue;
                }
            },
        };
        let data = &buf[..n];
        if data.iter().all(u8::is_ascii_whitespace) {
            continue; // keep-alive
        }
        handle(&inner, data, from, local, Reply::Udp(sock.clone(), from)).await;
    }
}

async fn serve_tcp(
    inner: Arc<Inner>,
    sock: TcpListener,
    local: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (conn, from) = tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = sock.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "SIP TCP accept failed");
                    continue;
                }
            },
        };
        let inner = inner.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                serve_stream(inner, conn, from, local, None).await;
                return;
            };
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(conn)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, src = %from, "SIP TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(src = %from, "SIP TLS handshake timed out");
                    return;
                }
            };
            let fingerprint = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| tls::fingerprint(c.as_ref()));
            let peer = Arc::new(TlsPeer { fingerprint });
            serve_stream(inner, stream, from, local, Some(peer)).await;
        });
    }
}

/// One TCP or TLS connection: messages framed by Content-Length.
async fn serve_stream<S>(
    inner: Arc<Inner>,
    conn: S,
    from: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<TlsPeer>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(conn);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            if wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = tokio::select! {
            _ = inner.stop.cancelled() => break,
            r = rd.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            // CRLF keep-alives between messages (RFC 5626).
            let skip = buf
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            buf.drain(..skip);
            match sip::frame(&buf) {
                None => break,
                Some(Err(why)) => {
                    tracing::debug!(%why, "SIP TCP stream is not SIP: closing");
                    break 'conn;
                }
                Some(Ok(len)) => {
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    handle(
                        &inner,
                        &msg,
                        from,
                        local,
                        Reply::Tcp(tx.clone(), tls.clone()),
                    )
                    .await;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Transaction key of a non-INVITE request.
pub(crate) fn tx_key(r: &sip::Request) -> String {
    format!("{}|{}|{}|{}", r.call_id, r.cseq, r.cseq_method, r.branch)
}

pub(crate) async fn respond_and_remember(
    inner: &Inner,
    r: &sip::Request,
    reply: &Reply,
    bytes: Vec<u8>,
) {
    lock(&inner.completed).insert(tx_key(r), (Instant::now(), bytes.clone()));
    reply.send(bytes).await;
}

/// One message from the network.
async fn handle(
    inner: &Arc<Inner>,
    data: &[u8],
    from: SocketAddr,
    local: SocketAddr,
    reply: Reply,
) {
    let req = match sip::parse(data) {
        sip::Parsed::Request(r) => r,
        sip::Parsed::Response => return,
        sip::Parsed::Garbage(why) => {
            metrics::counter!("insights_siprec_requests_total", "method" => "unparseable")
                .increment(1);
            tracing::debug!(%why, src = %from, "dropped a message that is not SIP");
            return;
        }
        sip::Parsed::Bad { reason, headers } => {
            metrics::counter!("insights_siprec_requests_total", "method" => "malformed")
                .increment(1);
            tracing::warn!(%reason, "malformed SIP request: 400");
            let phrase = format!("Bad Request ({reason})");
            let warning = format!("399 insights \"{reason}\"");
            let is_ack = data.starts_with(b"ACK ");
            if !is_ack {
                reply
                    .send(sip::response(
                        &headers,
                        400,
                        Some(&phrase),
                        Some("srs"),
                        &[("Warning", warning)],
                        None,
                    ))
                    .await;
            }
            return;
        }
    };
    let method = req.method.to_string();
    metrics::counter!("insights_siprec_requests_total", "method" => match method.as_str() {
        "INVITE" | "ACK" | "BYE" | "CANCEL" | "OPTIONS" | "UPDATE" | "INFO" => method.clone(),
        _ => "other".to_owned(),
    })
    .increment(1);
    // Retransmission of a completed non-INVITE transaction.
    if req.method != Method::INVITE && req.method != Method::ACK {
        let cached = lock(&inner.completed)
            .get(&tx_key(&req))
            .map(|(_, b)| b.clone());
        if let Some(b) = cached {
            if !b.is_empty() {
                reply.send(b).await;
            }
            return;
        }
    }
    let dialog = lock(&inner.dialogs).get(&req.call_id).cloned();
    let plain = |code: u16, extra: &[(&str, String)]| {
        sip::response(&req.headers, code, None, Some("srs"), extra, None)
    };
    match req.method.clone() {
        m if m == Method::INVITE => {
            if let Some(d) = dialog {
                enum Next {
                    Resend(Vec<u8>),
                    Ignore,
                    Apply,
                    Unknown,
                    Fresh,
                }
                let next = {
                    let mut d = lock(&d);
                    if d.invite_cseq == req.cseq && d.invite_branch == req.branch {
                        Next::Resend(d.last_invite_response.clone())
                    } else if let Some((cseq, last)) = &d.reinvite
                        && *cseq == req.cseq
                    {
                        if last.is_empty() {
                            Next::Ignore
                        } else {
                            Next::Resend(last.clone())
                        }
                    } else if req.to_tag.as_deref() == Some(d.to_tag.as_str())
                        && d.answered
                        && d.updates.is_some()
                    {
                        d.reinvite = Some((req.cseq, Vec::new()));
                        Next::Apply
                    } else if req.to_tag.is_none()
                        && req.cseq > d.invite_cseq
                        && !d.answered
                        && !d.last_invite_response.starts_with(b"SIP/2.0 1")
                    {
                        // A new attempt in the same call after a final
                        // refusal (e.g. 422 Session Interval Too Small).
                        Next::Fresh
                    } else {
                        Next::Unknown
                    }
                };
                match next {
                    Next::Resend(b) => reply.send(b).await,
                    Next::Ignore => {}
                    Next::Apply => {
                        // re-INVITE: applied by the session (hold, new
                        // streams, codec, metadata, session refresh).
                        tokio::spawn(session::in_dialog(inner.clone(), *req, reply, local, d));
                    }
                    Next::Unknown => reply.send(plain(481, &[])).await,
                    Next::Fresh => {
                        session::invite(inner.clone(), *req, reply, from, local).await;
                    }
                }
                return;
            }
            if req.to_tag.is_some() {
                reply.send(plain(481, &[])).await;
                return;
            }
            session::invite(inner.clone(), *req, reply, from, local).await;
        }
        m if m == Method::ACK => {
            if let Some(d) = dialog {
                let mut d = lock(&d);
                if d.invite_cseq == req.cseq {
                    d.acked_flag = true;
                    d.acked.notify_waiters();
                }
            }
        }
        m if m == Method::CANCEL => {
            let Some(d) = dialog else {
                respond_and_remember(inner, &req, &reply, plain(481, &[])).await;
                return;
            };
            let matches = {
                let d = lock(&d);
                d.invite_cseq == req.cseq && d.invite_branch == req.branch
            };
            if !matches {
                respond_and_remember(inner, &req, &reply, plain(481, &[])).await;
                return;
            }
            lock(&d).cancel.cancel();
            respond_and_remember(inner, &req, &reply, plain(200, &[])).await;
        }
        m if m == Method::BYE => {
            let known = dialog.is_some_and(|d| {
                let d = lock(&d);
                let ok = req.to_tag.as_deref() == Some(d.to_tag.as_str()) && d.answered;
                if ok {
                    d.bye.cancel();
                }
                ok
            });
            let code = if known { 200 } else { 481 };
            respond_and_remember(inner, &req, &reply, plain(code, &[])).await;
        }
        m if m == Method::OPTIONS => {
            let extra = [
                ("Allow", sip::ALLOW.to_owned()),
                ("Supported", "siprec".to_owned()),
                (
                    "Accept",
                    "application/sdp, application/rs-metadata+xml, application/rs-metadata, multipart/mixed"
                        .to_owned(),
                ),
            ];
            respond_and_remember(inner, &req, &reply, plain(200, &extra)).await;
        }
        m if m == Method::UPDATE => {
            let known = dialog.filter(|d| {
                let d = lock(d);
                req.to_tag.as_deref() == Some(d.to_tag.as_str()) && d.updates.is_some()
            });
            match known {
                Some(d) => {
                    // Retransmissions meanwhile are ignored (an empty
                    // cached response), then get the response.
                    lock(&inner.completed).insert(tx_key(&req), (Instant::now(), Vec::new()));
                    tokio::spawn(session::in_dialog(inner.clone(), *req, reply, local, d));
                }
                None => respond_and_remember(inner, &req, &reply, plain(481, &[])).await,
            }
        }
        m if m == Method::INFO => {
            let known = dialog.is_some_and(|d| {
                let d = lock(&d);
                req.to_tag.as_deref() == Some(d.to_tag.as_str())
            });
            let code = if known { 200 } else { 481 };
            respond_and_remember(inner, &req, &reply, plain(code, &[])).await;
        }
        _ => {
            let extra = [("Allow", sip::ALLOW.to_owned())];
            respond_and_remember(inner, &req, &reply, plain(405, &extra)).await;
        }
    }
}

/// Our Contact for a listener.
pub(crate) fn contact(local: SocketAddr, reply: &Reply) -> String {
    let t = reply.transport();
    format!("<sip:srs@{local};transport={t}>;+sip.srs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rtp_ports_are_consecutive_even_and_given_back() {
        let lo = 41_001 + 2 * (std::process::id() % 2000) as u16;
        let pool = Arc::new(Mutex::new(PortPool {
            lo,
            hi: lo + 60,
            next: lo,
            in_use: HashSet::new(),
        }));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let Some((a, sa)) = PortPool::allocate(&pool, ip, 2) else {
            panic!("no ports")
        };
        assert_eq!(a.ports.len(), 2);
        assert_eq!(a.ports[0] % 2, 0);
        assert_eq!(a.ports[1], a.ports[0] + 2);
        assert!(a.ports[0] > lo && a.ports[1] <= lo + 60);
        assert_eq!(sa[1].local_addr().map(|x| x.port()).ok(), Some(a.ports[1]));
        let Some((b, _sb)) = PortPool::allocate(&pool, ip, 3) else {
            panic!("no ports")
        };
        assert!(b.ports.iter().all(|p| !a.ports.contains(p)));
        assert_eq!(lock(&pool).in_use.len(), 5);
        drop(a);
        drop(sa);
        assert_eq!(lock(&pool).in_use.len(), 3);
        // Asking for more than the range holds finds nothing.
        assert!(PortPool::allocate(&pool, ip, 40).is_none());
    }
}
