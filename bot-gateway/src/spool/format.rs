//! The spool media log format (version 1): one append-only file per
//! recording, holding every stream's audio as individually sealed,
//! length-prefixed records. See the [module docs](super) for the byte
//! layout and the reasons; this file implements it (sans-IO sealing and
//! opening, plus a streaming [`RecordReader`]).

use std::io::{self, Read};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chrono::{DateTime, Utc};
use insights_core::crypto::DataKey;
use insights_core::domain::{KeyId, RecordingId, StreamId, TenantId};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;
type Tag = aes_gcm::aead::Tag<Aes256Gcm>;

/// First bytes of every spool media log.
pub const MAGIC: [u8; 8] = *b"INSSPOOL";
/// The format version written and read here.
pub const VERSION: u8 = 1;
/// Length of the fixed part of the file header.
pub const FIXED_HEADER_LEN: usize = 74;
/// Length of a record header (before the ciphertext).
pub const RECORD_HEADER_LEN: usize = 15;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest plaintext of one record (1 MiB). Bounds what a reader
/// allocates on the word of a not-yet-authenticated length.
pub const MAX_RECORD_PLAINTEXT: usize = 1024 * 1024;
/// Most streams of one recording.
pub const MAX_STREAMS: usize = 1024;
/// Length of the nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// First byte of every spool nonce prefix: the spool's nonce domain under
/// a recording's data key. Uploaded envelopes use [`UPLOAD_NONCE_DOMAIN`],
/// so the two can never produce the same nonce.
pub const SPOOL_NONCE_DOMAIN: u8 = 0x80;
/// First byte of the nonce prefix of envelopes made from the spool at
/// upload (see `uploader`).
pub const UPLOAD_NONCE_DOMAIN: u8 = 0x01;
/// Record flag: the last record of its stream.
pub const FLAG_LAST: u8 = 0x01;
/// Domain separation label at the start of every record's associated data.
const AAD_LABEL: &[u8] = b"insights/spool-record/v1";

/// Problems with a media log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not a spool file, or an unsupported version.
    #[error("not a spool media log, or an unsupported one: {0}")]
    BadHeader(String),
    /// The header names another tenant, recording, key or streams.
    #[error("spool header mismatch: {0}")]
    HeaderMismatch(String),
    /// A record failed authentication: tampered, reordered, spliced from
    /// another file, or the wrong key.
    #[error("record {index} at byte {offset} failed authentication")]
    Auth { index: u64, offset: u64 },
    /// A record header that cannot be valid.
    #[error("record {index} at byte {offset} is malformed: {reason}")]
    Malformed {
        index: u64,
        offset: u64,
        reason: String,
    },
    /// A record for a stream that already ended.
    #[error("record {index} at byte {offset} follows the last record of stream {stream}")]
    AfterLast {
        index: u64,
        offset: u64,
        stream: u16,
    },
    /// The file ends inside a record (a torn write).
    #[error("torn record {index} at byte {offset}: {have} of {need} bytes")]
    Torn {
        index: u64,
        offset: u64,
        have: u64,
        need: u64,
    },
    /// Reading failed.
    #[error("spool I/O: {0}")]
    Io(String),
    /// A caller broke an API contract (too large a record...).
    #[error("invalid use of the spool format: {0}")]
    Invalid(String),
}

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(u)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

/// The header of a media log: fixed part plus the stream ids. It is the
/// associated data of every record, so it is authenticated by each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    pub key_id: KeyId,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub created_at: DateTime<Utc>,
    pub streams: Vec<StreamId>,
}

