//! RTP (RFC 3550) of one recorded stream: SRTP decryption (SDES keys,
//! `webrtc-srtp`), header parsing, G.711/G.722/Opus decoding, 20 ms
//! framing on the media clock and 16 kHz for the recorder.
//!
//! Each stream's RTP timestamps are mapped onto the session's clock (100 ns
//! ticks since the answer) by anchoring its first packet (and the first
//! after an SSRC change) at its arrival time; from there the timestamp
//! alone places every 20 ms frame. Frames then go to the recorder's
//! timeline, which is the jitter buffer: it puts frames back in order
//! within its reorder window, drops duplicates and fills gaps with
//! silence (see `recorder::timeline`).

use recorder::TICKS_PER_FRAME;

/// Samples of one 20 ms frame at 8 kHz.
pub const FRAME_8K: usize = 160;
/// 100 ns ticks per 8 kHz sample.
const TICKS_PER_SAMPLE: i64 = 1_250;
/// Frames assembled at once (packets shorter than 20 ms); older ones are
/// released with their missing samples silent.
const ASSEMBLING: usize = 6;

/// Audio codecs we decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 (64 kbit/s, 16 kHz audio on the 8 kHz RTP clock).
    G722,
    /// Opus (RFC 7587: `opus/48000/2`, the 48 kHz RTP clock whatever the
    /// audio's bandwidth), decoded at 16 kHz mono.
    Opus,
}

impl Codec {
    /// From an `a=rtpmap` encoding name (upper case).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "G722" => Some(Codec::G722),
            "OPUS" => Some(Codec::Opus),
            _ => None,
        }
    }

    /// The encoding name of `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock rate (`a=rtpmap`).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The encoding of `a=rtpmap` (`PCMA/8000`, `opus/48000/2`).
    pub fn rtpmap(self) -> String {
        match self {
            Codec::Opus => "opus/48000/2".into(),
            c => format!("{}/{}", c.name(), c.clock_rate()),
        }
    }

    /// RTP clock ticks per 8 kHz sample (the streams' common timing).
    fn clock_div(self) -> i64 {
        i64::from(self.clock_rate() / 8_000)
    }
}

/// G.711 µ-law → linear (ITU-T G.711, as in the reference decoder).
pub fn ulaw(b: u8) -> i16 {
    let u = !b;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 };
    v as i16
}

/// G.711 A-law → linear.
pub fn alaw(b: u8) -> i16 {
    let a = b ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = i32::from(a & 0x0f) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        s => (t + 0x108) << (s - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

fn segment(v: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| v <= e).unwrap_or(8)
}

/// Linear → µ-law (ITU-T G.711 reference encoder; tests and the SIPp
/// pcap generator).
pub fn ulaw_encode(s: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    let mut v = i32::from(s) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(8159) + 33;
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return (0x7f ^ mask) as u8;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0f);
    (u ^ mask) as u8
}

/// Linear → A-law (ITU-T G.711 reference encoder).
pub fn alaw_encode(s: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut v = i32::from(s) >> 3;
    let mask = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return (0x7f ^ mask) as u8;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 {
        (v >> 1) & 0x0f
    } else {
        (v >> seg) & 0x0f
    };
    (a ^ mask) as u8
}

