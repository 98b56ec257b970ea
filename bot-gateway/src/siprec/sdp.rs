//! SDP (RFC 8866) of SIPREC: the recording client's offer (one `sendonly`
//! m-line per recorded stream, each with an `a=label` the metadata refers
//! to) and our answer (`recvonly`, one RTP port per m-line, the label kept).
//!
//! SRTP with SDES (RFC 4568): an `RTP/SAVP` m-line is recorded when one of
//! its `a=crypto` lines has a suite we decrypt (`AES_CM_128_HMAC_SHA1_80`,
//! `AES_CM_128_HMAC_SHA1_32`) and an `inline:` key without MKI or
//! session parameters; the answer carries that line's tag and suite with a
//! key of our own (we send nothing, but RFC 4568 wants one). Keys live in
//! memory only ([`SdesKey`] zeroizes and never prints them).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::rtp::Codec;

/// Bounds against hostile input.
const MAX_SDP: usize = 32 * 1024;
const MAX_MEDIA: usize = 32;

/// One m-line of the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    /// Payload type → (encoding name, clock rate) from `a=rtpmap`.
    pub rtpmap: HashMap<u8, (String, u32)>,
    pub label: Option<String>,
    /// `sendonly`, `recvonly`, `sendrecv` or `inactive` (default sendrecv).
    pub direction: String,
    /// Any `a=crypto` line was offered.
    pub has_crypto: bool,
    /// The `a=crypto` lines we can use, in the offer's order.
    pub crypto: Vec<SdesKey>,
}

/// An SRTP suite of SDES we decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    fn from_name(name: &str) -> Option<SrtpSuite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(SrtpSuite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(SrtpSuite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
}

/// Master key (16 bytes) and salt (14 bytes) of the AES-CM suites.
pub const SDES_KEY_LEN: usize = 30;

/// One usable `a=crypto` line: the recording client's master key and
/// salt for what it sends. Never printed (its `Debug` shows the tag and
/// suite only), zeroized when dropped, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    pub tag: u32,
    pub suite: SrtpSuite,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesKey")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SdesKey {
    /// The master key (16 bytes).
    pub fn master_key(&self) -> &[u8] {
        &self.key[..16]
    }

    /// The master salt (14 bytes).
    pub fn master_salt(&self) -> &[u8] {
        &self.key[16..]
    }

    /// Parses the value of `a=crypto:` (RFC 4568 §9.1); `None` for a line
    /// we cannot use (another suite, MKI, a lifetime below 2^31, session
    /// parameters, a key of the wrong size). The reason is not reported:
    /// it would be about key material.
    fn parse(value: &str) -> Option<SdesKey> {
        let mut f = value.split_ascii_whitespace();
        let tag: u32 = f.next()?.parse().ok().filter(|t| *t < 1_000_000_000)?;
        let suite = SrtpSuite::from_name(f.next()?)?;
        let params = f.next()?;
        if f.next().is_some() {
            return None; // session parameters (KDR, UNENCRYPTED_SRTP, ...)
        }
        if params.contains(';') {
            return None; // several keys (MKI is required with them)
        }
        let inline = params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let b64 = parts.next()?;
        for p in parts {
            if p.contains(':') {
                return None; // MKI
            }
            // A lifetime: 2^n or a number; shorter than 2^31 packets we
            // would have to re-key, which SDES cannot do mid-call.
            let packets = match p.strip_prefix("2^") {
                Some(n) => n.parse::<u32>().ok().map(|n| n >= 31)?,
                None => p.parse::<u64>().ok().map(|n| n >= 1 << 31)?,
            };
            if !packets {
                return None;
            }
        }
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|k| k.len() == SDES_KEY_LEN)?,
        );
        Some(SdesKey { tag, suite, key })
    }
}

/// A parsed offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub media: Vec<Offered>,
}

/// What we receive on one m-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The m-line's index in the offer.
    pub index: usize,
    pub label: Option<String>,
    /// Payload type of the audio codec chosen.
    pub payload_type: u8,
    pub codec: Codec,
    /// Payload type of `telephone-event`, if offered: such packets are
    /// DTMF, never audio.
    pub dtmf_payload_type: Option<u8>,
    /// The recording client sends nothing on it for now (`inactive` or
    /// `recvonly`: a hold): answered `inactive`, its port kept.
    pub held: bool,
    /// SRTP (`RTP/SAVP`): the recording client's key for this stream.
    pub srtp: Option<SdesKey>,
}

