use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{KeyId, ParticipantId, RecordingId, StreamId, TenantId, UserId, string_enum};

string_enum!(
    /// Whether a recording is a 1:1/PSTN call or a meeting.
    RecordingKind { Call => "call", Meeting => "meeting" }
);

string_enum!(
    /// Direction of a call from the recorded user's point of view.
    Direction {
        Inbound => "inbound",
        Outbound => "outbound",
        /// Both parties are inside the tenant.
        Internal => "internal",
        Unknown => "unknown",
    }
);

string_enum!(
    /// The lifecycle of a recording, from the first media frame to erasure.
    RecordingStatus {
        /// Media is being captured.
        Recording => "recording",
        /// Capture ended; the encrypted media sits in the local spool.
        Spooled => "spooled",
        /// Media is in the tenant's blob container and verified.
        Stored => "stored",
        /// Recording could not proceed (the reason is in `result_code`).
        Failed => "failed",
        /// Media was deleted (retention or erasure); metadata may remain.
        MediaDeleted => "media-deleted",
    }
);

impl RecordingStatus {
    /// The statuses a recording may be in for `self` to become its status:
    /// the lifecycle only moves forward. `recording → spooled → stored`;
    /// `failed` only from before `stored`; `media-deleted` from anything and
    /// final. A status may always be set again (to update `ended_at` or
    /// `result_code`). `stored` also follows `failed`: media verified in the
    /// tenant's container outranks a failure guessed at call end.
    ///
    /// Stores apply this inside the UPDATE itself, so a late writer (a
    /// call-end notification processed after the uploader stored the media)
    /// cannot move a stored recording back, even under concurrency.
    pub fn may_follow(self) -> &'static [RecordingStatus] {
        use RecordingStatus::*;
        match self {
            Recording => &[Recording],
            Spooled => &[Recording, Spooled],
            Stored => &[Recording, Spooled, Stored, Failed],
            Failed => &[Recording, Spooled, Failed],
            MediaDeleted => RecordingStatus::ALL,
        }
    }

    /// Whether a recording in status `self` may move to `next`.
    pub fn can_become(self, next: RecordingStatus) -> bool {
        next.may_follow().contains(&self)
    }
}

string_enum!(
    /// The part a participant played in a call or meeting (seed §4.8.1).
    ParticipantRole {
        Caller => "caller",
        Callee => "callee",
        AnsweredBy => "answered-by",
        RedirectedBy => "redirected-by",
        RedirectedTo => "redirected-to",
        Organizer => "organizer",
        Attendee => "attendee",
    }
);

/// One party of a recording. Identifiers are what the platform reported;
/// `directory_user_id` links to the directory when the party is known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub id: ParticipantId,
    pub role: ParticipantRole,
    pub display_name: Option<String>,
    /// Phone number, E.164 when it could be normalised (see [`normalize_phone`]).
    pub phone_number: Option<String>,
    /// SIP or Tel URI.
    pub uri: Option<String>,
    pub email: Option<String>,
    pub directory_user_id: Option<UserId>,
    /// This participant is a user whose calls are recorded under policy
    /// (the recording is visible to them as "their" recording).
    pub recorded_user: bool,
    /// Offset from the recording start when the party joined, ms.
    pub joined_ms: Option<i64>,
    pub left_ms: Option<i64>,
}

/// One media track of a recording (one per participant for unmixed audio).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaStream {
    pub id: StreamId,
    pub participant_id: Option<ParticipantId>,
    /// Track / channel index inside the media object.
    pub track: i32,
    /// `audio`, `video` or `screen`.
    pub media_type: String,
    /// Codec inside the container, e.g. `opus`.
    pub codec: String,
    pub sample_rate: i32,
    /// Offset of the stream's first sample from the recording start, ms.
    pub start_ms: i64,
}

