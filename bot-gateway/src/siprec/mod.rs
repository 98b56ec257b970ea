//! The SIPREC Session Recording Server (RFC 7866 / RFC 7865): SBCs acting
//! as Session Recording Clients fork their calls' media here, and the
//! recordings go through the same encrypted spool, uploader, custody
//! manifest and metadata as Teams recordings.
//!
//! # Configuration (`[siprec]`, see `insights_core::config::SiprecSettings`)
//!
//! Off unless `listen` names addresses (`udp:ADDR:PORT`, `tcp:ADDR:PORT`,
//! or `ADDR:PORT` for both). A gateway node ([`SiprecServer::start`] from
//! `insights serve`/`insights gateway`) opens them at start-up and stops
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
//!   * a trunk must match (source address/CIDR and, when configured, the
//!     Request-URI user), else **403** and nothing is stored;
//!   * `Require: siprec` must be present, else **421** naming it;
//!   * the body must be `multipart/mixed` with one `application/sdp` part
//!     and the metadata (`application/rs-metadata+xml`, or the older
//!     `application/rs-metadata`, or any part with `Content-Disposition:
//!     recording-session`): anything malformed gets **400** whose reason
//!     phrase (and `Warning`) names the problem, and nothing is stored;
//!   * SDP that offers nothing we can record gets **488** (SRTP: not yet);
//!   * the node's session limit (`max_sessions`), a full spool or no free
//!     RTP ports get **503** with `Retry-After`;
//!   * then the recording is stored (status `recording`, parties from the
//!     metadata), its spool entry created, and **200 OK** carries the SDP
//!     answer: every offered m-line in order, an accepted one `recvonly`
//!     on its own RTP port (ports `p`, `p+2`, … consecutive), `a=label`
//!     kept, any other with port 0. Over UDP the 200 is retransmitted
//!     (T1 doubling to T2) until the ACK.
//! * **CANCEL** before the answer: 200 to the CANCEL, **487** to the
//!   INVITE; a recording already stored ends `failed` (`cancelled`).
//! * **BYE**: 200, the recording is finished and spooled.
//! * **re-INVITE** / **UPDATE** / **INFO** in a dialog: 200 (a re-INVITE
//!   gets the current answer again); **OPTIONS** (keep-alive): 200;
//!   anything naming an unknown dialog: **481**; other methods: 405.
//! * A retransmitted request gets the response it got before.
//!
//! # Media
//!
//! One UDP socket per accepted m-line; RTP per stream ([`rtp`]): PCMU,
//! PCMA and G.722 decoded (G.722 with `audio-codec`), `telephone-event`
//! counted and never stored as audio,
//! reordering and duplicates handled by the recorder's timeline (the
//! jitter buffer), gaps silent. A two-party call's two streams become the
//! Teams recorder's two-channel Ogg Opus layout (`recorder::CallRecorder`):
//! the caller's stream left, the other right. A stream goes to the side of
//! the participant who sends it (metadata `send`); the caller is the first
//! participant the metadata lists (SBCs list the calling party first);
//! without associations the first m-line is the caller's. Only the first
//! two accepted streams are recorded.
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
//! `failed`), gauge `insights_siprec_sessions_active`,
//! `insights_siprec_rtp_packets_total`, `insights_siprec_rtp_lost_total`,
//! `insights_siprec_rtp_ignored_total{reason}` (`dtmf`, `duplicate`,
//! `other`).

pub mod metadata;
pub mod rtp;
pub mod sdp;
mod session;
pub mod sip;

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
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub rtp_timeout: Duration,
    pub media_address: Option<IpAddr>,
    pub max_sessions: usize,
    pub trunks: Vec<Trunk>,
    pub recorder: RecorderConfig,
}

/// Where a response goes: the datagram's source, or the TCP connection.
#[derive(Clone)]
pub(crate) enum Reply {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>),
}

impl Reply {
    pub async fn send(&self, bytes: Vec<u8>) {
        match self {
            Reply::Udp(s, to) => {
                if let Err(e) = s.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, "cannot send a SIP datagram");
                }
            }
            Reply::Tcp(tx) => {
                let _ = tx.send(bytes).await;
            }
        }
    }

    pub fn reliable(&self) -> bool {
        matches!(self, Reply::Tcp(_))
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
        let mut addrs = Vec::new();
        for l in listeners {
            if l.tcp {
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
                lock(&inner.tasks).push(tokio::spawn(serve_tcp(inner.clone(), sock, local)));
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

async fn serve_tcp(inner: Arc<Inner>, sock: TcpListener, local: SocketAddr) {
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
        tokio::spawn(async move {
            let (mut rd, mut wr) = conn.into_split();
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
            let writer = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
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
                            handle(&inner, &msg, from, local, Reply::Tcp(tx.clone())).await;
                        }
                    }
                }
            }
            drop(tx);
            let _ = writer.await;
        });
    }
}

/// Transaction key of a non-INVITE request.
fn tx_key(r: &sip::Request) -> String {
    format!("{}|{}|{}|{}", r.call_id, r.cseq, r.cseq_method, r.branch)
}

async fn respond_and_remember(inner: &Inner, r: &sip::Request, reply: &Reply, bytes: Vec<u8>) {
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
            reply.send(b).await;
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
                let (retransmission, in_dialog, answer, last, tag) = {
                    let d = lock(&d);
                    (
                        d.invite_cseq == req.cseq && d.invite_branch == req.branch,
                        req.to_tag.as_deref() == Some(d.to_tag.as_str()) && d.answered,
                        d.answer_sdp.clone(),
                        d.last_invite_response.clone(),
                        d.to_tag.clone(),
                    )
                };
                if retransmission {
                    reply.send(last).await;
                } else if in_dialog {
                    // re-INVITE: same streams, same answer (hold, codec
                    // and metadata changes are not applied yet).
                    let body = answer.unwrap_or_default();
                    reply
                        .send(sip::response(
                            &req.headers,
                            200,
                            None,
                            Some(&tag),
                            &[
                                ("Contact", contact(local, &reply)),
                                ("Allow", sip::ALLOW.to_owned()),
                            ],
                            Some(("application/sdp", &body)),
                        ))
                        .await;
                } else {
                    reply.send(plain(481, &[])).await;
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
        m if m == Method::UPDATE || m == Method::INFO => {
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
    let t = if reply.reliable() { "tcp" } else { "udp" };
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