/// Parses an offer; the error names the problem.
pub fn parse(sdp: &[u8]) -> Result<Offer, String> {
    if sdp.len() > MAX_SDP {
        return Err("SDP larger than 32 KiB".into());
    }
    let text = std::str::from_utf8(sdp).map_err(|_| "SDP is not UTF-8".to_owned())?;
    let mut media: Vec<Offered> = Vec::new();
    let mut seen_v = false;
    let mut session_direction: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(format!("SDP line {} is not `x=value`", n + 1));
        };
        if kind.len() != 1 {
            return Err(format!("SDP line {} has no one-letter type", n + 1));
        }
        if n == 0 || !seen_v {
            if kind != "v" || value.trim() != "0" {
                return Err("SDP must start with v=0".into());
            }
            seen_v = true;
            continue;
        }
        match kind {
            "m" => {
                if media.len() == MAX_MEDIA {
                    return Err(format!("more than {MAX_MEDIA} m-lines"));
                }
                let mut f = value.split_ascii_whitespace();
                let (Some(m), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
                    return Err(format!("m-line {} is incomplete", media.len() + 1));
                };
                // `port/count` is allowed by the grammar; we take the port.
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("m-line {} has a bad port", media.len() + 1))?;
                let formats: Vec<String> = f.map(str::to_owned).collect();
                if formats.is_empty() {
                    return Err(format!("m-line {} lists no formats", media.len() + 1));
                }
                media.push(Offered {
                    media: m.to_ascii_lowercase(),
                    port,
                    proto: proto.to_ascii_uppercase(),
                    formats,
                    rtpmap: HashMap::new(),
                    label: None,
                    direction: String::new(),
                    has_crypto: false,
                    crypto: Vec::new(),
                });
            }
            "a" => {
                let (name, arg) = match value.split_once(':') {
                    Some((n, a)) => (n, Some(a)),
                    None => (value, None),
                };
                let dir = matches!(name, "sendonly" | "recvonly" | "sendrecv" | "inactive");
                let Some(m) = media.last_mut() else {
                    if dir {
                        session_direction = Some(name.to_owned());
                    }
                    continue;
                };
                match (name, arg) {
                    ("label", Some(l)) => {
                        let l = l.trim();
                        if l.is_empty() || l.len() > 256 {
                            return Err("a=label is empty or too long".into());
                        }
                        m.label = Some(l.to_owned());
                    }
                    ("rtpmap", Some(a)) => {
                        let mut f = a.split_ascii_whitespace();
                        let (Some(pt), Some(enc)) = (f.next(), f.next()) else {
                            return Err("malformed a=rtpmap".into());
                        };
                        let pt: u8 = pt
                            .parse()
                            .ok()
                            .filter(|p| *p < 128)
                            .ok_or_else(|| "a=rtpmap with a bad payload type".to_owned())?;
                        let mut e = enc.split('/');
                        let name = e.next().unwrap_or_default().to_ascii_uppercase();
                        let rate: u32 = e
                            .next()
                            .and_then(|r| r.parse().ok())
                            .ok_or_else(|| "a=rtpmap without a clock rate".to_owned())?;
                        m.rtpmap.insert(pt, (name, rate));
                    }
                    ("crypto", arg) => {
                        m.has_crypto = true;
                        if let Some(k) = arg.and_then(SdesKey::parse)
                            && m.crypto.len() < 8
                        {
                            m.crypto.push(k);
                        }
                    }
                    (d, None) if dir => m.direction = d.to_owned(),
                    _ => {}
                }
            }
            "c" => {
                let mut f = value.split_ascii_whitespace();
                match (f.next(), f.next(), f.next()) {
                    (Some("IN"), Some("IP4" | "IP6"), Some(a)) => {
                        let a = a.split('/').next().unwrap_or_default();
                        if a.is_empty() {
                            return Err("c= without an address".into());
                        }
                    }
                    _ => return Err("malformed c= line".into()),
                }
            }
            _ => {}
        }
    }
    if !seen_v {
        return Err("empty SDP".into());
    }
    if media.is_empty() {
        return Err("SDP offers no m-line".into());
    }
    for m in &mut media {
        if m.direction.is_empty() {
            m.direction = session_direction
                .clone()
                .unwrap_or_else(|| "sendrecv".to_owned());
        }
    }
    Ok(Offer { media })
}

