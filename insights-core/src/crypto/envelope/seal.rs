//! The sans-IO core ([`Sealer`], [`Opener`]: one chunk at a time) and
//! whole objects in memory ([`encrypt_to_vec`], [`decrypt_to_vec`], and the
//! allocation-free [`encrypt_into`], [`decrypt_into`]).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::inout::InOutBuf;
use zeroize::Zeroize;

use super::header::check_key;
use super::{
    CryptoError, DataKey, ExpectedIds, Header, Result, TAG_LEN, Tag, chunk_nonce, cipher_for,
    tag_from, to_usize,
};

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
    pub(super) header: Header,
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
    pub(super) header: Header,
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

    pub(super) fn with_cipher(cipher: Aes256Gcm, header: &Header) -> Self {
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
    pub(super) fn open_chunk_append(
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use uuid::Uuid;
    use zeroize::Zeroizing;

    use super::super::test_support::*;
    use super::super::*;
    use crate::domain::{KeyId, TenantId};

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
