//! Gaps of a recording: intervals of a live call whose media was
//! deliberately not recorded, with why and who. Today the one reason is a
//! pause: the recorded user (own calls) or a supervisor (in scope) paused
//! the live recording, e.g. while a customer read out card details.
//!
//! A pause is asked for through the API and applied by the gateway node
//! that holds the call, which may be another process: the row is the
//! message between them. The API inserts the gap (`requested_*`); the
//! gateway polls its live calls' open gap, stops writing media and sets
//! `started_at` (from then on nothing is written, not even silence);
//! a resume sets `resume_requested_*`, and once Teams acknowledged
//! `recording` again the gateway writes media again and sets `ended_at`.
//! A call that ends while paused closes its gap at the end.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{GapId, RecordingId, TenantId, string_enum};

string_enum!(
    /// Why a recording has a gap.
    RecordingGapReason {
        /// Paused by a person through the API or web UI.
        Paused => "paused",
    }
);

/// One gap of a recording (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingGap {
    pub id: GapId,
    pub tenant_id: TenantId,
    pub recording_id: RecordingId,
    pub reason: RecordingGapReason,
    /// When the pause was asked for, and by whom (an actor as in the
    /// audit trail: an account id or `oidc:<subject>`, never a name).
    pub requested_at: DateTime<Utc>,
    pub requested_by: String,
    /// When the gateway stopped writing media; `None` until it has.
    pub started_at: Option<DateTime<Utc>>,
    /// When the resume was asked for, and by whom.
    pub resume_requested_at: Option<DateTime<Utc>>,
    pub resumed_by: Option<String>,
    /// When the gateway wrote media again (or the call ended paused);
    /// `None` while the gap is open.
    pub ended_at: Option<DateTime<Utc>>,
}

impl RecordingGap {
    /// A pause asked for by `by` at `at`.
    pub fn pause(
        tenant_id: TenantId,
        recording_id: RecordingId,
        by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: GapId::new(),
            tenant_id,
            recording_id,
            reason: RecordingGapReason::Paused,
            requested_at: at,
            requested_by: by.into(),
            started_at: None,
            resume_requested_at: None,
            resumed_by: None,
            ended_at: None,
        }
    }

    /// What the gateway holding the call should do now: media off while
    /// the gap is open and no resume was asked for.
    pub fn wants_paused(&self) -> bool {
        self.ended_at.is_none() && self.resume_requested_at.is_none()
    }
}
