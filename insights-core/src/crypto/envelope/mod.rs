//! The envelope object format: streaming, chunked AES-256-GCM.
//!
//! Every media object is encrypted with its own [`DataKey`] into an
//! *envelope*: a fixed-length header followed by independently
//! authenticated chunks, so that objects can be written while recording
//! (without knowing the final length), read as a stream, and decrypted
//! piecewise for HTTP `Range` playback.
//!
//! # Byte layout (format version 1)
//!
//! ```text
//! offset  length  field
//! ------  ------  ---------------------------------------------------------
//!      0       6  magic, ASCII "INSENV"
//!      6       1  format version, 0x01
//!      7      16  tenant id (UUID bytes, RFC 4122 order)
//!     23      16  object id (UUID bytes; the recording id)
//!     39      16  data key id (UUID bytes)
//!     55       4  chunk size C: plaintext bytes per chunk, u32 big-endian,
//!                 1 ..= 16 MiB (default 64 KiB)
//!     59       7  nonce prefix: random, fresh for every object
//!     66          chunk 0 || chunk 1 || ... || chunk n-1
//! ```
//!
//! The header is [`Header::LEN`] = 66 bytes. Chunk `i` is
//!
//! ```text
//! AES-256-GCM(key = data key,
//!             nonce = nonce prefix (7) || i as u32 big-endian (4) || final flag (1),
//!             associated data = the 66 header bytes,
//!             plaintext chunk i)
//! stored as   ciphertext || 16-byte tag
//! ```
//!
//! where the final flag is `0x01` for the last chunk of the object and
//! `0x00` for every other chunk (the STREAM construction of Hoang, Reyhanitabar,
//! Rogaway and Vizár). Every chunk but the last holds exactly `C`
//! plaintext bytes; the last holds `0 ..= C` bytes and is empty only when
//! the whole plaintext is empty. So a plaintext of `P` bytes has
//! `n = max(1, ceil(P / C))` chunks and the object is
//! `66 + P + 16 n` bytes long: the chunk layout follows from the total
//! length alone, which is what makes [`Header::plan_range`] possible.
//!
//! # What is detected
//!
//! * Any modified byte: the header is authenticated as associated data of
//!   every chunk, each chunk by its own tag ([`CryptoError::ChunkAuth`],
//!   or [`CryptoError::BadHeader`] if the header no longer parses).
//! * Reordered chunks: the chunk index is part of the nonce.
//! * Chunks spliced in from another object, even one encrypted with the
//!   same key: the nonce prefix and the header (object id) differ.
//! * Truncation, also exactly at a chunk boundary: the last chunk present
//!   was sealed without the final flag ([`CryptoError::Truncated`]).
//! * Data after the final chunk ([`CryptoError::TrailingData`], or
//!   [`CryptoError::ChunkAuth`] when it does not align with a chunk).
//! * The wrong key ([`CryptoError::ChunkAuth`] on chunk 0), or a header
//!   naming another tenant, object or key ([`CryptoError::HeaderMismatch`]).
//!
//! Chunks are authenticated before any of their plaintext is released.
//! Streaming readers necessarily release the plaintext of the chunks
//! before a failing one: treat an error at any point as fatal for the
//! whole object.
//!
//! # APIs
//!
//! * Sans-IO core: [`Header`], [`Sealer`] (encrypts chunk by chunk, in
//!   place or into a caller buffer) and [`Opener`] (decrypts any chunk).
//! * Whole objects in memory: [`encrypt_to_vec`], [`decrypt_to_vec`] and
//!   the allocation-free [`encrypt_into`], [`decrypt_into`].
//! * Streaming: [`EnvelopeWriter`] (`std::io::Write`),
//!   [`AsyncEnvelopeWriter`] (`tokio::io::AsyncWrite`), [`EnvelopeReader`]
//!   (`std::io::Read`) and the push-based [`StreamOpener`] (for a stream of
//!   `Bytes`).
//! * Random access: [`Header::plaintext_len`], [`Header::plan_range`],
//!   [`decrypt_range`].

use std::io::{self, Read, Write};
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use tokio::io::AsyncWrite;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use super::keys::fill_random;
use super::{CryptoError, DataKey};
use crate::domain::{KeyId, TenantId};

type Result<T> = std::result::Result<T, CryptoError>;
type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;
type Tag = aes_gcm::aead::Tag<Aes256Gcm>;

/// First bytes of every envelope object.
pub const MAGIC: [u8; 6] = *b"INSENV";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Default plaintext bytes per chunk (64 KiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size accepted (16 MiB). Bounds the memory a reader
/// allocates on the word of a not-yet-authenticated header.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Length of the AES-GCM tag that ends every chunk.
pub const TAG_LEN: usize = 16;
/// Length of the random per-object nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Most chunks one object can have (the chunk index is a `u32`).
pub const MAX_CHUNKS: u64 = 1 << 32;

const TAG_LEN_U64: u64 = TAG_LEN as u64;

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| CryptoError::TooLarge(format!("{v} bytes")))
}

fn cipher_for(key: &DataKey) -> Aes256Gcm {
    Aes256Gcm::new(key.bytes().into())
}

fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u64, is_final: bool) -> Result<Nonce> {
    let index = u32::try_from(index)
        .map_err(|_| CryptoError::TooLarge(format!("chunk index {index} exceeds 2^32 - 1")))?;
    let mut nonce = [0u8; 12];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(is_final);
    Ok(nonce.into())
}

