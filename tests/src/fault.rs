//! Fault injection: [`FaultyStore`] wraps a real metadata store and fails
//! the methods a test names, or every method while the "database" is
//! down; [`FlakyBlobs`] does the same for a blob store (failing puts, or
//! everything while the service is down).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use insights_core::blob::{BlobError, BlobMeta, BlobResult, BlobStore, PutOutcome};
use insights_core::store::{MetadataStore, StoreError, StoreResult};
use tokio::io::AsyncRead;

/// A metadata store whose named methods fail while listed in `failing`
/// (each failure consumes one of `fail_budget`), or all while `down`.
/// Every other call goes to `inner`.
pub struct FaultyStore {
    /// The store that answers when no fault is injected.
    pub inner: Arc<dyn MetadataStore>,
    /// Names of the methods that fail (`"set_recording_media"`...).
    pub failing: Mutex<HashSet<&'static str>>,
    /// Failures left to inject into the `failing` methods.
    pub fail_budget: AtomicUsize,
    /// While set, every method fails (as an unreachable database).
    pub down: AtomicBool,
}

impl FaultyStore {
    /// A wrapper of `inner` that injects nothing yet.
    pub fn new(inner: Arc<dyn MetadataStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            failing: Mutex::new(HashSet::new()),
            fail_budget: AtomicUsize::new(usize::MAX),
            down: AtomicBool::new(false),
        })
    }

    /// Makes `method` fail the next `times` calls.
    pub fn fail(&self, method: &'static str, times: usize) {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(method);
        self.fail_budget.store(times, Ordering::SeqCst);
    }

    /// The injected fault of a call to `method`, if any.
    fn check(&self, method: &'static str) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected: database down".into()));
        }
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(method);
        if failing
            && self
                .fail_budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Backend(
                format!("injected: {method} failed").into(),
            ));
        }
        Ok(())
    }
}

// Every method of every area: `check` first, then the inner store.
insights_core::delegate_store_areas!(FaultyStore => inner, before check);

/// A blob store that fails on demand: the next `fail_puts` puts fail,
/// deletes fail once `deletes_left` is used up (as a process that died
/// halfway through), and while `down` is set every call fails (as an
/// unreachable service).
pub struct FlakyBlobs {
    /// The store that answers when no fault is injected.
    pub inner: Arc<dyn BlobStore>,
    /// Puts left to fail.
    pub fail_puts: AtomicUsize,
    /// Deletes left to pass; every delete after them fails.
    pub deletes_left: AtomicUsize,
    /// While set, every call fails.
    pub down: AtomicBool,
    /// Successful puts so far.
    pub puts: AtomicUsize,
    /// The keys of the successful puts, in order.
    pub put_keys: Mutex<Vec<String>>,
}

impl FlakyBlobs {
    /// A wrapper of `inner` that injects nothing yet.
    pub fn new(inner: Arc<dyn BlobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_puts: AtomicUsize::new(0),
            deletes_left: AtomicUsize::new(usize::MAX),
            down: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
            put_keys: Mutex::new(Vec::new()),
        })
    }

    fn check(&self) -> BlobResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BlobError::Io("injected: blob store down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for FlakyBlobs {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn health(&self) -> BlobResult<()> {
        self.check()?;
        self.inner.health().await
    }
    async fn ensure_container(&self, c: &str) -> BlobResult<()> {
        self.check()?;
        self.inner.ensure_container(c).await
    }
    async fn put(
        &self,
        c: &str,
        k: &str,
        data: &mut (dyn AsyncRead + Send + Unpin),
    ) -> BlobResult<PutOutcome> {
        self.check()?;
        if self
            .fail_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // Read some of the body first, as a dropped connection would.
            let mut buf = [0u8; 100];
            let _ = tokio::io::AsyncReadExt::read(data, &mut buf).await;
            return Err(BlobError::Io("injected: put failed".into()));
        }
        let r = self.inner.put(c, k, data).await;
        if r.is_ok() {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.put_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(k.to_owned());
        }
        r
    }
    async fn head(&self, c: &str, k: &str) -> BlobResult<BlobMeta> {
        self.check()?;
        self.inner.head(c, k).await
    }
    async fn get_range(&self, c: &str, k: &str, r: Range<u64>) -> BlobResult<Bytes> {
        self.check()?;
        self.inner.get_range(c, k, r).await
    }
    async fn get_stream(
        &self,
        c: &str,
        k: &str,
    ) -> BlobResult<BoxStream<'static, BlobResult<Bytes>>> {
        self.check()?;
        self.inner.get_stream(c, k).await
    }
    async fn delete(&self, c: &str, k: &str) -> BlobResult<()> {
        self.check()?;
        if self
            .deletes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(BlobError::Io("injected: the process died here".into()));
        }
        self.inner.delete(c, k).await
    }
    async fn list(&self, c: &str, p: &str) -> BlobResult<Vec<String>> {
        self.check()?;
        self.inner.list(c, p).await
    }
    async fn put_block(&self, c: &str, k: &str, i: u32, data: Bytes) -> BlobResult<()> {
        self.check()?;
        self.inner.put_block(c, k, i, data).await
    }
    async fn staged_blocks(
        &self,
        c: &str,
        k: &str,
    ) -> BlobResult<Vec<insights_core::blob::StagedBlock>> {
        self.check()?;
        self.inner.staged_blocks(c, k).await
    }
    async fn commit_blocks(&self, c: &str, k: &str, i: &[u32]) -> BlobResult<BlobMeta> {
        self.check()?;
        self.inner.commit_blocks(c, k, i).await
    }
}
