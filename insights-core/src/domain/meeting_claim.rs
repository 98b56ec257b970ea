//! Which gateway node records a meeting: the claim on a tenant's call
//! chain that de-duplicates the bot legs of one meeting across nodes.

use chrono::{DateTime, Utc};

use super::{RecordingId, TenantId};

/// The claim of one call chain (a meeting's call chain id, else its chat
/// thread id) of a tenant: the one recording every leg of the meeting
/// joins, and the node whose leg records it (the primary) while its lease
/// runs. A node renews its lease while it records; a lease that has run
/// out (the node died) may be taken over by another node, whose recording
/// continues the lost one: the claim then names the new recording, bumps
/// `epoch` (a fencing token: a node that finds a higher epoch than its own
/// has lost the claim) and remembers what it took over in `previous`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingClaim {
    pub tenant_id: TenantId,
    pub chain_key: String,
    pub recording_id: RecordingId,
    /// The node holding the claim (its per-process node id).
    pub holder: String,
    /// The holder's lease ends here unless renewed.
    pub lease_until: DateTime<Utc>,
    /// 1 when claimed, +1 on every takeover.
    pub epoch: i64,
    pub claimed_at: DateTime<Utc>,
    /// What the last takeover replaced (none if never taken over).
    pub previous: Option<ClaimTakeover>,
}

/// The claim a takeover replaced: the recording and node that were lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimTakeover {
    pub recording_id: RecordingId,
    pub holder: String,
    /// When the lost holder's lease ran out.
    pub lease_until: DateTime<Utc>,
}

/// Why a meeting's recording continues in another recording.
pub const FAILOVER_PRIMARY_NODE_LOST: &str = "primary-node-lost";

/// The mark of a meeting recording that continues another one after the
/// node recording it was lost: the interval in which no node held the
/// meeting (from the lost lease's last renewal to the takeover) and why.
/// The continuation's media starts before `gap_from` when its standby
/// leg recorded all along, so the interval says where to look, not that
/// audio is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingFailover {
    pub tenant_id: TenantId,
    /// The continuation.
    pub recording_id: RecordingId,
    /// The recording it continues.
    pub continues: RecordingId,
    pub gap_from: DateTime<Utc>,
    pub gap_to: DateTime<Utc>,
    /// [`FAILOVER_PRIMARY_NODE_LOST`].
    pub reason: String,
    /// The node that took over.
    pub node: String,
}

impl MeetingClaim {
    /// Whether `node` holds this claim at `at` (its lease still runs).
    pub fn held_by(&self, node: &str, at: DateTime<Utc>) -> bool {
        self.holder == node && self.lease_until > at
    }

    /// Whether the claim's lease has run out at `at` (its holder is
    /// presumed dead): another node may take it over.
    pub fn expired(&self, at: DateTime<Utc>) -> bool {
        self.lease_until <= at
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_claim_is_held_until_its_lease_runs_out() {
        let at = Utc::now();
        let c = MeetingClaim {
            tenant_id: TenantId::new(),
            chain_key: "chain".into(),
            recording_id: RecordingId::new(),
            holder: "node-a".into(),
            lease_until: at + Duration::seconds(3),
            epoch: 1,
            claimed_at: at,
            previous: None,
        };
        assert!(c.held_by("node-a", at));
        assert!(!c.held_by("node-b", at));
        assert!(!c.expired(at));
        let later = at + Duration::seconds(3);
        assert!(!c.held_by("node-a", later), "the lease ended");
        assert!(c.expired(later));
    }
}
