//! The per-recording journal file (`journal.json`): what restart needs to
//! know about a spool entry. Rewritten crash-safely on every state change
//! (tmp → fsync → rename → fsync dir); never holds media or clear keys.

use std::path::Path;

use chrono::{DateTime, Utc};
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::{ParticipantId, RecordingId, StreamId, TenantId};
use serde::{Deserialize, Serialize};

use insights_core::fsio;

/// Version of the journal file format.
pub const JOURNAL_VERSION: u32 = 1;
/// File name of the journal inside an entry directory.
pub const JOURNAL_FILE: &str = "journal.json";
/// File name of the media log inside an entry directory.
pub const MEDIA_FILE: &str = "media.spl";

/// The lifecycle of a spool entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryState {
    /// Media is being written.
    Live,
    /// Capture ended (completely or as partial); waiting for upload.
    Finished,
    /// Blob, manifest and metadata are stored; the spool copy is being
    /// deleted (a restart finishes the deletion).
    Uploaded,
}

/// Why a recording was closed without its writer finishing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartialReason {
    /// The process stopped (crash, kill) while the recording was live;
    /// closed on the next start with everything that was durable.
    RecoveredAfterRestart,
    /// The recording's handle was dropped without `finish`.
    Abandoned,
    /// Writing to the spool failed; closed with what was durable.
    WriteFailed,
    /// The gateway node recording it was lost (with its disk); another
    /// node stored it from the segments staged in the blob store
    /// ([`crate::segments`]).
    GatewayNodeLost,
}

impl PartialReason {
    /// Stable string form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RecoveredAfterRestart => "recovered-after-restart",
            Self::Abandoned => "abandoned",
            Self::WriteFailed => "write-failed",
            Self::GatewayNodeLost => insights_core::domain::PARTIAL_GATEWAY_NODE_LOST,
        }
    }
}

/// One stream of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalStream {
    pub stream_id: StreamId,
    pub participant_id: Option<ParticipantId>,
    /// MIME type of the plaintext (e.g. `audio/ogg`).
    pub content_type: String,
    /// Set when the entry is finished.
    pub summary: Option<StreamSummary>,
}

/// What one stream holds once finished (what "the spool says", compared
/// at upload with what the uploader reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSummary {
    pub records: u64,
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext, lower-case hex.
    pub plaintext_sha256: String,
    /// The stream's last record (with the last flag) is in the log.
    pub complete: bool,
}

/// Alarm progress of an entry that waits too long for upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alarms {
    pub warned_at: Option<DateTime<Utc>>,
    pub warn_audited: bool,
    pub expired_at: Option<DateTime<Utc>>,
    pub expired_audited: bool,
}

/// The journal of one spool entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u32,
    pub recording_id: RecordingId,
    pub tenant_id: TenantId,
    pub state: EntryState,
    /// When the spool entry was created.
    pub created_at: DateTime<Utc>,
    /// When the call started (from the caller).
    pub started_at: DateTime<Utc>,
    /// When capture ended (finish, or the last durable record of a
    /// recovered entry).
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when the recording was closed as partial.
    pub partial: Option<PartialReason>,
    /// The recording's data key, wrapped under the tenant's KEK.
    pub data_key: WrappedDataKey,
    /// Participant ids (no names, numbers or addresses).
    pub participants: Vec<ParticipantId>,
    pub streams: Vec<JournalStream>,
    /// Bytes of the media log that hold valid records (set when finished);
    /// anything after them was not durable or not authentic.
    pub valid_len: Option<u64>,
    /// Bytes after `valid_len` (torn tail), kept until upload.
    pub discarded_tail_bytes: u64,
    #[serde(default)]
    pub alarms: Alarms,
}

impl Journal {
    /// Reads a journal file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let j: Journal =
            serde_json::from_slice(&bytes).map_err(|e| format!("malformed journal: {e}"))?;
        if j.version != JOURNAL_VERSION {
            return Err(format!("unsupported journal version {}", j.version));
        }
        Ok(j)
    }

    /// Writes the journal crash-safely.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        fsio::write_atomic(path, &bytes)
    }

    /// The stream ids in order.
    pub fn stream_ids(&self) -> Vec<StreamId> {
        self.streams.iter().map(|s| s.stream_id).collect()
    }
}
