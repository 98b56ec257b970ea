//! Segmented upload of live calls: which gateway node stages a
//! recording's spool media log in the blob store, and how far.

use chrono::{DateTime, Utc};

use super::{RecordingId, TenantId};

/// Why a recording was stored from its staged segments by another node.
pub const PARTIAL_GATEWAY_NODE_LOST: &str = "gateway-node-lost";

/// The segment upload of one recording: while its call runs, the gateway
/// node recording it (`node`) stages the new sealed records of the
/// recording's spool media log every `[uploader] segment_seconds` as
/// uncommitted blocks `0..blocks` of `object_key` in the tenant's
/// container (`staged_len` bytes of the log in all), and renews
/// `lease_until` (all of its rows at once). When the lease has run out
/// (the node is lost), another node takes the row over (`epoch` + 1, a
/// fencing token), commits the blocks and stores the recording from them.
/// The row is deleted once the recording is stored (or erased) by the
/// node that began it; a row that was taken over is *retired* instead
/// (journal emptied, nothing staged, lease until [`RETIRED_LEASE_UNTIL`]):
/// the mark that tells the lost node, should it come back with its disk,
/// that another node stored the recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentUpload {
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    /// The node staging (or recovering) the recording: its `node_name`.
    pub node: String,
    /// 1 when begun, + 1 on every takeover.
    pub epoch: i64,
    pub lease_until: DateTime<Utc>,
    /// The blob key of the staged log in the tenant's container.
    pub object_key: String,
    /// Blocks staged (indexes `0..blocks`).
    pub blocks: u32,
    /// Bytes of the media log staged (header and whole records).
    pub staged_len: u64,
    /// The spool journal of the recording as it was begun (JSON): tenant,
    /// ids, stream ids and content types, times, and the data key
    /// *wrapped* under the tenant's KEK. No media, no clear key, no
    /// personal data.
    pub journal: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The lease of a retired row (9999-12-31): it never lapses.
pub fn retired_lease_until() -> DateTime<Utc> {
    DateTime::from_timestamp(RETIRED_LEASE_UNTIL, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// [`retired_lease_until`] in seconds since the epoch.
pub const RETIRED_LEASE_UNTIL: i64 = 253_402_214_400;

impl SegmentUpload {
    /// Whether the row is retired (its recording stored by the node that
    /// took it over).
    pub fn is_retired(&self) -> bool {
        self.journal.is_empty()
    }
}
