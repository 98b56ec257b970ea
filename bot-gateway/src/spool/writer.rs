//! The writing side of one recording's media log: per-stream plaintext
//! buffers in memory (zeroized), sealed into records at least every
//! durability tick, appended, fsync'd.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::SpoolError;
use super::format::{MAX_RECORD_PLAINTEXT, RecordSealer};

/// Plaintext per stream that is sealed into a record without waiting for
/// the tick (keeps memory per call bounded). Audio reaches it only at
/// more than 256 kbit/s (the tick seals every 500 ms); a call's stereo
/// Opus at 48 kbit/s buffers about 3 KiB per tick.
pub(crate) const RECORD_TARGET: usize = 16 * 1024;
/// Sealed bytes that may wait in memory when the disk refuses writes; past
/// it, writers get an error (backpressure rather than unbounded memory).
pub(crate) const MAX_UNWRITTEN: usize = 8 * 1024 * 1024;

const _: () = assert!(RECORD_TARGET <= MAX_RECORD_PLAINTEXT);

/// What the writer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterState {
    Open,
    /// The handle was dropped without `finish`; the tick closes it as partial.
    Abandoned,
    /// Finished or closed; no more writes.
    Closed,
}

struct StreamBuf {
    /// Allocated at the stream's first write, at full size, so it never
    /// reallocates (which would leave plaintext in freed memory); only
    /// the bytes written are wiped after each seal, so pages the stream
    /// never used are never touched (RSS follows what is buffered).
    pending: Zeroizing<Vec<u8>>,
    plaintext_len: u64,
    sha: Sha256,
    ended: bool,
}

/// What the in-memory side knows about a stream when it finishes (checked
/// against a scan of the file).
pub(crate) struct WrittenStream {
    pub plaintext_len: u64,
    pub sha256: [u8; 32],
}

pub(crate) struct RecordingWriter {
    file: Arc<File>,
    sealer: RecordSealer,
    streams: Vec<StreamBuf>,
    /// Sealed bytes not yet written to the file.
    unwritten: Vec<u8>,
    /// Bytes in the file (shared with the spool's quota accounting).
    file_len: Arc<AtomicU64>,
    synced_len: u64,
    /// Spool-wide bytes on disk.
    used: Arc<AtomicU64>,
    /// A sticky failure (fsync failed: what is durable is unknown).
    failed: Option<String>,
    pub(crate) state: WriterState,
}

