//! The catalogue of export columns: what an admin can choose from
//! ("configure export file columns" in the seed), each with a stable id,
//! its header, the class of data it reveals and the kind of cell it
//! writes.
//!
//! The participant columns are the seed's list of call metadata (caller,
//! callee, answering and redirecting parties); the rest are the
//! recording's own fields. Ids are stored in saved column choices and
//! used by the API: never rename one.

use std::fmt;
use std::str::FromStr;

use insights_core::domain::{Permission, SecurityProfile};
use serde::{Deserialize, Serialize};

/// The class of data a column reveals, and so the permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldClass {
    /// Facts about the recording itself (times, direction, status...).
    CallData,
    /// Names, phone numbers, URIs and emails of the parties.
    PersonalData,
    /// Words from the transcript.
    Transcript,
    /// Where and how the media is stored (size, type, hash).
    Media,
}

impl FieldClass {
    /// The permission a caller needs for columns of this class (on top of
    /// [`Permission::Export`], which every export needs).
    pub fn required_permission(self) -> Permission {
        match self {
            FieldClass::CallData => Permission::Export,
            FieldClass::PersonalData => Permission::ExportPersonalData,
            FieldClass::Transcript => Permission::ViewTranscript,
            FieldClass::Media => Permission::DownloadMedia,
        }
    }
}

/// How a column's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Text,
    /// An Excel date-time (UTC), formatted `yyyy-mm-dd hh:mm:ss`.
    DateTime,
    /// A number (durations in seconds, counts, sizes in bytes).
    Number,
    Bool,
}

/// One column of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColumnSpec {
    pub id: ColumnId,
    /// The header written in the first row.
    pub header: &'static str,
    pub class: FieldClass,
    pub kind: CellKind,
    /// Column width in Excel character units.
    pub width: f64,
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident => $id:literal, $header:literal, $class:ident, $kind:ident, $width:literal;)+) => {
        /// A column of the export catalogue, by its stable id.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ColumnId {
            $($(#[$doc])* #[serde(rename = $id)] $variant),+
        }

        /// Every column, in the catalogue's order.
        pub const CATALOGUE: &[ColumnSpec] = &[
            $(ColumnSpec {
                id: ColumnId::$variant,
                header: $header,
                class: FieldClass::$class,
                kind: CellKind::$kind,
                width: $width,
            }),+
        ];

        impl ColumnId {
            /// The stable id.
            pub fn as_str(self) -> &'static str {
                match self { $(ColumnId::$variant => $id),+ }
            }
        }

        impl FromStr for ColumnId {
            type Err = UnknownColumn;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($id => Ok(ColumnId::$variant),)+
                    _ => Err(UnknownColumn(s.to_owned())),
                }
            }
        }
    };
}

catalogue! {
    RecordingId => "recording-id", "Recording ID", CallData, Text, 38.0;
    StartedAt => "started-at", "Start (UTC)", CallData, DateTime, 20.0;
    EndedAt => "ended-at", "End (UTC)", CallData, DateTime, 20.0;
    /// Seconds, with milliseconds.
    Duration => "duration", "Duration (s)", CallData, Number, 12.0;
    Kind => "kind", "Type", CallData, Text, 10.0;
    Direction => "direction", "Direction", CallData, Text, 10.0;
    Status => "status", "Status", CallData, Text, 14.0;
    ResultCode => "result-code", "Result code", CallData, Text, 14.0;
    RetentionClass => "retention-class", "Retention class", CallData, Text, 16.0;
    LegalHold => "legal-hold", "Legal hold", CallData, Bool, 10.0;
    HasTranscript => "has-transcript", "Transcript", CallData, Bool, 10.0;
    ParticipantCount => "participant-count", "Participants", CallData, Number, 12.0;
    ExternalCallId => "external-call-id", "Call ID", CallData, Text, 38.0;
    CallChainId => "call-chain-id", "Call chain ID", CallData, Text, 38.0;
    CallerName => "caller-name", "Caller name", PersonalData, Text, 24.0;
    CallerNumber => "caller-number", "Caller number", PersonalData, Text, 18.0;
    CallerUri => "caller-uri", "Caller URI", PersonalData, Text, 30.0;
    CalleeName => "callee-name", "Callee name", PersonalData, Text, 24.0;
    CalleeNumber => "callee-number", "Callee number", PersonalData, Text, 18.0;
    CalleeUri => "callee-uri", "Callee URI", PersonalData, Text, 30.0;
    AnsweredByName => "answered-by-name", "Answered by name", PersonalData, Text, 24.0;
    AnsweredByNumber => "answered-by-number", "Answered by number", PersonalData, Text, 18.0;
    AnsweredByUri => "answered-by-uri", "Answered by URI", PersonalData, Text, 30.0;
    RedirectedByName => "redirected-by-name", "Redirected by name", PersonalData, Text, 24.0;
    RedirectedToName => "redirected-to-name", "Redirected to name", PersonalData, Text, 24.0;
    OrganizerName => "organizer-name", "Organizer name", PersonalData, Text, 24.0;
    OrganizerEmail => "organizer-email", "Organizer email", PersonalData, Text, 30.0;
    /// Names of the parties recorded under policy, `; `-separated.
    RecordedUsers => "recorded-users", "Recorded users", PersonalData, Text, 30.0;
    /// Every party's name, `; `-separated, in roster order.
    ParticipantNames => "participant-names", "Participant names", PersonalData, Text, 40.0;
    ParticipantEmails => "participant-emails", "Participant emails", PersonalData, Text, 40.0;
    /// The search's transcript matches (matches wrapped in `[[ ]]`), one
    /// per line; empty unless the search has transcript words.
    TranscriptMatches => "transcript-matches", "Transcript matches", Transcript, Text, 60.0;
    MediaType => "media-type", "Media type", Media, Text, 14.0;
    /// Size of the (decrypted) media in bytes.
    MediaSize => "media-size", "Media size (bytes)", Media, Number, 16.0;
    /// SHA-256 of the stored (encrypted) object.
    MediaSha256 => "media-sha256", "Media SHA-256", Media, Text, 66.0;
}

