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
//! # APIs (and where they live)
//!
//! * Sans-IO core: [`Header`] (`header.rs`), [`Sealer`] (encrypts chunk
//!   by chunk, in place or into a caller buffer) and [`Opener`] (decrypts
//!   any chunk) (`seal.rs`).
//! * Whole objects in memory (`seal.rs`): [`encrypt_to_vec`],
//!   [`decrypt_to_vec`] and the allocation-free [`encrypt_into`],
//!   [`decrypt_into`].
//! * Streaming: [`EnvelopeWriter`] (`std::io::Write`) and
//!   [`AsyncEnvelopeWriter`] (`tokio::io::AsyncWrite`) (`writer.rs`);
//!   [`EnvelopeReader`] (`std::io::Read`) and the push-based
//!   [`StreamOpener`] (for a stream of `Bytes`) (`reader.rs`).
//! * Random access (`range.rs`): [`Header::plaintext_len`],
//!   [`Header::plan_range`], [`decrypt_range`].
//!
//! This file holds the format constants and the helpers the parts share.

mod header;
mod range;
mod reader;
mod seal;
mod writer;

use std::io;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;

pub use header::{ExpectedIds, Header};
pub use range::{RangePlan, decrypt_range};
pub use reader::{EnvelopeReader, StreamOpener};
pub use seal::{Opener, Sealer, decrypt_into, decrypt_to_vec, encrypt_into, encrypt_to_vec};
pub use writer::{AsyncEnvelopeWriter, EnvelopeWriter};

use super::{CryptoError, DataKey};

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

// Helpers shared by the parts of the format.

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

/// Wraps a format error for the `std::io` adapters (writer and reader).
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

/// Helpers shared by the unit tests of the envelope modules.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod test_support {
    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};
    use uuid::Uuid;
    use zeroize::Zeroizing;

    use super::*;
    use crate::domain::{KeyId, TenantId};

    pub(super) const CS: u32 = 64;

    pub(super) fn key() -> DataKey {
        DataKey::from_bytes(KeyId::new(), Zeroizing::new([7u8; 32]))
    }

    pub(super) fn header_for(key: &DataKey) -> Header {
        Header::new(TenantId::new(), Uuid::now_v7(), key.id)
            .with_chunk_size(CS)
            .unwrap()
    }

    pub(super) fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    pub(super) fn err<T: std::fmt::Debug>(r: Result<T>) -> CryptoError {
        r.expect_err("expected an error")
    }

    /// A small multi-chunk object: 3 full chunks and a partial final one.
    pub(super) fn sample() -> (DataKey, Header, Vec<u8>, Vec<u8>) {
        let key = key();
        let header = header_for(&key);
        let plain = data(3 * CS as usize + 17, 1);
        let ct = encrypt_to_vec(&key, &header, &plain).unwrap();
        (key, header, plain, ct)
    }

    pub(super) fn stored() -> usize {
        CS as usize + TAG_LEN
    }
}
