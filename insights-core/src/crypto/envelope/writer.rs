//! Streaming encryption: [`EnvelopeWriter`] (`std::io::Write`) and
//! [`AsyncEnvelopeWriter`] (`tokio::io::AsyncWrite`).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use zeroize::Zeroizing;

use super::{CryptoError, DataKey, Header, Result, Sealer, TAG_LEN, io_error};

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{self, Write};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::test_support::*;
    use super::super::*;

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
}
