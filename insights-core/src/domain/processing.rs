//! Processing records: every call to an external AI provider, so a tenant
//! can show which of its data left the premises, when, to whom and how
//! much (GDPR Art. 30). Records carry ids and byte counts only, never
//! content.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ProviderCallId, RecordingId, TenantId, string_enum};

string_enum!(
    /// How a provider call ended.
    ProviderCallOutcome {
        /// 2xx: the provider answered.
        Ok => "ok",
        /// 429: the provider asked us to slow down.
        RateLimited => "rate-limited",
        /// Any other 4xx: the provider refused the request.
        Rejected => "rejected",
        /// 5xx: the provider failed.
        Failed => "failed",
        /// No answer: connection error or timeout (bytes may have left).
        Unreachable => "unreachable",
    }
);

/// One HTTP request to an external AI provider (each retry is its own
/// record: each one sent the data again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderCall {
    pub id: ProviderCallId,
    pub tenant_id: TenantId,
    /// The recording whose data was sent, when there is one. Records
    /// outlive the recording (like audit events).
    pub recording_id: Option<RecordingId>,
    /// Provider id: `openai-compatible`, `azure-openai`, `anthropic`,
    /// `azure-speech`.
    pub provider: String,
    /// What was asked, e.g. `chat-completions`, `audio-transcriptions`,
    /// `create-transcription`, `get-transcription`, `get-result`.
    pub operation: String,
    /// Request body bytes sent (0 for a GET).
    pub bytes_sent: i64,
    /// Response body bytes received.
    pub bytes_received: i64,
    /// The HTTP status, if the provider answered.
    pub http_status: Option<i32>,
    pub outcome: ProviderCallOutcome,
    /// When the request was sent.
    pub at: DateTime<Utc>,
    /// How long it took, ms.
    pub duration_ms: i64,
}

/// Which processing records to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderCallQuery {
    /// Only calls that sent this recording's data.
    pub recording_id: Option<RecordingId>,
    /// Only calls at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only calls before this time.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (0: no limit).
    pub limit: u32,
}