/// Zeroes the bytes a buffer holds and empties it. Unlike
/// `Vec::zeroize` it leaves the spare capacity alone: it was zeroed when
/// it last held data (or never held any), and writing it would make
/// every page of the buffer resident.
fn wipe(buf: &mut Vec<u8>) {
    buf.as_mut_slice().zeroize();
    buf.clear();
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl RecordingWriter {
    /// A writer appending to `file`, which already holds the header
    /// (`header_len` bytes, fsync'd).
    pub(crate) fn new(
        file: File,
        sealer: RecordSealer,
        header_len: u64,
        file_len: Arc<AtomicU64>,
        used: Arc<AtomicU64>,
    ) -> Self {
        let n = sealer.header().streams.len();
        file_len.store(header_len, Ordering::Relaxed);
        Self {
            file: Arc::new(file),
            sealer,
            streams: (0..n)
                .map(|_| StreamBuf {
                    pending: Zeroizing::new(Vec::new()),
                    plaintext_len: 0,
                    sha: Sha256::new(),
                    ended: false,
                })
                .collect(),
            unwritten: Vec::new(),
            file_len,
            synced_len: header_len,
            used,
            failed: None,
            state: WriterState::Open,
        }
    }

    fn check_writable(&self, stream: usize) -> Result<(), SpoolError> {
        if self.state != WriterState::Open {
            return Err(SpoolError::Closed);
        }
        if let Some(e) = &self.failed {
            return Err(SpoolError::Io(e.clone()));
        }
        match self.streams.get(stream) {
            None => Err(SpoolError::NoSuchStream(stream)),
            Some(s) if s.ended => Err(SpoolError::StreamEnded(stream)),
            Some(_) => Ok(()),
        }
    }

    /// Buffers `data` for `stream`; seals and appends whole records as the
    /// buffer fills. Returns an error only when the spool cannot take the
    /// data (closed, failed, or too much unwritable data in memory).
    pub(crate) fn write(&mut self, stream: usize, mut data: &[u8]) -> Result<(), SpoolError> {
        self.check_writable(stream)?;
        let mut sealed = false;
        while !data.is_empty() {
            let buf = &mut self.streams[stream];
            if buf.pending.capacity() == 0 {
                buf.pending.reserve_exact(RECORD_TARGET);
            }
            let take = (RECORD_TARGET - buf.pending.len()).min(data.len());
            buf.pending.extend_from_slice(&data[..take]);
            buf.sha.update(&data[..take]);
            buf.plaintext_len += take as u64;
            data = &data[take..];
            if buf.pending.len() == RECORD_TARGET {
                self.seal_pending(stream, false)?;
                sealed = true;
            }
        }
        if sealed {
            self.flush_tolerant()?;
        }
        Ok(())
    }

    fn seal_pending(&mut self, stream: usize, last: bool) -> Result<(), SpoolError> {
        let buf = &mut self.streams[stream];
        // `stream` < number of streams ≤ MAX_STREAMS (1024): fits in u16.
        self.sealer.seal(
            stream as u16,
            last,
            now_micros(),
            &buf.pending,
            &mut self.unwritten,
        )?;
        wipe(&mut buf.pending);
        if last {
            buf.ended = true;
        }
        Ok(())
    }

    /// Writes out sealed bytes. Partial progress is kept exactly (the file
    /// is always a prefix of the sealed byte stream, never a repeat).
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.unwritten.is_empty() {
            match (&*self.file).write(&self.unwritten) {
                Ok(0) => return Err(std::io::Error::other("write returned 0 bytes")),
                Ok(n) => {
                    self.unwritten.drain(..n);
                    self.file_len.fetch_add(n as u64, Ordering::Relaxed);
                    self.used.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`Self::flush`], tolerating a failure while the backlog is small
    /// (the next tick retries the same bytes).
    fn flush_tolerant(&mut self) -> Result<(), SpoolError> {
        match self.flush() {
            Ok(()) => Ok(()),
            Err(e) if self.unwritten.len() <= MAX_UNWRITTEN => {
                tracing::warn!(error = %e, backlog = self.unwritten.len(), "spool write failed; will retry");
                Ok(())
            }
            Err(e) => Err(SpoolError::Io(format!(
                "spool write failed with {} bytes waiting: {e}",
                self.unwritten.len()
            ))),
        }
    }

    /// Ends one stream: seals what it has and a last record.
    pub(crate) fn end_stream(&mut self, stream: usize) -> Result<(), SpoolError> {
        self.check_writable(stream)?;
        self.seal_pending(stream, true)?;
        self.flush_tolerant()
    }

    /// First half of a durability tick (under the lock): seals every
    /// stream's buffered plaintext into a record and writes it. Returns the
    /// file to fsync and the length that fsync makes durable, or `None`
    /// when nothing is new.
    pub(crate) fn prepare_sync(&mut self) -> Result<Option<(Arc<File>, u64)>, SpoolError> {
        if let Some(e) = &self.failed {
            return Err(SpoolError::Io(e.clone()));
        }
        if self.state == WriterState::Open || self.state == WriterState::Abandoned {
            for i in 0..self.streams.len() {
                if !self.streams[i].pending.is_empty() && !self.streams[i].ended {
                    self.seal_pending(i, false)?;
                }
            }
        }
        self.flush()
            .map_err(|e| SpoolError::Io(format!("spool write failed: {e}")))?;
        let len = self.file_len.load(Ordering::Relaxed);
        if len == self.synced_len {
            return Ok(None);
        }
        Ok(Some((self.file.clone(), len)))
    }

    /// Second half of a tick: the fsync outcome.
    pub(crate) fn synced(
        &mut self,
        len: u64,
        result: std::io::Result<()>,
    ) -> Result<(), SpoolError> {
        match result {
            Ok(()) => {
                self.synced_len = self.synced_len.max(len);
                Ok(())
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the
                // dirty pages: what is durable is unknown. Stop here.
                let msg = format!("spool fsync failed: {e}");
                self.failed = Some(msg.clone());
                Err(SpoolError::Io(msg))
            }
        }
    }

    /// Seals, writes and fsyncs everything buffered (a whole tick, for
    /// one writer, holding the lock throughout).
    pub(crate) fn sync_now(&mut self) -> Result<(), SpoolError> {
        if let Some((file, len)) = self.prepare_sync()? {
            let r = file.sync_data();
            self.synced(len, r)?;
        }
        Ok(())
    }

    /// Finishes cleanly: the buffered rest and a last record for every
    /// stream, fsync'd. Returns what was written per stream.
    pub(crate) fn finish(&mut self) -> Result<Vec<WrittenStream>, SpoolError> {
        if self.state != WriterState::Open {
            return Err(SpoolError::Closed);
        }
        if let Some(e) = &self.failed {
            return Err(SpoolError::Io(e.clone()));
        }
        for i in 0..self.streams.len() {
            if !self.streams[i].ended {
                self.seal_pending(i, true)?;
            }
        }
        self.sync_now()?;
        self.state = WriterState::Closed;
        Ok(self
            .streams
            .iter()
            .map(|s| WrittenStream {
                plaintext_len: s.plaintext_len,
                sha256: s.sha.clone().finalize().into(),
            })
            .collect())
    }

    /// Closes without last records (partial): best effort to make the
    /// buffered rest durable first.
    pub(crate) fn close_partial(&mut self) {
        if self.failed.is_none()
            && let Err(e) = self.sync_now()
        {
            tracing::warn!(error = %e, "could not make the rest of a partial recording durable");
        }
        for s in &mut self.streams {
            wipe(&mut s.pending);
        }
        self.state = WriterState::Closed;
    }

    /// Whether a sticky failure happened.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.is_some()
    }
}
