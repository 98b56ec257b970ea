use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TenantId;

/// A customer organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique, human-chosen short name (`contoso`).
    pub name: String,
    /// The Entra ID (Azure AD) tenant id; Teams notifications carry it and
    /// are mapped to our tenant through it.
    pub directory_tenant_id: Option<Uuid>,
    pub settings: TenantSettings,
    pub created_at: DateTime<Utc>,
}

/// Per-tenant switches that change how content may be used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Cloud AI providers may receive this tenant's media/transcripts.
    pub cloud_ai_enabled: bool,
    /// The customer signed the waiver that allows immediate deletion of
    /// media on an erasure request (GDPR notice, Art. 17 a).
    pub media_deletion_waiver: bool,
    /// Play, download and transcript view require a stated reason.
    pub require_access_reason: bool,
    /// A supervisor needs a second person's approval before playing.
    pub four_eyes_playback: bool,
}

/// What is needed to create a tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTenant {
    pub name: String,
    pub directory_tenant_id: Option<Uuid>,
}

impl Tenant {
    /// The name of this tenant's blob container: `t-` followed by the
    /// tenant id in simple (hyphen-less) form; valid for Azure (3–63
    /// lower-case letters, digits, hyphens) and as a directory name.
    pub fn container_name(id: TenantId) -> String {
        format!("t-{}", id.0.simple())
    }
}

/// Checks a tenant short name: 2–63 characters of `a-z`, `0-9`, `-`, `_`,
/// starting with a letter or digit.
pub fn validate_tenant_name(name: &str) -> Result<(), String> {
    let ok_len = (2..=63).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(format!(
            "tenant name `{name}` must be 2-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        ))
    }
}
