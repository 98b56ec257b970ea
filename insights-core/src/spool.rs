//! The local spool as other components see it: a place that may hold
//! copies of recordings not uploaded yet.
//!
//! The spool itself lives in `bot-gateway` (`bot_gateway::spool`); tools
//! that must remove copies from it (GDPR erasure in `gdpr-tools`) call it
//! through [`SpoolCopies`] so that the spool's own delete protocol (its
//! lock, rename to trash, fsyncs) is the only one, and `gdpr-tools` does
//! not depend on the gateway.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{RecordingId, TenantId};

/// What removing a recording from the spool found and deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedFromSpool {
    /// The recording's spool entry (journal and encrypted media log) was
    /// deleted.
    pub entry: bool,
    /// Leftovers of interrupted spool changes for the recording (an entry
    /// being created or being deleted when a process stopped) deleted.
    pub leftovers: u32,
    /// Bytes of files deleted (entry and leftovers).
    pub bytes: u64,
}

impl RemovedFromSpool {
    /// Whether anything was deleted.
    pub fn anything(&self) -> bool {
        self.entry || self.leftovers > 0
    }
}

/// Why a recording could not be removed from the spool. Nothing was
/// deleted in any of these cases; the caller may try again later.
#[derive(Debug, thiserror::Error)]
pub enum SpoolCopiesError {
    /// The recording is still being captured (a live call): its copy is
    /// removed once the call has ended.
    #[error(
        "recording {0} is still being recorded to the spool; try again once the call has ended"
    )]
    Live(RecordingId),
    /// Another process (`insights serve` or `insights gateway`) owns the
    /// spool directory: only it may change the entries.
    #[error(
        "the spool holds a copy of recording {0} but is owned by a running gateway process; \
         erase through that process's API, or stop it, and try again"
    )]
    InUse(RecordingId),
    /// The spool entry belongs to another tenant.
    #[error("the spool entry of recording {0} belongs to another tenant; left alone")]
    OtherTenant(RecordingId),
    /// Disk I/O failed.
    #[error("spool: {0}")]
    Io(String),
}

/// Removes copies of recordings from the local spool, with the spool's own
/// crash-safe delete protocol.
#[async_trait]
pub trait SpoolCopies: Send + Sync {
    /// Deletes every spool copy of the recording (its entry and any
    /// leftovers of interrupted changes) and reports what was deleted.
    /// Removing a recording the spool does not hold succeeds with nothing
    /// deleted, so the call is idempotent.
    async fn remove_recording(
        &self,
        tenant: TenantId,
        id: RecordingId,
    ) -> Result<RemovedFromSpool, SpoolCopiesError>;
}