fn tag_from(bytes: &[u8]) -> Tag {
    let mut tag = Tag::default();
    tag.copy_from_slice(bytes);
    tag
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// The fixed-length header of an envelope object (see the module docs for
/// the byte layout). It is authenticated with every chunk.
///
/// Constructed with [`Header::new`] (random nonce prefix) or parsed with
/// [`Header::decode`]; its fields are read-only so that a header is always
/// valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    tenant_id: TenantId,
    object_id: Uuid,
    key_id: KeyId,
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

/// The object layout implied by a ciphertext length.
#[derive(Clone, Copy, Debug)]
struct Layout {
    plaintext_len: u64,
    chunks: u64,
}

impl Header {
    /// Encoded length of a header in bytes.
    pub const LEN: usize = 66;

    /// A header for a new object with the default chunk size and a fresh
    /// random nonce prefix. `object_id` is normally the
    /// [`RecordingId`](crate::domain::RecordingId) (`recording.as_uuid()`).
    ///
    /// Use a new header for every object, even when re-encrypting the same
    /// object: the nonce prefix must never repeat under one key.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn new(tenant_id: TenantId, object_id: Uuid, key_id: KeyId) -> Self {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        fill_random(&mut nonce_prefix);
        Self {
            tenant_id,
            object_id,
            key_id,
            chunk_size: DEFAULT_CHUNK_SIZE,
            nonce_prefix,
        }
    }

    /// The same header with another chunk size (`1 ..= MAX_CHUNK_SIZE`).
    pub fn with_chunk_size(mut self, chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size).map_err(CryptoError::InvalidInput)?;
        self.chunk_size = chunk_size;
        Ok(self)
    }

    /// A header from explicit parts, for test vectors and tools.
    ///
    /// **Never reuse a nonce prefix under the same key**: two objects
    /// sharing key and prefix lose confidentiality and integrity. Prefer
    /// [`Header::new`].
    pub fn from_parts(
        tenant_id: TenantId,
        object_id: Uuid,
        key_id: KeyId,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        check_chunk_size(chunk_size).map_err(CryptoError::InvalidInput)?;
        Ok(Self {
            tenant_id,
            object_id,
            key_id,
            chunk_size,
            nonce_prefix,
        })
    }

    /// The tenant the object belongs to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The object (recording) id.
    pub fn object_id(&self) -> Uuid {
        self.object_id
    }

    /// The id of the data key that encrypts the object.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The per-object random nonce prefix.
    pub fn nonce_prefix(&self) -> [u8; NONCE_PREFIX_LEN] {
        self.nonce_prefix
    }

    /// The ids, as [`ExpectedIds`] (e.g. to check another header against).
    pub fn ids(&self) -> ExpectedIds {
        ExpectedIds {
            tenant_id: self.tenant_id,
            object_id: self.object_id,
            key_id: self.key_id,
        }
    }

    /// The 66 header bytes, exactly as stored and authenticated.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..6].copy_from_slice(&MAGIC);
        out[6] = FORMAT_VERSION;
        out[7..23].copy_from_slice(self.tenant_id.as_uuid().as_bytes());
        out[23..39].copy_from_slice(self.object_id.as_bytes());
        out[39..55].copy_from_slice(self.key_id.as_uuid().as_bytes());
        out[55..59].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[59..66].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// Parses a header from the first [`Header::LEN`] bytes of `bytes`
    /// (longer input, e.g. a whole object, is fine).
    ///
    /// Parsing does not authenticate: the header is only trustworthy once
    /// a chunk opened under it. Check it against what you expect with
    /// [`Header::check`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let Some(b) = bytes.get(..Self::LEN) else {
            return Err(CryptoError::Truncated(format!(
                "header is {} of {} bytes",
                bytes.len(),
                Self::LEN
            )));
        };
        if b[0..6] != MAGIC {
            return Err(CryptoError::BadHeader("bad magic".into()));
        }
        if b[6] != FORMAT_VERSION {
            return Err(CryptoError::BadHeader(format!(
                "unsupported format version {}",
                b[6]
            )));
        }
        let uuid_at = |at: usize| {
            let mut u = [0u8; 16];
            u.copy_from_slice(&b[at..at + 16]);
            Uuid::from_bytes(u)
        };
        let mut cs = [0u8; 4];
        cs.copy_from_slice(&b[55..59]);
        let chunk_size = u32::from_be_bytes(cs);
        check_chunk_size(chunk_size).map_err(CryptoError::BadHeader)?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&b[59..66]);
        Ok(Self {
            tenant_id: TenantId(uuid_at(7)),
            object_id: uuid_at(23),
            key_id: KeyId(uuid_at(39)),
            chunk_size,
            nonce_prefix,
        })
    }

    /// [`Header::decode`] followed by [`Header::check`].
    pub fn decode_expected(bytes: &[u8], expected: &ExpectedIds) -> Result<Self> {
        let header = Self::decode(bytes)?;
        header.check(expected)?;
        Ok(header)
    }

    /// Checks that the header names the tenant, object and data key the
    /// caller expects ([`CryptoError::HeaderMismatch`] otherwise). This
    /// stops an object of one recording or tenant being served as
    /// another's, even if both were encrypted under the same key.
    pub fn check(&self, expected: &ExpectedIds) -> Result<()> {
        if self.tenant_id != expected.tenant_id {
            return Err(CryptoError::HeaderMismatch(format!(
                "tenant {} where {} was expected",
                self.tenant_id, expected.tenant_id
            )));
        }
        if self.object_id != expected.object_id {
            return Err(CryptoError::HeaderMismatch(format!(
                "object {} where {} was expected",
                self.object_id, expected.object_id
            )));
        }
        if self.key_id != expected.key_id {
            return Err(CryptoError::HeaderMismatch(format!(
                "data key {} where {} was expected",
                self.key_id, expected.key_id
            )));
        }
        Ok(())
    }

    /// Number of chunks of a `plaintext_len`-byte object:
    /// `max(1, ceil(plaintext_len / chunk_size))`.
    pub fn chunk_count(&self, plaintext_len: u64) -> Result<u64> {
        let n = plaintext_len.div_ceil(u64::from(self.chunk_size)).max(1);
        if n > MAX_CHUNKS {
            return Err(CryptoError::TooLarge(format!(
                "{plaintext_len} bytes need {n} chunks of {} bytes, more than 2^32",
                self.chunk_size
            )));
        }
        Ok(n)
    }

    /// Length of the envelope object (header included) of a
    /// `plaintext_len`-byte plaintext.
    pub fn ciphertext_len(&self, plaintext_len: u64) -> Result<u64> {
        let n = self.chunk_count(plaintext_len)?;
        (Self::LEN as u64)
            .checked_add(plaintext_len)
            .and_then(|v| v.checked_add(n * TAG_LEN_U64))
            .ok_or_else(|| CryptoError::TooLarge(format!("{plaintext_len} bytes")))
    }

    /// Length of the plaintext of an envelope object of `ciphertext_len`
    /// bytes (header included). Fails if no object under this header can
    /// have that length ([`CryptoError::Truncated`]).
    pub fn plaintext_len(&self, ciphertext_len: u64) -> Result<u64> {
        Ok(self.layout(ciphertext_len)?.plaintext_len)
    }

    fn stored_chunk_len(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN_U64
    }

    fn layout(&self, ciphertext_len: u64) -> Result<Layout> {
        let Some(body) = ciphertext_len.checked_sub(Self::LEN as u64) else {
            return Err(CryptoError::Truncated(format!(
                "object of {ciphertext_len} bytes is shorter than its {}-byte header",
                Self::LEN
            )));
        };
        if body < TAG_LEN_U64 {
            return Err(CryptoError::Truncated(format!(
                "object of {ciphertext_len} bytes has no complete chunk"
            )));
        }
        let stored = self.stored_chunk_len();
        let (full, rest) = (body / stored, body % stored);
        let cs = u64::from(self.chunk_size);
        let layout = if rest == 0 {
            Layout {
                plaintext_len: full * cs,
                chunks: full,
            }
        } else if rest > TAG_LEN_U64 || (rest == TAG_LEN_U64 && full == 0) {
            Layout {
                plaintext_len: full * cs + rest - TAG_LEN_U64,
                chunks: full + 1,
            }
        } else {
            return Err(CryptoError::Truncated(format!(
                "an object of {ciphertext_len} bytes cannot have chunks of {cs} bytes \
                 (truncated or has trailing data)"
            )));
        };
        if layout.chunks > MAX_CHUNKS {
            return Err(CryptoError::TooLarge(format!(
                "object of {ciphertext_len} bytes has more than 2^32 chunks"
            )));
        }
        Ok(layout)
    }

    /// Absolute byte range of chunk `index` in an object of `layout`.
    fn chunk_range(&self, layout: Layout, ciphertext_len: u64, index: u64) -> Range<u64> {
        let start = Self::LEN as u64 + index * self.stored_chunk_len();
        let end = if index + 1 == layout.chunks {
            ciphertext_len
        } else {
            start + self.stored_chunk_len()
        };
        start..end
    }

    /// Plans a ranged read: which ciphertext bytes to fetch to decrypt
    /// plaintext bytes `plain` of an object of `ciphertext_len` bytes
    /// (header included).
    ///
    /// The header itself is *not* part of [`RangePlan::fetch`]: a player
    /// fetches (or caches) the first [`Header::LEN`] bytes once per object,
    /// decodes and checks them, then does one ranged read per request. An
    /// empty `plain` range (at any offset `<= plaintext_len`) yields an
    /// empty plan that needs no fetch.
    ///
    /// [`CryptoError::BadRange`] if `plain` is reversed or ends past the
    /// plaintext; [`CryptoError::Truncated`] if `ciphertext_len` is not a
    /// possible object length.
    pub fn plan_range(&self, plain: Range<u64>, ciphertext_len: u64) -> Result<RangePlan> {
        let layout = self.layout(ciphertext_len)?;
        if plain.start > plain.end || plain.end > layout.plaintext_len {
            return Err(CryptoError::BadRange {
                start: plain.start,
                end: plain.end,
                len: layout.plaintext_len,
            });
        }
        let cs = u64::from(self.chunk_size);
        let final_chunk = layout.chunks - 1;
        let (chunks, fetch) = if plain.is_empty() {
            let at = Self::LEN as u64;
            (0..0, at..at)
        } else {
            let first = plain.start / cs;
            let last = (plain.end - 1) / cs;
            let start = self.chunk_range(layout, ciphertext_len, first).start;
            let end = self.chunk_range(layout, ciphertext_len, last).end;
            (first..last + 1, start..end)
        };
        Ok(RangePlan {
            plain,
            fetch,
            chunks,
            final_chunk,
            plaintext_len: layout.plaintext_len,
            chunk_size: self.chunk_size,
        })
    }
}

fn check_chunk_size(chunk_size: u32) -> std::result::Result<(), String> {
    if (1..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(format!(
            "chunk size {chunk_size} outside 1..={MAX_CHUNK_SIZE}"
        ))
    }
}

/// The ids a caller expects an envelope header to carry; see
/// [`Header::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExpectedIds {
    pub tenant_id: TenantId,
    /// The object (recording) id.
    pub object_id: Uuid,
    pub key_id: KeyId,
}

impl ExpectedIds {
    /// Expected ids of an object.
    pub fn new(tenant_id: TenantId, object_id: Uuid, key_id: KeyId) -> Self {
        Self {
            tenant_id,
            object_id,
            key_id,
        }
    }
}

fn check_key(key: &DataKey, header: &Header) -> Result<()> {
    if key.id == header.key_id {
        Ok(())
    } else {
        Err(CryptoError::HeaderMismatch(format!(
            "header names data key {}, but key {} was given",
            header.key_id, key.id
        )))
    }
}

// ---------------------------------------------------------------------------
// Sans-IO core
// ---------------------------------------------------------------------------

/// Encrypts an object chunk by chunk, in order (sans-IO core of the
/// envelope writers).
///
/// Call [`Sealer::seal_chunk`] (or [`Sealer::seal_chunk_to`]) for every
/// full, non-final chunk and finally [`Sealer::seal_final`] (or
/// [`Sealer::seal_final_to`]), which consumes the sealer. The caller
/// writes [`Header::encode`] first, then the sealed chunks in order.
///
/// The final chunk must be sealed only once all the data is known: if the
/// plaintext ends exactly at a chunk boundary, the last full chunk is the
/// final one (hold it back until more data arrives or the input ends).
/// The cipher state is zeroized on drop.
pub struct Sealer {
    cipher: Aes256Gcm,
    header: Header,
    aad: [u8; Header::LEN],
    next_index: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("header", &self.header)
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for an object with `header`, which must name `key`'s id.
    pub fn new(key: &DataKey, header: &Header) -> Result<Self> {
        check_key(key, header)?;
        Ok(Self {
            cipher: cipher_for(key),
            header: *header,
            aad: header.encode(),
            next_index: 0,
        })
    }