impl Offered {
    /// The encoding of a payload type: `a=rtpmap`, else the static table.
    fn encoding(&self, pt: u8) -> Option<(String, u32)> {
        if let Some(e) = self.rtpmap.get(&pt) {
            return Some(e.clone());
        }
        match pt {
            0 => Some(("PCMU".into(), 8000)),
            8 => Some(("PCMA".into(), 8000)),
            9 => Some(("G722".into(), 8000)),
            _ => None,
        }
    }

    /// Whether we can record this m-line, and how.
    fn accept(&self, index: usize) -> Option<Accepted> {
        if self.media != "audio" || self.port == 0 {
            return None;
        }
        let srtp = match self.proto.as_str() {
            "RTP/AVP" => None,
            "RTP/SAVP" => Some(self.crypto.first()?.clone()),
            _ => return None,
        };
        let pts = self.formats.iter().filter_map(|f| f.parse::<u8>().ok());
        let mut audio = None;
        let mut events = Vec::new();
        for pt in pts {
            match self.encoding(pt) {
                Some((name, rate)) if name == "TELEPHONE-EVENT" => events.push((pt, rate)),
                Some((name, rate)) if audio.is_none() => {
                    if let Some(c) = Codec::from_name(&name).filter(|c| c.clock_rate() == rate) {
                        audio = Some((pt, c));
                    }
                }
                _ => {}
            }
        }
        let (payload_type, codec) = audio?;
        // telephone-event on the audio's clock (8000 for G.711/G.722,
        // 48000 for Opus).
        let dtmf = events
            .iter()
            .find(|(_, rate)| *rate == codec.clock_rate())
            .map(|(pt, _)| *pt);
        Some(Accepted {
            index,
            label: self.label.clone(),
            payload_type,
            codec,
            dtmf_payload_type: dtmf,
            held: self.direction == "recvonly" || self.direction == "inactive",
            srtp,
        })
    }
}