impl FileHeader {
    /// A header for a new log with a fresh random nonce prefix in the
    /// spool's nonce domain.
    pub fn new(
        tenant_id: TenantId,
        recording_id: RecordingId,
        key_id: KeyId,
        streams: Vec<StreamId>,
        created_at: DateTime<Utc>,
    ) -> Result<Self, FormatError> {
        if streams.is_empty() || streams.len() > MAX_STREAMS {
            return Err(FormatError::Invalid(format!(
                "a recording has 1-{MAX_STREAMS} streams, not {}",
                streams.len()
            )));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rand::fill(&mut nonce_prefix[1..]);
        nonce_prefix[0] = SPOOL_NONCE_DOMAIN;
        Ok(Self {
            tenant_id,
            recording_id,
            key_id,
            nonce_prefix,
            created_at: from_micros(micros(created_at)),
            streams,
        })
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 16 * self.streams.len()
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The header bytes, exactly as stored and authenticated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(self.tenant_id.as_uuid().as_bytes());
        out.extend_from_slice(self.recording_id.as_uuid().as_bytes());
        out.extend_from_slice(self.key_id.as_uuid().as_bytes());
        // Checked in `new`/`decode`: fits in u16.
        out.extend_from_slice(&(self.streams.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.nonce_prefix);
        out.extend_from_slice(&micros(self.created_at).to_be_bytes());
        for s in &self.streams {
            out.extend_from_slice(s.as_uuid().as_bytes());
        }
        out
    }

    /// Parses the fixed part; returns the number of stream ids that follow.
    fn decode_fixed(b: &[u8]) -> Result<(Self, usize), FormatError> {
        if b.len() < FIXED_HEADER_LEN {
            return Err(FormatError::BadHeader(format!(
                "header is {} of {FIXED_HEADER_LEN} bytes",
                b.len()
            )));
        }
        if b[0..8] != MAGIC {
            return Err(FormatError::BadHeader("bad magic".into()));
        }
        if b[8] != VERSION {
            return Err(FormatError::BadHeader(format!(
                "unsupported version {}",
                b[8]
            )));
        }
        let n = usize::from(u16::from_be_bytes([b[57], b[58]]));
        if n == 0 || n > MAX_STREAMS {
            return Err(FormatError::BadHeader(format!("{n} streams")));
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&b[59..66]);
        if nonce_prefix[0] != SPOOL_NONCE_DOMAIN {
            return Err(FormatError::BadHeader(
                "nonce prefix outside the spool domain".into(),
            ));
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[66..74]);
        Ok((
            Self {
                tenant_id: TenantId(uuid_at(b, 9)),
                recording_id: RecordingId(uuid_at(b, 25)),
                key_id: KeyId(uuid_at(b, 41)),
                nonce_prefix,
                created_at: from_micros(i64::from_be_bytes(t)),
                streams: Vec::with_capacity(n),
            },
            n,
        ))
    }

    /// Parses a whole header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (mut h, n) = Self::decode_fixed(bytes)?;
        let need = FIXED_HEADER_LEN + 16 * n;
        if bytes.len() < need {
            return Err(FormatError::BadHeader(format!(
                "header is {} of {need} bytes",
                bytes.len()
            )));
        }
        for i in 0..n {
            h.streams
                .push(StreamId(uuid_at(bytes, FIXED_HEADER_LEN + 16 * i)));
        }
        Ok(h)
    }

    /// Reads and parses a header from `r`.
    pub fn read_from(r: &mut impl Read) -> Result<Self, FormatError> {
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        read_exact_or_torn(r, &mut fixed)
            .map_err(|e| FormatError::BadHeader(format!("cannot read header: {e}")))?;
        let (_, n) = Self::decode_fixed(&fixed)?;
        let mut all = fixed.to_vec();
        all.resize(FIXED_HEADER_LEN + 16 * n, 0);
        read_exact_or_torn(r, &mut all[FIXED_HEADER_LEN..])
            .map_err(|e| FormatError::BadHeader(format!("cannot read stream ids: {e}")))?;
        Self::decode(&all)
    }

    /// Checks the header against what the journal says.
    pub fn check(
        &self,
        tenant: TenantId,
        recording: RecordingId,
        key: KeyId,
        streams: &[StreamId],
    ) -> Result<(), FormatError> {
        let mismatch = |what: &str| Err(FormatError::HeaderMismatch(what.to_owned()));
        if self.tenant_id != tenant {
            return mismatch("tenant");
        }
        if self.recording_id != recording {
            return mismatch("recording");
        }
        if self.key_id != key {
            return mismatch("data key");
        }
        if self.streams != streams {
            return mismatch("stream ids");
        }
        Ok(())
    }
}

/// What a record header says (authenticated once the record opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub plaintext_len: u32,
    pub stream: u16,
    pub flags: u8,
    pub sealed_at_micros: i64,
}