/// 16 kHz PCM → G.722 at 64 kbit/s (tests and the SIPp pcap generator).
pub fn g722_encode(pcm16k: &[i16]) -> Vec<u8> {
    use audio_codec::Encoder;
    let mut enc = audio_codec::g722::G722Encoder::new();
    let mut out = vec![0u8; enc.max_encode_bytes(pcm16k.len())];
    let n = enc.encode_into(pcm16k, &mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// G.722 → 16 kHz PCM, one decoder over the whole stream (tests).
pub fn g722_decode(bytes: &[u8]) -> Vec<i16> {
    audio_codec::g722::G722Decoder::new().decode_frame(bytes)
}

/// 16 kHz PCM → 20 ms Opus packets as an SBC sends them (tests and the
/// SIPp pcap generator): VoIP, 32 kbit/s.
pub fn opus_encode(pcm16k: &[i16]) -> Vec<Vec<u8>> {
    let Ok(mut enc) = opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip)
    else {
        return Vec::new();
    };
    let _ = enc.set_bitrate(opus::Bitrate::Bits(32_000));
    pcm16k
        .chunks(2 * FRAME_8K)
        .map(|c| {
            let mut frame = c.to_vec();
            frame.resize(2 * FRAME_8K, 0);
            enc.encode_vec(&frame, 1500).unwrap_or_default()
        })
        .collect()
}

/// Opus packets → 16 kHz PCM, one decoder in order (tests).
pub fn opus_decode(packets: &[Vec<u8>]) -> Vec<i16> {
    let Ok(mut dec) = opus::Decoder::new(16_000, opus::Channels::Mono) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = vec![0i16; OPUS_MAX_16K];
    for p in packets {
        if let Ok(n) = dec.decode(p, &mut buf, false) {
            out.extend_from_slice(&buf[..n]);
        }
    }
    out
}

/// The longest Opus packet (120 ms) at 16 kHz.
const OPUS_MAX_16K: usize = 1920;

/// An SRTP context of one stream: the recording client's SDES key.
struct Srtp {
    key: super::sdp::SdesKey,
    ctx: webrtc_srtp::context::Context,
    /// SSRCs the context keeps state for (it adds one per SSRC seen,
    /// before authentication): bounded by starting afresh.
    ssrcs: std::collections::HashSet<u32>,
}

/// SSRCs one SRTP context tracks before it is renewed.
const MAX_SRTP_SSRCS: usize = 64;

impl Srtp {
    fn new(key: &super::sdp::SdesKey) -> Option<Srtp> {
        use webrtc_srtp::protection_profile::ProtectionProfile;
        let profile = match key.suite {
            super::sdp::SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            super::sdp::SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        };
        // No replay window: duplicates are the jitter buffer's business
        // (and counted there); authentication still applies.
        let ctx = webrtc_srtp::context::Context::new(
            key.master_key(),
            key.master_salt(),
            profile,
            None,
            None,
        )
        .ok()?;
        Some(Srtp {
            key: key.clone(),
            ctx,
            ssrcs: std::collections::HashSet::new(),
        })
    }
}

/// SRTP-protects an RTP packet with an SDES key (tests and the SIPp pcap
/// generator: what the recording client does). One context per stream:
/// it tracks the rollover counter.
pub struct SrtpSender(webrtc_srtp::context::Context);

impl SrtpSender {
    pub fn new(key: &[u8; super::sdp::SDES_KEY_LEN], suite_80: bool) -> Option<SrtpSender> {
        use webrtc_srtp::protection_profile::ProtectionProfile;
        let profile = if suite_80 {
            ProtectionProfile::Aes128CmHmacSha1_80
        } else {
            ProtectionProfile::Aes128CmHmacSha1_32
        };
        webrtc_srtp::context::Context::new(&key[..16], &key[16..], profile, None, None)
            .ok()
            .map(SrtpSender)
    }

    /// The protected packet.
    pub fn protect(&mut self, rtp: &[u8]) -> Vec<u8> {
        self.0
            .encrypt_rtp(rtp)
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }
}

/// An RTP packet's fixed header and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Parses an RTP packet; `None` for anything else (RTCP, STUN, junk).
pub fn parse(b: &[u8]) -> Option<Packet<'_>> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let pt = b[1] & 0x7f;
    // RTCP multiplexed on the port (RFC 5761): PT 64-95 with the marker.
    if (64..96).contains(&pt) {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let ext = b.get(off..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        let pad = usize::from(*b.last()?);
        end = end.checked_sub(pad)?;
    }
    let payload = b.get(off..end)?;
    Some(Packet {
        payload_type: pt,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload,
    })
}

/// Builds an RTP packet (tests, pcap generation).
pub fn build(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + payload.len());
    v.extend_from_slice(&[0x80, pt & 0x7f]);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Counters of one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub packets: u64,
    /// Sequence numbers never seen (between the lowest and highest).
    pub lost: u64,
    pub dtmf: u64,
    /// Packets whose sequence number came before (dropped).
    pub duplicates: u64,
    /// Packets of a payload type not negotiated, or not RTP at all.
    pub ignored: u64,
    pub ssrc_changes: u64,
    /// SRTP packets that failed authentication (also counted `ignored`).
    pub srtp_failures: u64,
}

/// Events kept per stream (a DTMF flood is not stored without bound).
const MAX_EVENTS: usize = 1000;

/// A DTMF event of a stream (RFC 4733 `telephone-event`): stored as an
/// event, never as audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtmfEvent {
    /// Its start on the session clock (100 ns ticks since the answer).
    pub ticks: i64,
    /// `0`-`9`, `*`, `#`, `A`-`D` or `flash`.
    pub digit: &'static str,
    /// As the last packet of the event says.
    pub duration_ms: u32,
    /// Its end packet (E bit) arrived.
    pub ended: bool,
}

