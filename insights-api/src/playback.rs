//! Streaming decrypted media with HTTP Range (RFC 9110 §14).
//!
//! A stored recording is an envelope object in the tenant's blob
//! container (`insights_core::crypto::envelope`): a 66-byte header, then
//! 64 KiB chunks sealed with AES-256-GCM. Playback never downloads or
//! decrypts the whole object: [`SealedObject::open`] reads and checks the
//! header once, and [`SealedObject::stream`] fetches only the chunks a
//! byte range covers, a bounded piece at a time ([`PIECE_CHUNKS`]
//! chunks), authenticates each chunk and yields exactly the requested
//! plaintext bytes. A tampered, truncated or spliced object fails
//! authentication instead of playing altered audio.
//!
//! [`plan`] turns a `Range` header into what to send: the whole object
//! (`200`), one or several ranges (`206`, several as
//! `multipart/byteranges`), or `416` with `Content-Range: bytes */len`.
//! [`respond`] builds the response.

use std::ops::Range;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use insights_core::blob::{BlobError, BlobStore};
use insights_core::crypto::envelope::{self, ExpectedIds, Header};
use insights_core::crypto::{CryptoError, DataKey};

/// Chunks fetched and decrypted per piece: 16 × 64 KiB = 1 MiB, so a
/// response never holds more than about a megabyte of media in memory.
pub const PIECE_CHUNKS: u64 = 16;

/// Most ranges served in one multi-range request (more is refused as
/// unsatisfiable rather than amplifying small requests into many reads).
pub const MAX_RANGES: usize = 16;

/// Why media cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    /// The blob store failed or lacks the object.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// The object is not what the metadata says, or fails authentication.
    #[error("envelope: {0}")]
    Crypto(#[from] CryptoError),
}

/// An envelope object in a blob store, its header read and checked.
pub struct SealedObject {
    blobs: Arc<dyn BlobStore>,
    container: String,
    key: String,
    header: Header,
    data_key: Arc<DataKey>,
    ciphertext_len: u64,
    plaintext_len: u64,
}

impl std::fmt::Debug for SealedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedObject")
            .field("container", &self.container)
            .field("key", &self.key)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl SealedObject {
    /// Reads the object's size and header and checks that the header is
    /// bound to the expected tenant, object and data key.
    pub async fn open(
        blobs: Arc<dyn BlobStore>,
        container: &str,
        key: &str,
        data_key: DataKey,
        expected: &ExpectedIds,
    ) -> Result<Self, PlaybackError> {
        let ciphertext_len = blobs.head(container, key).await?.byte_size;
        let len = Header::LEN as u64;
        if ciphertext_len < len {
            return Err(CryptoError::Truncated(format!(
                "object of {ciphertext_len} bytes is shorter than its header"
            ))
            .into());
        }
        let head = blobs.get_range(container, key, 0..len).await?;
        let header = Header::decode_expected(&head, expected)?;
        let plaintext_len = header.plaintext_len(ciphertext_len)?;
        Ok(Self {
            blobs,
            container: container.to_owned(),
            key: key.to_owned(),
            header,
            data_key: Arc::new(data_key),
            ciphertext_len,
            plaintext_len,
        })
    }

    /// Length of the decrypted media in bytes.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The plaintext bytes `range` (which must lie within
    /// [`Self::plaintext_len`]), fetched and decrypted piece by piece.
    pub fn stream(
        self: &Arc<Self>,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, PlaybackError>> + use<> {
        let piece = PIECE_CHUNKS * u64::from(self.header.chunk_size());
        let this = Arc::clone(self);
        let pieces = piece_bounds(range, piece);
        stream::iter(pieces).then(move |r| {
            let this = Arc::clone(&this);
            async move { this.read(r).await }
        })
    }

    async fn read(&self, range: Range<u64>) -> Result<Bytes, PlaybackError> {
        let plan = self.header.plan_range(range, self.ciphertext_len)?;
        if plan.is_empty() {
            return Ok(Bytes::new());
        }
        let fetched = self
            .blobs
            .get_range(&self.container, &self.key, plan.fetch())
            .await?;
        let plain = envelope::decrypt_range(&self.data_key, &self.header, &plan, &fetched)?;
        Ok(Bytes::from(plain))
    }
}

/// Splits `range` at multiples of `piece` (chunk-aligned pieces).
fn piece_bounds(range: Range<u64>, piece: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = ((at / piece) + 1).saturating_mul(piece).min(range.end);
        out.push(at..end);
        at = end;
    }
    out
}