impl RecordHeader {
    /// Encodes the 15 header bytes.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&self.plaintext_len.to_be_bytes());
        b[4..6].copy_from_slice(&self.stream.to_be_bytes());
        b[6] = self.flags;
        b[7..15].copy_from_slice(&self.sealed_at_micros.to_be_bytes());
        b
    }

    fn decode(b: &[u8; RECORD_HEADER_LEN]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[7..15]);
        Self {
            plaintext_len: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream: u16::from_be_bytes([b[4], b[5]]),
            flags: b[6],
            sealed_at_micros: i64::from_be_bytes(t),
        }
    }

    /// Whether this is the last record of its stream.
    pub fn is_last(&self) -> bool {
        self.flags & FLAG_LAST != 0
    }

    /// Stored length of the whole record.
    pub fn stored_len(&self) -> u64 {
        (RECORD_HEADER_LEN + TAG_LEN) as u64 + u64::from(self.plaintext_len)
    }
}

fn nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u64, flags: u8) -> Result<Nonce, FormatError> {
    let index = u32::try_from(index)
        .map_err(|_| FormatError::Invalid(format!("record index {index} exceeds 2^32 - 1")))?;
    let mut n = [0u8; 12];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
    n[11] = flags;
    Ok(n.into())
}

fn aad(header: &[u8], index: u64, rh: &[u8; RECORD_HEADER_LEN]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + header.len() + 8 + RECORD_HEADER_LEN);
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(header);
    a.extend_from_slice(&index.to_be_bytes());
    a.extend_from_slice(rh);
    a
}

/// Seals records of one media log in order (record `i` gets index `i`).
pub struct RecordSealer {
    cipher: Aes256Gcm,
    header: FileHeader,
    header_bytes: Vec<u8>,
    next_index: u64,
}

impl std::fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSealer")
            .field("recording", &self.header.recording_id)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl RecordSealer {
    /// A sealer for a new log (next index 0).
    pub fn new(key: &DataKey, header: FileHeader) -> Result<Self, FormatError> {
        Self::starting_at(key, header, 0)
    }

    /// A sealer whose next record gets `next_index`. Only for re-sealing
    /// known plaintext (custody verification): sealing *new* plaintext at
    /// an index already used would reuse a nonce.
    pub fn starting_at(
        key: &DataKey,
        header: FileHeader,
        next_index: u64,
    ) -> Result<Self, FormatError> {
        if key.id != header.key_id {
            return Err(FormatError::Invalid(
                "data key id differs from header".into(),
            ));
        }
        Ok(Self {
            cipher: Aes256Gcm::new(key.bytes().into()),
            header_bytes: header.encode(),
            header,
            next_index,
        })
    }

    /// The header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The encoded header (the first bytes of the file).
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// Index of the next record.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Seals `plaintext` as the next record of `stream` and appends the
    /// stored record to `out`.
    pub fn seal(
        &mut self,
        stream: u16,
        last: bool,
        sealed_at_micros: i64,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u64, FormatError> {
        if plaintext.len() > MAX_RECORD_PLAINTEXT {
            return Err(FormatError::Invalid(format!(
                "record of {} bytes exceeds {MAX_RECORD_PLAINTEXT}",
                plaintext.len()
            )));
        }
        if usize::from(stream) >= self.header.streams.len() {
            return Err(FormatError::Invalid(format!("no stream {stream}")));
        }
        let index = self.next_index;
        let flags = if last { FLAG_LAST } else { 0 };
        let rh = RecordHeader {
            plaintext_len: plaintext.len() as u32,
            stream,
            flags,
            sealed_at_micros,
        }
        .encode();
        let n = nonce(&self.header.nonce_prefix, index, flags)?;
        let start = out.len();
        out.extend_from_slice(&rh);
        out.extend_from_slice(plaintext);
        let body = &mut out[start + RECORD_HEADER_LEN..];
        let tag = self
            .cipher
            .encrypt_inout_detached(&n, &aad(&self.header_bytes, index, &rh), body.into())
            .map_err(|_| FormatError::Invalid(format!("record {index} cannot be sealed")))?;
        out.extend_from_slice(&tag);
        self.next_index += 1;
        Ok(index)
    }
}

/// One authenticated record, as found by [`RecordReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub index: u64,
    /// Byte offset of the record in the file.
    pub offset: u64,
    pub header: RecordHeader,
    /// SHA-256 of the stored record bytes (record header, ciphertext,
    /// tag), i.e. exactly what the spool wrote.
    pub sha256: [u8; 32],
}

/// How a log ended when read with [`RecordReader::next_record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Clean end of file after a whole record.
    Eof,
    /// The rest of the file does not form a valid record: `bytes` from
    /// `offset` (a torn write, zero-filled blocks after a crash, or
    /// tampering).
    Invalid {
        offset: u64,
        bytes: u64,
        error: FormatError,
    },
}

