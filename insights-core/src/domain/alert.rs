//! Alerts (issue 17 §4): what went wrong, for whom (a tenant or the
//! installation), how often, and who acknowledged it; the channels that
//! carry them; the nodes' heartbeats the node and spool rules read.
//!
//! **No personal data, by construction.** An alert's `details` are built
//! only through [`NewAlert::id`], [`NewAlert::count`] and
//! [`NewAlert::code`]: identifiers (UUIDs), numbers and `'static` codes
//! the code base spells. Nothing typed by a person (a name, a number, an
//! e-mail, a URI) can reach an alert, its channels or its audit event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{AlertChannelId, AlertId, Realm, TenantId, string_enum};
use crate::crypto::SealedSecret;

string_enum!(
    /// What an alert is about (its rule). Stored: never rename one.
    AlertKind {
        /// Recording of a call could not proceed (the gateway's
        /// `recording-failure`: spool full, key service, node stopping).
        RecordingFailure => "recording-failure",
        /// No recording arrived for N minutes during business hours.
        NoRecordings => "no-recordings",
        /// A node stopped sending heartbeats without saying goodbye.
        NodeDown => "node-down",
        /// A gateway's spool is above its warning level (80 %).
        SpoolHigh => "spool-high",
        /// A gateway's spool is full (100 %).
        SpoolFull => "spool-full",
        /// The oldest recording waiting in a spool for upload is too old.
        UploadBacklog => "upload-backlog",
        /// Transcription jobs were dead-lettered.
        TranscriptionDead => "transcription-dead",
        /// The tenant's audit chain does not verify.
        AuditChain => "audit-chain",
        /// One user played or exported more recordings in an hour than
        /// the threshold.
        UnusualAccess => "unusual-access",
        /// The key service cannot wrap or unwrap the tenant's keys.
        KeyService => "key-service",
        /// Calls Microsoft says happened were not (fully) recorded
        /// (raised by completeness reconciliation).
        ReconciliationGap => "reconciliation-gap",
    }
);

impl AlertKind {
    /// `critical` or `warning` (shown by channels and the page).
    pub fn severity(&self) -> &'static str {
        match self {
            AlertKind::SpoolHigh
            | AlertKind::UploadBacklog
            | AlertKind::NoRecordings
            | AlertKind::TranscriptionDead
            | AlertKind::UnusualAccess
            | AlertKind::ReconciliationGap => "warning",
            _ => "critical",
        }
    }
}

string_enum!(
    /// How an alert leaves the installation.
    ChannelKind {
        /// A JSON POST signed with HMAC-SHA256 (`X-Insights-Signature`).
        Webhook => "webhook",
        /// E-mail over SMTP with STARTTLS (`[alerts.smtp]`).
        Email => "email",
        /// A Microsoft Teams incoming webhook (a MessageCard).
        Teams => "teams",
    }
);

/// An alert to raise: its kind, the key that makes two conditions "the
/// same" (deduplication), and ids and counts only.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    pub kind: AlertKind,
    /// The deduplication key within the kind (e.g. a node id, an actor
    /// id, a reason code); built from ids and codes only.
    pub key: String,
    pub details: Map<String, Value>,
}

impl NewAlert {
    /// An alert of `kind` whose deduplication key is the kind alone (add
    /// to it with [`NewAlert::keyed_by_id`] / [`NewAlert::keyed_by_code`]).
    pub fn new(kind: AlertKind) -> Self {
        NewAlert {
            kind,
            key: String::new(),
            details: Map::new(),
        }
    }

    /// Adds an identifier to the details.
    pub fn id(mut self, name: &'static str, id: Uuid) -> Self {
        self.details
            .insert(name.into(), Value::String(id.to_string()));
        self
    }

    /// Adds a count (or another number: minutes, percent) to the details.
    pub fn count(mut self, name: &'static str, n: i64) -> Self {
        self.details.insert(name.into(), Value::from(n));
        self
    }

    /// Adds a code the code base spells (a reason, a mode) to the details.
    pub fn code(mut self, name: &'static str, code: &'static str) -> Self {
        self.details.insert(name.into(), Value::String(code.into()));
        self
    }

    /// Adds an identifier to the deduplication key (and the details).
    pub fn keyed_by_id(mut self, name: &'static str, id: Uuid) -> Self {
        self.push_key(&id.to_string());
        self.id(name, id)
    }

    /// Adds a code to the deduplication key (and the details).
    pub fn keyed_by_code(mut self, name: &'static str, code: &'static str) -> Self {
        self.push_key(code);
        self.code(name, code)
    }

    /// An opaque reference that is not a UUID (an OIDC subject): its
    /// SHA-256, first 16 hex digits, in the key and the details.
    pub fn keyed_by_hash(mut self, name: &'static str, value: &str) -> Self {
        use sha2::Digest;
        let h = hex_prefix(&sha2::Sha256::digest(value.as_bytes()));
        self.push_key(&h);
        self.details.insert(name.into(), Value::String(h));
        self
    }