impl Offer {
    /// The m-lines we record (audio over plain RTP in a codec we decode).
    pub fn accepted(&self) -> Vec<Accepted> {
        self.media
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.accept(i))
            .collect()
    }

    /// Why nothing can be recorded, for the 488.
    pub fn refusal(&self) -> String {
        if self
            .media
            .iter()
            .any(|m| m.proto.contains("SAVP") && m.crypto.is_empty())
        {
            "no usable a=crypto: SRTP needs AES_CM_128_HMAC_SHA1_80 or _32 with one inline key \
             (no MKI, no session parameters)"
                .into()
        } else {
            "no audio m-line in PCMU, PCMA, G722 or opus over RTP/AVP or RTP/SAVP".into()
        }
    }

    /// The answer (`version` of the `o=` line, raised by every new
    /// answer in the session): every offered m-line in order; an accepted
    /// one with its port from `ports` (m-line index, port), the chosen
    /// codec (and telephone-event), its label and `recvonly` (`inactive`
    /// while held); any other with port 0.
    pub fn answer(
        &self,
        addr: IpAddr,
        ports: &[(usize, u16)],
        session_id: u64,
        version: u64,
    ) -> String {
        self.answer_with(addr, ports, session_id, version, false)
    }

    /// The answer of a session the recording policy excludes: every
    /// m-line we could record answered `a=inactive` on the discard port
    /// 9 (no socket behind it: the client sends nothing), the others with
    /// port 0.
    pub fn answer_inactive(&self, addr: IpAddr, session_id: u64, version: u64) -> String {
        let ports: Vec<(usize, u16)> = self.accepted().iter().map(|a| (a.index, 9)).collect();
        self.answer_with(addr, &ports, session_id, version, true)
    }

    fn answer_with(
        &self,
        addr: IpAddr,
        ports: &[(usize, u16)],
        session_id: u64,
        version: u64,
        inactive: bool,
    ) -> String {
        let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no=InsightsSRS {session_id} {version} IN {ip} {addr}\r\ns=SIPREC\r\nc=IN {ip} {addr}\r\nt=0 0\r\n"
        );
        let accepted = self.accepted();
        for (i, m) in self.media.iter().enumerate() {
            let port = ports.iter().find(|(m, _)| *m == i).map(|(_, p)| *p);
            match (accepted.iter().find(|a| a.index == i), port) {
                (Some(a), Some(port)) => {
                    let proto = if a.srtp.is_some() {
                        "RTP/SAVP"
                    } else {
                        "RTP/AVP"
                    };
                    let _ = write!(s, "m=audio {port} {proto} {}", a.payload_type);
                    if let Some(d) = a.dtmf_payload_type {
                        let _ = write!(s, " {d}");
                    }
                    let _ = write!(
                        s,
                        "\r\na=rtpmap:{} {}\r\n",
                        a.payload_type,
                        a.codec.rtpmap()
                    );
                    if let Some(d) = a.dtmf_payload_type {
                        let rate = a.codec.clock_rate();
                        let _ = write!(s, "a=rtpmap:{d} telephone-event/{rate}\r\n");
                    }
                    if let Some(k) = &a.srtp {
                        // Our own key (RFC 4568 §6.1): the answer must
                        // carry one; we never send with it.
                        let mut ours = Zeroizing::new([0u8; SDES_KEY_LEN]);
                        rand::Rng::fill(&mut rand::rng(), &mut ours[..]);
                        let b64 = Zeroizing::new(
                            base64::engine::general_purpose::STANDARD.encode(&ours[..]),
                        );
                        let _ = write!(
                            s,
                            "a=crypto:{} {} inline:{}\r\n",
                            k.tag,
                            k.suite.name(),
                            b64.as_str()
                        );
                    }
                    if let Some(l) = &a.label {
                        let _ = write!(s, "a=label:{l}\r\n");
                    }
                    s.push_str(if a.held || inactive {
                        "a=inactive\r\n"
                    } else {
                        "a=recvonly\r\n"
                    });
                }
                _ => {
                    let _ = write!(s, "m={} 0 {} {}\r\n", m.media, m.proto, m.formats.join(" "));
                    if let Some(l) = &m.label {
                        let _ = write!(s, "a=label:{l}\r\n");
                    }
                    s.push_str("a=inactive\r\n");
                }
            }
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An SDES key of `raw` (tests).
    pub(crate) fn sdes(raw: &[u8; SDES_KEY_LEN], suite: &str) -> SdesKey {
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        SdesKey::parse(&format!("1 {suite} inline:{b64}")).unwrap_or_else(|| panic!("key"))
    }

    pub(crate) const OFFER: &str = "v=0\r\n\
o=SRC 1 1 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=label:1\r\n\
a=sendonly\r\n\
m=audio 6002 RTP/AVP 0\r\n\
a=label:2\r\n\
a=sendonly\r\n\
m=video 6004 RTP/AVP 96\r\n\
a=label:3\r\n";

    #[test]
    fn offers_are_answered_per_m_line() {
        let offer = parse(OFFER.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offer.media.len(), 3);
        let acc = offer.accepted();
        assert_eq!(acc.len(), 2);
        assert_eq!(
            (acc[0].payload_type, acc[0].codec, acc[0].dtmf_payload_type),
            (8, Codec::Pcma, Some(101))
        );
        assert_eq!((acc[1].payload_type, acc[1].codec), (0, Codec::Pcmu));
        assert_eq!(acc[1].label.as_deref(), Some("2"));
        let ans = offer.answer(
            "198.51.100.9".parse().unwrap_or(IpAddr::from([0; 4])),
            &[(0, 30000), (1, 30002)],
            42,
            1,
        );
        assert!(ans.contains("c=IN IP4 198.51.100.9\r\n"));
        assert!(ans.contains(
            "m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=recvonly\r\n"
        ));
        assert!(ans.contains(
            "m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:2\r\na=recvonly\r\n"
        ));
        assert!(ans.contains("m=video 0 RTP/AVP 96\r\na=label:3\r\na=inactive\r\n"));
        // A hold (re-INVITE): the stream keeps its port, answered
        // inactive; the version goes up.
        let hold = parse(
            OFFER
                .replace("a=sendonly\r\nm=audio 6002", "a=inactive\r\nm=audio 6002")
                .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let acc = hold.accepted();
        assert_eq!((acc.len(), acc[0].held, acc[1].held), (2, true, false));
        let ans = hold.answer(
            IpAddr::from([192, 0, 2, 9]),
            &[(0, 30000), (1, 30002)],
            42,
            2,
        );
        assert!(ans.contains("o=InsightsSRS 42 2 IN IP4 192.0.2.9\r\n"));
        assert!(ans.contains("a=label:1\r\na=inactive\r\nm=audio 30002"));
    }

    #[test]
    fn bad_offers_are_named() {
        for (sdp, want) in [
            ("", "empty SDP"),
            ("x=1\r\n", "SDP must start with v=0"),
            ("v=0\r\ns=-\r\n", "SDP offers no m-line"),
            ("v=0\r\nm=audio\r\n", "m-line 1 is incomplete"),
            ("v=0\r\nm=audio x RTP/AVP 0\r\n", "m-line 1 has a bad port"),
            (
                "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:300 X/8000\r\n",
                "a=rtpmap with a bad payload type",
            ),
            ("v=0\r\nc=IN\r\n", "malformed c= line"),
        ] {
            assert_eq!(
                parse(sdp.as_bytes()).err().as_deref(),
                Some(want),
                "{sdp:?}"
            );
        }
        let srtp = parse(
            b"v=0\r\nm=audio 1 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(srtp.accepted().is_empty());
        assert!(srtp.refusal().contains("SRTP"));
    }

    #[test]
    fn srtp_and_opus_offers_are_answered_with_our_own_key() {
        let raw: Vec<u8> = (0..30u8).map(|i| i * 7 + 1).collect();
        let key = base64::engine::general_purpose::STANDARD.encode(&raw);
        let sdp = format!(
            "v=0\r\nc=IN IP4 192.0.2.1\r\n\
m=audio 6000 RTP/SAVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{key}\r\n\
a=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^31\r\na=label:1\r\na=sendonly\r\n\
m=audio 6002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4\r\n\
m=audio 6004 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP\r\n\
m=audio 6006 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/48000\r\n"
        );
        let offer = parse(sdp.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let acc = offer.accepted();
        // MKI and session parameters are refused; plain RTP needs no key
        // (and telephone-event on another clock is not its DTMF).
        assert_eq!(acc.len(), 2, "{acc:?}");
        let (a, plain) = (&acc[0], &acc[1]);
        assert_eq!(
            (a.codec, a.payload_type, a.dtmf_payload_type),
            (Codec::Opus, 111, Some(101))
        );
        let k = a.srtp.as_ref().unwrap_or_else(|| panic!("no key"));
        assert_eq!((k.tag, k.suite), (5, SrtpSuite::AesCm128HmacSha1_32));
        assert_eq!(k.master_key(), &raw[..16]);
        assert_eq!(k.master_salt(), &raw[16..]);
        assert_eq!((plain.index, plain.srtp.is_none()), (3, true));
        assert_eq!(plain.dtmf_payload_type, None);
        // Keys are never printed.
        let shown = format!("{offer:?} {acc:?}");
        assert!(
            !shown.contains(&key) && !shown.contains("[1, 8, 15"),
            "{shown}"
        );
        let ip = IpAddr::from([192, 0, 2, 9]);
        let ans = offer.answer(ip, &[(0, 30000), (3, 30002)], 1, 1);
        let ours = "a=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:";
        assert!(
            ans.contains(&format!(
                "m=audio 30000 RTP/SAVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/48000\r\n{ours}"
            )),
            "{ans}"
        );
        let line = ans
            .lines()
            .find(|l| l.starts_with(ours))
            .unwrap_or_default();
        assert_eq!(line.len(), ours.len() + 40, "{line}");
        assert!(!ans.contains(&key));
        assert!(ans.contains("m=audio 0 RTP/SAVP 0\r\n"));
        assert!(ans.contains("m=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly"));
        // Refused by policy: every stream inactive, no socket behind.
        let off = offer.answer_inactive(ip, 1, 1);
        assert!(off.contains("m=audio 9 RTP/SAVP 111 101\r\n"), "{off}");
        assert!(off.contains("m=audio 9 RTP/AVP 0\r\n"), "{off}");
        assert!(!off.contains("recvonly"));
        assert_eq!(off.matches("a=inactive").count(), 4);
    }
}
