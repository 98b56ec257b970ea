//! Data-subject requests (GDPR): what the store needs to find a subject's
//! participant rows and to persist erasure requests. The rules (which
//! identifiers, what is erased, certificates) live in `gdpr-tools`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ParticipantId, RecordingId, TenantId, UserId};

/// Exact keys a participant row is matched against, already normalised by
/// the caller: every value is compared for equality (so the store can use
/// plain indexes, also under PostgreSQL row-level security).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectKeys {
    /// Stored forms of the subject's phone numbers (`+14255550100`, and
    /// national forms such as `04255550100`), compared with `phone_number`.
    pub phones: Vec<String>,
    /// Lower-case emails, compared with the lower-cased `email`.
    pub emails: Vec<String>,
    /// Lower-case URIs with scheme (`sip:…`, `tel:+…`), compared with the
    /// lower-cased `uri`.
    pub uris: Vec<String>,
    /// Directory users, compared with `directory_user_id`.
    pub directory_user_ids: Vec<UserId>,
    /// Lower-case full names, compared with the lower-cased `display_name`.
    pub names: Vec<String>,
}

impl SubjectKeys {
    /// True when no key is set (such a query matches nothing).
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty()
            && self.emails.is_empty()
            && self.uris.is_empty()
            && self.directory_user_ids.is_empty()
            && self.names.is_empty()
    }
}

/// A participant row that matched [`SubjectKeys`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantHit {
    pub recording_id: RecordingId,
    pub participant_id: ParticipantId,
    pub started_at: DateTime<Utc>,
}

/// A persisted erasure request: its status and an opaque state document
/// owned by `gdpr-tools` (plan, progress, outcome, certificate). Kept so
/// an interrupted erasure resumes where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    /// `planned`, `running`, `completed`, `partially-deferred`, `blocked`…
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Actor id of who asked (never a name).
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub state: serde_json::Value,
}

/// What erasures did to one recording, read from its `gdpr-erasure` audit
/// events (append-only; every erasure writes one per recording it
/// handled, with `details.outcome`). The uploader, the transcription
/// worker and `insights reprocess` all decide from this one reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErasureOutcome {
    /// No erasure touched the recording.
    None,
    /// A subject was erased from it; its media was kept until retention
    /// (no media-deletion waiver). Transcribing it again would bring the
    /// subject's words back.
    MediaKept,
    /// Erased with its media (or deleted).
    MediaGone,
}

impl ErasureOutcome {
    /// The outcome from a recording's `gdpr-erasure` events (any order).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a super::AuditEvent>) -> Self {
        let mut out = ErasureOutcome::None;
        for e in events {
            if e.action != super::AuditAction::GdprErasure {
                continue;
            }
            match e.details.get("outcome").and_then(|o| o.as_str()) {
                Some("deleted" | "pseudonymized") => return ErasureOutcome::MediaGone,
                Some("pseudonymized-media-deferred") => out = ErasureOutcome::MediaKept,
                _ => {}
            }
        }
        out
    }

    /// Whether an erasure touched the recording at all.
    pub fn is_erased(self) -> bool {
        self != ErasureOutcome::None
    }
}