/// One 20 ms frame ready for the recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Frame number on this stream's clock (unique per slot: the
    /// recorder's duplicate check).
    pub seq: u64,
    /// Capture time in 100 ns ticks since the session's answer.
    pub ticks: i64,
    /// 320 samples at 16 kHz.
    pub pcm: Vec<i16>,
}

struct Assembling {
    index: i64,
    /// 16 kHz samples: two per tick of the 8 kHz RTP clock.
    samples: [i16; 2 * FRAME_8K],
    filled: [u64; 3],
    count: usize,
}

/// The receive side of one stream.
pub struct Stream {
    codec: Codec,
    payload_type: u8,
    dtmf_payload_type: Option<u8>,
    ssrc: Option<u32>,
    /// Extended timestamp of the anchor and its session ticks.
    anchor: (i64, i64),
    /// Frame numbering continues across SSRC changes.
    epoch_frames: i64,
    last_ts: Option<i64>,
    seq_hi: Option<i64>,
    seen: u64,
    seq_lo: Option<i64>,
    assembling: Vec<Assembling>,
    /// Frames released lately: a late duplicate must not open them again.
    released: std::collections::VecDeque<i64>,
    /// Sequence numbers seen lately (duplicates).
    recent: std::collections::VecDeque<i64>,
    newest: i64,
    prev: i16,
    /// G.722 decoder state (kept across packets, in arrival order).
    g722: Option<audio_codec::g722::G722Decoder>,
    /// Opus decoder (16 kHz mono; in arrival order).
    opus: Option<opus::Decoder>,
    /// SRTP: the stream arrives protected with this key.
    srtp: Option<Srtp>,
    /// An SRTP key was negotiated but no context could be made: nothing
    /// of the stream is recorded.
    srtp_broken: bool,
    /// DTMF events not yet taken, and the RTP timestamp of the newest
    /// (all packets of one event share it).
    events: Vec<DtmfEvent>,
    events_seen: usize,
    event_ts: Option<u32>,
    pub stats: StreamStats,
}

impl Stream {
    pub fn new(codec: Codec, payload_type: u8, dtmf_payload_type: Option<u8>) -> Self {
        Self {
            codec,
            payload_type,
            dtmf_payload_type,
            ssrc: None,
            anchor: (0, 0),
            epoch_frames: 0,
            last_ts: None,
            seq_hi: None,
            seen: 0,
            seq_lo: None,
            assembling: Vec::new(),
            released: std::collections::VecDeque::new(),
            recent: std::collections::VecDeque::new(),
            newest: i64::MIN,
            prev: 0,
            g722: (codec == Codec::G722).then(audio_codec::g722::G722Decoder::new),
            opus: opus_decoder(codec),
            srtp: None,
            srtp_broken: false,
            events: Vec::new(),
            events_seen: 0,
            event_ts: None,
            stats: StreamStats::default(),
        }
    }

    /// The DTMF events since the last call.
    pub fn take_events(&mut self) -> Vec<DtmfEvent> {
        std::mem::take(&mut self.events)
    }

