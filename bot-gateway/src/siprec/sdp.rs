//! SDP (RFC 8866) of SIPREC: the recording client's offer (one `sendonly`
//! m-line per recorded stream, each with an `a=label` the metadata refers
//! to) and our answer (`recvonly`, one RTP port per m-line, the label kept).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

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
    pub has_crypto: bool,
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
                    ("crypto", _) => m.has_crypto = true,
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
        if self.media != "audio" || self.port == 0 || self.proto != "RTP/AVP" {
            return None;
        }
        let pts = self.formats.iter().filter_map(|f| f.parse::<u8>().ok());
        let mut audio = None;
        let mut dtmf = None;
        for pt in pts {
            match self.encoding(pt) {
                Some((name, 8000)) if name == "TELEPHONE-EVENT" => {
                    dtmf.get_or_insert(pt);
                }
                Some((name, 8000)) if audio.is_none() => {
                    if let Some(c) = Codec::from_name(&name) {
                        audio = Some((pt, c));
                    }
                }
                _ => {}
            }
        }
        let (payload_type, codec) = audio?;
        Some(Accepted {
            index,
            label: self.label.clone(),
            payload_type,
            codec,
            dtmf_payload_type: dtmf,
            held: self.direction == "recvonly" || self.direction == "inactive",
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
            .any(|m| m.has_crypto || m.proto.contains("SAVP"))
        {
            "SRTP is not supported yet: offer RTP/AVP".into()
        } else {
            "no audio m-line in PCMU, PCMA or G722 over RTP/AVP".into()
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
                    let _ = write!(s, "m=audio {port} RTP/AVP {}", a.payload_type);
                    if let Some(d) = a.dtmf_payload_type {
                        let _ = write!(s, " {d}");
                    }
                    let _ = write!(
                        s,
                        "\r\na=rtpmap:{} {}/8000\r\n",
                        a.payload_type,
                        a.codec.name()
                    );
                    if let Some(d) = a.dtmf_payload_type {
                        let _ = write!(s, "a=rtpmap:{d} telephone-event/8000\r\n");
                    }
                    if let Some(l) = &a.label {
                        let _ = write!(s, "a=label:{l}\r\n");
                    }
                    s.push_str(if a.held {
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
mod tests {
    use super::*;

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
}
