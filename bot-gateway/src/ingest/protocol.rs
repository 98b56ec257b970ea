//! The `insights-media/1` protocol: how a media adapter streams a call's
//! audio to the gateway over one WebSocket per call.
//!
//! # Connection
//!
//! The adapter opens `GET /media/v1/calls/{call_id}` (WebSocket upgrade)
//! with `Authorization: Bearer <adapter token>`; `call_id` is the Graph
//! call id the bot answered. One connection carries one call.
//!
//! # Control messages (WebSocket text frames, JSON, field `type`)
//!
//! Adapter → gateway:
//!
//! * `{"type":"hello","protocol":"insights-media/1","encoding":"pcm16"|"opus","mode":"unmixed"|"per-participant"}`
//!   — first message. `pcm16` = PCM s16le, 16 kHz, mono, 20 ms
//!   (640 bytes); `opus` = one Opus packet of 20 ms at 16 kHz per buffer.
//!   `unmixed` = Teams' unmixed buffers: up to four active speakers per
//!   20 ms, each tagged with its active-speaker (media source) id;
//!   `per-participant` = one buffer per participant.
//! * `{"type":"source","source_id":N,"participant_id":"..."}` — binds a
//!   media source id to a roster participant (Graph participant id). May
//!   arrive at any time and applies from then on. Audio of a source that
//!   is bound neither by the roster's audio `sourceId`s nor by a `source`
//!   message when it arrives is not attributed: in a two-party call it is
//!   dropped (never guessed onto a side), in a meeting it is recorded in
//!   the mix only. Send `source` before the audio it binds.
//! * `{"type":"end"}` — the call's media is complete; the gateway closes
//!   the recording and answers `closed`.
//!
//! Gateway → adapter:
//!
//! * `{"type":"ready","recording_id":"..."}` — recording status was
//!   reported to Teams and the spool accepted the call: send audio.
//! * `{"type":"refused","code":"...","message":"..."}` — the call cannot
//!   be recorded (`unknown-call`, `spool-full`, `recording-failed`,
//!   `bad-request`, `not-recorded`: the tenant's recording policy excludes
//!   the call); the gateway then closes the socket.
//! * `{"type":"closed","recording_id":"..."}` — after `end`.
//!
//! Unknown fields in control messages are ignored, so later versions can
//! add fields; an unknown `type` is an error.
//!
//! # Audio messages (WebSocket binary frames, little-endian)
//!
//! ```text
//! offset size  field
//!      0    2  magic "IM" (0x49 0x4D)
//!      2    1  version = 1
//!      3    1  encoding: 1 = PCM s16le 16 kHz mono 20 ms, 2 = Opus packet
//!      4    8  sequence number (u64): +1 per audio message on this socket
//!     12    8  timestamp (i64): start of the 20 ms frame, 100 ns ticks
//!     20    1  N = number of buffers, 1..=4
//!     21    3  reserved, zero
//!     24       N × buffer:
//!                 4  source id (u32)
//!                 2  payload length L (u16)
//!                 L  payload: 640 bytes of PCM, or 1..=1275 bytes of Opus
//! ```
//!
//! One message carries one 20 ms instant: in `unmixed` mode the (up to
//! four) speakers active in it, in `per-participant` mode one participant's
//! buffer. Sequence numbers and timestamps let the gateway turn gaps into
//! silence, drop duplicates and reorder late frames. A message that breaks
//! any rule above is rejected as a whole with a [`ProtocolError`].
//!
//! # Backpressure
//!
//! The gateway reads the next message only after the previous one was
//! handed to the recorder and spool; a slow disk therefore fills the TCP
//! window and slows the adapter down, instead of growing a queue.

use serde::{Deserialize, Serialize};