fn read_exact_or_torn(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got < buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{got} of {} bytes", buf.len()),
        ));
    }
    Ok(got)
}

/// The end of the last whole record of a log being appended to, for the
/// segmented upload: walks the record headers of `file` from `from` (0,
/// or the end of a whole record found before) without decrypting, and
/// stops before a record that does not lie wholly within the first `len`
/// bytes or whose header is not plausible (authenticity is checked by
/// whoever reads the records). 0 while the file header itself is
/// incomplete.
pub fn whole_records_end(file: &std::fs::File, from: u64, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut pos = from;
    if pos == 0 {
        if len < FIXED_HEADER_LEN as u64 {
            return Ok(0);
        }
        let mut fixed = [0u8; FIXED_HEADER_LEN];
        file.read_exact_at(&mut fixed, 0)?;
        let n = match FileHeader::decode_fixed(&fixed) {
            Ok((_, n)) => n,
            Err(_) => return Ok(0),
        };
        let header_len = (FIXED_HEADER_LEN + 16 * n) as u64;
        if len < header_len {
            return Ok(0);
        }
        pos = header_len;
    }
    let mut rh = [0u8; RECORD_HEADER_LEN];
    while pos + RECORD_HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut rh, pos)?;
        let h = RecordHeader::decode(&rh);
        if h.plaintext_len as usize > MAX_RECORD_PLAINTEXT || h.flags & !FLAG_LAST != 0 {
            break;
        }
        let end = pos + h.stored_len();
        if end > len {
            break;
        }
        pos = end;
    }
    Ok(pos)
}

/// Reads, authenticates and decrypts the records of a media log in order.
pub struct RecordReader<R> {
    inner: R,
    cipher: Aes256Gcm,
    header: FileHeader,
    header_bytes: Vec<u8>,
    next_index: u64,
    offset: u64,
    /// Bytes of the file (limit for torn-tail accounting).
    file_len: u64,
    ended: Vec<bool>,
    buf: Zeroizing<Vec<u8>>,
}

impl<R: Read> RecordReader<R> {
    /// Reads the header of `inner` (whose total length is `file_len`) and
    /// checks that `key` is the one it names.
    pub fn new(mut inner: R, key: &DataKey, file_len: u64) -> Result<Self, FormatError> {
        let header = FileHeader::read_from(&mut inner)?;
        if header.key_id != key.id {
            return Err(FormatError::HeaderMismatch("data key".into()));
        }
        let header_bytes = header.encode();
        Ok(Self {
            inner,
            cipher: Aes256Gcm::new(key.bytes().into()),
            ended: vec![false; header.streams.len()],
            offset: header_bytes.len() as u64,
            header_bytes,
            header,
            next_index: 0,
            file_len,
            buf: Zeroizing::new(Vec::new()),
        })
    }

    /// The file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Byte offset after the last record read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether each stream has seen its last record.
    pub fn ended(&self) -> &[bool] {
        &self.ended
    }

