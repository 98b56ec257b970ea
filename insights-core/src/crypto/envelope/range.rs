//! Random access: planning which ciphertext bytes a plaintext range
//! needs ([`Header::plan_range`]) and decrypting them ([`decrypt_range`]).

use std::ops::Range;

use zeroize::{Zeroize, Zeroizing};

use super::header::Layout;
use super::{CryptoError, DataKey, Header, Opener, Result, TAG_LEN, to_usize};

impl Header {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use zeroize::Zeroizing;

    use super::super::test_support::*;
    use super::super::*;

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
}
