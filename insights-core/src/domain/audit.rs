use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditEventId, RecordingId, TenantId, string_enum};

string_enum!(
    /// What an audited actor did.
    AuditAction {
        Login => "login",
        LoginFailed => "login-failed",
        Logout => "logout",
        Search => "search",
        Play => "play",
        Download => "download",
        TranscriptView => "transcript-view",
        Export => "export",
        PolicyChange => "policy-change",
        LegalHoldPlace => "legal-hold-place",
        LegalHoldLift => "legal-hold-lift",
        RetentionDelete => "retention-delete",
        GdprAccess => "gdpr-access",
        GdprErasure => "gdpr-erasure",
        SettingsChange => "settings-change",
        UserChange => "user-change",
        TenantCreate => "tenant-create",
        KeyShred => "key-shred",
        /// A tenant's key-encryption key was created explicitly
        /// (`insights keys ensure`) or rotated (`insights keys rotate`).
        KeyRotate => "key-rotate",
        /// A supervisor asked to play a recording (four-eyes playback).
        AccessRequest => "access-request",
        /// Someone approved or denied such a request.
        AccessDecision => "access-decision",
        /// A spooled recording is close to the spool's maximum age.
        SpoolExpiryWarning => "spool-expiry-warning",
        /// A spooled recording passed the spool's maximum age unuploaded.
        SpoolExpired => "spool-expired",
        /// A destructive governance change was asked for; it waits for a
        /// second user's approval (two-person governance).
        GovernanceChangeRequest => "governance-change-request",
        /// Someone approved (and so applied) or rejected such a change.
        GovernanceChangeDecision => "governance-change-decision",
        /// The recording policy kept a call from being recorded (details:
        /// the deciding rule's id, list and kind; never its value).
        RecordingNotRecorded => "recording-not-recorded",
        /// Recording could not proceed (spool full, key service or blob
        /// store unreachable, node shutting down); details: the tenant's
        /// failure mode, the reason and what Teams was told. The hook for
        /// alerts.
        RecordingFailure => "recording-failure",
        /// A completeness reconciliation ran (details: the period and the
        /// totals, ids only).
        CompletenessRun => "completeness-run",
        /// Someone read or exported the completeness report of a period.
        CompletenessView => "completeness-view",
        /// Coverage of in-scope calls fell below the tenant's threshold
        /// (details: coverage, threshold, the run's id). The hook for
        /// alerts.
        CompletenessAlert => "completeness-alert",
        /// Someone paused a live recording (details: the gap's id).
        RecordingPause => "recording-pause",
        /// Someone resumed a paused recording (details: the gap's id).
        RecordingResume => "recording-resume",
        /// An alert was raised (details: its kind, key and ids/counts).
        AlertRaised => "alert-raised",
        /// Someone acknowledged an alert.
        AlertAcknowledged => "alert-acknowledged",
        /// An alert channel was added or removed (never its secret).
        AlertChannelChange => "alert-channel-change",
    }
);

/// An event to append to a tenant's audit chain; the store assigns the
/// sequence number, time and hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// Who acted: an account id, `oidc:<subject>` or `cli`. Never a name.
    pub actor: String,
    pub action: AuditAction,
    pub recording_id: Option<RecordingId>,
    /// Id of another affected object (hold, policy, export...).
    pub target: Option<String>,
    /// Reason for access (free text or case number) when one was asked.
    pub reason: Option<String>,
    /// Where the request came from (client address).
    pub source: Option<String>,
    /// Further structured facts (filters of a search, byte range, ...).
    pub details: serde_json::Value,
}

/// One link of a tenant's audit hash chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub tenant_id: TenantId,
    /// 1-based position in the tenant's chain, without gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub recording_id: Option<RecordingId>,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
    pub details: serde_json::Value,
    /// Hash of the previous event (64 zeros for the first), lower-case hex.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and the canonical form of this event.
    pub hash: String,
}