    /// The next record and its plaintext (valid until the next call), or
    /// how the file ends. After an `Err`, the reader must not be used
    /// again.
    pub fn next_record(&mut self) -> Result<(RecordInfo, &[u8]), End> {
        let index = self.next_index;
        let offset = self.offset;
        let rest = self.file_len.saturating_sub(offset);
        let invalid = |error: FormatError| End::Invalid {
            offset,
            bytes: rest,
            error,
        };
        if rest == 0 {
            return Err(End::Eof);
        }
        let mut rh_bytes = [0u8; RECORD_HEADER_LEN];
        if rest < RECORD_HEADER_LEN as u64 {
            return Err(invalid(FormatError::Torn {
                index,
                offset,
                have: rest,
                need: RECORD_HEADER_LEN as u64,
            }));
        }
        read_exact_or_torn(&mut self.inner, &mut rh_bytes)
            .map_err(|e| invalid(FormatError::Io(e.to_string())))?;
        let rh = RecordHeader::decode(&rh_bytes);
        if rh.plaintext_len as usize > MAX_RECORD_PLAINTEXT {
            return Err(invalid(FormatError::Malformed {
                index,
                offset,
                reason: format!("length {}", rh.plaintext_len),
            }));
        }
        if rh.flags & !FLAG_LAST != 0 {
            return Err(invalid(FormatError::Malformed {
                index,
                offset,
                reason: format!("flags {:#x}", rh.flags),
            }));
        }
        if usize::from(rh.stream) >= self.header.streams.len() {
            return Err(invalid(FormatError::Malformed {
                index,
                offset,
                reason: format!("stream {}", rh.stream),
            }));
        }
        let need = rh.stored_len();
        if rest < need {
            return Err(invalid(FormatError::Torn {
                index,
                offset,
                have: rest,
                need,
            }));
        }
        let body_len = rh.plaintext_len as usize + TAG_LEN;
        self.buf.clear();
        self.buf.resize(body_len, 0);
        read_exact_or_torn(&mut self.inner, &mut self.buf[..])
            .map_err(|e| invalid(FormatError::Io(e.to_string())))?;
        let mut h = Sha256::new();
        h.update(rh_bytes);
        h.update(&self.buf[..]);
        let sha256: [u8; 32] = h.finalize().into();
        let n = nonce(&self.header.nonce_prefix, index, rh.flags).map_err(invalid)?;
        let (ct, tag) = self.buf.split_at_mut(rh.plaintext_len as usize);
        let mut t = Tag::default();
        t.copy_from_slice(tag);
        self.cipher
            .decrypt_inout_detached(
                &n,
                &aad(&self.header_bytes, index, &rh_bytes),
                ct.into(),
                &t,
            )
            .map_err(|_| invalid(FormatError::Auth { index, offset }))?;
        let s = usize::from(rh.stream);
        if self.ended[s] {
            return Err(invalid(FormatError::AfterLast {
                index,
                offset,
                stream: rh.stream,
            }));
        }
        if rh.is_last() {
            self.ended[s] = true;
        }
        self.next_index += 1;
        self.offset += need;
        Ok((
            RecordInfo {
                index,
                offset,
                header: rh,
                sha256,
            },
            &self.buf[..rh.plaintext_len as usize],
        ))
    }
}

/// What a whole log holds, per stream, as established by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanResult {
    pub header: FileHeader,
    /// Bytes of the authenticated prefix (header and whole valid records).
    pub valid_len: u64,
    pub records: u64,
    pub streams: Vec<StreamScan>,
    /// `None` if the file ends cleanly after its last valid record.
    pub invalid_tail: Option<(u64, FormatError)>,
    /// `sealed_at` of the last valid record.
    pub last_sealed_at: Option<DateTime<Utc>>,
}

/// One stream's content in a [`ScanResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamScan {
    pub records: u64,
    pub plaintext_len: u64,
    pub plaintext_sha256: [u8; 32],
    /// Its last record (with the last flag) is present.
    pub complete: bool,
}