/// What a request's `Range` header asks of an object of `len` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// No (usable) `Range` header: the whole object, `200`.
    Full,
    /// One or more satisfiable ranges, in request order: `206`.
    Ranges(Vec<Range<u64>>),
    /// No range can be satisfied: `416`.
    Unsatisfiable,
}

/// Interprets a `Range` header value for an object of `len` bytes
/// (RFC 9110 §14.1.2, §14.2). A header that is not a valid `bytes=`
/// range set is ignored (the whole object is sent), as the RFC allows.
/// Ranges that start past the end are dropped; an end past the object,
/// or a suffix longer than it, is clamped to the object. If none is
/// left, or the set has more than [`MAX_RANGES`] ranges or overlapping
/// ones, it is unsatisfiable.
///
/// Our own parser: `http-range-header` 0.4 refuses a suffix longer than
/// the object, which the RFC says selects the whole object.
pub fn plan(range_header: Option<&str>, len: u64) -> RangePlan {
    let Some(value) = range_header else {
        return RangePlan::Full;
    };
    let Some(set) = value.trim().strip_prefix("bytes=") else {
        return RangePlan::Full;
    };
    let mut specs = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue; // RFC 9110 list syntax allows empty elements
        }
        let Some((first, last)) = spec.split_once('-') else {
            return RangePlan::Full;
        };
        let num = |s: &str| {
            (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let parsed = match (first.is_empty(), last.is_empty()) {
            (true, true) => None,
            // suffix: the last N bytes
            (true, false) => num(last).map(|n| (None, Some(n))),
            (false, true) => num(first).map(|a| (Some(a), None)),
            (false, false) => match (num(first), num(last)) {
                (Some(a), Some(b)) if a <= b => Some((Some(a), Some(b))),
                _ => None,
            },
        };
        match parsed {
            Some(p) => specs.push(p),
            None => return RangePlan::Full,
        }
    }
    if specs.is_empty() {
        return RangePlan::Full;
    }
    if specs.len() > MAX_RANGES {
        return RangePlan::Unsatisfiable;
    }
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for spec in specs {
        let r = match spec {
            (None, Some(n)) if n > 0 && len > 0 => len.saturating_sub(n)..len,
            (None, _) => continue,
            (Some(a), _) if a >= len => continue,
            (Some(a), None) => a..len,
            (Some(a), Some(b)) => a..b.saturating_add(1).min(len),
        };
        ranges.push(r);
    }
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    if sorted.windows(2).any(|w| w[1].start < w[0].end) {
        return RangePlan::Unsatisfiable;
    }
    RangePlan::Ranges(ranges)
}