    /// The header of the object being sealed.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Index of the next chunk to seal (= chunks sealed so far).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    fn chunk_size(&self) -> usize {
        self.header.chunk_size as usize
    }

    fn seal_inout(&mut self, is_final: bool, buf: InOutBuf<'_, '_, u8>) -> Result<Tag> {
        let index = self.next_index;
        let nonce = chunk_nonce(&self.header.nonce_prefix, index, is_final)?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &self.aad, buf)
            .map_err(|_| CryptoError::TooLarge(format!("chunk {index}")))?;
        self.next_index += 1;
        Ok(tag)
    }

    fn check_final_len(&self, len: usize) -> Result<()> {
        if len > self.chunk_size() {
            return Err(CryptoError::InvalidInput(format!(
                "final chunk of {len} bytes exceeds the chunk size {}",
                self.chunk_size()
            )));
        }
        if len == 0 && self.next_index > 0 {
            return Err(CryptoError::InvalidInput(
                "empty final chunk after full chunks: the last full chunk must be sealed as final"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Seals the next full, non-final chunk in place. `chunk` holds
    /// `chunk_size` plaintext bytes followed by [`TAG_LEN`] spare bytes;
    /// on success it holds the stored ciphertext chunk.
    pub fn seal_chunk(&mut self, chunk: &mut [u8]) -> Result<()> {
        let cs = self.chunk_size();
        if chunk.len() != cs + TAG_LEN {
            return Err(CryptoError::InvalidInput(format!(
                "non-final chunk buffer is {} bytes, expected {}",
                chunk.len(),
                cs + TAG_LEN
            )));
        }
        let (data, tag_out) = chunk.split_at_mut(cs);
        let tag = self.seal_inout(false, data.into())?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Seals the next full, non-final chunk from `plaintext`
    /// (`chunk_size` bytes) into `out` (`chunk_size + TAG_LEN` bytes).
    ///
    /// Copies, then encrypts in place: with aes-gcm 0.11 (separate CTR and
    /// GHASH passes) that measured faster and steadier than encrypting
    /// from one buffer into another, since the copy brings the chunk into
    /// cache (see `benches/envelope.rs`).
    pub fn seal_chunk_to(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        let cs = self.chunk_size();
        if plaintext.len() != cs || out.len() != cs + TAG_LEN {
            return Err(CryptoError::InvalidInput(format!(
                "non-final chunk of {} bytes into {} bytes, expected {cs} into {}",
                plaintext.len(),
                out.len(),
                cs + TAG_LEN
            )));
        }
        out[..cs].copy_from_slice(plaintext);
        self.seal_chunk(out)
    }

    /// Seals the final chunk in place: `chunk` holds `0 ..= chunk_size`
    /// plaintext bytes followed by [`TAG_LEN`] spare bytes. The plaintext
    /// may be empty only if it is the object's only chunk.
    pub fn seal_final(mut self, chunk: &mut [u8]) -> Result<()> {
        let Some(len) = chunk.len().checked_sub(TAG_LEN) else {
            return Err(CryptoError::InvalidInput(
                "final chunk buffer has no room for the tag".into(),
            ));
        };
        self.check_final_len(len)?;
        let (data, tag_out) = chunk.split_at_mut(len);
        let tag = self.seal_inout(true, data.into())?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Seals the final chunk from `plaintext` (`0 ..= chunk_size` bytes)
    /// into `out` (`plaintext.len() + TAG_LEN` bytes).
    pub fn seal_final_to(self, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(CryptoError::InvalidInput(format!(
                "final chunk output is {} bytes, expected {}",
                out.len(),
                plaintext.len() + TAG_LEN
            )));
        }
        out[..plaintext.len()].copy_from_slice(plaintext);
        self.seal_final(out)
    }
}

/// Decrypts and authenticates individual chunks of one object, in any
/// order (sans-IO core of the readers and of ranged reads).
///
/// The caller says whether a chunk is the object's final one (known from
/// the object length, or from the end of the stream). When a chunk fails,
/// the opener tells truncation ([`CryptoError::Truncated`]: the chunk
/// authenticates, but not as final) and trailing data
/// ([`CryptoError::TrailingData`]: a chunk believed non-final is the
/// final one) apart from tampering ([`CryptoError::ChunkAuth`]).
///
/// The cipher state is zeroized on drop.
pub struct Opener {
    cipher: Aes256Gcm,
    header: Header,
    aad: [u8; Header::LEN],
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener for the object with `header`, which must name `key`'s id
    /// ([`CryptoError::HeaderMismatch`] otherwise).
    pub fn new(key: &DataKey, header: &Header) -> Result<Self> {
        check_key(key, header)?;
        Ok(Self::with_cipher(cipher_for(key), header))
    }

    fn with_cipher(cipher: Aes256Gcm, header: &Header) -> Self {
        Self {
            cipher,
            header: *header,
            aad: header.encode(),
        }
    }

    /// The header of the object.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn stored_chunk_len(&self) -> usize {
        self.header.chunk_size as usize + TAG_LEN
    }

    /// Plaintext length of a stored chunk of `len` bytes, if that length
    /// is possible for a (final or non-final) chunk.
    fn check_chunk_len(&self, index: u64, is_final: bool, len: usize) -> Result<usize> {
        let stored = self.stored_chunk_len();
        if len < TAG_LEN {
            return Err(CryptoError::Truncated(format!(
                "chunk {index} is {len} bytes, shorter than its {TAG_LEN}-byte tag"
            )));
        }
        if len > stored {
            return Err(CryptoError::TrailingData);
        }
        if !is_final && len < stored {
            return Err(CryptoError::Truncated(format!(
                "chunk {index} is {len} of {stored} bytes"
            )));
        }
        Ok(len - TAG_LEN)
    }

    fn open_inout(
        &self,
        index: u64,
        is_final: bool,
        mut buf: InOutBuf<'_, '_, u8>,
        tag: &Tag,
    ) -> Result<()> {
        let nonce = chunk_nonce(&self.header.nonce_prefix, index, is_final)?;
        if self
            .cipher
            .decrypt_inout_detached(&nonce, &self.aad, buf.reborrow(), tag)
            .is_ok()
        {
            return Ok(());
        }
        // Diagnose (failure path only): does the chunk authenticate with
        // the other final flag? A failed attempt leaves `buf` untouched.
        let full = buf.len() == self.header.chunk_size as usize;
        if is_final && !full {
            return Err(CryptoError::ChunkAuth { chunk: index });
        }
        let other = chunk_nonce(&self.header.nonce_prefix, index, !is_final)?;
        if self
            .cipher
            .decrypt_inout_detached(&other, &self.aad, buf, tag)
            .is_ok()
        {
            return Err(if is_final {
                CryptoError::Truncated(format!(
                    "chunk {index} is not the final chunk: the object ends early"
                ))
            } else {
                CryptoError::TrailingData
            });
        }
        Err(CryptoError::ChunkAuth { chunk: index })
    }

    /// Opens chunk `index` in place. `chunk` is the stored chunk
    /// (ciphertext followed by the tag); on success its first `n` bytes
    /// hold the plaintext and `n` is returned. `is_final` must be true
    /// exactly for the object's last chunk.
    pub fn open_chunk(&self, index: u64, is_final: bool, chunk: &mut [u8]) -> Result<usize> {
        let len = self.check_chunk_len(index, is_final, chunk.len())?;
        let (data, tag) = chunk.split_at_mut(len);
        let tag = tag_from(tag);
        self.open_inout(index, is_final, data.into(), &tag)?;
        Ok(len)
    }

    /// Opens chunk `index` from `chunk` (ciphertext followed by the tag)
    /// into `out`, which must be `chunk.len() - TAG_LEN` bytes. If the
    /// chunk does not authenticate, `out` holds ciphertext, never
    /// unauthenticated plaintext.
    ///
    /// Copies, then decrypts in place (faster and steadier than
    /// decrypting from one buffer into another; see
    /// [`Sealer::seal_chunk_to`]).
    pub fn open_chunk_to(
        &self,
        index: u64,
        is_final: bool,
        chunk: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let len = self.check_chunk_len(index, is_final, chunk.len())?;
        if out.len() != len {
            return Err(CryptoError::InvalidInput(format!(
                "output buffer is {} bytes, chunk {index} holds {len}",
                out.len()
            )));
        }
        let (data, tag) = chunk.split_at(len);
        out.copy_from_slice(data);
        self.open_inout(index, is_final, out.into(), &tag_from(tag))
    }

    /// Appends the plaintext of chunk `index` (`chunk` = ciphertext and
    /// tag) to `out`; on error `out` is left as it was.
    fn open_chunk_append(
        &self,
        index: u64,
        is_final: bool,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let len = self.check_chunk_len(index, is_final, chunk.len())?;
        let (data, tag) = chunk.split_at(len);
        let at = out.len();
        out.extend_from_slice(data);
        let result = self.open_inout(index, is_final, (&mut out[at..]).into(), &tag_from(tag));
        if result.is_err() {
            out.truncate(at);
        }
        result
    }
}

// ---------------------------------------------------------------------------
// Whole objects in memory
// ---------------------------------------------------------------------------

/// Encrypts `plaintext` into `out`, which must be exactly
/// `header.ciphertext_len(plaintext.len())` bytes. No allocation; the
/// plaintext is copied chunk by chunk into place and encrypted there.
pub fn encrypt_into(
    key: &DataKey,
    header: &Header,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let expected = header.ciphertext_len(plaintext.len() as u64)?;
    if out.len() as u64 != expected {
        return Err(CryptoError::InvalidInput(format!(
            "output buffer is {} bytes, the envelope is {expected}",
            out.len()
        )));
    }
    let mut sealer = Sealer::new(key, header)?;
    let (head, mut body) = out.split_at_mut(Header::LEN);
    head.copy_from_slice(&header.encode());
    let cs = header.chunk_size as usize;
    let stored = cs + TAG_LEN;
    let mut rest = plaintext;
    while rest.len() > cs {
        let (chunk, more) = rest.split_at(cs);
        let (slot, after) = body.split_at_mut(stored);
        sealer.seal_chunk_to(chunk, slot)?;
        rest = more;
        body = after;
    }
    sealer.seal_final_to(rest, body)
}

/// Encrypts `plaintext` into a new envelope object.
pub fn encrypt_to_vec(key: &DataKey, header: &Header, plaintext: &[u8]) -> Result<Vec<u8>> {
    let len = to_usize(header.ciphertext_len(plaintext.len() as u64)?)?;
    let mut out = vec![0u8; len];
    encrypt_into(key, header, plaintext, &mut out)?;
    Ok(out)
}

/// Decrypts a whole envelope object into `out`, which must be exactly
/// `header.plaintext_len(ciphertext.len())` bytes (decode the header with
/// [`Header::decode`] to size it). Checks the header against `expected`
/// and returns it. On error, `out` holds no plaintext (it is zeroed).
pub fn decrypt_into(
    key: &DataKey,
    ciphertext: &[u8],
    expected: &ExpectedIds,
    out: &mut [u8],
) -> Result<Header> {
    let header = Header::decode_expected(ciphertext, expected)?;
    let layout = header.layout(ciphertext.len() as u64)?;
    if out.len() as u64 != layout.plaintext_len {
        return Err(CryptoError::InvalidInput(format!(
            "output buffer is {} bytes, the plaintext is {}",
            out.len(),
            layout.plaintext_len
        )));
    }
    let opener = Opener::new(key, &header)?;
    let cs = header.chunk_size as usize;
    let stored = cs + TAG_LEN;
    let mut body = &ciphertext[Header::LEN..];
    let mut rest = &mut *out;
    let mut result = Ok(());
    for index in 0..layout.chunks {
        let is_final = index + 1 == layout.chunks;
        let (chunk, more) = body.split_at(if is_final { body.len() } else { stored });
        let take = if is_final { rest.len() } else { cs };
        let (slot, after) = std::mem::take(&mut rest).split_at_mut(take);
        if let Err(e) = opener.open_chunk_to(index, is_final, chunk, slot) {
            result = Err(e);
            break;
        }
        body = more;
        rest = after;
    }
    if let Err(e) = result {
        out.zeroize();
        return Err(e);
    }
    Ok(header)
}

/// Decrypts a whole envelope object, checking that its header names the
/// expected tenant, object and key.
pub fn decrypt_to_vec(key: &DataKey, ciphertext: &[u8], expected: &ExpectedIds) -> Result<Vec<u8>> {
    let header = Header::decode_expected(ciphertext, expected)?;
    let len = to_usize(header.plaintext_len(ciphertext.len() as u64)?)?;
    let mut out = vec![0u8; len];
    decrypt_into(key, ciphertext, expected, &mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Random access
// ---------------------------------------------------------------------------

/// A planned ranged read, from [`Header::plan_range`]: fetch the
/// ciphertext bytes [`RangePlan::fetch`] of the object, then call
/// [`decrypt_range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePlan {
    plain: Range<u64>,
    fetch: Range<u64>,
    chunks: Range<u64>,
    final_chunk: u64,
    plaintext_len: u64,
    chunk_size: u32,
}

impl RangePlan {
    /// The plaintext range that will be returned.
    pub fn plain(&self) -> Range<u64> {
        self.plain.clone()
    }

    /// The ciphertext bytes to fetch, as absolute offsets into the object
    /// (never including the header). Empty if nothing needs fetching.
    pub fn fetch(&self) -> Range<u64> {
        self.fetch.clone()
    }

    /// The chunks that will be opened (whole chunks are always fetched,
    /// since a chunk can only be authenticated as a whole).
    pub fn chunks(&self) -> Range<u64> {
        self.chunks.clone()
    }

    /// Plaintext length of the whole object (for `Content-Range`).
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Whether the plan returns no bytes.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty()
    }
}

/// Decrypts the plaintext range of `plan` from `fetched`, the ciphertext
/// bytes [`RangePlan::fetch`] of the object whose (checked) `header` was
/// read separately. Returns exactly the planned plaintext slice.
///
/// Every chunk touched is authenticated as a whole, and the object's last
/// chunk is opened with the final flag, so a truncated object is detected
/// on ranged reads too.
pub fn decrypt_range(
    key: &DataKey,
    header: &Header,
    plan: &RangePlan,
    fetched: &[u8],
) -> Result<Vec<u8>> {
    if plan.chunk_size != header.chunk_size {
        return Err(CryptoError::HeaderMismatch(format!(
            "range planned for chunks of {} bytes, header says {}",
            plan.chunk_size, header.chunk_size
        )));
    }
    let want = plan.fetch.end - plan.fetch.start;
    let got = fetched.len() as u64;
    if got < want {
        return Err(CryptoError::Truncated(format!(
            "ranged read returned {got} of {want} bytes"
        )));
    }
    if got > want {
        return Err(CryptoError::TrailingData);
    }
    let opener = Opener::new(key, header)?;
    let mut out = vec![0u8; to_usize(plan.plain.end - plan.plain.start)?];
    let cs = u64::from(header.chunk_size);
    let stored = to_usize(header.stored_chunk_len())?;
    let mut scratch: Option<Zeroizing<Vec<u8>>> = None;
    let mut rest = fetched;
    for index in plan.chunks.clone() {
        let is_final = index == plan.final_chunk;
        let (chunk, more) = rest.split_at(if is_final {
            rest.len()
        } else {
            stored.min(rest.len())
        });
        rest = more;
        let chunk_plain_len = chunk.len().saturating_sub(TAG_LEN) as u64;
        // The part of this chunk's plaintext inside the requested range.
        let chunk_start = index * cs;
        let lo = plan.plain.start.max(chunk_start) - chunk_start;
        let hi = plan.plain.end.min(chunk_start + chunk_plain_len) - chunk_start;
        let out_at = to_usize(chunk_start + lo - plan.plain.start)?;
        let (lo, hi) = (to_usize(lo)?, to_usize(hi.max(lo))?);
        let dest = &mut out[out_at..out_at + (hi - lo)];
        let result = if lo == 0 && hi as u64 == chunk_plain_len {
            opener.open_chunk_to(index, is_final, chunk, dest)
        } else {
            let buf = scratch.get_or_insert_with(|| Zeroizing::new(Vec::with_capacity(stored)));
            buf.clear();
            buf.extend_from_slice(chunk);
            opener
                .open_chunk(index, is_final, buf)
                .map(|_| dest.copy_from_slice(&buf[lo..hi]))
        };
        if let Err(e) = result {
            out.zeroize();
            return Err(e);
        }
    }
    if !rest.is_empty() {
        out.zeroize();
        return Err(CryptoError::TrailingData);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Streaming encryption
// ---------------------------------------------------------------------------

fn io_error(e: CryptoError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The [`CryptoError`] inside an `io::Error` returned by the streaming
/// adapters, if it is one (I/O errors of the inner reader or writer are
/// passed through unchanged).
pub fn as_crypto_error(e: &io::Error) -> Option<&CryptoError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CryptoError>())
}

/// Encrypts into an envelope object while it is being written: a
/// `std::io::Write` adapter over the object's destination.
///
/// Plaintext is buffered one chunk at a time; every chunk is written as
/// soon as it is known not to be the last. [`EnvelopeWriter::finish`]
/// writes the final chunk and **must** be called: a writer dropped without
/// it leaves an object without its final chunk, which never decrypts
/// ([`CryptoError::Truncated`]). `flush` only flushes chunks already
/// sealed. After an error from the inner writer the object is incomplete
/// and every further call fails.
///
/// The plaintext buffer is zeroized on drop.
pub struct EnvelopeWriter<W: Write> {
    inner: W,
    sealer: Sealer,
    /// One stored chunk: `buf[..pending]` is the plaintext of the pending
    /// chunk; the rest is room for the tag. Its length never changes.
    buf: Zeroizing<Vec<u8>>,
    pending: usize,
    chunk_size: usize,
    header_written: bool,
    plaintext_len: u64,
    failed: bool,
}

impl<W: Write> EnvelopeWriter<W> {
    /// A writer of a new object with `header` (which must name `key`'s id)
    /// into `inner`. Nothing is written until the first chunk is sealed.
    pub fn new(inner: W, key: &DataKey, header: &Header) -> Result<Self> {
        let sealer = Sealer::new(key, header)?;
        let chunk_size = header.chunk_size as usize;
        Ok(Self {
            inner,
            sealer,
            buf: Zeroizing::new(vec![0u8; chunk_size + TAG_LEN]),
            pending: 0,
            chunk_size,
            header_written: false,
            plaintext_len: 0,
            failed: false,
        })
    }

    /// The header of the object.
    pub fn header(&self) -> &Header {
        self.sealer.header()
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other(
                "envelope writer failed earlier; the object is incomplete",
            ))
        } else {
            Ok(())
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&self.sealer.header().encode())?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Seals the full pending chunk as non-final and writes it.
    fn write_chunk(&mut self) -> io::Result<()> {
        self.failed = true; // until the chunk is completely written
        self.write_header()?;
        self.sealer.seal_chunk(&mut self.buf).map_err(io_error)?;
        self.inner.write_all(&self.buf)?;
        self.pending = 0;
        self.failed = false;
        Ok(())
    }

    /// Seals and writes the final chunk, flushes the inner writer and
    /// returns it. Only now is the object complete.
    pub fn finish(mut self) -> io::Result<W> {
        self.check_usable()?;
        self.write_header()?;
        let len = self.pending + TAG_LEN;
        let Self {
            mut inner,
            sealer,
            mut buf,
            ..
        } = self;
        sealer.seal_final(&mut buf[..len]).map_err(io_error)?;
        inner.write_all(&buf[..len])?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for EnvelopeWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check_usable()?;
        if data.is_empty() {
            return Ok(0);
        }
        let cs = self.chunk_size;
        if self.pending == cs {
            // More data follows, so the pending full chunk is not final.
            // (Some of it is always accepted below: a final chunk is never
            // empty unless it is the only one.)
            self.write_chunk()?;
        }
        let n = (cs - self.pending).min(data.len());
        self.buf[self.pending..self.pending + n].copy_from_slice(&data[..n]);
        self.pending += n;
        self.plaintext_len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.inner.flush()
    }
}

/// The async twin of [`EnvelopeWriter`]: a `tokio::io::AsyncWrite` adapter
/// that encrypts into an envelope object while it is written (e.g. into
/// one half of a `tokio::io::duplex` whose other half feeds
/// [`BlobStore::put`](crate::blob::BlobStore::put)).
///
/// `poll_shutdown` (`AsyncWriteExt::shutdown`) writes the final chunk and
/// completes the object; **only shut down when the plaintext is
/// complete**. An adapter dropped without shutdown leaves an object that
/// never decrypts. `poll_flush` only flushes chunks already sealed.
pub struct AsyncEnvelopeWriter<W> {
    inner: W,
    /// `None` once the final chunk is sealed.
    sealer: Option<Sealer>,
    /// Plaintext of the pending chunk (capacity for the tag too).
    buf: Zeroizing<Vec<u8>>,
    /// Ciphertext waiting to be written (the header, then sealed chunks).
    out: Zeroizing<Vec<u8>>,
    out_pos: usize,
    chunk_size: usize,
    plaintext_len: u64,
    failed: bool,
}

impl<W: AsyncWrite + Unpin> AsyncEnvelopeWriter<W> {
    /// An async writer of a new object with `header` (which must name
    /// `key`'s id) into `inner`.
    pub fn new(inner: W, key: &DataKey, header: &Header) -> Result<Self> {
        let sealer = Sealer::new(key, header)?;
        let chunk_size = header.chunk_size as usize;
        let mut out = Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN));
        out.extend_from_slice(&header.encode());
        Ok(Self {
            inner,
            sealer: Some(sealer),
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            out,
            out_pos: 0,
            chunk_size,
            plaintext_len: 0,
            failed: false,
        })
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Consumes the adapter, returning the inner writer (the object is
    /// complete only if shutdown completed).
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Seals the pending chunk in place and moves it to `out` (empty).
    fn seal_pending(&mut self, is_final: bool) -> io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + TAG_LEN, 0);
        let sealed = match (is_final, self.sealer.take()) {
            (false, Some(mut sealer)) => {
                let r = sealer.seal_chunk(&mut self.buf);
                self.sealer = Some(sealer);
                r
            }
            (true, Some(sealer)) => sealer.seal_final(&mut self.buf),
            (_, None) => Err(CryptoError::InvalidInput("object already finished".into())),
        };
        if let Err(e) = sealed {
            self.failed = true;
            return Err(io_error(e));
        }
        std::mem::swap(&mut self.buf, &mut self.out);
        self.buf.clear();
        Ok(())
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other(
                "envelope writer failed earlier; the object is incomplete",
            ))
        } else {
            Ok(())
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEnvelopeWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_usable()?;
        if this.sealer.is_none() {
            return Poll::Ready(Err(io::Error::other("write after shutdown")));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.buf.len() == this.chunk_size {
            ready!(this.poll_drain(cx))?;
            this.seal_pending(false)?;
        }
        let n = (this.chunk_size - this.buf.len()).min(data.len());
        this.buf.extend_from_slice(&data[..n]);
        this.plaintext_len += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_usable()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_usable()?;
        if this.sealer.is_some() {
            ready!(this.poll_drain(cx))?;
            this.seal_pending(true)?;
        }
        ready!(this.poll_drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// Streaming decryption
// ---------------------------------------------------------------------------

enum ReadState {
    Chunks,
    Done,
    Failed(CryptoError),
}

/// Decrypts a whole envelope object from a `std::io::Read`, yielding
/// plaintext as a `Read`.
///
/// Each chunk is authenticated before its plaintext is returned; whether
/// a chunk is final is decided by looking one byte ahead. A stream that
/// ends before the final chunk or continues after it fails with an
/// `io::Error` of kind `InvalidData` wrapping the [`CryptoError`] (see
/// [`as_crypto_error`]); the error repeats on every later read. As with
/// any streaming decryption, plaintext of the chunks before a failure has
/// already been returned: discard the whole output on error.
pub struct EnvelopeReader<R> {
    inner: R,
    opener: Opener,
    /// One stored chunk plus one look-ahead byte.
    buf: Zeroizing<Vec<u8>>,
    filled: usize,
    plain: Range<usize>,
    /// `buf[stored]` holds the first byte of the next chunk.
    lookahead: bool,
    next_index: u64,
    state: ReadState,
}

impl<R: Read> EnvelopeReader<R> {
    /// Reads and checks the header (against `expected`, and that it names
    /// `key`'s id).
    pub fn new(mut inner: R, key: &DataKey, expected: &ExpectedIds) -> Result<Self> {
        let mut head = [0u8; Header::LEN];
        let mut got = 0;
        while got < head.len() {
            match inner.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CryptoError::Io(e.to_string())),
            }
        }
        let header = Header::decode_expected(&head[..got], expected)?;
        let opener = Opener::new(key, &header)?;
        let stored = header.chunk_size as usize + TAG_LEN;
        Ok(Self {
            inner,
            opener,
            buf: Zeroizing::new(vec![0u8; stored + 1]),
            filled: 0,
            plain: 0..0,
            lookahead: false,
            next_index: 0,
            state: ReadState::Chunks,
        })
    }

    /// The (checked) header of the object.
    pub fn header(&self) -> &Header {
        self.opener.header()
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next chunk and opens it: into `out` if it fits
    /// (returning the plaintext length), else in place in `buf` (setting
    /// `plain`; returning 0).
    fn next_chunk(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let stored = self.buf.len() - 1;
        if self.lookahead {
            self.buf[0] = self.buf[stored];
            self.filled = 1;
            self.lookahead = false;
        }
        while self.filled <= stored {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(0) => break,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let index = self.next_index;
        let is_final = self.filled <= stored;
        let len = if is_final { self.filled } else { stored };
        let plain_len = len.saturating_sub(TAG_LEN);
        let opened = if out.len() >= plain_len {
            self.opener
                .open_chunk_to(index, is_final, &self.buf[..len], &mut out[..plain_len])
                .map(|()| plain_len)
        } else {
            self.opener
                .open_chunk(index, is_final, &mut self.buf[..len])
                .map(|n| {
                    self.plain = 0..n;
                    0
                })
        };
        match opened {
            Ok(n) => {
                self.filled = 0;
                self.next_index += 1;
                if is_final {
                    self.state = ReadState::Done;
                } else {
                    self.lookahead = true;
                }
                Ok(n)
            }
            Err(e) => {
                self.state = ReadState::Failed(e.clone());
                Err(io_error(e))
            }
        }
    }
}

impl<R: Read> Read for EnvelopeReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.plain.is_empty() {
                let n = self.plain.len().min(out.len());
                let start = self.plain.start;
                out[..n].copy_from_slice(&self.buf[start..start + n]);
                self.plain.start += n;
                return Ok(n);
            }
            match &self.state {
                ReadState::Done => return Ok(0),
                ReadState::Failed(e) => return Err(io_error(e.clone())),
                ReadState::Chunks => {
                    let n = self.next_chunk(out)?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

/// Push-based streaming decryption, for ciphertext that arrives in pieces
/// of any size (e.g. the `Bytes` stream of
/// [`BlobStore::get_stream`](crate::blob::BlobStore::get_stream)).
///
/// Feed every piece to [`StreamOpener::update`], which appends the
/// plaintext of every chunk known to be complete and non-final to `out`;
/// then call [`StreamOpener::finish`] at the end of the stream, which
/// opens the final chunk. The last up-to-one chunk is held back until the
/// next piece or the end shows whether it is final. After an error every
/// call fails with it again; discard all output.
pub struct StreamOpener {
    /// Until the header is complete: the data key's cipher.
    cipher: Option<Aes256Gcm>,
    key_id: KeyId,
    expected: ExpectedIds,
    opener: Option<Opener>,
    /// Pending header bytes, then the pending (possibly final) chunk.
    pending: Zeroizing<Vec<u8>>,
    next_index: u64,
    failed: Option<CryptoError>,
}

impl StreamOpener {
    /// A decryptor of one object encrypted under `key`, whose header must
    /// carry the `expected` ids.
    pub fn new(key: &DataKey, expected: &ExpectedIds) -> Self {
        Self {
            cipher: Some(cipher_for(key)),
            key_id: key.id,
            expected: *expected,
            opener: None,
            pending: Zeroizing::new(Vec::with_capacity(Header::LEN)),
            next_index: 0,
            failed: None,
        }
    }

    /// The header, once its bytes have arrived and were checked.
    pub fn header(&self) -> Option<&Header> {
        self.opener.as_ref().map(Opener::header)
    }

    /// Consumes the next piece of ciphertext; appends newly authenticated
    /// plaintext to `out`.
    pub fn update(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mark = out.len();
        let result = self.update_inner(ciphertext, out);
        if let Err(e) = &result {
            out[mark..].zeroize();
            out.truncate(mark);
            self.failed = Some(e.clone());
        }
        result
    }

    fn update_inner(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.opener.is_none() {
            let take = (Header::LEN - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < Header::LEN {
                return Ok(());
            }
            let header = Header::decode_expected(&self.pending, &self.expected)?;
            if header.key_id != self.key_id {
                return Err(CryptoError::HeaderMismatch(format!(
                    "header names data key {}, but key {} was given",
                    header.key_id, self.key_id
                )));
            }
            let cipher = self
                .cipher
                .take()
                .ok_or_else(|| CryptoError::InvalidInput("stream opener reused".into()))?;
            self.pending.clear();
            self.pending.reserve(header.chunk_size as usize + TAG_LEN);
            self.opener = Some(Opener::with_cipher(cipher, &header));
        }
        let Some(opener) = &self.opener else {
            return Ok(());
        };
        let cs = opener.header.chunk_size as usize;
        let stored = cs + TAG_LEN;
        while !input.is_empty() {
            if self.pending.len() == stored {
                // More data follows: the pending chunk is not final.
                opener.open_chunk_append(self.next_index, false, &self.pending, out)?;
                self.next_index += 1;
                self.pending.clear();
            } else if self.pending.is_empty() && input.len() > stored {
                // Fast path: a whole non-final chunk straight from the input.
                opener.open_chunk_append(self.next_index, false, &input[..stored], out)?;
                self.next_index += 1;
                input = &input[stored..];
            } else {
                let take = (stored - self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                input = &input[take..];
            }
        }
        Ok(())
    }

    /// Ends the stream: opens the final chunk, appending its plaintext to
    /// `out`. Fails if the stream ended early.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(opener) = &self.opener else {
            return Err(CryptoError::Truncated(format!(
                "stream ended inside the header ({} of {} bytes)",
                self.pending.len(),
                Header::LEN
            )));
        };
        opener.open_chunk_append(self.next_index, true, &self.pending, out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    use super::*;

    const CS: u32 = 64;

    fn key() -> DataKey {
        DataKey::from_bytes(KeyId::new(), Zeroizing::new([7u8; 32]))
    }

    fn header_for(key: &DataKey) -> Header {
        Header::new(TenantId::new(), Uuid::now_v7(), key.id)
            .with_chunk_size(CS)
            .unwrap()
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> CryptoError {
        r.expect_err("expected an error")
    }

    /// A small multi-chunk object: 3 full chunks and a partial final one.
    fn sample() -> (DataKey, Header, Vec<u8>, Vec<u8>) {
        let key = key();
        let header = header_for(&key);
        let plain = data(3 * CS as usize + 17, 1);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        (key, header, plain, ct)
    }

    fn stored() -> usize {
        CS as usize + TAG_LEN
    }

    // ---- format ----

    #[test]
    fn known_answer_vector() {
        // Computed independently with Python `cryptography` (AESGCM) from
        // the documented layout: header as AAD, nonce = prefix || i (u32
        // BE) || final flag, chunks of 32 bytes.
        let key = DataKey::from_bytes(
            "fedcba98-7654-4321-8fed-cba987654321".parse().unwrap(),
            Zeroizing::new(core::array::from_fn(|i| i as u8)),
        );
        let header = Header::from_parts(
            "00112233-4455-6677-8899-aabbccddeeff".parse().unwrap(),
            "01234567-89ab-7def-8123-456789abcdef".parse().unwrap(),
            key.id,
            32,
            [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6],
        )
        .unwrap();
        let plain = b"Insights envelope known-answer test vector: three chunks of 32 bytes.";
        let expected = concat!(
            "494e53454e560100112233445566778899aabbccddeeff0123456789ab7def81",
            "23456789abcdeffedcba98765443218fedcba98765432100000020a0a1a2a3a4",
            "a5a643bf6fc0f13c314e4c46aaf6fc6c391bb7e1242b1410932c6e39899551bd",
            "6d81f214e49bec2240fe1748b77fb889d18b349163e7fb5995fb8fff8454b94a",
            "dc554e1da46d37fca90e30181aaf278a9042300887544c5ddf1c4e7f52d2ac25",
            "177398d9e49dd82f4cac693b2a9fdbe441792a11ccdd8b",
        );
        let ct = encrypt_to_vec(&key, &header, plain).unwrap();
        assert_eq!(hex::encode(&ct), expected);
        assert_eq!(
            decrypt_to_vec(&key, &ct, &header.ids()).unwrap(),
            plain.to_vec()
        );

        let expected_empty = concat!(
            "494e53454e560100112233445566778899aabbccddeeff0123456789ab7def81",
            "23456789abcdeffedcba98765443218fedcba98765432100000020a0a1a2a3a4",
            "a5a68753593eecc8bb3a1922c2675d9662be",
        );
        let ct = encrypt_to_vec(&key, &header, b"").unwrap();
        assert_eq!(hex::encode(&ct), expected_empty);
        assert!(decrypt_to_vec(&key, &ct, &header.ids()).unwrap().is_empty());
    }

    #[test]
    fn header_layout_and_roundtrip() {
        let key = key();
        let header = header_for(&key);
        let bytes = header.encode();
        assert_eq!(bytes.len(), Header::LEN);
        assert_eq!(&bytes[0..6], b"INSENV");
        assert_eq!(bytes[6], 1);
        assert_eq!(&bytes[7..23], header.tenant_id().as_uuid().as_bytes());
        assert_eq!(&bytes[23..39], header.object_id().as_bytes());
        assert_eq!(&bytes[39..55], header.key_id().as_uuid().as_bytes());
        assert_eq!(&bytes[55..59], &CS.to_be_bytes());
        assert_eq!(&bytes[59..66], &header.nonce_prefix());
        assert_eq!(Header::decode(&bytes).unwrap(), header);
        // Longer input (a whole object) decodes from its prefix.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(Header::decode(&longer).unwrap(), header);
        // Fresh headers get fresh nonce prefixes.
        assert_ne!(header_for(&key).nonce_prefix(), header.nonce_prefix());
        assert_eq!(
            Header::new(TenantId::new(), Uuid::nil(), key.id).chunk_size(),
            DEFAULT_CHUNK_SIZE
        );
    }

    #[test]
    fn header_rejects_garbage() {
        let key = key();
        let good = header_for(&key).encode();
        assert!(matches!(
            err(Header::decode(&good[..65])),
            CryptoError::Truncated(_)
        ));
        let mut b = good;
        b[0] ^= 1;
        assert!(matches!(err(Header::decode(&b)), CryptoError::BadHeader(_)));
        let mut b = good;
        b[6] = 2;
        assert!(matches!(err(Header::decode(&b)), CryptoError::BadHeader(_)));
        let mut b = good;
        b[55..59].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(err(Header::decode(&b)), CryptoError::BadHeader(_)));
        let mut b = good;
        b[55..59].copy_from_slice(&(MAX_CHUNK_SIZE + 1).to_be_bytes());
        assert!(matches!(err(Header::decode(&b)), CryptoError::BadHeader(_)));
        assert!(matches!(
            err(header_for(&key).with_chunk_size(0)),
            CryptoError::InvalidInput(_)
        ));
    }

    #[test]
    fn roundtrip_sizes_and_lengths() {
        let key = key();
        let header = header_for(&key);
        let cs = CS as usize;
        for len in [0, 1, cs - 1, cs, cs + 1, 2 * cs, 2 * cs + 1, 5 * cs + 33] {
            let plain = data(len, len as u64);
            let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
            let n = len.div_ceil(cs).max(1);
            assert_eq!(ct.len(), Header::LEN + len + n * TAG_LEN, "len {len}");
            assert_eq!(header.ciphertext_len(len as u64).unwrap(), ct.len() as u64);
            assert_eq!(header.plaintext_len(ct.len() as u64).unwrap(), len as u64);
            assert_eq!(header.chunk_count(len as u64).unwrap(), n as u64);
            assert_eq!(decrypt_to_vec(&key, &ct, &header.ids()).unwrap(), plain);
            let mut out = vec![0u8; len];
            assert_eq!(
                decrypt_into(&key, &ct, &header.ids(), &mut out).unwrap(),
                header
            );
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn impossible_lengths_are_rejected() {
        let key = key();
        let header = header_for(&key);
        let s = stored() as u64;
        let h = Header::LEN as u64;
        for bad in [
            0,
            h - 1,
            h,
            h + 15,
            h + s + 1,
            h + s + 15,
            h + s + 16,
            h + 2 * s + 16,
        ] {
            assert!(
                matches!(err(header.plaintext_len(bad)), CryptoError::Truncated(_)),
                "{bad}"
            );
        }
        assert_eq!(header.plaintext_len(h + 16).unwrap(), 0);
        assert_eq!(header.plaintext_len(h + s + 17).unwrap(), u64::from(CS) + 1);
    }

    #[test]
    fn wrong_buffer_sizes_are_errors_not_panics() {
        let key = key();
        let header = header_for(&key);
        let mut out = vec![0u8; 10];
        assert!(matches!(
            err(encrypt_into(&key, &header, b"abc", &mut out)),
            CryptoError::InvalidInput(_)
        ));
        let ct = encrypt_to_vec(&key, &header, b"abc").unwrap();
        assert!(matches!(
            err(decrypt_into(&key, &ct, &header.ids(), &mut out)),
            CryptoError::InvalidInput(_)
        ));
        let mut sealer = Sealer::new(&key, &header).unwrap();
        assert!(matches!(
            err(sealer.seal_chunk(&mut [0u8; 3])),
            CryptoError::InvalidInput(_)
        ));
        sealer.seal_chunk(&mut vec![0u8; stored()]).unwrap();
        // An empty final chunk after a full one would be non-canonical.
        assert!(matches!(
            err(sealer.seal_final(&mut [0u8; TAG_LEN])),
            CryptoError::InvalidInput(_)
        ));
    }

    // ---- tampering ----

    #[test]
    fn every_flipped_byte_is_detected() {
        let (key, header, _, ct) = sample();
        for pos in 0..ct.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = ct.clone();
                bad[pos] ^= mask;
                assert!(
                    decrypt_to_vec(&key, &bad, &header.ids()).is_err(),
                    "flip {mask:#x} at {pos} not detected"
                );
            }
            // Flips inside a chunk are authentication failures.
            if pos >= Header::LEN + Header::LEN {
                let mut bad = ct.clone();
                bad[pos] ^= 1;
                let e = err(decrypt_to_vec(&key, &bad, &header.ids()));
                let chunk = ((pos - Header::LEN) / stored()) as u64;
                assert!(
                    matches!(e, CryptoError::ChunkAuth { chunk: c } if c == chunk),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn flipped_header_fields_are_detected() {
        let (key, header, _, ct) = sample();
        // Ids: mismatch against what the caller expects...
        for pos in [7, 23, 39] {
            let mut bad = ct.clone();
            bad[pos] ^= 1;
            assert!(matches!(
                err(decrypt_to_vec(&key, &bad, &header.ids())),
                CryptoError::HeaderMismatch(_)
            ));
            // ...and authentication failure even if the caller expects the
            // forged ids (the header is the AAD of every chunk). A forged
            // key id fails the key check instead.
            let forged = Header::decode(&bad).unwrap();
            let e = err(decrypt_to_vec(&key, &bad, &forged.ids()));
            assert!(
                matches!(
                    e,
                    CryptoError::ChunkAuth { chunk: 0 } | CryptoError::HeaderMismatch(_)
                ),
                "{e}"
            );
        }
        // The nonce prefix.
        let mut bad = ct.clone();
        bad[60] ^= 1;
        assert!(matches!(
            err(decrypt_to_vec(&key, &bad, &header.ids())),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
    }

    #[test]
    fn every_truncation_is_detected() {
        let (key, header, _, ct) = sample();
        for len in 0..ct.len() {
            let e = err(decrypt_to_vec(&key, &ct[..len], &header.ids()));
            assert!(
                matches!(e, CryptoError::Truncated(_) | CryptoError::ChunkAuth { .. }),
                "truncation to {len}: {e}"
            );
        }
        // At a chunk boundary the diagnosis is exact.
        for chunks in 1..4 {
            let len = Header::LEN + chunks * stored();
            let e = err(decrypt_to_vec(&key, &ct[..len], &header.ids()));
            assert!(
                matches!(e, CryptoError::Truncated(_)),
                "{chunks} chunks: {e}"
            );
        }
    }

    #[test]
    fn dropping_the_final_chunk_is_truncation() {
        let key = key();
        let header = header_for(&key);
        // Final chunk full-size: dropping it leaves a valid-looking length.
        let plain = data(3 * CS as usize, 2);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        let cut = &ct[..ct.len() - stored()];
        assert!(matches!(
            err(decrypt_to_vec(&key, cut, &header.ids())),
            CryptoError::Truncated(_)
        ));
        // Partial final chunk.
        let (key, header, _, ct) = sample();
        let cut = &ct[..Header::LEN + 3 * stored()];
        assert!(matches!(
            err(decrypt_to_vec(&key, cut, &header.ids())),
            CryptoError::Truncated(_)
        ));
    }

    #[test]
    fn reordered_chunks_are_detected() {
        let (key, header, _, ct) = sample();
        let s = stored();
        let chunk = |i: usize| Header::LEN + i * s..Header::LEN + (i + 1) * s;
        let mut bad = ct.clone();
        bad[chunk(0)].copy_from_slice(&ct[chunk(1)]);
        bad[chunk(1)].copy_from_slice(&ct[chunk(0)]);
        assert!(matches!(
            err(decrypt_to_vec(&key, &bad, &header.ids())),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
        // Same-sized final chunk swapped with a middle one.
        let plain = data(3 * CS as usize, 3);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        let mut bad = ct.clone();
        bad[chunk(1)].copy_from_slice(&ct[chunk(2)]);
        bad[chunk(2)].copy_from_slice(&ct[chunk(1)]);
        assert!(decrypt_to_vec(&key, &bad, &header.ids()).is_err());
    }

    #[test]
    fn spliced_chunks_from_another_object_are_detected() {
        let (key, header, plain, ct) = sample();
        let s = stored();
        let chunk1 = Header::LEN + s..Header::LEN + 2 * s;
        // Same key, same ids, new nonce prefix (a re-encryption).
        let other_header = Header::from_parts(
            header.tenant_id(),
            header.object_id(),
            key.id,
            CS,
            header_for(&key).nonce_prefix(),
        )
        .unwrap();
        // Same key and nonce prefix, other object id (only the AAD differs).
        let other_object = Header::from_parts(
            header.tenant_id(),
            Uuid::now_v7(),
            key.id,
            CS,
            header.nonce_prefix(),
        )
        .unwrap();
        for other in [other_header, other_object] {
            let donor = encrypt_to_vec(&key, &other, &plain).unwrap();
            let mut bad = ct.clone();
            bad[chunk1.clone()].copy_from_slice(&donor[chunk1.clone()]);
            assert!(matches!(
                err(decrypt_to_vec(&key, &bad, &header.ids())),
                CryptoError::ChunkAuth { chunk: 1 }
            ));
        }
    }

    #[test]
    fn wrong_key_is_detected() {
        let (key, header, _, ct) = sample();
        let same_id = DataKey::from_bytes(key.id, Zeroizing::new([8u8; 32]));
        assert!(matches!(
            err(decrypt_to_vec(&same_id, &ct, &header.ids())),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
        let other_id = DataKey::from_bytes(KeyId::new(), Zeroizing::new([7u8; 32]));
        assert!(matches!(
            err(decrypt_to_vec(&other_id, &ct, &header.ids())),
            CryptoError::HeaderMismatch(_)
        ));
        // Expected ids other than the header's.
        for expected in [
            ExpectedIds {
                tenant_id: TenantId::new(),
                ..header.ids()
            },
            ExpectedIds {
                object_id: Uuid::now_v7(),
                ..header.ids()
            },
            ExpectedIds {
                key_id: KeyId::new(),
                ..header.ids()
            },
        ] {
            assert!(matches!(
                err(decrypt_to_vec(&key, &ct, &expected)),
                CryptoError::HeaderMismatch(_)
            ));
        }
        // A key whose id differs from the header cannot seal.
        assert!(matches!(
            err(Sealer::new(&other_id, &header)),
            CryptoError::HeaderMismatch(_)
        ));
    }

    #[test]
    fn trailing_data_is_detected() {
        let (key, header, _, ct) = sample();
        for extra in [1usize, 15, 16, 17, stored(), stored() + 16] {
            let mut bad = ct.clone();
            bad.extend(std::iter::repeat_n(0xaa, extra));
            assert!(
                decrypt_to_vec(&key, &bad, &header.ids()).is_err(),
                "{extra} bytes"
            );
        }
        // Full final chunk + a whole extra chunk: diagnosed exactly.
        let plain = data(2 * CS as usize, 4);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        let mut bad = ct.clone();
        bad.extend_from_slice(&ct[Header::LEN..Header::LEN + stored()]);
        assert!(matches!(
            err(decrypt_to_vec(&key, &bad, &header.ids())),
            CryptoError::TrailingData
        ));
    }

    // ---- random access ----

    #[test]
    fn ranged_decrypt_matches_the_plaintext() {
        let key = key();
        let header = header_for(&key);
        let mut rng = StdRng::seed_from_u64(42);
        for len in [0usize, 1, 63, 64, 65, 300, 640, 1000] {
            let plain = data(len, len as u64 + 100);
            let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
            let ct_len = ct.len() as u64;
            let n = len as u64;
            let mut ranges = vec![0..n, 0..0, n..n, 0..n.min(1), n.saturating_sub(1)..n];
            if len > 64 {
                ranges.extend([0..64, 64..n, 63..65, n - 64..n, n - 65..n - 1]);
            }
            for _ in 0..200 {
                let a = rng.random_range(0..=n);
                let b = rng.random_range(a..=n);
                ranges.push(a..b);
            }
            for range in ranges {
                let plan = header.plan_range(range.clone(), ct_len).unwrap();
                assert_eq!(plan.plain(), range);
                assert_eq!(plan.plaintext_len(), n);
                let fetch = plan.fetch();
                assert!(fetch.start >= Header::LEN as u64 && fetch.end <= ct_len);
                let fetched = &ct[fetch.start as usize..fetch.end as usize];
                let got = decrypt_range(&key, &header, &plan, fetched).unwrap();
                assert_eq!(
                    got,
                    &plain[range.start as usize..range.end as usize],
                    "{range:?} of {len}"
                );
            }
        }
    }

    #[test]
    fn ranged_plan_fetches_whole_chunks() {
        let (_, header, _, ct) = sample();
        let s = stored() as u64;
        let h = Header::LEN as u64;
        let plan = header.plan_range(70..130, ct.len() as u64).unwrap();
        assert_eq!(plan.chunks(), 1..3);
        assert_eq!(plan.fetch(), h + s..h + 3 * s);
        let plan = header.plan_range(200..209, ct.len() as u64).unwrap();
        assert_eq!(plan.chunks(), 3..4);
        assert_eq!(plan.fetch(), h + 3 * s..ct.len() as u64);
        let plan = header.plan_range(5..5, ct.len() as u64).unwrap();
        assert!(plan.is_empty() && plan.fetch().is_empty() && plan.chunks().is_empty());
    }

    #[test]
    fn ranged_decrypt_rejects_bad_ranges_and_data() {
        let (key, header, _, ct) = sample();
        let len = ct.len() as u64;
        let plain_len = header.plaintext_len(len).unwrap();
        #[allow(clippy::reversed_empty_ranges)]
        for range in [0..plain_len + 1, plain_len + 1..plain_len + 1, 10..5] {
            assert!(matches!(
                err(header.plan_range(range, len)),
                CryptoError::BadRange { .. }
            ));
        }
        let plan = header.plan_range(10..150, len).unwrap();
        let f = plan.fetch();
        let fetched = &ct[f.start as usize..f.end as usize];
        assert!(matches!(
            err(decrypt_range(&key, &header, &plan, &fetched[1..])),
            CryptoError::Truncated(_)
        ));
        let mut longer = fetched.to_vec();
        longer.push(0);
        assert!(matches!(
            err(decrypt_range(&key, &header, &plan, &longer)),
            CryptoError::TrailingData
        ));
        let mut bad = fetched.to_vec();
        bad[stored() + 3] ^= 1;
        assert!(matches!(
            err(decrypt_range(&key, &header, &plan, &bad)),
            CryptoError::ChunkAuth { chunk: 1 }
        ));
        let wrong = DataKey::from_bytes(key.id, Zeroizing::new([9u8; 32]));
        assert!(matches!(
            err(decrypt_range(&wrong, &header, &plan, fetched)),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
    }

    #[test]
    fn ranged_read_of_a_truncated_object_is_detected() {
        let key = key();
        let header = header_for(&key);
        let plain = data(4 * CS as usize, 5);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        // Drop the final chunk: the object still has a plausible length.
        let cut = &ct[..ct.len() - stored()];
        let plan = header.plan_range(150..190, cut.len() as u64).unwrap();
        let f = plan.fetch();
        assert!(matches!(
            err(decrypt_range(
                &key,
                &header,
                &plan,
                &cut[f.start as usize..f.end as usize]
            )),
            CryptoError::Truncated(_)
        ));
        // Ranges not touching the (new) last chunk still decrypt: their
        // chunks are authentic; the truncation shows on the last chunk.
        let plan = header.plan_range(0..10, cut.len() as u64).unwrap();
        let f = plan.fetch();
        assert_eq!(
            decrypt_range(&key, &header, &plan, &cut[f.start as usize..f.end as usize]).unwrap(),
            &plain[..10]
        );
    }

    // ---- streaming ----

    #[test]
    fn writer_output_equals_encrypt_to_vec() {
        let key = key();
        let header = header_for(&key);
        let mut rng = StdRng::seed_from_u64(7);
        for len in [0usize, 1, 63, 64, 65, 128, 129, 1000] {
            let plain = data(len, len as u64);
            let expected = encrypt_to_vec(&key, &header, &plain).unwrap();
            for pattern in 0..3 {
                let mut w = EnvelopeWriter::new(Vec::new(), &key, &header).unwrap();
                let mut rest = &plain[..];
                while !rest.is_empty() {
                    let n = match pattern {
                        0 => 1,
                        1 => rng.random_range(1..=200).min(rest.len()),
                        _ => rest.len(),
                    };
                    w.write_all(&rest[..n]).unwrap();
                    rest = &rest[n..];
                }
                w.flush().unwrap();
                assert_eq!(w.plaintext_len(), len as u64);
                assert_eq!(w.finish().unwrap(), expected, "len {len} pattern {pattern}");
            }
        }
    }

    #[test]
    fn writer_with_single_partial_writes_finishes_validly() {
        // A caller that ignores partial writes still gets a valid object
        // of what was accepted.
        let key = key();
        let header = header_for(&key);
        for len in [65usize, 128, 129, 300] {
            let plain = data(len, 12);
            let mut w = EnvelopeWriter::new(Vec::new(), &key, &header).unwrap();
            let n = w.write(&plain).unwrap();
            assert!(n > 0 && n <= len);
            let ct = w.finish().unwrap();
            assert_eq!(
                decrypt_to_vec(&key, &ct, &header.ids()).unwrap(),
                &plain[..n]
            );
        }
    }

    #[test]
    fn writer_dropped_without_finish_does_not_decrypt() {
        let key = key();
        let header = header_for(&key);
        for len in [0usize, 10, 64, 128, 200, 256] {
            let plain = data(len, 9);
            let mut out = Vec::new();
            {
                let mut w = EnvelopeWriter::new(&mut out, &key, &header).unwrap();
                w.write_all(&plain).unwrap();
                // dropped here
            }
            assert!(
                decrypt_to_vec(&key, &out, &header.ids()).is_err(),
                "len {len}"
            );
            if out.len() > Header::LEN {
                // Every sealed chunk is there; only the final one is missing.
                assert!(matches!(
                    err(decrypt_to_vec(&key, &out, &header.ids())),
                    CryptoError::Truncated(_)
                ));
            }
        }
    }

    #[test]
    fn writer_is_poisoned_by_inner_errors() {
        struct Failing(usize);
        impl Write for Failing {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk full"));
                }
                let n = data.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let key = key();
        let header = header_for(&key);
        let mut w = EnvelopeWriter::new(Failing(100), &key, &header).unwrap();
        assert!(w.write_all(&data(300, 1)).is_err());
        assert!(w.write(b"x").is_err());
        assert!(w.finish().is_err());
    }

    #[tokio::test]
    async fn async_writer_output_equals_encrypt_to_vec() {
        use tokio::io::AsyncWriteExt;
        let key = key();
        let header = header_for(&key);
        for len in [0usize, 1, 64, 65, 128, 1000] {
            let plain = data(len, len as u64);
            let expected = encrypt_to_vec(&key, &header, &plain).unwrap();
            // Through a small duplex pipe, so writes hit back-pressure.
            let (mut tx, mut rx) = tokio::io::duplex(37);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut rx, &mut got)
                    .await
                    .unwrap();
                got
            });
            let mut w = AsyncEnvelopeWriter::new(&mut tx, &key, &header).unwrap();
            for piece in plain.chunks(50) {
                w.write_all(piece).await.unwrap();
            }
            w.flush().await.unwrap();
            w.shutdown().await.unwrap();
            assert_eq!(w.plaintext_len(), len as u64);
            assert!(w.write_all(b"late").await.is_err());
            drop(w);
            drop(tx);
            assert_eq!(reader.await.unwrap(), expected, "len {len}");
        }
        // Dropped without shutdown: no final chunk.
        let mut out = Vec::new();
        let mut w = AsyncEnvelopeWriter::new(&mut out, &key, &header).unwrap();
        w.write_all(&data(200, 1)).await.unwrap();
        w.flush().await.unwrap();
        drop(w);
        assert!(matches!(
            err(decrypt_to_vec(&key, &out, &header.ids())),
            CryptoError::Truncated(_)
        ));
    }

    /// A reader returning at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(key: &DataKey, ct: &[u8], expected: &ExpectedIds, step: usize) -> Result<Vec<u8>> {
        let mut r = EnvelopeReader::new(Trickle { data: ct, step }, key, expected)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| {
            as_crypto_error(&e)
                .cloned()
                .unwrap_or(CryptoError::Io(e.to_string()))
        })?;
        Ok(out)
    }

    fn stream_all(
        key: &DataKey,
        ct: &[u8],
        expected: &ExpectedIds,
        step: usize,
    ) -> Result<Vec<u8>> {
        let mut s = StreamOpener::new(key, expected);
        let mut out = Vec::new();
        for piece in ct.chunks(step.max(1)) {
            s.update(piece, &mut out)?;
        }
        s.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn stream_readers_roundtrip() {
        let key = key();
        let header = header_for(&key);
        for len in [0usize, 1, 64, 65, 128, 129, 1000] {
            let plain = data(len, len as u64);
            let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
            for step in [1, 7, 64, 80, 81, 1 << 20] {
                assert_eq!(read_all(&key, &ct, &header.ids(), step).unwrap(), plain);
                assert_eq!(stream_all(&key, &ct, &header.ids(), step).unwrap(), plain);
            }
        }
    }

    #[test]
    fn stream_readers_detect_truncation_trailing_data_and_tampering() {
        let (key, header, _, ct) = sample();
        let ids = header.ids();
        for len in 0..ct.len() {
            for step in [1, 81, 1 << 20] {
                assert!(
                    read_all(&key, &ct[..len], &ids, step).is_err(),
                    "read {len}/{step}"
                );
                assert!(
                    stream_all(&key, &ct[..len], &ids, step).is_err(),
                    "stream {len}/{step}"
                );
            }
        }
        let boundary = &ct[..Header::LEN + 2 * stored()];
        assert!(matches!(
            err(read_all(&key, boundary, &ids, 13)),
            CryptoError::Truncated(_)
        ));
        assert!(matches!(
            err(stream_all(&key, boundary, &ids, 13)),
            CryptoError::Truncated(_)
        ));
        for extra in [1usize, 16, 17, stored()] {
            let mut bad = ct.clone();
            bad.extend(std::iter::repeat_n(0x55, extra));
            assert!(read_all(&key, &bad, &ids, 9).is_err());
            assert!(stream_all(&key, &bad, &ids, 9).is_err());
        }
        // Whole extra chunk after a full final chunk: exact diagnosis.
        let plain = data(2 * CS as usize, 4);
        let ct2 = encrypt_to_vec(&key, &header, &plain).unwrap();
        let mut bad = ct2.clone();
        bad.extend_from_slice(&ct2[Header::LEN..Header::LEN + stored()]);
        assert!(matches!(
            err(read_all(&key, &bad, &ids, 50)),
            CryptoError::TrailingData
        ));
        assert!(matches!(
            err(stream_all(&key, &bad, &ids, 50)),
            CryptoError::TrailingData
        ));
        for pos in (0..ct.len()).step_by(5) {
            let mut bad = ct.clone();
            bad[pos] ^= 0x10;
            assert!(read_all(&key, &bad, &ids, 33).is_err(), "{pos}");
            assert!(stream_all(&key, &bad, &ids, 33).is_err(), "{pos}");
        }
        let wrong = DataKey::from_bytes(key.id, Zeroizing::new([1u8; 32]));
        assert!(matches!(
            err(read_all(&wrong, &ct, &ids, 100)),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
        assert!(matches!(
            err(stream_all(&wrong, &ct, &ids, 100)),
            CryptoError::ChunkAuth { chunk: 0 }
        ));
        let other = ExpectedIds {
            tenant_id: TenantId::new(),
            ..ids
        };
        assert!(matches!(
            err(read_all(&key, &ct, &other, 100)),
            CryptoError::HeaderMismatch(_)
        ));
        assert!(matches!(
            err(stream_all(&key, &ct, &other, 100)),
            CryptoError::HeaderMismatch(_)
        ));
    }

    #[test]
    fn reader_error_is_sticky() {
        let (key, header, _, mut ct) = sample();
        ct[Header::LEN + stored() + 1] ^= 1;
        let mut r = EnvelopeReader::new(&ct[..], &key, &header.ids()).unwrap();
        let mut buf = [0u8; 1000];
        assert_eq!(r.read(&mut buf).unwrap(), CS as usize);
        for _ in 0..3 {
            let e = r.read(&mut buf).unwrap_err();
            assert!(matches!(
                as_crypto_error(&e),
                Some(CryptoError::ChunkAuth { chunk: 1 })
            ));
        }
    }

    #[test]
    fn sealer_and_opener_work_in_place() {
        let key = key();
        let header = header_for(&key);
        let plain = data(2 * CS as usize + 5, 11);
        let cs = CS as usize;
        let mut sealer = Sealer::new(&key, &header).unwrap();
        let mut obj = header.encode().to_vec();
        let mut buf = plain[..cs].to_vec();
        buf.resize(stored(), 0);
        sealer.seal_chunk(&mut buf).unwrap();
        obj.extend_from_slice(&buf);
        let mut buf = plain[cs..2 * cs].to_vec();
        buf.resize(stored(), 0);
        sealer.seal_chunk(&mut buf).unwrap();
        obj.extend_from_slice(&buf);
        assert_eq!(sealer.next_index(), 2);
        let mut buf = plain[2 * cs..].to_vec();
        buf.resize(5 + TAG_LEN, 0);
        sealer.seal_final(&mut buf).unwrap();
        obj.extend_from_slice(&buf);
        assert_eq!(obj, encrypt_to_vec(&key, &header, &plain).unwrap());

        let opener = Opener::new(&key, &header).unwrap();
        let mut last = obj[Header::LEN + 2 * stored()..].to_vec();
        assert_eq!(opener.open_chunk(2, true, &mut last).unwrap(), 5);
        assert_eq!(&last[..5], &plain[2 * cs..]);
        let mut first = obj[Header::LEN..Header::LEN + stored()].to_vec();
        // A full non-final chunk opened as final: the object ends early.
        assert!(matches!(
            err(opener.open_chunk(0, true, &mut first.clone())),
            CryptoError::Truncated(_)
        ));
        // The final chunk opened as non-final: data follows the end.
        let mut full_final = encrypt_to_vec(&key, &header, &plain[..cs]).unwrap();
        assert!(matches!(
            err(opener.open_chunk(0, false, &mut full_final[Header::LEN..])),
            CryptoError::TrailingData
        ));
        assert!(matches!(
            err(opener.open_chunk(1, false, &mut first.clone())),
            CryptoError::ChunkAuth { chunk: 1 }
        ));
        assert_eq!(opener.open_chunk(0, false, &mut first).unwrap(), cs);
        assert_eq!(&first[..cs], &plain[..cs]);
    }

    #[test]
    fn data_keys_are_random() {
        let id = KeyId::new();
        let a = DataKey::generate(id);
        let b = DataKey::generate(id);
        assert_eq!(a.id, id);
        assert_ne!(a.bytes(), b.bytes());
        assert_ne!(a.bytes(), &[0u8; 32]);
    }
}