impl ColumnId {
    /// The column's catalogue entry.
    pub fn spec(self) -> &'static ColumnSpec {
        // The catalogue lists every variant in declaration order.
        &CATALOGUE[self as usize]
    }
}

impl fmt::Display for ColumnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column id that is not in the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown export column `{0}`")]
pub struct UnknownColumn(pub String);

/// The columns of a new export configuration: the seed's call metadata
/// (parties by role) and the recording's basics.
pub const DEFAULT_COLUMNS: &[ColumnId] = &[
    ColumnId::StartedAt,
    ColumnId::Duration,
    ColumnId::Direction,
    ColumnId::Kind,
    ColumnId::CallerName,
    ColumnId::CallerNumber,
    ColumnId::CallerUri,
    ColumnId::CalleeName,
    ColumnId::CalleeNumber,
    ColumnId::CalleeUri,
    ColumnId::AnsweredByName,
    ColumnId::AnsweredByNumber,
    ColumnId::AnsweredByUri,
    ColumnId::RedirectedByName,
    ColumnId::RedirectedToName,
    ColumnId::Status,
    ColumnId::RecordingId,
];

/// What a caller may export, from their security profile's permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldAccess {
    permissions: Vec<Permission>,
}

impl FieldAccess {
    /// Access granted by these permissions.
    pub fn from_permissions(permissions: impl IntoIterator<Item = Permission>) -> Self {
        Self {
            permissions: permissions.into_iter().collect(),
        }
    }

    /// The permissions this access was made from.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// Access granted by a security profile.
    pub fn from_profile(profile: &SecurityProfile) -> Self {
        Self::from_permissions(profile.permissions.iter().copied())
    }

    /// May the caller export at all?
    pub fn may_export(&self) -> bool {
        self.permissions.contains(&Permission::Export)
    }

    /// May the caller see columns of `class`?
    pub fn allows(&self, class: FieldClass) -> bool {
        self.may_export() && self.permissions.contains(&class.required_permission())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_the_catalogue_is_in_variant_order() {
        for (i, spec) in CATALOGUE.iter().enumerate() {
            assert_eq!(spec.id as usize, i, "{}", spec.id);
            assert_eq!(spec.id.as_str().parse::<ColumnId>(), Ok(spec.id));
            assert_eq!(
                serde_json::to_string(&spec.id).ok(),
                Some(format!("\"{}\"", spec.id.as_str()))
            );
            assert!(spec.header.len() <= 255 && spec.width > 0.0);
        }
        assert_eq!(
            "callers-name".parse::<ColumnId>(),
            Err(UnknownColumn("callers-name".into()))
        );
    }

    #[test]
    fn the_seeds_personal_data_needs_its_permission() {
        for id in [
            ColumnId::CallerName,
            ColumnId::CallerNumber,
            ColumnId::CallerUri,
            ColumnId::CalleeName,
            ColumnId::CalleeNumber,
            ColumnId::CalleeUri,
            ColumnId::AnsweredByName,
            ColumnId::AnsweredByNumber,
            ColumnId::AnsweredByUri,
            ColumnId::RedirectedByName,
            ColumnId::RedirectedToName,
        ] {
            assert_eq!(id.spec().class, FieldClass::PersonalData, "{id}");
        }
        let admin = FieldAccess::from_permissions(
            insights_core::domain::Role::TenantAdmin.default_permissions(),
        );
        assert!(admin.allows(FieldClass::PersonalData));
        let narrow = FieldAccess::from_permissions([Permission::Search, Permission::Export]);
        assert!(narrow.allows(FieldClass::CallData));
        assert!(!narrow.allows(FieldClass::PersonalData));
        assert!(!narrow.allows(FieldClass::Transcript));
        assert!(!narrow.allows(FieldClass::Media));
        // Without Export nothing is exportable.
        let none = FieldAccess::from_permissions([Permission::ViewTranscript]);
        assert!(!none.may_export() && !none.allows(FieldClass::Transcript));
    }
}
