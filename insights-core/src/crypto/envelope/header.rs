//! The fixed-length envelope header: encoding, decoding, checks against
//! the expected ids, and the object layout implied by a ciphertext length.

use uuid::Uuid;

use super::{
    CryptoError, DEFAULT_CHUNK_SIZE, DataKey, FORMAT_VERSION, MAGIC, MAX_CHUNK_SIZE, MAX_CHUNKS,
    NONCE_PREFIX_LEN, Result, TAG_LEN_U64,
};
use crate::crypto::keys::fill_random;
use crate::domain::{KeyId, TenantId};

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
    pub(super) key_id: KeyId,
    pub(super) chunk_size: u32,
    pub(super) nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

/// The object layout implied by a ciphertext length.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    pub(super) plaintext_len: u64,
    pub(super) chunks: u64,
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

    pub(super) fn stored_chunk_len(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN_U64
    }

    pub(super) fn layout(&self, ciphertext_len: u64) -> Result<Layout> {
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

pub(super) fn check_key(key: &DataKey, header: &Header) -> Result<()> {
    if key.id == header.key_id {
        Ok(())
    } else {
        Err(CryptoError::HeaderMismatch(format!(
            "header names data key {}, but key {} was given",
            header.key_id, key.id
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use uuid::Uuid;

    use super::super::test_support::*;
    use super::super::*;
    use crate::domain::TenantId;

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
}
