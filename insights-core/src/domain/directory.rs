use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{TenantId, UserId};

/// A user synchronised from the customer's directory (Entra ID via Graph).
/// Directory data is corrected at the source directory, never here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: UserId,
    pub tenant_id: TenantId,
    /// Entra object id (`id` of the Graph user resource).
    pub directory_object_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    /// Account name / mail nickname.
    pub alias: Option<String>,
    pub email: Option<String>,
    pub upn: Option<String>,
    /// Phone numbers, E.164 where they could be normalised.
    pub phone_numbers: Vec<String>,
    /// `sip:` URI (Teams SIP address).
    pub sip_uri: Option<String>,
    /// `tel:` URI used to identify the user for recording.
    pub tel_uri: Option<String>,
    /// Groups the user belongs to (names or ids), used by security
    /// profiles and retention policies.
    pub groups: Vec<String>,
    /// False once the user has left the directory; an inactive user still
    /// referenced by recordings stays until an admin deletes it.
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

/// Where a tenant's directory sync stands (issue 7, part 7): the Graph
/// `@odata.deltaLink` of the last complete run, so the next run asks only
/// for changes. Written only after a run has processed every page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySyncState {
    pub tenant_id: TenantId,
    /// The opaque delta link (a Graph URL with a `$deltatoken`); `None`
    /// forces a full sync next time.
    pub delta_link: Option<String>,
    /// When the last complete run finished.
    pub last_sync_at: DateTime<Utc>,
    /// When the last full (non-delta) run finished.
    pub last_full_sync_at: Option<DateTime<Utc>>,
}