/// The protocol name sent in `hello`.
pub const PROTOCOL: &str = "insights-media/1";
/// Magic bytes of an audio message.
pub const MAGIC: [u8; 2] = *b"IM";
/// Wire version of audio messages.
pub const VERSION: u8 = 1;
/// Length of the fixed audio-message header.
pub const HEADER_LEN: usize = 24;
/// Bytes of one PCM buffer: 20 ms × 16 kHz × 2 bytes.
pub const PCM_FRAME_BYTES: usize = 640;
/// Largest Opus packet (RFC 6716 §3.4 R2).
pub const MAX_OPUS_PACKET: usize = 1275;
/// Most buffers in one message (Teams' unmixed audio has ≤ 4 speakers).
pub const MAX_BUFFERS: usize = 4;
/// Largest valid audio message.
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_BUFFERS * (6 + MAX_OPUS_PACKET);

/// How the adapter encodes audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// PCM s16le, 16 kHz, mono, 20 ms per buffer.
    Pcm16,
    /// One 20 ms Opus packet per buffer.
    Opus,
}

impl Encoding {
    fn wire(self) -> u8 {
        match self {
            Encoding::Pcm16 => 1,
            Encoding::Opus => 2,
        }
    }
}

/// How buffers relate to speakers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Up to four active speakers per 20 ms, tagged with source ids.
    Unmixed,
    /// One buffer per participant.
    PerParticipant,
}

/// Control messages (WebSocket text frames).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Control {
    /// Adapter → gateway, first message.
    Hello {
        protocol: String,
        encoding: Encoding,
        mode: Mode,
    },
    /// Adapter → gateway: binds a media source id to a roster participant.
    Source {
        source_id: u32,
        participant_id: String,
    },
    /// Adapter → gateway: the call's media is complete.
    End,
    /// Gateway → adapter: send audio.
    Ready { recording_id: String },
    /// Gateway → adapter: the call cannot be recorded.
    Refused { code: RefusalCode, message: String },
    /// Gateway → adapter: the recording was closed after `end`.
    Closed { recording_id: String },
}

/// Why the gateway refuses a call's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    UnknownCall,
    SpoolFull,
    RecordingFailed,
    BadRequest,
    /// The tenant's recording policy excludes this call: send no media.
    NotRecorded,
}

/// One speaker's 20 ms of audio in an [`AudioMessage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Active-speaker / media source id.
    pub source_id: u32,
    /// 640 bytes of PCM s16le, or one Opus packet.
    pub payload: Vec<u8>,
}

/// One 20 ms instant of a call (a WebSocket binary frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioMessage {
    pub encoding: Encoding,
    pub sequence: u64,
    /// Start of the frame in 100 ns ticks.
    pub timestamp: i64,
    pub buffers: Vec<Buffer>,
}

/// A message that breaks the protocol. Messages carry no audio or
/// personal data, so they may be logged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("audio message of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("audio message of {0} bytes exceeds the maximum")]
    TooLong(usize),
    #[error("bad magic")]
    Magic,
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("unknown encoding {0}")]
    Encoding(u8),
    #[error("buffer count {0} outside 1..=4")]
    Count(u8),
    #[error("reserved bytes are not zero")]
    Reserved,
    #[error("buffer {0} is truncated")]
    Truncated(usize),
    #[error("buffer {index}: {len} bytes is not a valid {encoding:?} payload")]
    Payload {
        index: usize,
        len: usize,
        encoding: Encoding,
    },
    #[error("source {0} appears twice in one message")]
    DuplicateSource(u32),
    #[error("{0} bytes after the last buffer")]
    Trailing(usize),
    #[error("bad control message: {0}")]
    Control(String),
}

fn payload_ok(encoding: Encoding, len: usize) -> bool {
    match encoding {
        Encoding::Pcm16 => len == PCM_FRAME_BYTES,
        Encoding::Opus => (1..=MAX_OPUS_PACKET).contains(&len),
    }
}