/// The response for `object` (of MIME type `content_type`) and the
/// request's `Range` header: `200` with the whole media, `206` with one
/// range or a `multipart/byteranges` body, or `416`. Always
/// `Accept-Ranges: bytes`, `Cache-Control: no-store`.
pub fn respond(
    object: SealedObject,
    content_type: &str,
    range_header: Option<&str>,
) -> HttpResponse {
    let len = object.plaintext_len();
    let object = Arc::new(object);
    let mut res = HttpResponse::build(StatusCode::OK);
    res.insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match plan(range_header, len) {
        RangePlan::Full => res
            .content_type(content_type)
            .no_chunking(len)
            .streaming(object.stream(0..len)),
        RangePlan::Unsatisfiable => res
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
            .finish(),
        RangePlan::Ranges(ranges) if ranges.len() == 1 => {
            let r = ranges[0].clone();
            res.status(StatusCode::PARTIAL_CONTENT)
                .content_type(content_type)
                .insert_header((
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{len}", r.start, r.end - 1),
                ))
                .no_chunking(r.end - r.start)
                .streaming(object.stream(r))
        }
        RangePlan::Ranges(ranges) => {
            let boundary = uuid::Uuid::new_v4().simple().to_string();
            let mut parts = Vec::with_capacity(ranges.len());
            let mut total = 0u64;
            for r in &ranges {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                    r.start,
                    r.end - 1
                );
                total += head.len() as u64 + (r.end - r.start);
                parts.push((Bytes::from(head), r.clone()));
            }
            let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
            total += tail.len() as u64;
            let body = stream::iter(parts)
                .flat_map(move |(head, r)| {
                    stream::once(async move { Ok::<_, PlaybackError>(head) })
                        .chain(object.stream(r))
                })
                .chain(stream::once(async move { Ok(tail) }));
            res.status(StatusCode::PARTIAL_CONTENT)
                .content_type(format!("multipart/byteranges; boundary={boundary}"))
                .no_chunking(total)
                .streaming(body)
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range per Vec is the point
mod tests {
    use super::*;

    #[test]
    fn pieces_are_chunk_aligned_and_cover_the_range() {
        assert_eq!(piece_bounds(0..0, 10), Vec::<Range<u64>>::new());
        assert_eq!(piece_bounds(3..25, 10), vec![3..10, 10..20, 20..25]);
        assert_eq!(piece_bounds(10..20, 10), vec![10..20]);
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let len = 1000;
        assert_eq!(plan(None, len), RangePlan::Full);
        assert_eq!(
            plan(Some("bytes=0-499"), len),
            RangePlan::Ranges(vec![0..500])
        );
        assert_eq!(
            plan(Some("bytes=500-"), len),
            RangePlan::Ranges(vec![500..1000])
        );
        assert_eq!(
            plan(Some("bytes=-200"), len),
            RangePlan::Ranges(vec![800..1000])
        );
        // A suffix longer than the object is the whole object.
        assert_eq!(
            plan(Some("bytes=-5000"), len),
            RangePlan::Ranges(vec![0..1000])
        );
        // An end past the object is clamped.
        assert_eq!(
            plan(Some("bytes=900-5000"), len),
            RangePlan::Ranges(vec![900..1000])
        );
        assert_eq!(
            plan(Some("bytes=0-9, 100-109"), len),
            RangePlan::Ranges(vec![0..10, 100..110])
        );
        // Unsatisfiable: starts at or past the end, zero suffix, reversed.
        assert_eq!(plan(Some("bytes=1000-"), len), RangePlan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=1000-1001"), len), RangePlan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=-0"), len), RangePlan::Unsatisfiable);
        // A reversed range makes the header invalid: ignored.
        assert_eq!(plan(Some("bytes=500-400"), len), RangePlan::Full);
        assert_eq!(plan(Some("bytes=a-b"), len), RangePlan::Full);
        // Unsatisfiable ranges are dropped when others remain.
        assert_eq!(
            plan(Some("bytes=2000-3000, 0-1"), len),
            RangePlan::Ranges(vec![0..2])
        );
        // Overlapping ranges and too many ranges are refused.
        assert_eq!(
            plan(Some("bytes=0-100, 50-150"), len),
            RangePlan::Unsatisfiable
        );
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            plan(Some(&format!("bytes={many}")), len),
            RangePlan::Unsatisfiable
        );
        // Not a byte range at all: ignored.
        assert_eq!(plan(Some("items=0-1"), len), RangePlan::Full);
        assert_eq!(plan(Some("garbage"), len), RangePlan::Full);
        // Nothing is satisfiable in an empty object.
        assert_eq!(plan(Some("bytes=0-0"), 0), RangePlan::Unsatisfiable);
    }
}
