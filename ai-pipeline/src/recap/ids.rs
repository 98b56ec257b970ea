//! Deterministic insight ids: a recap stored again (a retried or re-run
//! job) replaces its items instead of adding copies.

use insights_core::domain::{InsightId, InsightKind, RecordingId};
use sha2::{Digest, Sha256};

/// The id of the `index`-th item of `kind` in the recap of `recording`:
/// the index (big-endian) in the first four bytes, so items of one kind
/// and time sort in recap order by id, then a SHA-256 of the three; a
/// UUIDv8 ("custom").
pub(crate) fn insight_id(recording: RecordingId, kind: InsightKind, index: usize) -> InsightId {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    let mut h = Sha256::new();
    h.update(b"insights/recap-item/v1\0");
    h.update(recording.0.as_bytes());
    h.update(kind.as_str().as_bytes());
    h.update(index.to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&index.to_be_bytes());
    bytes[4..].copy_from_slice(&digest[..12]);
    InsightId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_ordered_by_index() {
        let r = RecordingId::new();
        let a = insight_id(r, InsightKind::KeyPoint, 0);
        assert_eq!(a, insight_id(r, InsightKind::KeyPoint, 0));
        assert_ne!(a, insight_id(r, InsightKind::Topic, 0));
        assert_ne!(a, insight_id(RecordingId::new(), InsightKind::KeyPoint, 0));
        let ids: Vec<_> = (0..300)
            .map(|i| insight_id(r, InsightKind::KeyPoint, i))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a.0.get_version_num(), 8);
    }
}