/// The hash that precedes the first event of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditEvent {
    /// Builds the next link after `prev` (`None` for the first event).
    pub fn chain(
        tenant_id: TenantId,
        prev: Option<(i64, &str)>,
        at: DateTime<Utc>,
        new: NewAuditEvent,
    ) -> Self {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h.to_owned()),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let mut ev = AuditEvent {
            id: AuditEventId::new(),
            tenant_id,
            seq,
            at,
            actor: new.actor,
            action: new.action,
            recording_id: new.recording_id,
            target: new.target,
            reason: new.reason,
            source: new.source,
            details: new.details,
            prev_hash,
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        ev
    }

    /// Recomputes this event's hash from its fields.
    pub fn compute_hash(&self) -> String {
        // Canonical form: a JSON array with a fixed field order. Object
        // keys inside `details` are sorted by serde_json's default map.
        let canonical = serde_json::json!([
            1,
            self.id.to_string(),
            self.tenant_id.to_string(),
            self.seq,
            self.at.timestamp_micros(),
            self.actor,
            self.action.as_str(),
            self.recording_id.map(|r| r.to_string()),
            self.target,
            self.reason,
            self.source,
            self.details,
        ]);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(canonical.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// Filters for listing audit events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub recording_id: Option<RecordingId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events with `seq > after_seq` (pagination).
    pub after_seq: Option<i64>,
    /// At most this many events (0 = no limit).
    pub limit: u32,
}

/// The result of checking a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum ChainVerdict {
    Intact { events: u64 },
    Broken { at_seq: i64, problem: String },
}

/// Verifies a whole chain given in `seq` order, and that it ends at the
/// recorded head (`head` = last seq and hash kept apart from the events,
/// so deleting events from the end is detected too). Reports the first
/// problem; [`super::diagnose_chain`] reports all of them.
pub fn verify_chain(events: &[AuditEvent], head: Option<(i64, &str)>) -> ChainVerdict {
    let report = super::diagnose_chain(events, head);
    match report.problems.first() {
        None => ChainVerdict::Intact {
            events: report.events,
        },
        Some(p) => ChainVerdict::Broken {
            at_seq: p.seq(),
            problem: p.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(actor: &str) -> NewAuditEvent {
        NewAuditEvent {
            actor: actor.into(),
            action: AuditAction::Play,
            recording_id: Some(RecordingId::new()),
            target: None,
            reason: Some("case 42".into()),
            source: None,
            details: serde_json::json!({"range": "0-99", "a": 1}),
        }
    }

    fn chain_of(n: usize) -> Vec<AuditEvent> {
        let t = TenantId::new();
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = AuditEvent::chain(t, prev, Utc::now(), ev(&format!("a{i}")));
            out.push(e);
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain_of(5);
        let head = c.last().map(|e| (e.seq, e.hash.as_str()));
        assert_eq!(verify_chain(&c, head), ChainVerdict::Intact { events: 5 });
    }

    #[test]
    fn edits_deletions_and_reorders_are_detected() {
        let c = chain_of(5);
        let head = c.last().map(|e| (e.seq, e.hash.clone()));
        let head = head.as_ref().map(|(s, h)| (*s, h.as_str()));

        let mut edited = c.clone();
        edited[2].reason = Some("other".into());
        assert!(matches!(
            verify_chain(&edited, head),
            ChainVerdict::Broken { at_seq: 3, .. }
        ));

        let mut deleted = c.clone();
        deleted.remove(1);
        assert!(matches!(
            verify_chain(&deleted, head),
            ChainVerdict::Broken { at_seq: 2, .. }
        ));

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify_chain(&reordered, head),
            ChainVerdict::Broken { .. }
        ));

        let mut truncated = c.clone();
        truncated.pop();
        assert!(matches!(
            verify_chain(&truncated, head),
            ChainVerdict::Broken { at_seq: 5, .. }
        ));
    }
}
