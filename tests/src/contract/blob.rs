//! Blob store contract suite: every case is a plain async function over
//! `&dyn BlobStore`, and [`blob_contract_tests!`](crate::blob_contract_tests)
//! turns them into one `#[tokio::test]` per case for a backend:
//!
//! ```text
//! async fn make() -> insights_tests::contract::blob::BlobFixture { ... }
//! insights_tests::blob_contract_tests!(make);
//! ```
//!
//! Each case works in fresh, randomly named containers, so cases are
//! independent and can run in parallel against one shared service.

use std::any::Any;
use std::fmt::Debug;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use insights_core::blob::{BlobError, BlobResult, BlobStore, PutOutcome};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// A store under test plus whatever must live as long as it (a temp dir).
pub struct BlobFixture {
    store: Arc<dyn BlobStore>,
    _guard: Option<Box<dyn Any + Send>>,
}

impl BlobFixture {
    pub fn new(store: impl BlobStore) -> Self {
        Self {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// Keeps `guard` alive (and undropped) as long as the fixture.
    pub fn with_guard(store: impl BlobStore, guard: impl Any + Send) -> Self {
        Self {
            store: Arc::new(store),
            _guard: Some(Box::new(guard)),
        }
    }

    pub fn store(&self) -> &dyn BlobStore {
        self.store.as_ref()
    }
}

// ---------------------------------------------------------------- helpers

/// `r`'s value, or a panic naming `what`.
fn must<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// Asserts `r` failed with an error matching the pattern.
macro_rules! assert_err {
    ($r:expr, $pat:pat $(,)?) => {
        match $r {
            Err($pat) => {}
            Err(other) => panic!(
                "{}: expected {}, got error {other:?}",
                stringify!($r),
                stringify!($pat)
            ),
            Ok(_) => panic!("{}: expected {}, got Ok", stringify!($r), stringify!($pat)),
        }
    };
}

/// A new, random container name (not created).
fn container_name() -> String {
    format!("ct-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh container, created.
async fn fresh_container(store: &dyn BlobStore) -> String {
    let name = container_name();
    must(store.ensure_container(&name).await, "ensure_container");
    name
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `len` pseudo-random bytes from `seed`.
fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// A reader that hands out at most `chunk` bytes per read, so uploads see
/// short, irregular reads as from a socket.
struct ChunkedReader<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(buf.remaining()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

async fn put_bytes(
    store: &dyn BlobStore,
    container: &str,
    key: &str,
    data: &[u8],
) -> BlobResult<PutOutcome> {
    let mut reader = ChunkedReader {
        data,
        chunk: 64 * 1024 + 7,
    };
    store.put(container, key, &mut reader).await
}

async fn read_all(store: &dyn BlobStore, container: &str, key: &str) -> BlobResult<Vec<u8>> {
    let chunks: Vec<Bytes> = store
        .get_stream(container, key)
        .await?
        .try_collect()
        .await?;
    Ok(chunks.concat())
}

async fn assert_range(
    store: &dyn BlobStore,
    container: &str,
    key: &str,
    data: &[u8],
    r: Range<u64>,
) {
    let got = must(
        store.get_range(container, key, r.clone()).await,
        &format!("get_range {r:?}"),
    );
    let want = &data[r.start as usize..r.end as usize];
    assert!(
        got.as_ref() == want,
        "range {r:?}: got {} bytes, want {} (contents differ: {})",
        got.len(),
        want.len(),
        got.len() == want.len()
    );
}

// ------------------------------------------------------------------ cases

pub async fn ensure_container_is_idempotent(store: &dyn BlobStore) {
    let name = container_name();
    must(store.ensure_container(&name).await, "first ensure");
    must(store.ensure_container(&name).await, "second ensure");
    must(put_bytes(store, &name, "k", b"v").await, "put");
    // Ensuring again leaves the contents alone.
    must(store.ensure_container(&name).await, "third ensure");
    assert_eq!(must(read_all(store, &name, "k").await, "read"), b"v");
}

pub async fn round_trip_small_object(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let data = seeded_bytes(1, 1000);
    let key = "tenant-1/rec-2024_01/audio.opus.enc";

    let outcome = must(put_bytes(store, &c, key, &data).await, "put");
    assert_eq!(
        outcome,
        PutOutcome {
            byte_size: 1000,
            sha256: sha256_hex(&data)
        }
    );
    assert_eq!(must(store.head(&c, key).await, "head").byte_size, 1000);
    assert_eq!(must(read_all(store, &c, key).await, "get_stream"), data);
    assert_range(store, &c, key, &data, 0..1000).await;
    assert_range(store, &c, key, &data, 10..11).await;
}

pub async fn round_trip_20_mb_object_with_ranges(store: &dyn BlobStore) {
    const MIB: u64 = 1024 * 1024;
    // Not a multiple of any plausible block size, so the last block is short.
    let size = 20 * MIB + 12_345;
    let c = fresh_container(store).await;
    let data = seeded_bytes(20, size as usize);
    let key = "big/object";

    let started = Instant::now();
    let outcome = must(put_bytes(store, &c, key, &data).await, "put 20 MB");
    let put_time = started.elapsed();
    assert_eq!(outcome.byte_size, size);
    assert_eq!(outcome.sha256, sha256_hex(&data));
    assert_eq!(must(store.head(&c, key).await, "head").byte_size, size);

    let started = Instant::now();
    let ranges = [
        0..4096,                         // start
        8 * MIB - 1000..8 * MIB + 1000,  // across the 8 MiB block boundary
        16 * MIB - 1..16 * MIB + 1,      // across the second boundary
        10 * MIB + 3..10 * MIB + 70_003, // middle of a block
        size - 1..size,                  // last byte
        0..size,                         // whole
    ];
    for r in ranges {
        assert_range(store, &c, key, &data, r).await;
    }
    let ranges_time = started.elapsed();

    let started = Instant::now();
    let streamed = must(read_all(store, &c, key).await, "get_stream");
    let stream_time = started.elapsed();
    assert!(streamed == data, "streamed bytes differ");
    eprintln!(
        "[{}] 20 MB object: put (incl. verification) {put_time:.2?}, 6 ranged reads {ranges_time:.2?}, full stream {stream_time:.2?}",
        store.backend()
    );
}

pub async fn empty_object(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let outcome = must(put_bytes(store, &c, "empty", b"").await, "put");
    assert_eq!(
        outcome,
        PutOutcome {
            byte_size: 0,
            sha256: sha256_hex(b"")
        }
    );
    assert_eq!(must(store.head(&c, "empty").await, "head").byte_size, 0);
    assert!(must(read_all(store, &c, "empty").await, "get_stream").is_empty());
    assert!(must(store.get_range(&c, "empty", 0..0).await, "empty range").is_empty());
    assert_err!(
        store.get_range(&c, "empty", 0..1).await,
        BlobError::RangeNotSatisfiable {
            start: 0,
            end: 1,
            size: 0
        }
    );
    assert_eq!(must(store.list(&c, "").await, "list"), vec!["empty"]);
}

pub async fn range_past_end_is_not_satisfiable(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let data = seeded_bytes(2, 100);
    must(put_bytes(store, &c, "k", &data).await, "put");

    for (start, end) in [(50, 101), (99, 101), (100, 101), (200, 300), (10, 5)] {
        match store.get_range(&c, "k", start..end).await {
            Err(BlobError::RangeNotSatisfiable {
                start: s,
                end: e,
                size: 100,
            }) if s == start && e == end => {}
            other => panic!("range {start}..{end}: expected RangeNotSatisfiable, got {other:?}"),
        }
    }
    // Empty ranges inside (or at the end of) the object are fine.
    assert!(must(store.get_range(&c, "k", 100..100).await, "100..100").is_empty());
    assert!(must(store.get_range(&c, "k", 7..7).await, "7..7").is_empty());
    assert_range(store, &c, "k", &data, 99..100).await;
}

pub async fn missing_object_is_not_found(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    must(put_bytes(store, &c, "present/x", b"x").await, "put");
    for key in ["absent", "present/y", "present"] {
        assert_err!(store.head(&c, key).await, BlobError::NotFound);
        assert_err!(store.get_range(&c, key, 0..1).await, BlobError::NotFound);
        assert_err!(store.get_stream(&c, key).await, BlobError::NotFound);
    }
    // A key below an existing object's name.
    assert_err!(
        store.head(&c, "present/x/deeper").await,
        BlobError::NotFound
    );
}

pub async fn overwrite_replaces_content(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let first = seeded_bytes(3, 5000);
    let second = seeded_bytes(4, 1234);
    must(put_bytes(store, &c, "k", &first).await, "first put");
    let outcome = must(put_bytes(store, &c, "k", &second).await, "second put");
    assert_eq!(outcome.sha256, sha256_hex(&second));
    assert_eq!(must(store.head(&c, "k").await, "head").byte_size, 1234);
    assert_eq!(must(read_all(store, &c, "k").await, "read"), second);
    assert_err!(
        store.get_range(&c, "k", 0..5000).await,
        BlobError::RangeNotSatisfiable { size: 1234, .. }
    );
    assert_eq!(must(store.list(&c, "").await, "list"), vec!["k"]);
}

pub async fn delete_then_not_found(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    must(put_bytes(store, &c, "a/k", b"data").await, "put");
    must(put_bytes(store, &c, "a/other", b"stays").await, "put other");
    must(store.delete(&c, "a/k").await, "delete");
    assert_err!(store.head(&c, "a/k").await, BlobError::NotFound);
    assert_err!(store.get_stream(&c, "a/k").await, BlobError::NotFound);
    assert_eq!(must(store.list(&c, "").await, "list"), vec!["a/other"]);
    assert_eq!(
        must(read_all(store, &c, "a/other").await, "other"),
        b"stays"
    );
}

pub async fn delete_missing_is_ok(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    must(store.delete(&c, "never-written").await, "delete missing");
    must(
        store.delete(&c, "no/such/path").await,
        "delete missing nested",
    );
    must(put_bytes(store, &c, "k", b"v").await, "put");
    must(store.delete(&c, "k").await, "delete");
    must(store.delete(&c, "k").await, "delete again");
}

pub async fn list_is_sorted_and_filtered_by_prefix(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    // Written out of order.
    for key in ["b", "a/2", "ab/1", "a/10/x", "c/d/e", "a/1", "a.txt"] {
        must(put_bytes(store, &c, key, key.as_bytes()).await, key);
    }
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    assert_eq!(
        must(store.list(&c, "").await, "list all"),
        strings(&["a.txt", "a/1", "a/10/x", "a/2", "ab/1", "b", "c/d/e"])
    );
    // A prefix is a path: `a` lists below `a/`, not `ab/…` or `a.txt`.
    let under_a = strings(&["a/1", "a/10/x", "a/2"]);
    assert_eq!(must(store.list(&c, "a").await, "list a"), under_a);
    assert_eq!(must(store.list(&c, "a/").await, "list a/"), under_a);
    assert_eq!(
        must(store.list(&c, "a/10").await, "list a/10"),
        strings(&["a/10/x"])
    );
    assert_eq!(
        must(store.list(&c, "c").await, "list c"),
        strings(&["c/d/e"])
    );
    assert!(must(store.list(&c, "zzz").await, "list zzz").is_empty());
    // An object's own name is not a prefix of anything.
    assert!(must(store.list(&c, "b").await, "list b").is_empty());
    assert_err!(store.list(&c, "../a").await, BlobError::InvalidName(_));
    assert_err!(store.list(&c, "a//b").await, BlobError::InvalidName(_));

    let empty = fresh_container(store).await;
    assert!(must(store.list(&empty, "").await, "list empty").is_empty());
}

pub async fn invalid_names_are_rejected(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let long = "x".repeat(513);
    for key in [
        "../x", "", "a//b", "/a", "a/", ".", "a/./b", "a/../b", "a b", "a\\b", "ä", "~put-x", &long,
    ] {
        assert_err!(
            put_bytes(store, &c, key, b"x").await,
            BlobError::InvalidName(_)
        );
        assert_err!(store.head(&c, key).await, BlobError::InvalidName(_));
        assert_err!(
            store.get_range(&c, key, 0..1).await,
            BlobError::InvalidName(_)
        );
        assert_err!(store.get_stream(&c, key).await, BlobError::InvalidName(_));
        assert_err!(store.delete(&c, key).await, BlobError::InvalidName(_));
    }
    for container in ["ab", "Upper", "a--b", "-ab", "ab-", "a_b", "../ab", ""] {
        assert_err!(
            store.ensure_container(container).await,
            BlobError::InvalidName(_)
        );
        assert_err!(
            put_bytes(store, container, "k", b"x").await,
            BlobError::InvalidName(_)
        );
        assert_err!(store.list(container, "").await, BlobError::InvalidName(_));
    }
    // Nothing was written by any of the above.
    assert!(must(store.list(&c, "").await, "list").is_empty());
}

pub async fn missing_container_is_an_error(store: &dyn BlobStore) {
    let c = container_name(); // never created
    assert_err!(
        put_bytes(store, &c, "k", b"data").await,
        BlobError::ContainerNotFound
    );
    assert_err!(store.head(&c, "k").await, BlobError::ContainerNotFound);
    assert_err!(
        store.get_range(&c, "k", 0..1).await,
        BlobError::ContainerNotFound
    );
    assert_err!(
        store.get_stream(&c, "k").await,
        BlobError::ContainerNotFound
    );
    assert_err!(store.list(&c, "").await, BlobError::ContainerNotFound);
    assert_err!(store.delete(&c, "k").await, BlobError::ContainerNotFound);
    // A large put fails the same way (block upload path).
    let big = seeded_bytes(5, 9 * 1024 * 1024);
    assert_err!(
        put_bytes(store, &c, "big", &big).await,
        BlobError::ContainerNotFound
    );
}

pub async fn containers_are_separate(store: &dyn BlobStore) {
    let one = fresh_container(store).await;
    let two = fresh_container(store).await;
    must(put_bytes(store, &one, "same/key", b"one").await, "put one");
    must(
        put_bytes(store, &two, "same/key", b"second").await,
        "put two",
    );
    must(
        put_bytes(store, &two, "only-two", b"2").await,
        "put only-two",
    );

    assert_eq!(
        must(read_all(store, &one, "same/key").await, "read one"),
        b"one"
    );
    assert_eq!(
        must(read_all(store, &two, "same/key").await, "read two"),
        b"second"
    );
    assert_err!(store.head(&one, "only-two").await, BlobError::NotFound);
    assert_eq!(
        must(store.list(&one, "").await, "list one"),
        vec!["same/key"]
    );

    must(store.delete(&one, "same/key").await, "delete in one");
    assert_eq!(
        must(store.head(&two, "same/key").await, "head two").byte_size,
        6
    );
}

/// The indexes of the staged blocks of `key`.
async fn staged(store: &dyn BlobStore, container: &str, key: &str) -> Vec<(u32, u64)> {
    must(store.staged_blocks(container, key).await, "staged_blocks")
        .into_iter()
        .map(|b| (b.index, b.byte_size))
        .collect()
}

pub async fn staged_blocks_are_invisible_until_committed_in_order(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let key = "recordings/r1/spool.log";
    assert!(staged(store, &c, key).await.is_empty());
    let parts = [
        seeded_bytes(31, 1000),
        seeded_bytes(32, 70_000),
        seeded_bytes(33, 5),
    ];
    // Block 2 is staged twice: the second one counts.
    must(
        store
            .put_block(&c, key, 2, Bytes::from_static(b"replaced"))
            .await,
        "put_block 2",
    );
    for (i, p) in parts.iter().enumerate() {
        must(
            store
                .put_block(&c, key, i as u32, Bytes::from(p.clone()))
                .await,
            "put_block",
        );
    }
    assert_eq!(
        staged(store, &c, key).await,
        vec![(0, 1000), (1, 70_000), (2, 5)]
    );
    // Staged blocks are no object: not listed, not readable.
    assert!(must(store.list(&c, "").await, "list").is_empty());
    assert_err!(store.head(&c, key).await, BlobError::NotFound);
    assert_err!(read_all(store, &c, key).await, BlobError::NotFound);

    let meta = must(store.commit_blocks(&c, key, &[0, 1, 2]).await, "commit");
    let whole = parts.concat();
    assert_eq!(meta.byte_size, whole.len() as u64);
    assert_eq!(
        sha256_hex(&must(read_all(store, &c, key).await, "read")),
        sha256_hex(&whole)
    );
    assert_eq!(must(store.list(&c, "").await, "list"), vec![key]);
    // Committed blocks are no longer staged.
    assert!(staged(store, &c, key).await.is_empty());
}

pub async fn commit_discards_unnamed_blocks_and_refuses_unknown_ones(store: &dyn BlobStore) {
    let c = fresh_container(store).await;
    let key = "recordings/r2/spool.log";
    for i in 0..3u32 {
        let data = Bytes::from(format!("block-{i}").into_bytes());
        must(store.put_block(&c, key, i, data).await, "put_block");
    }
    // An index that is not staged: nothing changes.
    assert_err!(
        store.commit_blocks(&c, key, &[0, 7]).await,
        BlobError::NotFound
    );
    assert_err!(store.head(&c, key).await, BlobError::NotFound);
    assert_eq!(staged(store, &c, key).await.len(), 3);
    // A subset, reordered: the others are discarded.
    must(store.commit_blocks(&c, key, &[2, 0]).await, "commit");
    assert_eq!(
        must(read_all(store, &c, key).await, "read"),
        b"block-2block-0"
    );
    assert!(staged(store, &c, key).await.is_empty());
    // Staging again, then an empty commit and a delete leave nothing.
    must(
        store.put_block(&c, key, 0, Bytes::from_static(b"x")).await,
        "put_block",
    );
    let meta = must(store.commit_blocks(&c, key, &[]).await, "empty commit");
    assert_eq!(meta.byte_size, 0);
    must(store.delete(&c, key).await, "delete");
    assert!(staged(store, &c, key).await.is_empty());
    assert!(must(store.list(&c, "").await, "list").is_empty());
    assert_err!(store.head(&c, key).await, BlobError::NotFound);
}

pub async fn blocks_in_a_missing_container_are_an_error(store: &dyn BlobStore) {
    let c = container_name();
    assert_err!(
        store.put_block(&c, "k", 0, Bytes::from_static(b"x")).await,
        BlobError::ContainerNotFound
    );
    assert_err!(
        store.staged_blocks(&c, "k").await,
        BlobError::ContainerNotFound
    );
    assert_err!(
        store.commit_blocks(&c, "k", &[0]).await,
        BlobError::ContainerNotFound | BlobError::NotFound
    );
    assert_err!(
        store
            .put_block(&c, "../k", 0, Bytes::from_static(b"x"))
            .await,
        BlobError::InvalidName(_)
    );
}
