use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Direction, LegalHoldId, Participant, Recording, RecordingId, RecordingKind, RetentionPolicyId,
    TenantId, UserId, string_enum,
};

string_enum!(
    /// What retention does when a recording is due.
    RetentionAction {
        /// Delete the media (and crypto-shred its key); keep call metadata.
        DeleteMedia => "delete-media",
        /// Delete media, metadata, transcript and insights.
        DeleteRecording => "delete-recording",
    }
);

/// Which recordings a retention policy applies to. Empty fields match all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionScope {
    pub kind: Option<RecordingKind>,
    pub direction: Option<Direction>,
    /// Directory group of a recorded user.
    pub group: Option<String>,
    /// Retention class of the recording.
    pub retention_class: Option<String>,
}

/// Keep matching recordings for `retain_days`, then apply `action`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub id: RetentionPolicyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub scope: RetentionScope,
    pub retain_days: i32,
    pub action: RetentionAction,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

/// Which recordings a legal hold covers. A recording is held when it
/// matches every field that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldScope {
    pub user_id: Option<UserId>,
    /// A phone number, email or URI of any participant.
    pub participant_identifier: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Explicit recordings.
    pub recording_ids: Vec<RecordingId>,
}

impl HoldScope {
    /// True when no field is set: such a hold would cover nothing, and
    /// placing one is refused.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self
                .participant_identifier
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            && self.from.is_none()
            && self.to.is_none()
            && self.recording_ids.is_empty()
    }

    /// Whether this scope covers `rec`: every field that is set must match
    /// (`recording_ids`, when not empty, must name it; `from`/`to` bound
    /// its start, `to` exclusive; `user_id` and `participant_identifier`
    /// must match one of its participants). An empty scope covers nothing.
    pub fn covers(&self, rec: &Recording) -> bool {
        if self.is_empty() {
            return false;
        }
        if !self.recording_ids.is_empty() && !self.recording_ids.contains(&rec.id) {
            return false;
        }
        if self.from.is_some_and(|from| rec.started_at < from) {
            return false;
        }
        if self.to.is_some_and(|to| rec.started_at >= to) {
            return false;
        }
        if let Some(user) = self.user_id
            && !rec
                .participants
                .iter()
                .any(|p| p.directory_user_id == Some(user))
        {
            return false;
        }
        if let Some(ident) = self.participant_identifier.as_deref().map(str::trim)
            && !ident.is_empty()
            && !rec
                .participants
                .iter()
                .any(|p| participant_has_identifier(p, ident))
        {
            return false;
        }
        true
    }
}

/// Whether a participant carries `ident` as phone number, email or URI:
/// compared case-insensitively with any `sip:`/`tel:`/`mailto:` scheme
/// dropped, and phone numbers by their digits (at least six) so
/// `+1 (555) 010-0123`, `tel:+15550100123` and `+15550100123` are one.
pub fn participant_has_identifier(p: &Participant, ident: &str) -> bool {
    let want = strip_scheme(ident);
    let want_digits = phone_digits(want);
    [
        p.phone_number.as_deref(),
        p.email.as_deref(),
        p.uri.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|have| {
        let have = strip_scheme(have);
        have.eq_ignore_ascii_case(want)
            || want_digits
                .as_deref()
                .is_some_and(|w| phone_digits(have).as_deref() == Some(w))
    })
}

fn strip_scheme(s: &str) -> &str {
    let s = s.trim();
    for scheme in ["sip:", "tel:", "mailto:"] {
        if s.len() >= scheme.len() && s[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return &s[scheme.len()..];
        }
    }
    s
}

/// The digits of something that looks like a phone number (only digits,
/// spaces, `+`, `-`, `.`, `(`, `)`, at least six digits); `None` otherwise.
fn phone_digits(s: &str) -> Option<String> {
    let s = s.split(';').next().unwrap_or(s);
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
    {
        return None;
    }
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    (d.len() >= 6).then_some(d)
}

/// A legal hold: held recordings cannot be deleted by anyone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegalHold {
    pub id: LegalHoldId,
    pub tenant_id: TenantId,
    pub case_name: String,
    pub reason: Option<String>,
    pub scope: HoldScope,
    /// Actor id of who placed it.
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    pub lifted_by: Option<String>,
    pub lifted_at: Option<DateTime<Utc>>,
}

impl LegalHold {
    /// A hold is active until it is lifted.
    pub fn is_active(&self) -> bool {
        self.lifted_at.is_none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::domain::{ParticipantId, ParticipantRole};

    fn rec_with(p: Participant) -> Recording {
        let mut r = Recording::new(
            TenantId::new(),
            RecordingKind::Call,
            Direction::Inbound,
            "2026-03-01T10:00:00Z".parse().unwrap(),
        );
        r.participants.push(p);
        r
    }

    fn participant() -> Participant {
        Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: None,
            phone_number: Some("+1 (555) 010-0123".into()),
            uri: Some("sip:Alice@Example.com".into()),
            email: None,
            directory_user_id: None,
            recorded_user: false,
            joined_ms: None,
            left_ms: None,
        }
    }

    #[test]
    fn identifiers_match_across_formats() {
        let r = rec_with(participant());
        let scope = |i: &str| HoldScope {
            participant_identifier: Some(i.into()),
            ..HoldScope::default()
        };
        assert!(scope("tel:+15550100123").covers(&r));
        assert!(scope("+15550100123").covers(&r));
        assert!(scope("alice@example.com").covers(&r));
        assert!(scope("SIP:alice@example.com").covers(&r));
        assert!(!scope("+15550100124").covers(&r));
        assert!(!scope("bob@example.com").covers(&r));
    }

    #[test]
    fn every_set_field_must_match_and_empty_covers_nothing() {
        let r = rec_with(participant());
        assert!(!HoldScope::default().covers(&r));
        let dated = HoldScope {
            from: Some("2026-03-01T00:00:00Z".parse().unwrap()),
            to: Some("2026-03-02T00:00:00Z".parse().unwrap()),
            ..HoldScope::default()
        };
        assert!(dated.covers(&r));
        let both = HoldScope {
            participant_identifier: Some("+15550100123".into()),
            to: Some("2026-03-01T10:00:00Z".parse().unwrap()),
            ..dated.clone()
        };
        assert!(!both.covers(&r), "`to` is exclusive");
        let other = HoldScope {
            recording_ids: vec![RecordingId::new()],
            ..HoldScope::default()
        };
        assert!(!other.covers(&r));
        let user = HoldScope {
            user_id: Some(UserId::new()),
            ..HoldScope::default()
        };
        assert!(!user.covers(&r));
    }
}