/// Where a recording's encrypted media lives and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaObject {
    /// Blob container (one per tenant).
    pub container: String,
    /// Object key inside the container.
    pub key: String,
    /// Size of the stored (encrypted) object in bytes.
    pub byte_size: i64,
    /// SHA-256 of the stored (encrypted) object, lower-case hex.
    pub sha256: String,
    /// The data key the object is encrypted with.
    pub data_key_id: KeyId,
    /// MIME type of the plaintext media, e.g. `audio/ogg`.
    pub content_type: String,
    /// Size of the plaintext media in bytes.
    pub plaintext_size: i64,
}

/// A recorded call or meeting with its parties and media.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: RecordingId,
    pub tenant_id: TenantId,
    pub kind: RecordingKind,
    pub direction: Direction,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// The platform's call id (Graph call id), for correlation.
    pub external_call_id: Option<String>,
    /// Graph `callChainId`, shared by all legs of one call.
    pub call_chain_id: Option<String>,
    pub status: RecordingStatus,
    /// Result code reported when the call ended or failed.
    pub result_code: Option<String>,
    /// Retention class name, matched by retention policies.
    pub retention_class: String,
    pub legal_hold: bool,
    pub has_transcript: bool,
    pub media: Option<MediaObject>,
    pub participants: Vec<Participant>,
    pub streams: Vec<MediaStream>,
    /// What the capturing source reported beyond the common fields, by
    /// name: for SIPREC calls the metadata's extension data
    /// (`siprec.ext.<namespace> <element>`) and the DTMF events
    /// (`dtmf`). Empty for most recordings.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl Recording {
    /// A new recording in `recording` status with no parties yet.
    pub fn new(
        tenant_id: TenantId,
        kind: RecordingKind,
        direction: Direction,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: RecordingId::new(),
            tenant_id,
            kind,
            direction,
            started_at,
            ended_at: None,
            duration_ms: None,
            external_call_id: None,
            call_chain_id: None,
            status: RecordingStatus::Recording,
            result_code: None,
            retention_class: "default".to_owned(),
            legal_hold: false,
            has_transcript: false,
            media: None,
            participants: Vec::new(),
            streams: Vec::new(),
            attributes: BTreeMap::new(),
            created_at: super::now(),
        }
    }
}

string_enum!(
    /// Result ordering for recording search.
    SortKey {
        StartedDesc => "started-desc",
        StartedAsc => "started-asc",
        DurationDesc => "duration-desc",
        DurationAsc => "duration-asc",
    }
);

/// A recording search. All filters are optional and combine with AND.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingQuery {
    /// `started_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `started_at < to`.
    pub to: Option<DateTime<Utc>>,
    /// Words matched (full-text, prefix) against participant names, emails
    /// and URIs, or digits matched as a substring of participant numbers.
    pub participant: Option<String>,
    /// Recordings in which this directory user took part.
    pub user_id: Option<UserId>,
    /// Restrict to recordings in which any of these directory users took
    /// part (security-profile scope); `Some(vec![])` matches nothing.
    pub visible_to_users: Option<Vec<UserId>>,
    pub direction: Option<Direction>,
    pub kind: Option<RecordingKind>,
    pub min_duration_ms: Option<i64>,
    pub max_duration_ms: Option<i64>,
    pub has_transcript: Option<bool>,
    pub legal_hold: Option<bool>,
    /// Full-text query over transcript segments.
    pub transcript_text: Option<String>,
    pub sort: SortKey,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: u32,
    /// Count every match for `total`. Without it the count stops at
    /// [`SEARCH_TOTAL_CAP`] and the page says `total_is_lower_bound`, so
    /// a broad search does not pay for counting a million rows.
    pub exact_total: bool,
}

/// Matches counted for a search's `total` unless `exact_total` is asked
/// for; beyond it the total is reported as a lower bound.
pub const SEARCH_TOTAL_CAP: u64 = 10_000;