    /// A `telephone-event` packet: event, E bit, volume, duration.
    fn dtmf(&mut self, p: &Packet<'_>) {
        let [event, flags, d1, d2, ..] = *p.payload else {
            return;
        };
        const DIGITS: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D", "flash",
        ];
        let Some(digit) = DIGITS.get(usize::from(event)).copied() else {
            return;
        };
        let duration_ms = u32::from(u16::from_be_bytes([d1, d2])) * 1000 / self.codec.clock_rate();
        let ended = flags & 0x80 != 0;
        if self.event_ts == Some(p.timestamp) {
            if let Some(e) = self.events.last_mut().filter(|e| e.digit == digit) {
                e.duration_ms = e.duration_ms.max(duration_ms);
                e.ended |= ended;
            }
            return;
        }
        self.event_ts = Some(p.timestamp);
        if self.events_seen >= MAX_EVENTS {
            return;
        }
        self.events_seen += 1;
        let ts = Self::extend(self.last_ts, p.timestamp, 1 << 32);
        let ticks = self.anchor.1
            + (ts - self.anchor.0).div_euclid(self.codec.clock_div()) * TICKS_PER_SAMPLE;
        self.events.push(DtmfEvent {
            ticks,
            digit,
            duration_ms,
            ended,
        });
    }

    /// A re-INVITE changed the stream's codec or payload types: later
    /// packets decode with the new one (the timing continues).
    pub fn renegotiate(&mut self, codec: Codec, payload_type: u8, dtmf_payload_type: Option<u8>) {
        if codec != self.codec {
            self.g722 = (codec == Codec::G722).then(audio_codec::g722::G722Decoder::new);
            self.opus = opus_decoder(codec);
            self.prev = 0;
            if codec.clock_rate() != self.codec.clock_rate() {
                // Another RTP clock: the next packet anchors anew.
                self.codec = codec;
                self.resume();
            }
        }
        self.codec = codec;
        self.payload_type = payload_type;
        self.dtmf_payload_type = dtmf_payload_type;
    }

    /// The stream resumes after a hold: its next packet is anchored at
    /// its arrival (as after an SSRC change, without counting one), so
    /// the hold stays silence on the timeline whatever the recording
    /// client did to its RTP timestamps meanwhile.
    pub fn resume(&mut self) {
        if self.ssrc.is_some() {
            self.count_lost();
            self.seq_lo = None;
            self.seq_hi = None;
            self.ssrc = None;
        }
    }

    /// The codec the stream decodes.
    pub fn codec(&self) -> (Codec, u8, Option<u8>) {
        (self.codec, self.payload_type, self.dtmf_payload_type)
    }

    /// The stream arrives SRTP-protected with `key` (`None`: plain RTP).
    /// A changed key (re-INVITE) starts a new context; the same key keeps
    /// the one there is (its rollover counters).
    pub fn set_srtp(&mut self, key: Option<&super::sdp::SdesKey>) {
        match key {
            None => {
                self.srtp = None;
                self.srtp_broken = false;
            }
            Some(k) if self.srtp.as_ref().is_some_and(|s| &s.key == k) => {}
            Some(k) => {
                self.srtp = Srtp::new(k);
                self.srtp_broken = self.srtp.is_none();
            }
        }
    }

    /// One datagram, arrived `now_ticks` after the answer; returns the
    /// frames it completes. SRTP is authenticated and decrypted first;
    /// a packet that fails is ignored (and counted), SRTCP too.
    pub fn push(&mut self, datagram: &[u8], now_ticks: i64) -> Vec<Frame> {
        if self.srtp_broken {
            self.stats.ignored += 1;
            return Vec::new();
        }
        if let Some(s) = &mut self.srtp {
            let Some(p) = parse(datagram) else {
                self.stats.ignored += 1;
                return Vec::new();
            };
            if s.ssrcs.insert(p.ssrc) && s.ssrcs.len() > MAX_SRTP_SSRCS {
                match Srtp::new(&s.key) {
                    Some(fresh) => *s = fresh,
                    None => return Vec::new(),
                }
                s.ssrcs.insert(p.ssrc);
            }
            let plain = match s.ctx.decrypt_rtp(datagram) {
                Ok(p) => p,
                Err(_) => {
                    self.stats.ignored += 1;
                    self.stats.srtp_failures += 1;
                    return Vec::new();
                }
            };
            return self.push_plain(&plain, now_ticks);
        }
        self.push_plain(datagram, now_ticks)
    }

    fn push_plain(&mut self, datagram: &[u8], now_ticks: i64) -> Vec<Frame> {
        let Some(p) = parse(datagram) else {
            self.stats.ignored += 1;
            return Vec::new();
        };
        let dtmf = Some(p.payload_type) == self.dtmf_payload_type;
        if !dtmf && (p.payload_type != self.payload_type || p.payload.is_empty()) {
            self.stats.ignored += 1;
            return Vec::new();
        }
        if self.ssrc != Some(p.ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
                self.count_lost();
            }
            let mut out = self.release_all();
            // Re-anchor: the new source starts where it arrives, on a
            // frame number after everything so far; its frame indexes
            // start again at 0.
            if self.newest != i64::MIN {
                self.epoch_frames = self
                    .epoch_frames
                    .saturating_add(self.newest.saturating_add(1).max(0));
            }
            self.newest = i64::MIN;
            self.ssrc = Some(p.ssrc);
            self.anchor = (i64::from(p.timestamp), now_ticks);
            self.last_ts = None;
            self.seq_hi = None;
            self.seq_lo = None;
            self.seen = 0;
            self.released.clear();
            self.recent.clear();
            out.extend(self.accept(&p));
            return out;
        }
        self.accept(&p)
    }

    fn extend(last: Option<i64>, v: u32, modulo: i64) -> i64 {
        let v = i64::from(v);
        match last {
            None => v,
            Some(l) => {
                let base = l - l.rem_euclid(modulo);
                [base - modulo + v, base + v, base + modulo + v]
                    .into_iter()
                    .min_by_key(|c| (c - l).abs())
                    .unwrap_or(v)
            }
        }
    }

    fn accept(&mut self, p: &Packet<'_>) -> Vec<Frame> {
        let seq = Self::extend(self.seq_hi, u32::from(p.seq), 1 << 16);
        if self.recent.contains(&seq) {
            self.stats.duplicates += 1;
            return Vec::new();
        }
        if self.recent.len() == 128 {
            self.recent.pop_front();
        }
        self.recent.push_back(seq);
        self.seq_hi = Some(self.seq_hi.map_or(seq, |h| h.max(seq)));
        self.seq_lo = Some(self.seq_lo.map_or(seq, |l| l.min(seq)));
        self.seen += 1;
        // telephone-event shares the stream's sequence numbers (and
        // clock), never its audio.
        if Some(p.payload_type) == self.dtmf_payload_type {
            self.stats.dtmf += 1;
            self.dtmf(p);
            return Vec::new();
        }
        self.stats.packets += 1;
        let ts = Self::extend(self.last_ts, p.timestamp, 1 << 32);
        self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        // Sample offset of the packet on this source's clock, in 8 kHz
        // samples.
        let offset = (ts - self.anchor.0).div_euclid(self.codec.clock_div());
        let pcm = self.decode(p.payload);
        let mut out = Vec::new();
        for (i, pair) in pcm.chunks_exact(2).enumerate() {
            let n = offset + i as i64;
            let index = n.div_euclid(FRAME_8K as i64);
            let at = n.rem_euclid(FRAME_8K as i64) as usize;
            let slot = match self.assembling.iter().position(|a| a.index == index) {
                Some(s) => s,
                None => {
                    if index <= self.newest.saturating_sub(ASSEMBLING as i64)
                        || self.released.contains(&index)
                    {
                        continue; // released already
                    }
                    self.assembling.push(Assembling {
                        index,
                        samples: [0; 2 * FRAME_8K],
                        filled: [0; 3],
                        count: 0,
                    });
                    self.newest = self.newest.max(index);
                    self.assembling.len() - 1
                }
            };
            let a = &mut self.assembling[slot];
            let (w, bit) = (at / 64, 1u64 << (at % 64));
            if a.filled[w] & bit == 0 {
                a.filled[w] |= bit;
                a.count += 1;
                a.samples[2 * at] = pair[0];
                a.samples[2 * at + 1] = pair[1];
            }
        }
        // Complete frames, then any that fell out of the window.
        let newest = self.newest;
        let mut i = 0;
        while i < self.assembling.len() {
            let a = &self.assembling[i];
            if a.count == FRAME_8K || a.index <= newest.saturating_sub(ASSEMBLING as i64) {
                let a = self.assembling.swap_remove(i);
                out.push(self.frame(a));
            } else {
                i += 1;
            }
        }
        out.sort_by_key(|f| f.seq);
        out
    }

    /// A payload as 16 kHz samples, two per 8 kHz sample: G.711
    /// decoded and interpolated (the midpoint to the previous sample),
    /// G.722 and Opus decoded.
    fn decode(&mut self, payload: &[u8]) -> Vec<i16> {
        let mut pcm = Vec::with_capacity(2 * payload.len());
        if self.codec == Codec::Opus {
            let Some(d) = &mut self.opus else {
                return pcm;
            };
            pcm.resize(OPUS_MAX_16K, 0);
            match d.decode(payload, &mut pcm, false) {
                Ok(n) => pcm.truncate(n & !1),
                Err(_) => {
                    self.stats.ignored += 1;
                    pcm.clear();
                }
            }
            return pcm;
        }
        match (self.codec, &mut self.g722) {
            (Codec::G722, Some(d)) => {
                pcm = d.decode_frame(payload);
                pcm.resize(2 * payload.len(), 0);
            }
            (codec, _) => {
                for &b in payload {
                    let s = if codec == Codec::Pcmu {
                        ulaw(b)
                    } else {
                        alaw(b)
                    };
                    pcm.push(((i32::from(self.prev) + i32::from(s)) / 2) as i16);
                    pcm.push(s);
                    self.prev = s;
                }
            }
        }
        pcm
    }

    fn frame(&mut self, a: Assembling) -> Frame {
        if self.released.len() == 2 * ASSEMBLING {
            self.released.pop_front();
        }
        self.released.push_back(a.index);
        let pcm = a.samples.to_vec();
        let ticks = self.anchor.1 + a.index * FRAME_8K as i64 * TICKS_PER_SAMPLE;
        debug_assert_eq!(FRAME_8K as i64 * TICKS_PER_SAMPLE, TICKS_PER_FRAME);
        Frame {
            seq: (self.epoch_frames + a.index).max(0) as u64,
            ticks,
            pcm,
        }
    }

    fn release_all(&mut self) -> Vec<Frame> {
        let mut held = std::mem::take(&mut self.assembling);
        held.sort_by_key(|a| a.index);
        held.into_iter().map(|a| self.frame(a)).collect()
    }

    fn count_lost(&mut self) {
        if let (Some(lo), Some(hi)) = (self.seq_lo, self.seq_hi) {
            let expected = (hi - lo + 1).max(0) as u64;
            self.stats.lost += expected.saturating_sub(self.seen);
        }
    }

    /// Releases what is still being assembled (end of the session) and
    /// settles the loss count.
    pub fn finish(&mut self) -> Vec<Frame> {
        self.count_lost();
        self.seq_lo = None;
        self.seq_hi = None;
        self.release_all()
    }
}