/// Reads a whole log, authenticating every record, and summarises each
/// stream. `on_record` sees every valid record with its plaintext.
pub fn scan<R: Read>(
    inner: R,
    key: &DataKey,
    file_len: u64,
    mut on_record: impl FnMut(&RecordInfo, &[u8]),
) -> Result<ScanResult, FormatError> {
    let mut reader = RecordReader::new(inner, key, file_len)?;
    let n = reader.header().streams.len();
    let mut hashers: Vec<Sha256> = (0..n).map(|_| Sha256::new()).collect();
    let mut lens = vec![0u64; n];
    let mut counts = vec![0u64; n];
    let mut records = 0;
    let mut last_sealed_at = None;
    let invalid_tail = loop {
        match reader.next_record() {
            Ok((info, plain)) => {
                let s = usize::from(info.header.stream);
                hashers[s].update(plain);
                lens[s] += plain.len() as u64;
                counts[s] += 1;
                records += 1;
                last_sealed_at = Some(from_micros(info.header.sealed_at_micros));
                on_record(&info, plain);
            }
            Err(End::Eof) => break None,
            Err(End::Invalid { bytes, error, .. }) => break Some((bytes, error)),
        }
    };
    let ended = reader.ended().to_vec();
    let streams = hashers
        .into_iter()
        .enumerate()
        .map(|(i, h)| StreamScan {
            records: counts[i],
            plaintext_len: lens[i],
            plaintext_sha256: h.finalize().into(),
            complete: ended[i],
        })
        .collect();
    Ok(ScanResult {
        header: reader.header().clone(),
        valid_len: reader.offset(),
        records,
        streams,
        invalid_tail,
        last_sealed_at,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::generate(KeyId::new())
    }

    fn header(key: &DataKey, n: usize) -> FileHeader {
        FileHeader::new(
            TenantId::new(),
            RecordingId::new(),
            key.id,
            (0..n).map(|_| StreamId::new()).collect(),
            Utc::now(),
        )
        .unwrap()
    }

    /// A log with records of the given (stream, plaintext, last).
    fn log(key: &DataKey, h: &FileHeader, recs: &[(u16, Vec<u8>, bool)]) -> Vec<u8> {
        let mut s = RecordSealer::new(key, h.clone()).unwrap();
        let mut out = s.header_bytes().to_vec();
        for (i, (stream, p, last)) in recs.iter().enumerate() {
            s.seal(*stream, *last, 1000 + i as i64, p, &mut out)
                .unwrap();
        }
        out
    }

    fn scan_bytes(key: &DataKey, b: &[u8]) -> Result<ScanResult, FormatError> {
        scan(b, key, b.len() as u64, |_, _| {})
    }

    #[test]
    fn header_roundtrip() {
        let k = key();
        let h = header(&k, 3);
        let b = h.encode();
        assert_eq!(b.len(), h.len());
        assert_eq!(FileHeader::decode(&b).unwrap(), h);
        assert_eq!(h.nonce_prefix[0], SPOOL_NONCE_DOMAIN);
        for cut in 0..b.len() {
            assert!(FileHeader::decode(&b[..cut]).is_err());
        }
    }

    #[test]
    fn roundtrip_and_summaries() {
        let k = key();
        let h = header(&k, 2);
        let recs = vec![
            (0, b"hello ".to_vec(), false),
            (1, b"other".to_vec(), false),
            (0, b"world".to_vec(), false),
            (0, vec![], true),
            (1, b"!".to_vec(), true),
        ];
        let b = log(&k, &h, &recs);
        let mut seen = Vec::new();
        let r = scan(&b[..], &k, b.len() as u64, |i, p| {
            seen.push((i.index, i.header.stream, p.to_vec()))
        })
        .unwrap();
        assert_eq!(r.valid_len, b.len() as u64);
        assert_eq!(r.invalid_tail, None);
        assert_eq!(r.records, 5);
        assert_eq!(r.streams[0].plaintext_len, 11);
        assert_eq!(
            r.streams[0].plaintext_sha256,
            <[u8; 32]>::from(Sha256::digest(b"hello world"))
        );
        assert!(r.streams[0].complete && r.streams[1].complete);
        assert_eq!(seen[2], (2, 0, b"world".to_vec()));
    }

    #[test]
    fn truncation_at_every_byte_keeps_exactly_the_whole_records() {
        let k = key();
        let h = header(&k, 2);
        let recs: Vec<_> = (0..6)
            .map(|i| ((i % 2) as u16, vec![i as u8; 7 * i], false))
            .collect();
        let b = log(&k, &h, &recs);
        // Record end offsets.
        let mut ends = vec![h.len() as u64];
        for (_, p, _) in &recs {
            let last = *ends.last().unwrap();
            ends.push(last + (RECORD_HEADER_LEN + TAG_LEN + p.len()) as u64);
        }
        for cut in 0..=b.len() {
            let r = scan_bytes(&k, &b[..cut]);
            if cut < h.len() {
                assert!(matches!(r, Err(FormatError::BadHeader(_))), "{cut}");
                continue;
            }
            let r = r.unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut as u64).count() - 1;
            assert_eq!(r.records, whole as u64, "cut {cut}");
            assert_eq!(r.valid_len, ends[whole], "cut {cut}");
            let expect: Vec<u8> = recs[..whole]
                .iter()
                .filter(|(s, _, _)| *s == 0)
                .flat_map(|(_, p, _)| p.clone())
                .collect();
            assert_eq!(
                r.streams[0].plaintext_sha256,
                <[u8; 32]>::from(Sha256::digest(&expect))
            );
            if cut as u64 == ends[whole] {
                assert_eq!(r.invalid_tail, None);
            } else {
                assert!(matches!(
                    r.invalid_tail,
                    Some((_, FormatError::Torn { .. }))
                ));
            }
        }
    }

    #[test]
    fn tampering_reordering_splicing_and_wrong_key_are_detected() {
        let k = key();
        let h = header(&k, 1);
        let recs: Vec<_> = (0..3).map(|i| (0u16, vec![i as u8; 20], false)).collect();
        let b = log(&k, &h, &recs);
        let rec_len = RECORD_HEADER_LEN + TAG_LEN + 20;
        // Any flipped byte after the header: the scan stops early.
        for pos in h.len()..b.len() {
            let mut bad = b.clone();
            bad[pos] ^= 0x04;
            let r = scan_bytes(&k, &bad).unwrap();
            assert!(r.records < 3, "{pos}");
            assert!(r.invalid_tail.is_some(), "{pos}");
        }
        // A flipped header byte: header or record 0 fails.
        for pos in 0..h.len() {
            let mut bad = b.clone();
            bad[pos] ^= 0x04;
            match scan_bytes(&k, &bad) {
                Err(_) => {}
                Ok(r) => assert_eq!(r.records, 0, "{pos}"),
            }
        }
        // Swap records 0 and 1.
        let mut swapped = b[..h.len()].to_vec();
        swapped.extend_from_slice(&b[h.len() + rec_len..h.len() + 2 * rec_len]);
        swapped.extend_from_slice(&b[h.len()..h.len() + rec_len]);
        swapped.extend_from_slice(&b[h.len() + 2 * rec_len..]);
        let r = scan_bytes(&k, &swapped).unwrap();
        assert_eq!(r.records, 0);
        assert!(matches!(
            r.invalid_tail,
            Some((_, FormatError::Auth { index: 0, .. }))
        ));
        // Records of another log under the same key.
        let h2 = FileHeader {
            recording_id: RecordingId::new(),
            ..h.clone()
        };
        let other = log(&k, &h2, &recs);
        let mut spliced = b[..h.len() + rec_len].to_vec();
        spliced.extend_from_slice(&other[h2.len() + rec_len..]);
        let r = scan_bytes(&k, &spliced).unwrap();
        assert_eq!(r.records, 1);
        // Wrong key.
        let wrong = DataKey::from_bytes(k.id, Zeroizing::new([7u8; 32]));
        assert_eq!(scan_bytes(&wrong, &b).unwrap().records, 0);
        // A record after its stream's last one.
        let b = log(
            &k,
            &h,
            &[(0, b"a".to_vec(), true), (0, b"b".to_vec(), false)],
        );
        let r = scan_bytes(&k, &b).unwrap();
        assert_eq!(r.records, 1);
        assert!(matches!(
            r.invalid_tail,
            Some((_, FormatError::AfterLast { .. }))
        ));
    }

    #[test]
    fn whole_records_end_stops_before_a_partial_record() {
        use std::io::Write as _;
        let k = key();
        let h = header(&k, 2);
        let recs: Vec<_> = (0..4)
            .map(|i| ((i % 2) as u16, vec![i as u8; 100 * i], false))
            .collect();
        let b = log(&k, &h, &recs);
        let mut ends = vec![h.len() as u64];
        for (_, p, _) in &recs {
            let last = *ends.last().unwrap();
            ends.push(last + (RECORD_HEADER_LEN + TAG_LEN + p.len()) as u64);
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&b).unwrap();
        for cut in 0..=b.len() as u64 {
            let expect = if cut < h.len() as u64 {
                0
            } else {
                *ends.iter().filter(|&&e| e <= cut).max().unwrap()
            };
            assert_eq!(whole_records_end(&f, 0, cut).unwrap(), expect, "{cut}");
            // Resuming from a record end gives the same answer.
            if expect >= ends[1] {
                assert_eq!(whole_records_end(&f, ends[1], cut).unwrap(), expect);
            }
        }
        // What it found are whole, authentic records.
        let end = whole_records_end(&f, 0, b.len() as u64 - 1).unwrap();
        let r = scan_bytes(&k, &b[..end as usize]).unwrap();
        assert_eq!((r.records, r.invalid_tail), (3, None));
    }

    #[test]
    fn resealing_known_plaintext_reproduces_the_bytes() {
        let k = key();
        let h = header(&k, 1);
        let b = log(
            &k,
            &h,
            &[(0, b"abc".to_vec(), false), (0, b"de".to_vec(), true)],
        );
        let mut s = RecordSealer::starting_at(&k, h.clone(), 1).unwrap();
        let mut out = Vec::new();
        s.seal(0, true, 1001, b"de", &mut out).unwrap();
        assert!(b.ends_with(&out));
    }
}