    /// A node's name in the key and the details: node names are
    /// installation configuration (host names), not personal data; kept
    /// to the characters a host name has.
    pub fn keyed_by_node(mut self, node: &str) -> Self {
        let clean: String = node
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '#'))
            .take(255)
            .collect();
        self.push_key(&clean);
        self.details.insert("node".into(), Value::String(clean));
        self
    }

    fn push_key(&mut self, part: &str) {
        if !self.key.is_empty() {
            self.key.push(':');
        }
        self.key.push_str(part);
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    /// `None`: installation-wide (operators see it).
    pub tenant_id: Option<TenantId>,
    pub kind: AlertKind,
    pub key: String,
    pub details: Map<String, Value>,
    /// How many times the condition was seen while this alert was open
    /// (1 when raised; repeats within the window only count up).
    pub occurrences: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// `pending` (to deliver), `delivered`, `failed` (every attempt
    /// failed for some channel), `rate-limited` (over the hourly limit:
    /// stored and shown, not sent) or `no-channel`.
    pub delivery: String,
    /// Per channel id: `sent`, or the failure's status/code; attempts.
    pub deliveries: Map<String, Value>,
    pub attempts: i64,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// An account id or `oidc:<subject>`; never a name.
    pub acknowledged_by: Option<String>,
}

impl Alert {
    /// The realm it belongs to.
    pub fn realm(&self) -> Realm {
        match self.tenant_id {
            Some(t) => Realm::Tenant(t),
            None => Realm::Platform,
        }
    }

    /// The JSON every channel carries (and the API shows): ids, counts,
    /// codes and times, nothing else.
    pub fn payload(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "severity": self.kind.severity(),
            "key": self.key,
            "details": self.details,
            "occurrences": self.occurrences,
            "first_at": self.first_at,
            "last_at": self.last_at,
        })
    }
}

/// Delivery states of an alert.
pub mod delivery {
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
    pub const RATE_LIMITED: &str = "rate-limited";
    pub const NO_CHANNEL: &str = "no-channel";
}

/// What [`raise_alert`](crate::store::AlertStore::raise_alert) did.
#[derive(Clone, Debug, PartialEq)]
pub enum Raised {
    /// A new alert (to be audited and delivered).
    New(Alert),
    /// The same condition is already open within the window: counted.
    Repeat(Alert),
}

impl Raised {
    pub fn alert(&self) -> &Alert {
        match self {
            Raised::New(a) | Raised::Repeat(a) => a,
        }
    }
}

/// A channel alerts go out on: a tenant's or (`tenant_id` `None`) the
/// installation's.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertChannel {
    pub id: AlertChannelId,
    pub tenant_id: Option<TenantId>,
    pub kind: ChannelKind,
    /// A label for admins.
    pub name: String,
    /// Webhook: the URL; e-mail: the recipients (comma-separated);
    /// Teams: the host of the URL (shown only; the URL is the secret).
    pub target: String,
    /// Webhook: the HMAC key; Teams: the whole incoming-webhook URL.
    /// Sealed under the owner's KEK (context `alert-channel:<id>`);
    /// never shown by the API.
    pub secret: Option<SealedSecret>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl AlertChannel {
    /// The sealing context of its secret.
    pub fn secret_context(id: AlertChannelId) -> String {
        format!("alert-channel:{id}")
    }
}

/// A node's heartbeat (platform scope): written every few seconds by
/// every node, deleted when it stops cleanly; the node-down, spool and
/// upload-backlog rules read it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHeartbeat {
    /// `node_name` plus the process suffix of the scheduler's holder.
    pub node: String,
    /// The roles it runs (`api,gateway,...`).
    pub roles: String,
    pub at: DateTime<Utc>,
    /// Gateways: bytes in the spool and its quota.
    pub spool_used: Option<i64>,
    pub spool_quota: Option<i64>,
    /// Gateways: when the oldest finished recording still waiting in the
    /// spool for upload finished.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_hold_ids_counts_and_codes_and_the_key_names_the_condition() {
        let actor = Uuid::new_v4();
        let a = NewAlert::new(AlertKind::UnusualAccess)
            .keyed_by_id("actor_id", actor)
            .count("recordings", 12)
            .code("action", "play");
        assert_eq!(a.key, actor.to_string());
        assert_eq!(a.details["recordings"], 12);
        assert_eq!(a.details["action"], "play");
        let n = NewAlert::new(AlertKind::NodeDown).keyed_by_node("gw-1#abc <x@y>");
        assert_eq!(n.key, "gw-1#abcxy");
        let r = NewAlert::new(AlertKind::RecordingFailure)
            .keyed_by_code("reason", "spool-full")
            .keyed_by_code("mode", "required");
        assert_eq!(r.key, "spool-full:required");
    }

    #[test]
    fn kinds_have_a_severity_and_stable_strings() {
        assert_eq!(AlertKind::NodeDown.severity(), "critical");
        assert_eq!(AlertKind::SpoolHigh.severity(), "warning");
        assert_eq!(
            "reconciliation-gap".parse::<AlertKind>().ok(),
            Some(AlertKind::ReconciliationGap)
        );
    }
}