fn opus_decoder(codec: Codec) -> Option<opus::Decoder> {
    if codec != Codec::Opus {
        return None;
    }
    opus::Decoder::new(16_000, opus::Channels::Mono).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for s in [
            -32768i16, -20000, -1000, -100, -1, 0, 1, 100, 1000, 20000, 32767,
        ] {
            let u = ulaw(ulaw_encode(s));
            let a = alaw(alaw_encode(s));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol,
                "µ-law {s} → {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol,
                "A-law {s} → {a}"
            );
        }
        // Reference points of G.711.
        assert_eq!(ulaw(0xff), 0);
        assert_eq!(ulaw(0x80), 32124);
        assert_eq!(ulaw(0x00), -32124);
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0xaa), 32256);
        assert_eq!(alaw(0x2a), -32256);
    }

    fn tone(n: usize, phase: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                let t = (i + phase) as f64 / 8000.0;
                ulaw_encode((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            })
            .collect()
    }

    #[test]
    fn packets_become_frames_on_the_session_clock() {
        let mut s = Stream::new(Codec::Pcmu, 0, Some(101));
        let mut frames = Vec::new();
        for k in 0..5u16 {
            let p = build(
                0,
                100 + k,
                9000 + u32::from(k) * 160,
                7,
                &tone(160, usize::from(k) * 160),
            );
            frames.extend(s.push(&p, 1_000_000 + i64::from(k) * 200_000));
        }
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].ticks, 1_000_000);
        assert_eq!(frames[4].ticks, 1_000_000 + 4 * 200_000);
        assert!(frames.iter().all(|f| f.pcm.len() == 320));
        // DTMF and foreign payload types are not audio.
        assert!(s.push(&build(101, 200, 0, 7, &[1, 2, 3, 4]), 0).is_empty());
        assert!(s.push(&build(18, 201, 0, 7, &[1; 20]), 0).is_empty());
        assert!(s.push(&[0x80, 0xc8, 0, 0], 0).is_empty());
        assert_eq!((s.stats.dtmf, s.stats.ignored, s.stats.packets), (1, 2, 5));
        assert_eq!(
            s.take_events().iter().map(|e| e.digit).collect::<Vec<_>>(),
            vec!["1"]
        );
    }

    #[test]
    fn telephone_events_become_dtmf_events_never_audio() {
        let mut s = Stream::new(Codec::Pcmu, 0, Some(101));
        s.push(&build(0, 1, 8000, 9, &[0xff; 160]), 0);
        // '#' at timestamp 8160: three packets of one event (the last
        // with the E bit, sent twice), then '7'.
        for (seq, flags, dur) in [
            (2u16, 0x0a, 160u16),
            (3, 0x0a, 320),
            (4, 0x8a, 800),
            (5, 0x8a, 800),
        ] {
            let [d1, d2] = dur.to_be_bytes();
            assert!(
                s.push(&build(101, seq, 8160, 9, &[11, flags, d1, d2]), 0)
                    .is_empty()
            );
        }
        s.push(&build(101, 6, 16_000, 9, &[7, 0x80, 0, 160]), 0);
        let ev = s.take_events();
        assert_eq!(
            ev,
            vec![
                DtmfEvent {
                    ticks: 200_000,
                    digit: "#",
                    duration_ms: 100,
                    ended: true
                },
                DtmfEvent {
                    ticks: 10_000_000,
                    digit: "7",
                    duration_ms: 20,
                    ended: true
                },
            ]
        );
        assert!(s.take_events().is_empty());
        assert_eq!((s.stats.dtmf, s.stats.packets), (5, 1));
    }

    #[test]
    fn ten_ms_packets_reordered_and_duplicated_still_make_whole_frames() {
        let mut s = Stream::new(Codec::Pcma, 8, None);
        let pkt = |k: u16| build(8, k, u32::from(k) * 80, 1, &[0xd5; 80]);
        let mut frames = Vec::new();
        for k in [0u16, 1, 3, 2, 2, 5, 4, 6, 7] {
            frames.extend(s.push(&pkt(k), 0));
        }
        let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert!(
            frames
                .iter()
                .all(|f| f.pcm.iter().all(|&x| x == 8 || x == 4))
        );
        // Sequence 8 and 9 missing, then 10.. : counted as lost at the end.
        frames.extend(s.push(&pkt(10), 0));
        frames.extend(s.finish());
        assert_eq!(s.stats.lost, 2);
    }

    #[test]
    fn g722_streams_decode_to_16_khz_frames() {
        let tone: Vec<i16> = (0..16_000)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 16_000.0).sin()) as i16
            })
            .collect();
        let bytes = g722_encode(&tone);
        assert_eq!(bytes.len(), 8000);
        let mut s = Stream::new(Codec::G722, 9, None);
        let mut pcm = Vec::new();
        for (k, chunk) in bytes.chunks(160).enumerate() {
            for f in s.push(
                &build(9, k as u16, (k * 160) as u32, 3, chunk),
                k as i64 * 200_000,
            ) {
                assert_eq!(f.pcm.len(), 320);
                pcm.extend_from_slice(&f.pcm);
            }
        }
        assert_eq!(pcm.len(), 16_000);
        assert_eq!(pcm, g722_decode(&bytes));
        let rms = |x: &[i16]| {
            (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
        };
        let (a, b) = (rms(&tone[1600..]), rms(&pcm[1600..]));
        assert!((b / a - 1.0).abs() < 0.15, "G.722 level {b:.0} vs {a:.0}");
    }

    #[test]
    fn timestamps_wrap_and_ssrc_changes_reanchor() {
        let mut s = Stream::new(Codec::Pcmu, 0, None);
        let a = s.push(&build(0, 65535, u32::MAX - 159, 5, &[0xff; 160]), 0);
        let b = s.push(&build(0, 0, 0, 5, &[0xff; 160]), 200_000);
        assert_eq!(a.len() + b.len(), 2);
        assert_eq!(b[0].ticks - a[0].ticks, 200_000);
        let c = s.push(&build(0, 7, 123_456, 6, &[0xff; 160]), 5_000_000);
        assert_eq!(s.stats.ssrc_changes, 1);
        assert_eq!(c.last().map(|f| f.ticks), Some(5_000_000));
        assert!(c.last().map(|f| f.seq) > b.last().map(|f| f.seq));
        assert_eq!(s.stats.lost, 0);
    }

    #[test]
    fn a_new_source_after_a_long_one_is_recorded_from_its_first_packet() {
        let mut s = Stream::new(Codec::Pcmu, 0, None);
        let mut n = 0;
        for k in 0..50u16 {
            n += s
                .push(
                    &build(0, k, u32::from(k) * 160, 5, &[0xff; 160]),
                    i64::from(k) * 200_000,
                )
                .len();
        }
        // Another SSRC, its timestamps from 0 again: every packet counts.
        let mut seqs = Vec::new();
        for k in 0..20u16 {
            for f in s.push(
                &build(0, 900 + k, u32::from(k) * 160, 6, &[0xff; 160]),
                20_000_000 + i64::from(k) * 200_000,
            ) {
                seqs.push(f.seq);
            }
        }
        seqs.extend(s.finish().iter().map(|f| f.seq));
        assert_eq!(n, 50);
        assert_eq!(seqs, (50..70).collect::<Vec<u64>>());
        s.resume();
        let f = s.push(&build(0, 920, 20 * 160, 6, &[0xff; 160]), 40_000_000);
        assert_eq!(
            f.iter().map(|f| (f.seq, f.ticks)).collect::<Vec<_>>(),
            vec![(70, 40_000_000)]
        );
    }

    #[test]
    fn resume_reanchors_and_renegotiate_switches_the_codec() {
        let mut s = Stream::new(Codec::Pcmu, 0, None);
        let a = s.push(&build(0, 10, 1600, 5, &[0xff; 160]), 0);
        assert_eq!(a.len(), 1);
        // Hold for 3 s; the client continues its timestamps as if no
        // time had passed: the resumed packet still lands at its arrival.
        s.resume();
        s.renegotiate(Codec::Pcma, 8, Some(101));
        let b = s.push(&build(8, 11, 1760, 5, &[0xd5; 160]), 30_000_000);
        assert_eq!(b.last().map(|f| f.ticks), Some(30_000_000));
        assert!(b.last().map(|f| f.seq) > a.last().map(|f| f.seq));
        assert!(
            b.last()
                .is_some_and(|f| f.pcm.iter().all(|&x| x == 8 || x == 4))
        );
        // PCMU packets are no longer this stream's audio.
        assert!(
            s.push(&build(0, 12, 1920, 5, &[0xff; 160]), 30_200_000)
                .is_empty()
        );
        assert_eq!(
            (s.stats.ssrc_changes, s.stats.lost, s.stats.ignored),
            (0, 0, 1)
        );
    }

    #[test]
    fn srtp_packets_are_authenticated_and_decrypted() {
        let raw: [u8; 30] = std::array::from_fn(|i| (i as u8).wrapping_mul(13).wrapping_add(5));
        let key = crate::siprec::sdp::tests::sdes(&raw, "AES_CM_128_HMAC_SHA1_80");
        let mut tx = SrtpSender::new(&raw, true).unwrap_or_else(|| panic!("context"));
        let mut s = Stream::new(Codec::Pcma, 8, None);
        s.set_srtp(Some(&key));
        let mut frames = Vec::new();
        // Sequence numbers wrap: the rollover counter follows.
        for k in 0..6u16 {
            let p = build(
                8,
                65533u16.wrapping_add(k),
                u32::from(k) * 160,
                9,
                &[0xd5; 160],
            );
            let mut wire = tx.protect(&p);
            assert_eq!(wire.len(), p.len() + 10);
            if k == 3 {
                let mut bad = wire.clone();
                bad[20] ^= 1;
                assert!(s.push(&bad, 0).is_empty());
                wire = tx.protect(&build(8, 65533u16.wrapping_add(k), 480, 9, &[0xd5; 160]));
            }
            frames.extend(s.push(&wire, i64::from(k) * 200_000));
        }
        assert_eq!(frames.len(), 6);
        assert!(
            frames
                .iter()
                .all(|f| f.pcm.iter().all(|&x| x == 8 || x == 4))
        );
        assert_eq!(
            (s.stats.srtp_failures, s.stats.ignored, s.stats.lost),
            (1, 1, 0)
        );
        // Plain RTP on an SRTP stream is not audio.
        assert!(s.push(&build(8, 4, 960, 9, &[0xd5; 160]), 0).is_empty());
        assert_eq!(s.stats.srtp_failures, 2);
    }

    #[test]
    fn opus_streams_decode_on_the_48_khz_clock() {
        let tone: Vec<i16> = (0..16_000)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16_000.0).sin()) as i16
            })
            .collect();
        let packets = opus_encode(&tone);
        assert_eq!(packets.len(), 50);
        let mut s = Stream::new(Codec::Opus, 111, Some(101));
        let mut out = Vec::new();
        for (k, p) in packets.iter().enumerate() {
            for f in s.push(
                &build(111, k as u16, 7 + (k * 960) as u32, 3, p),
                k as i64 * 200_000,
            ) {
                assert_eq!(f.pcm.len(), 320);
                assert_eq!(f.ticks, k as i64 * 200_000);
                out.extend_from_slice(&f.pcm);
            }
        }
        assert_eq!(out, opus_decode(&packets));
        // DTMF on the 48 kHz clock: 100 ms is 4800 ticks of it.
        s.push(&build(101, 60, 7 + 10 * 960, 3, &[9, 0x80, 0x12, 0xc0]), 0);
        let ev = s.take_events();
        assert_eq!(
            (ev[0].digit, ev[0].duration_ms, ev[0].ticks),
            ("9", 100, 2_000_000)
        );
    }
}
