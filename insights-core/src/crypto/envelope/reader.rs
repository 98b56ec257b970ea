//! Streaming decryption: [`EnvelopeReader`] (`std::io::Read`) and the
//! push-based [`StreamOpener`] (for a stream of `Bytes`).

use std::io::{self, Read};
use std::ops::Range;

use aes_gcm::Aes256Gcm;
use zeroize::{Zeroize, Zeroizing};

use super::{
    CryptoError, DataKey, ExpectedIds, Header, Opener, Result, TAG_LEN, cipher_for, io_error,
};
use crate::domain::KeyId;

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
    use std::io::{self, Read};

    use zeroize::Zeroizing;

    use super::super::test_support::*;
    use super::super::*;
    use crate::domain::TenantId;

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
}