impl Default for RecordingQuery {
    fn default() -> Self {
        Self {
            from: None,
            to: None,
            participant: None,
            user_id: None,
            visible_to_users: None,
            direction: None,
            kind: None,
            min_duration_ms: None,
            max_duration_ms: None,
            has_transcript: None,
            legal_hold: None,
            transcript_text: None,
            sort: SortKey::StartedDesc,
            cursor: None,
            limit: 50,
            exact_total: false,
        }
    }
}

impl RecordingQuery {
    /// The page size clamped to 1..=500.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, 500)
    }

    /// How many matching rows a search counts: one past
    /// [`SEARCH_TOTAL_CAP`] (to know there are more), or `None` (all of
    /// them) when `exact_total` is asked for.
    pub fn count_limit(&self) -> Option<i64> {
        (!self.exact_total).then(|| i64::try_from(SEARCH_TOTAL_CAP).unwrap_or(i64::MAX) + 1)
    }

    /// A page's `total` and `total_is_lower_bound` from the rows counted
    /// under [`Self::count_limit`].
    pub fn reported_total(&self, counted: i64) -> (u64, bool) {
        let n = u64::try_from(counted).unwrap_or_default();
        if !self.exact_total && n > SEARCH_TOTAL_CAP {
            (SEARCH_TOTAL_CAP, true)
        } else {
            (n, false)
        }
    }
}

/// One row of a search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingSummary {
    pub recording: Recording,
    /// Transcript snippets matching `transcript_text`, with matches wrapped
    /// in `[[` and `]]`.
    pub snippets: Vec<String>,
}

/// A page of search results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    pub items: Vec<RecordingSummary>,
    /// Number of recordings matching the filters (all pages); at most
    /// [`SEARCH_TOTAL_CAP`] unless the query asked for `exact_total`.
    pub total: u64,
    /// More than `total` recordings match: the count stopped at
    /// [`SEARCH_TOTAL_CAP`].
    #[serde(default)]
    pub total_is_lower_bound: bool,
    /// Cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// Normalises a phone number to E.164 where possible: keeps a leading `+`
/// and the digits; `00` international prefix becomes `+`; strips `tel:`
/// and visual separators. Returns `None` when no digits remain. Numbers
/// without a country code are returned as bare digits (no guessing).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = s.strip_prefix("tel:").unwrap_or(s);
    // Drop URI parameters such as `;ext=12` or `;phone-context=...`.
    let s = s.split(';').next().unwrap_or(s);
    let plus = s.starts_with('+');
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    if plus {
        Some(format!("+{digits}"))
    } else if let Some(rest) = digits.strip_prefix("00") {
        if rest.is_empty() {
            None
        } else {
            Some(format!("+{rest}"))
        }
    } else {
        Some(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_status_never_moves_back() {
        use RecordingStatus::*;
        assert!(Recording.can_become(Spooled) && Spooled.can_become(Stored));
        assert!(Stored.can_become(Stored), "a status may be set again");
        for late in [Recording, Spooled, Failed] {
            assert!(!Stored.can_become(late), "stored never becomes {late}");
        }
        for s in RecordingStatus::ALL {
            assert!(s.can_become(MediaDeleted));
            assert_eq!(MediaDeleted.can_become(*s), *s == MediaDeleted, "{s}");
        }
    }

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            normalize_phone("+1 (425) 555-0100").as_deref(),
            Some("+14255550100")
        );
        assert_eq!(
            normalize_phone("tel:+44-20-7946-0958;ext=12").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("0049 30 123456").as_deref(),
            Some("+4930123456")
        );
        assert_eq!(normalize_phone("030 123456").as_deref(), Some("030123456"));
        assert_eq!(normalize_phone("no digits"), None);
    }

    #[test]
    fn enums_round_trip_through_strings() {
        for r in ParticipantRole::ALL {
            assert_eq!(r.as_str().parse::<ParticipantRole>().ok(), Some(*r));
        }
        assert!("nonsense".parse::<RecordingStatus>().is_err());
        assert_eq!(
            serde_json::to_string(&ParticipantRole::AnsweredBy)
                .ok()
                .as_deref(),
            Some("\"answered-by\"")
        );
    }
}