impl AudioMessage {
    /// Parses and validates one binary frame.
    pub fn decode(b: &[u8]) -> Result<Self, ProtocolError> {
        if b.len() < HEADER_LEN {
            return Err(ProtocolError::Short(b.len()));
        }
        if b.len() > MAX_MESSAGE {
            return Err(ProtocolError::TooLong(b.len()));
        }
        if b[0..2] != MAGIC {
            return Err(ProtocolError::Magic);
        }
        if b[2] != VERSION {
            return Err(ProtocolError::Version(b[2]));
        }
        let encoding = match b[3] {
            1 => Encoding::Pcm16,
            2 => Encoding::Opus,
            other => return Err(ProtocolError::Encoding(other)),
        };
        let sequence = u64::from_le_bytes(array(&b[4..12]));
        let timestamp = i64::from_le_bytes(array(&b[12..20]));
        let count = b[20];
        if !(1..=MAX_BUFFERS as u8).contains(&count) {
            return Err(ProtocolError::Count(count));
        }
        if b[21..24] != [0, 0, 0] {
            return Err(ProtocolError::Reserved);
        }
        let mut at = HEADER_LEN;
        let mut buffers = Vec::with_capacity(usize::from(count));
        for index in 0..usize::from(count) {
            let Some(head) = b.get(at..at + 6) else {
                return Err(ProtocolError::Truncated(index));
            };
            let source_id = u32::from_le_bytes(array(&head[0..4]));
            let len = usize::from(u16::from_le_bytes(array(&head[4..6])));
            at += 6;
            let Some(payload) = b.get(at..at + len) else {
                return Err(ProtocolError::Truncated(index));
            };
            if !payload_ok(encoding, len) {
                return Err(ProtocolError::Payload {
                    index,
                    len,
                    encoding,
                });
            }
            if buffers.iter().any(|x: &Buffer| x.source_id == source_id) {
                return Err(ProtocolError::DuplicateSource(source_id));
            }
            buffers.push(Buffer {
                source_id,
                payload: payload.to_vec(),
            });
            at += len;
        }
        if at != b.len() {
            return Err(ProtocolError::Trailing(b.len() - at));
        }
        Ok(Self {
            encoding,
            sequence,
            timestamp,
            buffers,
        })
    }

    /// Encodes the message (the adapter's side; used by the simulator and
    /// tests). Fails on the same rules [`Self::decode`] checks.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let count = self.buffers.len();
        if !(1..=MAX_BUFFERS).contains(&count) {
            return Err(ProtocolError::Count(u8::try_from(count).unwrap_or(u8::MAX)));
        }
        let mut out = Vec::with_capacity(
            HEADER_LEN
                + self
                    .buffers
                    .iter()
                    .map(|b| 6 + b.payload.len())
                    .sum::<usize>(),
        );
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.encoding.wire());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.push(count as u8);
        out.extend_from_slice(&[0, 0, 0]);
        for (index, buf) in self.buffers.iter().enumerate() {
            let len = buf.payload.len();
            if !payload_ok(self.encoding, len) {
                return Err(ProtocolError::Payload {
                    index,
                    len,
                    encoding: self.encoding,
                });
            }
            if self.buffers[..index]
                .iter()
                .any(|x| x.source_id == buf.source_id)
            {
                return Err(ProtocolError::DuplicateSource(buf.source_id));
            }
            out.extend_from_slice(&buf.source_id.to_le_bytes());
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&buf.payload);
        }
        Ok(out)
    }
}

impl Control {
    /// Parses a text frame.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Control(e.to_string()))
    }

    /// The JSON text frame.
    pub fn encode(&self) -> String {
        // Serialising these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pcm(source_id: u32, fill: u8) -> Buffer {
        Buffer {
            source_id,
            payload: vec![fill; PCM_FRAME_BYTES],
        }
    }

    fn msg() -> AudioMessage {
        AudioMessage {
            encoding: Encoding::Pcm16,
            sequence: 42,
            timestamp: 638_000_000_000_000_000,
            buffers: vec![pcm(7, 1), pcm(9, 2)],
        }
    }

    #[test]
    fn audio_round_trips_with_the_documented_layout() {
        let m = msg();
        let b = m.encode().unwrap();
        assert_eq!(&b[0..4], &[b'I', b'M', 1, 1]);
        assert_eq!(u64::from_le_bytes(b[4..12].try_into().unwrap()), 42);
        assert_eq!(
            i64::from_le_bytes(b[12..20].try_into().unwrap()),
            638_000_000_000_000_000
        );
        assert_eq!(b[20], 2);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 7);
        assert_eq!(u16::from_le_bytes(b[28..30].try_into().unwrap()), 640);
        assert_eq!(b.len(), HEADER_LEN + 2 * (6 + PCM_FRAME_BYTES));
        assert_eq!(AudioMessage::decode(&b).unwrap(), m);

        let opus = AudioMessage {
            encoding: Encoding::Opus,
            sequence: 1,
            timestamp: -5,
            buffers: vec![Buffer {
                source_id: 1,
                payload: vec![0xfc; 61],
            }],
        };
        assert_eq!(AudioMessage::decode(&opus.encode().unwrap()).unwrap(), opus);
    }

    #[test]
    fn every_broken_rule_is_rejected() {
        let good = msg().encode().unwrap();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            AudioMessage::decode(&b)
        };
        assert_eq!(
            AudioMessage::decode(&good[..10]),
            Err(ProtocolError::Short(10))
        );
        assert_eq!(with(&|b| b[0] = b'X'), Err(ProtocolError::Magic));
        assert_eq!(with(&|b| b[2] = 2), Err(ProtocolError::Version(2)));
        assert_eq!(with(&|b| b[3] = 9), Err(ProtocolError::Encoding(9)));
        assert_eq!(with(&|b| b[20] = 0), Err(ProtocolError::Count(0)));
        assert_eq!(with(&|b| b[20] = 5), Err(ProtocolError::Count(5)));
        assert_eq!(with(&|b| b[22] = 1), Err(ProtocolError::Reserved));
        assert_eq!(
            with(&|b| b.truncate(b.len() - 1)),
            Err(ProtocolError::Truncated(1))
        );
        assert_eq!(with(&|b| b.push(0)), Err(ProtocolError::Trailing(1)));
        assert_eq!(with(&|b| b[20] = 3), Err(ProtocolError::Truncated(2)));
        // Second buffer claims the first one's source id.
        assert_eq!(
            with(&|b| b[24 + 6 + 640] = 7),
            Err(ProtocolError::DuplicateSource(7))
        );
        // A PCM buffer must be exactly 20 ms.
        let mut short = msg();
        short.buffers[0].payload.truncate(600);
        assert!(matches!(
            short.encode(),
            Err(ProtocolError::Payload {
                index: 0,
                len: 600,
                ..
            })
        ));
        let mut b = good.clone();
        b[28..30].copy_from_slice(&600u16.to_le_bytes());
        assert!(matches!(
            AudioMessage::decode(&b),
            Err(ProtocolError::Payload { .. } | ProtocolError::Truncated(_))
        ));
        assert_eq!(
            AudioMessage::decode(&vec![0u8; MAX_MESSAGE + 1]),
            Err(ProtocolError::TooLong(MAX_MESSAGE + 1))
        );
    }

    #[test]
    fn control_messages_use_the_documented_json() {
        let hello = Control::decode(
            r#"{"type":"hello","protocol":"insights-media/1","encoding":"pcm16","mode":"unmixed"}"#,
        )
        .unwrap();
        assert_eq!(
            hello,
            Control::Hello {
                protocol: PROTOCOL.into(),
                encoding: Encoding::Pcm16,
                mode: Mode::Unmixed
            }
        );
        let src = Control::Source {
            source_id: 3,
            participant_id: "p-1".into(),
        };
        assert_eq!(
            src.encode(),
            r#"{"type":"source","source_id":3,"participant_id":"p-1"}"#
        );
        assert_eq!(Control::decode(&src.encode()).unwrap(), src);
        assert_eq!(Control::decode(r#"{"type":"end"}"#).unwrap(), Control::End);
        let refused = Control::Refused {
            code: RefusalCode::SpoolFull,
            message: "spool is full".into(),
        };
        assert!(refused.encode().contains(r#""code":"spool-full""#));
        assert!(Control::decode(r#"{"type":"hello"}"#).is_err());
        // Unknown fields are ignored so later versions can add fields.
        assert_eq!(
            Control::decode(r#"{"type":"end","extra":1}"#).unwrap(),
            Control::End
        );
        assert!(Control::decode(r#"{"type":"shout"}"#).is_err());
        assert!(Control::decode("not json").is_err());
    }
}
